"""`biospike predict`: a trained model on new recordings, with the training run's preprocessing and
encoder; the round trip on the training recordings reproduces the pipeline's own predictions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _synth import write_edf, write_uci_text

from biospike.cli import main
from biospike.config import section_settings
from biospike.encode.stage import encode_settings, encode_windows
from biospike.ingest import ingest_dataset
from biospike.models import load_checkpoint, predict_logits
from biospike.predict import load_trained, predict_recordings
from biospike.store import read_json, read_spikes, write_spikes, write_windows
from tests.conftest import envelope

SPLITS = {"val_fraction": 0.2, "test_fraction": 0.2, "population_fraction": 0.2}
CHANNELS = ["FC3", "FC4", "C3", "Cz", "C4"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("BIOSPIKE_PROGRESS", "off")
    torch.set_num_threads(1)


def _eeg_spec(path: Path) -> dict:
    return section_settings("dataset", {
        "reader": "edf", "modality": "eeg", "path": str(path), "pattern": "*.edf", "subject_regex": r"^(S\d+)",
        "expected_fs_hz": 160, "channels": CHANNELS, "classes": ["left", "right"],
        "label_map": {"T1": "left", "T2": "right"}, "notch_hz": 50, "bandpass_hz": [8.0, 30.0], "resample_hz": 100,
        "window_s": 2.0, "stride_s": 1.0})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset of 8 EEG subjects ingested, delta-encoded, and an SNN and a classical model trained."""
    root = tmp_path_factory.mktemp("predict")
    rec = root / "eeg"
    for i in range(8):
        write_edf(rec / f"S{i:02d}.edf", n_trials=4, seed=i)
    import os

    os.environ["BIOSPIKE_PROGRESS"] = "off"
    win = ingest_dataset(_eeg_spec(rec), "site_a", 3, SPLITS, progress=False)
    res = root / "R" / "site_a"
    write_windows(res / "windows.h5", win)
    sp = encode_windows(win, "delta", encode_settings({}), seed=5)
    write_spikes(res / "delta" / "spikes.h5", sp)
    train = {"epochs": 3, "hidden": [16], "fail_on_silent": False}
    for model in ("snn", "classical"):
        io = (["--input", str(res / "delta" / "spikes.h5")] if model != "classical" else [])
        assert main(["train", "--params", envelope(seed=3, dataset="site_a", encoding="delta", train=train), *io,
                     "--windows", str(res / "windows.h5"), "--model", model, "--outdir", str(res / "delta" / model),
                     "--no-progress"]) == 0
    return {"root": root, "recordings": rec, "results": res}


def test_round_trip_equals_the_pipelines_own_test_predictions(trained):
    res = trained["results"]
    model = load_trained(res / "delta" / "snn" / "model.pt")
    pred = predict_recordings(model, {"path": str(trained["recordings"]), "pattern": "*.edf",
                                      "subject_regex": r"^(S\d+)"}, name="site_a", progress=False)
    sp = read_spikes(res / "delta" / "spikes.h5")
    from biospike.store import read_windows

    win = read_windows(res / "windows.h5")
    network, _ = load_checkpoint(res / "delta" / "snn" / "model.pt")
    test = np.sort(sp.splits["test"])
    own = predict_logits(network, sp.spikes[test])
    key = {(r, round(s * 100)): i for i, (r, s) in enumerate(zip(pred.record, pred.start_s, strict=True))}
    rows = [key[(win.record[i], int(win.start[i]))] for i in test]  # same pseudonyms, same window starts
    np.testing.assert_allclose(pred.logits[rows], own, rtol=1e-5, atol=1e-6)
    assert np.array_equal(pred.labels[rows], sp.labels[test])
    # the classical model (raw windows) too
    cmodel = load_trained(res / "delta" / "classical" / "model.joblib")
    cpred = predict_recordings(cmodel, {"path": str(trained["recordings"]), "pattern": "*.edf",
                                        "subject_regex": r"^(S\d+)"}, name="site_a", progress=False)
    from biospike.classical import predict_classical

    np.testing.assert_allclose(cpred.logits[rows], predict_classical(res / "delta" / "classical" / "model.joblib",
                                                                      win.signals[test]), rtol=1e-6, atol=1e-8)


