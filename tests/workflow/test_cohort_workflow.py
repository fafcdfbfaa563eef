"""config/cohort.yaml end to end on a reduced budget, read from ../shared/data/cohort: a seeded
subset of PhysioNet/CinC 2017 patients and the 12 UCI EMG subjects, split by subject, with the
converged targets next to the early-stopped ones, subject-level DP, and reference ensembles in
shards. The reduced config is derived from cohort.yaml at test time (its datasets, splits and
targets as the cohort run has them; only sizes and epochs shrink)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml

from biospike.config import deep_merge
from tests.workflow.helpers import REPO, run_snakemake

pytestmark = [pytest.mark.realdata, pytest.mark.workflow, pytest.mark.slow]

COHORT = REPO / "config" / "cohort.yaml"
N_PATIENTS = 120  # of 8429: enough for subject-wise splits into five parts
EPS = 8
BUDGET = {
    "train": {"epochs": 2, "patience": 2, "converged_epochs": [3], "max_train_windows": 300},
    "privacy": {"epsilons": [EPS], "epochs": 2, "subjects_per_batch": 8},
    "attack": {"targets": ["snn", "ann", "conv*", "dpsnn_eps*"], "n_reference_models": 2,
               "reference_models_by_group": {"dpsnn_eps*": 2}, "reference_shard_size": 2,
               "t_sweep": [], "bootstrap": {"n": 20}},
}


def reduced_cohort(cohort: dict, results_dir: Path, data_root: Path) -> dict:
    cfg = copy.deepcopy(cohort)
    for section, budget in BUDGET.items():
        cfg[section] = deep_merge(cfg.get(section) or {}, budget)
    for spec in cfg["datasets"].values():
        for section in ("train", "privacy", "attack"):
            if spec.get(section):  # a dataset's own override would otherwise win over the budget
                spec[section] = {k: v for k, v in spec[section].items() if k not in BUDGET[section]}
        if spec["reader"] == "physionet2017":
            spec["max_subjects"] = N_PATIENTS
        else:
            spec["max_windows_per_class_per_subject"] = 20
    cfg["results_dir"] = str(results_dir)
    cfg["data_root"] = str(data_root)
    return cfg


@pytest.fixture(scope="module")
def cohort_run(shared_data, tmp_path_factory):
    root = shared_data / "cohort"
    if not root.is_dir():
        pytest.fail(f"{root} is missing (the cohort data; see its README)")
    workdir = tmp_path_factory.mktemp("cohort_reduced")
    cfg = reduced_cohort(yaml.safe_load(COHORT.read_text()), workdir / "results", root.resolve())
    configfile = workdir / "cohort_reduced.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = run_snakemake(workdir, "--cores", "2", configfile=configfile, check=False, timeout_s=3600)
    return workdir / "results", cfg, proc


def _load(path: Path) -> dict:
    assert path.is_file(), f"missing {path}"
    return json.loads(path.read_text())


def test_reduced_cohort_keeps_the_cohort_design(tmp_path):
    cohort = yaml.safe_load(COHORT.read_text())
    cfg = reduced_cohort(cohort, tmp_path / "r", tmp_path / "d")
    assert cfg["datasets"].keys() == cohort["datasets"].keys()
    for spec in cfg["datasets"].values():
        assert spec["split_by"] == "subject"
    # patient-level DP on ECG (one patient per record); EMG's 12 people are too few units for it
    assert cfg["datasets"]["ecg_af_cohort"]["privacy"]["unit"] == "subject"
    assert cohort["attack"]["n_reference_models"] >= 64, "the cohort config's K (issue 19: K = 64)"


def test_cohort_run(cohort_run):
    results, cfg, proc = cohort_run
    assert proc.returncode == 0, f"snakemake failed ({proc.returncode}):\n{proc.stderr[-5000:]}"
    from biospike.store import read_windows

    for ds, spec in cfg["datasets"].items():
        win = read_windows(results / ds / "windows.h5")
        n_subjects = len(set(win.subject))
        if spec["reader"] == "physionet2017":
            sub = win.preprocessing["subject_subsample"]
            assert sub and sub["kept"] == N_PATIENTS and sub["available"] == 8429, sub
            assert 0.95 * N_PATIENTS <= n_subjects <= N_PATIENTS, n_subjects  # a record may yield no window
        else:
            assert n_subjects == 12, n_subjects
        # subject-wise splits: no person in two parts
        parts = {name: set(win.subject[idx]) for name, idx in win.splits.items() if len(idx)}
        names = sorted(parts)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not parts[a] & parts[b], (ds, a, b)
        for enc in (spec.get("encode") or {}).get("encodings") or cfg["encode"]["encodings"]:
            base = results / ds / enc
            for target in ("snn", "ann", "convsnn_ep3", "convann_ep3", f"dpsnn_eps{EPS}"):
                bal = _load(base / target / "metrics.json")["test"]["balanced_accuracy"]
                assert math.isfinite(bal) and 0 <= bal <= 1, (ds, target, bal)
                summary = _load(base / target / "attack" / "summary.json")
                assert summary["K"] >= 2, (ds, target)
                subject = summary["attacks"]["lira_online"]["subject"]
                assert subject.get("status") != "not estimable", (ds, target, subject)
                # patient-level membership with many units on ECG; EMG has 12 people in all
                min_members = 10 if spec["reader"] == "physionet2017" else 2
                assert 0 <= subject["auc"] <= 1 and subject["n_members"] >= min_members, (ds, target, subject)
            conv = json.loads((base / "convsnn_ep3" / "metrics.json").read_text())
            assert conv["epochs_run"] == 3, "a converged target runs every epoch (no early stopping)"
            priv = _load(base / f"dpsnn_eps{EPS}" / "privacy.json")
            unit = (spec.get("privacy") or {}).get("unit") or cfg["privacy"].get("unit", "window")
            assert priv["privacy_unit"] == unit, (ds, priv["privacy_unit"], unit)
            assert 0 < priv["epsilon"] <= EPS * (1 + 1e-6), (ds, priv["epsilon"])
