"""External validation on real recordings (config/external.yaml, reduced budget): models trained on
one group of UCI EMG subjects are applied by the workflow to four other subjects, with the training
run's preprocessing and encoder, and scored with subject-bootstrap confidence intervals."""

from __future__ import annotations

import csv
import json
import re

import h5py
import pytest
import yaml

from biospike.config import deep_merge
from tests.workflow.helpers import REPO, run_snakemake

pytestmark = [pytest.mark.realdata, pytest.mark.workflow, pytest.mark.slow]

EXTERNAL = REPO / "config" / "external.yaml"
BUDGET = {"train": {"epochs": 4, "patience": 4, "max_train_windows": 600}}
SET = "uci_other_subjects"
N_EXTERNAL_SUBJECTS = 4  # 28, 29, 31, 35
PSEUDONYM = re.compile(r"^sub-[0-9a-f]{8,}$")


@pytest.fixture(scope="module")
def external_run(shared_data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("external")
    cfg = deep_merge(yaml.safe_load(EXTERNAL.read_text()), BUDGET)
    cfg["results_dir"] = str(workdir / "results")
    cfg["data_root"] = str(shared_data.resolve())
    configfile = workdir / "external.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = run_snakemake(workdir, "--cores", "2", configfile=configfile, check=False, timeout_s=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir / "results" / "emg_uci_cohort" / "delta", cfg


@pytest.mark.parametrize("target", ["snn", "ann", "classical"])
def test_external_metrics_have_cis_and_pseudonyms(external_run, target):
    base, _ = external_run
    out = base / target / "external" / SET
    metrics = json.loads((out / "metrics.json").read_text())
    window = metrics["windows"]
    assert window["n_subjects"] == N_EXTERNAL_SUBJECTS
    lo, hi = window["balanced_accuracy_ci"]
    assert 0.0 <= lo <= window["balanced_accuracy"] <= hi <= 1.0
    assert window["chance"]["balanced_accuracy"] == pytest.approx(1 / 6)
    # UCI recordings hold several gestures each: no recording-level score against a "majority" label
    assert "recordings" not in metrics
    # no patient identifier leaves ingestion: the external recordings are pseudonymised too
    with open(out / "recordings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(PSEUDONYM.match(r["subject"]) for r in rows)
    assert not any(name in (out / "predictions.csv").read_text() for name in ("28/", "29/", "31/", "35/"))
    with h5py.File(out / "predictions.h5") as f:
        assert f["logits"].shape[0] == window["n"] and f["logits"].shape[1] == 6


def test_external_uses_the_training_preprocessing(external_run):
    """The predict stage refits nothing: every model applies the preprocessing, channels and rate
    recorded with it at training time (from config/external.yaml's dataset block)."""
    base, cfg = external_run
    spec = cfg["datasets"]["emg_uci_cohort"]
    sources = [json.loads((base / t / "external" / SET / "metrics.json").read_text())["source"]
               for t in ("snn", "ann", "classical")]
    assert sources[0] == sources[1] == sources[2]
    assert sources[0]["fs_hz"] == spec["resample_hz"]
    assert list(sources[0]["ingest"]["bandpass_hz"]) == spec["bandpass_hz"]