def test_cli_writes_predictions_with_metrics_and_no_file_names(trained, tmp_path, capsys):
    out = tmp_path / "ext"
    new = tmp_path / "site_b"
    for i in range(3):  # another site: other subjects, recorded at 200 Hz, resampled to the model's 100 Hz
        write_edf(new / f"S{20 + i}.edf", fs_hz=200.0, n_trials=4, seed=50 + i)
    assert main(["predict", "--model", str(trained["results"] / "delta" / "snn" / "model.pt"), "--recordings", str(new),
                 "--pattern", "*.edf", "--subject-regex", r"^(S\d+)", "--name", "site_b", "--outdir", str(out)]) == 0
    assert "balanced accuracy" in capsys.readouterr().out
    m = read_json(out / "metrics.json")
    assert m["n_recordings"] == 3 and m["n_subjects"] == 3 and m["labelled_windows"] == m["n_windows"]
    assert 0 <= m["windows"]["balanced_accuracy"] <= 1 and "balanced_accuracy_ci" in m["windows"]
    assert "recordings" not in m  # each recording holds left and right trials: no single truth
    assert m["source"]["fs_hz"] == 100.0  # resampled to the model's rate
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == m["n_windows"] and "file" not in rows[0]
    assert all(r["subject"].startswith("sub-") for r in rows) and not any("S2" in r["record"] for r in rows)
    assert abs(sum(float(rows[0][f"p_{c}"]) for c in ("left", "right")) - 1) < 1e-5
    assert len(list(csv.DictReader((out / "recordings.csv").open()))) == 3
    import h5py

    with h5py.File(out / "predictions.h5") as fh:
        assert fh["logits"].shape == (m["n_windows"], 2)


def _predict_error(trained, tmp_path, capsys, recordings: dict, model: str = "snn/model.pt") -> str:
    code = main(["predict", "--model", str(trained["results"] / "delta" / model), "--recordings", json.dumps(recordings),
                 "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not (tmp_path / "o" / "metrics.json").exists()
    return err[0]


def test_bad_inputs_are_one_clear_error(trained, tmp_path, capsys):
    other = tmp_path / "other_channels"
    write_edf(other / "S30.edf", channels=["F3", "F4", "C3", "Cz", "C4", "P3"], seed=3)
    err = _predict_error(trained, tmp_path, capsys, {"path": str(other), "pattern": "*.edf"})
    assert str(other / "S30.edf") in err and "'FC3' not found" in err
    slow = tmp_path / "slow"
    write_edf(slow / "S31.edf", fs_hz=40.0, seed=4)  # Nyquist 20 Hz < the model's 30 Hz band edge
    err = _predict_error(trained, tmp_path, capsys, {"path": str(slow), "pattern": "*.edf"})
    assert "S31.edf" in err and "cannot be resampled" in err and "30 Hz" in err
    short = tmp_path / "short"
    write_edf(short / "S32.edf", n_trials=1, trial_s=0.3, rest_s=0.2, seed=5)  # 1 s (whole EDF records) < 2 s
    err = _predict_error(trained, tmp_path, capsys, {"path": str(short), "pattern": "*.edf"})
    assert "S32.edf" in err and "shorter than the model's 2.00 s window" in err
    emg = tmp_path / "emg"
    write_uci_text(emg / "01.txt")
    err = _predict_error(trained, tmp_path, capsys, {"path": str(emg), "pattern": "*.txt", "reader": "emg_text"})
    assert "01.txt" in err and "'FC3' not found" in err


def test_recording_table_scores_only_single_label_recordings():
    """Mean probabilities per recording; the label and how many labelled windows carry it."""
    from biospike.predict import Predictions, recording_table

    logits = np.log(np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6], [0.5, 0.5]]))
    pred = Predictions(logits=logits, labels=np.array([0, 0, 1, 0, -1]), subject=np.array(["s1"] * 2 + ["s2"] * 3),
                       record=np.array(["r1", "r1", "r2", "r2", "r2"]), start_s=np.zeros(5), files=np.array([""] * 5),
                       class_names=["a", "b"])
    r1, r2 = recording_table(pred)
    assert (r1["n_windows"], r1["predicted"], r1["label"], r1["label_agreement"]) == (2, "a", "a", 1.0)
    assert r1["p_a"] == pytest.approx(0.8)
    assert (r2["n_windows"], r2["predicted"], r2["label_agreement"]) == (3, "b", 0.5)  # unlabelled window ignored
