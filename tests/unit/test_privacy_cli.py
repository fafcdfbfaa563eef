"""`biospike harden` / `biospike privacy-table` end to end on a small synthetic spikes.h5."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from biospike.cli import main
from biospike.store import Spikes, read_json, write_spikes

torch.set_num_threads(1)

TRAIN = {"epochs": 2, "hidden": [8], "batch_size": 32, "tau_mem_s": 0.02, "tau_syn_s": 0.01,
         "readout_tau_mem_s": 0.02, "readout_tau_syn_s": 0.01, "fail_on_silent": False}


@pytest.fixture(scope="module")
def spikes_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, steps, channels = 240, 20, 4
    y = rng.integers(0, 2, n)
    rate = np.where(y[:, None, None] == 0, [0.4, 0.4, 0.05, 0.05], [0.05, 0.05, 0.4, 0.4])
    x = (rng.random((n, steps, channels)) < rate).astype(np.uint8)
    subject = np.array([f"sub{i % 12:02d}" for i in range(n)])
    sid = np.array([i % 12 for i in range(n)])
    splits = {"train": np.flatnonzero(sid < 6), "val": np.flatnonzero((sid >= 6) & (sid < 8)),
              "test": np.flatnonzero((sid >= 8) & (sid < 10))}
    mia = {"members": splits["train"], "nonmembers": splits["test"], "population": np.flatnonzero(sid >= 10)}
    path = tmp_path_factory.mktemp("privacy") / "ds" / "delta" / "spikes.h5"
    path.parent.mkdir(parents=True)
    write_spikes(path, Spikes(spikes=x, labels=y, subject=subject, dt_s=0.005, channel_names=["a+", "a-", "b+", "b-"],
                              class_names=["left", "right"], encoder={"name": "delta", "fitted_on": "train"},
                              stats={}, splits=splits, mia=mia))
    return path


def _params(**over):
    """The fixture's encoder was fitted on the training split: the opt-out ``warn`` lets it train
    (the default ``require`` refuses, see test_harden_errors_are_one_line)."""
    from tests.conftest import envelope

    return envelope(seed=3, dataset="ds", encoding="delta", train=TRAIN,
                    privacy={"epochs": 2, "batch_size": 16, "public_preprocessing": "warn", **over})


def test_harden_writes_the_target_with_train_metrics_schema(spikes_path, tmp_path):
    out = tmp_path / "ds" / "delta" / "dpsnn_eps3"
    rc = main(["harden", "--params", _params(), "--input", str(spikes_path), "--epsilon", "3", "--outdir", str(out),
               "--no-progress"])
    assert rc == 0
    for name in ("model.pt", "metrics.json", "curve.csv", "privacy.json"):
        assert (out / name).is_file(), name
    priv = read_json(out / "privacy.json")
    assert priv["epsilon"] <= 3.0 and priv["target_epsilon"] == 3.0
    assert priv["privacy_unit"] == "window" and priv["accountant"] == "prv"
    assert priv["n_units"] == 120 and priv["sample_rate"] == pytest.approx(16 / 120)
    assert abs(priv["epsilon_check_dp_accounting_pld"] - priv["epsilon"]) <= 0.05 * priv["epsilon"]
    assert len(priv["clipping_history"]) == 2
    # the noise is secret by default, and the record says so
    assert priv["noise_mode"] == "secret" and priv["replayable"] is False and priv["valid_for_release"] is True
    assert "os.urandom" in priv["noise_source"]
    enc = [r for r in priv["preprocessing"] if r["statistic"].startswith("encoder")][0]
    assert enc["private"] is True and "NOT covered" in enc["note"]
    scale = [r for r in priv["preprocessing"] if r["statistic"].startswith("input_scale")][0]
    assert scale["fitted_on"].startswith("population")
    # same top-level schema as `biospike train`'s metrics.json
    snn = tmp_path / "ds" / "delta" / "snn"
    from tests.conftest import envelope

    assert main(["train", "--params", envelope(seed=3, dataset="ds", encoding="delta", train=TRAIN),
                 "--input", str(spikes_path), "--model", "snn", "--outdir", str(snn), "--no-progress"]) == 0
    ours, theirs = read_json(out / "metrics.json"), read_json(snn / "metrics.json")
    assert set(theirs) <= set(ours)
    assert set(theirs["test"]) == set(ours["test"])
    with open(out / "curve.csv") as fh:
        header = next(csv.reader(fh))
    with open(snn / "curve.csv") as fh:
        assert set(next(csv.reader(fh))) - {"rate_hidden0_hz"} <= set(header)
    # the model reloads like any checkpoint
    from biospike.models import load_checkpoint

    model, meta = load_checkpoint(out / "model.pt")
    assert meta["privacy"]["epsilon"] == priv["epsilon"]
    assert len(meta["train_indices"]) == 120

    # audit of this recipe, and the privacy-utility table
    audit_out = out / "audit.json"
    assert main(["harden", "--params", _params(audit={"n_canaries": 20}), "--input", str(spikes_path),
                 "--epsilon", "3", "--audit", str(audit_out), "--no-progress"]) == 0
    audit = read_json(audit_out)
    assert audit["m"] == 20 and audit["epsilon_lower_bound"] <= audit["claimed_epsilon"]
    np_audit = tmp_path / "ds" / "delta" / "privacy_audit_nonprivate.json"
    assert main(["harden", "--params", _params(audit={"n_canaries": 20, "nonprivate_epochs": 3}), "--input",
                 str(spikes_path), "--epsilon", "none", "--audit", str(np_audit), "--no-progress"]) == 0
    np_result = read_json(np_audit)
    assert np_result["claimed_epsilon"] is None and "3 epochs" in np_result["recipe"]
    table = tmp_path / "ds" / "delta" / "privacy_utility.csv"
    table_params = json.dumps({"settings": {"privacy": {"epochs": 2}}, "seed": 3})
    assert main(["privacy-table", "--params", table_params, "--targets", str(out), "--nonprivate", str(snn),
                 "--nonprivate-audit", str(np_audit), "--output", str(table)]) == 0
    with open(table) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["target"] for r in rows] == ["dpsnn_eps3", "snn"]
    assert rows[1]["epsilon"] == "inf" and rows[0]["audit_epsilon_lower_bound"] != ""
    assert rows[1]["audit_canary_auc"] != ""
    assert read_json(table.with_suffix(".json"))["rows"][1]["epsilon"] is None


def test_subject_level_harden(spikes_path, tmp_path):
    out = tmp_path / "dpsnn_eps8"
    assert main(["harden", "--params", _params(unit="subject", subjects_per_batch=2), "--input", str(spikes_path),
                 "--epsilon", "8", "--outdir", str(out), "--no-progress"]) == 0
    priv = read_json(out / "privacy.json")
    assert priv["privacy_unit"] == "subject" and priv["n_units"] == 6
    assert priv["sample_rate"] == pytest.approx(2 / 6)


def test_harden_errors_are_one_line(spikes_path, tmp_path, capsys):
    assert main(["harden", "--params", _params(), "--input", str(spikes_path), "--epsilon", "none",
                 "--outdir", str(tmp_path)]) == 2
    assert "only meaningful with --audit" in capsys.readouterr().err
    assert main(["harden", "--params", _params(), "--input", str(tmp_path / "missing.h5"), "--epsilon", "1",
                 "--outdir", str(tmp_path)]) == 2
    assert main(["harden", "--params", _params(public_preprocessing="require"), "--input", str(spikes_path),
                 "--epsilon", "1", "--outdir", str(tmp_path / "x")]) == 2
    assert "fit the encoder on the population split" in capsys.readouterr().err
    assert not (tmp_path / "x" / "model.pt").exists()
    assert main(["harden", "--params", _params(audit={"n_canary": 5}), "--input", str(spikes_path),
                 "--epsilon", "1", "--audit", str(tmp_path / "a.json")]) == 2
    assert "privacy/audit/n_canary': unknown key" in capsys.readouterr().err
    assert main(["harden", "--params", _params(epoch=3), "--input", str(spikes_path), "--epsilon", "1",
                 "--outdir", str(tmp_path / "y")]) == 2
    assert "privacy/epoch': unknown key" in capsys.readouterr().err


def test_subject_level_refuses_a_population_that_shares_subjects(tmp_path, capsys):
    """Split below subject level: the population pool holds windows of training subjects, which a
    subject-level guarantee protects, so they are not public and harden stops."""
    rng = np.random.default_rng(1)
    n = 120
    y = rng.integers(0, 2, n)
    x = (rng.random((n, 20, 4)) < 0.2).astype(np.uint8)
    subject = np.array([f"sub{i % 4}" for i in range(n)])  # every pool holds all four subjects
    seg = np.arange(n) // 10
    splits = {"train": np.flatnonzero(seg < 6), "val": np.flatnonzero((seg >= 6) & (seg < 8)),
              "test": np.flatnonzero((seg >= 8) & (seg < 10))}
    mia = {"members": splits["train"], "nonmembers": splits["test"], "population": np.flatnonzero(seg >= 10)}
    path = tmp_path / "seg.h5"
    write_spikes(path, Spikes(spikes=x, labels=y, subject=subject, dt_s=0.005, channel_names=["a+", "a-", "b+", "b-"],
                              class_names=["l", "r"], encoder={"name": "delta", "fitted_on": "population"}, stats={},
                              splits=splits, mia=mia))
    out = tmp_path / "dpsnn_eps8"
    assert main(["harden", "--params", _params(unit="subject", subjects_per_batch=2), "--input", str(path),
                 "--epsilon", "8", "--outdir", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "4 subject(s) of the population pool also have training windows" in err and "split_by: subject" in err
    assert not out.exists()
    # window-level privacy: the population's windows are never training windows, so it is public
    assert main(["harden", "--params", _params(), "--input", str(path), "--epsilon", "8", "--outdir", str(out),
                 "--no-progress"]) == 0
    rec = {r["statistic"].split(" (")[0]: r for r in read_json(out / "privacy.json")["preprocessing"]}
    assert rec["encoder parameters"]["public"] is True and rec["encoder parameters"]["inside_guarantee"] is True
