"""The whole workflow on config/tiny.yaml: runs, is idempotent, lints, and reproduces itself."""

from __future__ import annotations

import json

import pytest

from tests.workflow.helpers import compare_result_trees, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def test_tiny_workflow_produces_every_stage(tiny_run):
    workdir, _ = tiny_run
    results = workdir / "results"
    for ds in ("demo_eeg", "demo_ecg", "demo_emg"):
        assert (results / ds / "windows.h5").is_file(), ds
    assert (workdir / "data" / "demo" / "eeg").is_dir()


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, _ = tiny_run
    proc = run_snakemake(workdir, "--cores", "2", "--dry-run")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_lint_passes(tiny_run):
    workdir, _ = tiny_run
    proc = run_snakemake(workdir, "--lint", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-4000:]


def test_same_seed_same_results(tiny_run, tmp_path):
    """A second run from scratch (one dataset, up to training) gives identical outputs,
    timestamps and provenance aside. The SLURM test compares a complete second run."""
    workdir, _ = tiny_run
    run_snakemake(tmp_path, "--cores", "2", "results/demo_ecg/delta/snn/metrics.json",
                  "results/demo_ecg/delta/ann/metrics.json")
    diffs = compare_result_trees(workdir / "results", tmp_path / "results", b_is_subset=True)
    assert diffs == []
    assert (tmp_path / "results/demo_ecg/delta/snn/model.pt").is_file()


def test_other_seed_other_splits(tiny_run, tmp_path):
    workdir, _ = tiny_run
    run_snakemake(tmp_path, "results/demo_emg/windows.h5", "--cores", "2", "--config", "seed=7")
    from biospike.store import read_windows

    a = read_windows(workdir / "results" / "demo_emg" / "windows.h5")
    b = read_windows(tmp_path / "results" / "demo_emg" / "windows.h5")
    assert a.signals.shape != b.signals.shape or not (a.signals == b.signals).all() or \
        sorted(set(a.subject[a.splits["test"]])) != sorted(set(b.subject[b.splits["test"]]))


def test_bad_config_key_fails_clearly(tmp_path, repo):
    import yaml

    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load((repo / "config" / "tiny.yaml").read_text())
    cfg["splits"]["test_fractoin"] = 0.3
    bad.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "--cores", "1", "--dry-run", configfile=bad, check=False)
    assert proc.returncode != 0
    assert "test_fractoin" in proc.stdout + proc.stderr


def test_dry_run_fails_on_a_pattern_matching_nothing(tmp_path, repo):
    """Issue 18: the meaning checks run when the Snakefile is read, so `snakemake -n` refuses a
    dataset whose pattern matches no file with ingestion's message (not a log after the start)."""
    import yaml

    empty = tmp_path / "recordings"
    empty.mkdir()
    cfg = yaml.safe_load((repo / "config" / "tiny.yaml").read_text())
    cfg["datasets"]["demo_eeg"]["path"] = str(empty)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "--cores", "1", "--dry-run", configfile=bad, check=False)
    assert proc.returncode != 0
    assert f"{empty}: no files match pattern '*.edf'" in proc.stdout + proc.stderr


def test_provenance_recorded(tiny_run):
    workdir, _ = tiny_run
    from biospike.store import read_windows

    prov = read_windows(workdir / "results" / "demo_eeg" / "windows.h5").provenance
    assert prov["seed"] is not None and prov["versions"]["mne"] and prov["inputs"]
    assert all(len(h) == 64 for h in prov["inputs"].values())
    json.dumps(prov)
