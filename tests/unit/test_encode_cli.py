"""`biospike encode`: a valid spikes.h5 from a synthetic windows.h5; the time grid; refusals."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import signal as sps

from biospike.cli import main
from biospike.config import load_yaml, validate_config
from biospike.encode.stage import encode_settings, encode_windows
from biospike.encode.timebase import band_high_hz, make_timebase
from biospike.errors import BiospikeError
from biospike.store import Windows, read_spikes, sha256_file, write_windows

CHANNELS = ["C3", "C4", "Cz"]


def _windows(n=60, fs_hz=100.0, length=200, band=(8.0, 30.0), seed=0):
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(n, len(CHANNELS), length + 200))
    sos = sps.butter(4, band, btype="bandpass", fs=fs_hz, output="sos")
    x = sps.sosfiltfilt(sos, raw, axis=-1)[..., 100:-100].astype(np.float32)
    idx = np.arange(n)
    return Windows(
        signals=x, labels=idx % 2, subject=np.array([f"sub-{i // 6}" for i in idx]),
        record=np.array([f"rec{i // 6}" for i in idx]), fs_hz=fs_hz, channel_names=list(CHANNELS),
        class_names=["left", "right"], modality="eeg",
        preprocessing={"bandpass": {"band_hz": list(band), "order": 4}},
        splits={"train": idx[:36], "val": idx[36:48], "test": idx[48:]},
        mia={"members": idx[:36], "nonmembers": idx[48:], "population": idx[:0]},
        provenance={"seed": 1},
    )


@pytest.fixture
def windows_h5(tmp_path):
    path = tmp_path / "demo" / "windows.h5"
    write_windows(path, _windows())
    return path


def _run(windows_h5, out, encoding, params):
    from tests.conftest import envelope

    params = {"fit_split": "train", **params}  # these windows have no population pool
    return main(["encode", "--params", envelope(seed=7, dataset="demo", encode=params), "--input",
                 str(windows_h5), "--output", str(out), "--encoding", encoding])


@pytest.mark.parametrize("encoding,width", [("delta", 6), ("population", 24), ("rate", 6), ("ttfs", 6),
                                            ("poisson_burst", 6), ("delayed_burst", 6)])
def test_cli_writes_a_valid_spikes_file(windows_h5, tmp_path, encoding, width):
    out = tmp_path / "demo" / encoding / "spikes.h5"
    assert _run(windows_h5, out, encoding, {}) == 0
    sp = read_spikes(out)
    assert sp.spikes.dtype == np.uint8 and sp.spikes.shape == (60, 200, width)
    assert sp.dt_s == pytest.approx(0.01)  # auto: 100 Hz with a 30 Hz band -> one sample per step
    assert len(sp.channel_names) == width
    assert sp.channel_names[:2] == (["C3/p00", "C3/p01"] if encoding == "population" else ["C3+", "C3-"])
    np.testing.assert_array_equal(sp.labels, np.arange(60) % 2)
    np.testing.assert_array_equal(sp.splits["test"], np.arange(48, 60))
    np.testing.assert_array_equal(sp.mia["members"], np.arange(36))
    assert sp.class_names == ["left", "right"] and sp.encoder["name"] == encoding
    assert sp.provenance["inputs"] == {str(windows_h5): sha256_file(windows_h5)}
    assert sp.provenance["seed"] == 7
    st = sp.stats
    assert len(st["spikes_per_s_per_channel"]) == width
    assert st["spikes_per_s_mean"] == pytest.approx(sp.spikes.sum() / (60 * 200 * 0.01) / width)
    assert st["sparsity"] == pytest.approx(float(np.mean(sp.spikes == 0)))
    assert 0 < st["sparsity"] < 1 and st["saturated_entries"] == 0
    if encoding == "delta":
        thr = np.asarray(sp.encoder["fitted"]["threshold"])
        assert thr.shape == (3,) and np.all(thr > 0)
        assert 5 < st["reconstruction_snr_db"] < 30 and len(st["reconstruction_snr_db_per_channel"]) == 3
    if encoding == "population":
        assert np.asarray(sp.encoder["fitted"]["centres"]).shape == (3, 8)
    if encoding == "ttfs":  # one frame per window: at most one spike per channel and window
        assert sp.spikes.sum(axis=1).max() == 1 and st["ttfs_frames_per_window"] == 1
        assert st["spikes_per_window_mean"] == pytest.approx(width * (1 - st["ttfs_silent_fraction"]))


def test_same_input_same_spikes_and_fit_on_train_only(tmp_path):
    base = _windows()
    changed = _windows()
    changed.signals[36:] *= 10  # val/test windows only
    settings = encode_settings({"fit_split": "train"})
    for encoding in ("delta", "population", "rate", "ttfs", "poisson_burst", "delayed_burst"):
        a = encode_windows(base, encoding, settings, seed=3)
        b = encode_windows(base, encoding, settings, seed=3)
        np.testing.assert_array_equal(a.spikes, b.spikes)
        c = encode_windows(changed, encoding, settings, seed=3)
        assert c.encoder["fitted"] == a.encoder["fitted"]  # nothing fitted from val/test
        np.testing.assert_array_equal(c.spikes[:36], a.spikes[:36])


def test_cli_refuses_an_aliasing_step(windows_h5, tmp_path, capsys):
    out = tmp_path / "demo" / "delta" / "spikes.h5"
    assert _run(windows_h5, out, "delta", {"dt_s": 0.02}) == 2  # 50 Hz grid for a 30 Hz band
    err = capsys.readouterr().err
    assert "aliases" in err and "30 Hz" in err and str(windows_h5) in err
    assert not out.exists()
    # a latency frame of 2 steps of 10 ms also aliases the 30 Hz band
    assert _run(windows_h5, out, "population", {"population": {"latency_steps": 2}}) == 2
    assert "latency frame" in capsys.readouterr().err


def test_cli_refuses_an_oversized_encoding(windows_h5, tmp_path, capsys):
    out = tmp_path / "demo" / "population" / "spikes.h5"
    assert _run(windows_h5, out, "population", {"max_memory_gb": 1e-4}) == 2
    assert "max_memory_gb" in capsys.readouterr().err
    assert not out.exists()


def test_cli_refuses_bad_settings(windows_h5, tmp_path, capsys):
    out = tmp_path / "x.h5"
    assert _run(windows_h5, out, "delta", {"delta": {"treshold": 1}}) == 2
    assert "encode/delta" in capsys.readouterr().err
    assert _run(tmp_path / "missing.h5", out, "delta", {}) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["encode", "--params", "{}", "--dataset", "demo", "--input", str(windows_h5), "--output", str(out),
                 "--encoding", "delta"]) == 2
    assert "seed" in capsys.readouterr().err


def test_time_grid_rules():
    # auto: the coarsest whole number of samples per step that keeps Nyquist for the band
    assert make_timebase(100, 200, 30.0).dt_s == pytest.approx(0.01)
    ecg = make_timebase(180, 126, 40.0)
    assert ecg.dt_s == pytest.approx(2 / 180) and ecg.n_steps == 63 and ecg.uniform_bins() == 2
    assert make_timebase(1000, 250, 450.0).n_steps == 250
    assert make_timebase(100, 200, 30.0, n_steps=100).dt_s == pytest.approx(0.02)
    with pytest.raises(BiospikeError, match="does not cover"):
        make_timebase(100, 200, 30.0, dt_s=0.01, n_steps=50)
    tb = make_timebase(100, 10, 10.0, dt_s=0.025)  # 2.5 samples per step, 4 steps
    np.testing.assert_array_equal(tb.sample_step(), [0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    x = np.arange(10, dtype=np.float32)[None, None, :]
    np.testing.assert_allclose(tb.step_values(x)[0, 0], [0, 2.5, 5, 7.5])
    assert band_high_hz({"bandpass": {"band_hz": [0.5, 40]}}, 180) == 40
    assert band_high_hz({"bandpass": None}, 180) == 90


def test_schema_defaults_match_the_default_config():
    """The CLI's defaults (from the schema) are the ones config/config.yaml spells out (apart from
    the plan's list of encodings: the small demo runs delta everywhere, population on EEG only)."""
    from biospike.config import SCHEMA_PATH

    config = validate_config(load_yaml(Path(__file__).resolve().parents[2] / "config" / "config.yaml"))

    def settings(encode):
        return {k: v for k, v in encode.items() if k != "encodings"}

    assert settings(encode_settings({})) == settings(config["encode"])
    # a partial per-dataset override keeps the global settings it does not name
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    assert "default" not in str(schema["$defs"]["encode"])
