"""`encode.fit_split`: encoder statistics fitted on the training split (default) or on the public
population split, and the DP stage's `privacy.public_preprocessing` check that reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biospike.cli import main
from biospike.config import load_yaml, stage_config, validate_config
from biospike.encode import delta, population, rate, ttfs
from biospike.encode.stage import encode_settings, encode_windows, plan
from biospike.errors import BiospikeError
from biospike.privacy.cli import _check_preprocessing, preprocessing_record
from biospike.privacy.dp import DPSettings
from biospike.store import Spikes, Windows, read_json, read_spikes, write_windows
from tests.conftest import envelope

torch.set_num_threads(1)

CHANNELS = ["C3", "C4"]
TRAIN_IDX, VAL_IDX, TEST_IDX, POP_IDX = np.arange(0, 24), np.arange(24, 32), np.arange(32, 40), np.arange(40, 56)


def _windows(seed: int = 0) -> Windows:
    """56 windows; each pool gets its own amplitude so the fitted statistics tell them apart."""
    rng = np.random.default_rng(seed)
    n, length = 56, 100
    t = np.arange(length) / 100.0
    y = np.arange(n) % 2
    x = rng.normal(size=(n, len(CHANNELS), length))
    x[:, 0] += np.where(y == 0, 2.0, -2.0)[:, None] * np.sin(2 * np.pi * 5 * t)  # a learnable class signal
    gain = np.ones(n)
    gain[POP_IDX] = 3.0  # population amplitude differs from train's
    x *= gain[:, None, None]
    return Windows(
        signals=x.astype(np.float32), labels=y, subject=np.array([f"s{i // 4}" for i in range(n)]),
        record=np.array([f"r{i // 4}" for i in range(n)]), fs_hz=100.0, channel_names=list(CHANNELS),
        class_names=["a", "b"], modality="eeg", preprocessing={"bandpass": None},
        splits={"train": TRAIN_IDX, "val": VAL_IDX, "test": TEST_IDX},
        mia={"members": TRAIN_IDX, "nonmembers": TEST_IDX, "population": POP_IDX},
    )


POP = encode_settings({"fit_split": "population"})
TRAIN_FIT = encode_settings({"fit_split": "train"})
DEFAULT = encode_settings({})


def _expected_fit(win: Windows, idx: np.ndarray, encoding: str, settings: dict) -> dict:
    sub, fit = settings[encoding], win.signals[idx]
    if encoding == "delta":
        return {"threshold": delta.fit_thresholds(fit, sub["threshold_mode"], sub["threshold"], CHANNELS).tolist(),
                "baseline": delta.channel_baseline(fit).tolist(), "spread": delta.robust_spread(fit).tolist()}
    if encoding == "population":
        return population.fit_fields(fit, sub["n_neurons"], sub["overlap"], sub["range_percentiles"], CHANNELS).describe()
    scale = rate.fit_scale(fit, sub["polarity"], sub["scale_percentile"], CHANNELS)
    expected = scale.describe()
    if encoding in ("ttfs", "poisson_burst", "delayed_burst"):  # frame-mean codes: their frame gain too
        tb = plan(win, encoding, settings)
        bounds = ttfs.frame_bounds(tb.n_steps, sub["frame_steps"])
        expected["frame_gain"] = ttfs.fit_frame_gain(fit, scale, tb, bounds, sub["frame_percentile"]).tolist()
    return expected


def _fit_with_scaled(idx, encoding, settings):
    """Fitted encoder statistics after multiplying the windows ``idx`` by 5."""
    win = _windows()
    win.signals[idx] *= 5
    return encode_windows(win, encoding, settings, seed=1).encoder["fitted"]


@pytest.mark.parametrize("encoding", ["delta", "population", "rate", "ttfs", "poisson_burst", "delayed_burst"])
def test_population_fit_uses_the_population_windows_only(encoding):
    win = _windows()
    sp = encode_windows(win, encoding, POP, seed=1)
    assert sp.encoder["fitted_on"] == "population" and sp.encoder["n_fit_windows"] == len(POP_IDX)
    assert sp.encoder["fitted"] == _expected_fit(win, POP_IDX, encoding, POP)
    assert sp.encoder["fitted"] != _expected_fit(win, TRAIN_IDX, encoding, POP)

    assert _fit_with_scaled(TRAIN_IDX, encoding, POP) == sp.encoder["fitted"]
    assert _fit_with_scaled(POP_IDX, encoding, POP) != sp.encoder["fitted"]


def test_default_fits_on_the_public_population():
    """The encoder is inside the DP guarantee by default (issue 15): population, not train."""
    assert DEFAULT["fit_split"] == "population"


@pytest.mark.parametrize("encoding", ["delta", "population", "rate", "ttfs", "poisson_burst", "delayed_burst"])
def test_train_fit_uses_the_training_windows_only(encoding):
    win = _windows()
    sp = encode_windows(win, encoding, TRAIN_FIT, seed=1)
    assert sp.encoder["fitted_on"] == "train" and sp.encoder["n_fit_windows"] == len(TRAIN_IDX)
    assert sp.encoder["fitted"] == _expected_fit(win, TRAIN_IDX, encoding, TRAIN_FIT)
    assert _fit_with_scaled(POP_IDX, encoding, TRAIN_FIT) == sp.encoder["fitted"]
    assert _fit_with_scaled(TRAIN_IDX, encoding, TRAIN_FIT) != sp.encoder["fitted"]


def test_missing_or_empty_fit_split_is_an_error_naming_the_windows_file(tmp_path, capsys):
    win = _windows()
    win.mia["population"] = POP_IDX[:0]
    path = tmp_path / "ds" / "windows.h5"
    write_windows(path, win)
    out = tmp_path / "ds" / "delta" / "spikes.h5"
    params = envelope(seed=1, encode={"fit_split": "population"})
    assert main(["encode", "--params", params, "--dataset", "ds", "--input", str(path), "--output", str(out), "--encoding", "delta"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "mia/population" in err and "fit_split" in err
    assert not out.exists()
    del win.mia["population"]
    with pytest.raises(BiospikeError, match="mia/population' is missing or empty"):
        encode_windows(win, "delta", POP, seed=1, source=str(path))
    win.splits["train"] = TRAIN_IDX[:0]  # fit_split: train needs a training split
    with pytest.raises(BiospikeError, match="splits/train' is missing or empty"):
        encode_windows(win, "delta", TRAIN_FIT, seed=1)
    with pytest.raises(BiospikeError, match="encode/fit_split"):
        encode_settings({"fit_split": "test"})


def test_per_dataset_override():
    config = load_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml")
    name = next(iter(config["datasets"]))
    config["datasets"][name]["encode"] = {"fit_split": "train"}
    config = validate_config(config)
    assert config["encode"]["fit_split"] == "population"
    effective = stage_config(config, "encode", name)
    assert effective["fit_split"] == "train"
    assert effective["delta"] == config["encode"]["delta"]  # the rest stays global
    others = [d for d in config["datasets"] if d != name]
    assert all(stage_config(config, "encode", d)["fit_split"] == "population" for d in others)
    config["datasets"][name]["encode"] = {"fit_split": "val"}
    with pytest.raises(BiospikeError, match="fit_split"):
        validate_config(config)


def _spikes(encoder: dict) -> Spikes:
    x = np.zeros((4, 3, 2), dtype=np.uint8)
    return Spikes(spikes=x, labels=np.array([0, 1, 0, 1]), subject=np.array(["a", "b", "c", "d"]), dt_s=0.01,
                  channel_names=["x", "y"], class_names=["a", "b"], encoder=encoder, stats={})


def _encoder_record(encoder: dict) -> list[dict]:
    return preprocessing_record(_spikes(encoder), "population", "population split (public)", "none",
                                {"input_scale": "auto"})


def test_public_preprocessing_check_reads_fitted_on():
    require, warn = DPSettings.from_config({"public_preprocessing": "require"}), DPSettings.from_config({"public_preprocessing": "warn"})
    public = _encoder_record({"name": "delta", "fitted_on": "population"})
    enc = [r for r in public if r["statistic"].startswith("encoder")][0]
    assert enc["private"] is False and enc["fitted_on"] == "population" and "public data" in enc["note"]
    _check_preprocessing(require, public, "spikes.h5")  # passes
    for encoder in ({"name": "delta", "fitted_on": "train"}, {"name": "delta"}):  # private, or not recorded
        records = _encoder_record(encoder)
        assert [r for r in records if r["statistic"].startswith("encoder")][0]["private"] is not False
        _check_preprocessing(warn, records, "spikes.h5")  # warns only
        with pytest.raises(BiospikeError, match="public_preprocessing is 'require'") as exc:
            _check_preprocessing(require, records, "spikes.h5")
        assert exc.value.path is not None
    with pytest.raises(BiospikeError, match=r"encode\.fit_split: population"):
        _check_preprocessing(require, _encoder_record({"name": "delta", "fitted_on": "train"}), "spikes.h5")


TRAIN_CFG = {"epochs": 1, "hidden": [8], "batch_size": 16, "fail_on_silent": False}


@pytest.mark.parametrize("fit_split,rc", [("population", 0), ("train", 2)])
def test_encode_then_harden_with_require(tmp_path, capsys, fit_split, rc):
    """End to end: a population-fitted encoder passes `public_preprocessing: require`, a
    train-fitted one stops `biospike harden` with exit 2 and a message saying how to fix it."""
    windows = tmp_path / "ds" / "windows.h5"
    write_windows(windows, _windows())
    spikes = tmp_path / "ds" / "delta" / "spikes.h5"
    assert main(["encode", "--params", envelope(seed=1, dataset="ds", encode={"fit_split": fit_split}),
                 "--input", str(windows), "--output", str(spikes), "--encoding", "delta"]) == 0
    assert read_spikes(spikes).encoder["fitted_on"] == fit_split
    out = tmp_path / "ds" / "delta" / "dpsnn_eps8"
    params = envelope(seed=1, dataset="ds", encoding="delta", train=TRAIN_CFG,
                      privacy={"epochs": 1, "batch_size": 8, "public_preprocessing": "require",
                               "adaptive_noise": {"public_windows": 8}})
    capsys.readouterr()
    assert main(["harden", "--params", params, "--input", str(spikes), "--epsilon", "8",
                 "--outdir", str(out), "--no-progress"]) == rc
    if rc == 0:
        enc = [r for r in read_json(out / "privacy.json")["preprocessing"] if r["statistic"].startswith("encoder")][0]
        assert enc["private"] is False and enc["fitted_on"] == "population"
    else:
        err = capsys.readouterr().err
        assert "public_preprocessing is 'require'" in err and "encode.fit_split: population" in err
        assert str(spikes) in err and not (out / "model.pt").exists()
