"""The array-in entry points need no workflow store and give what the file-level stages give:
``encode_signals`` / ``apply_encoder`` (encode) and ``simulate_model`` (simulate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from biospike.config import section_settings
from biospike.deploy.cli import simulate_model
from biospike.deploy.hardware import HardwareProfile, load_profile, resolve_profile
from biospike.encode.stage import apply_encoder, encode_settings, encode_signals, encode_windows
from biospike.errors import BiospikeError
from biospike.models import build_model
from biospike.plan import HARDWARE_DIR
from biospike.store import Windows

torch.set_num_threads(1)


def _windows() -> Windows:
    rng = np.random.default_rng(3)
    n, length = 40, 80
    x = rng.normal(size=(n, 2, length)).astype(np.float32)
    y = np.arange(n) % 2
    return Windows(signals=x, labels=y, subject=np.array([f"s{i // 4}" for i in range(n)]),
                   record=np.array([f"r{i // 4}" for i in range(n)]), fs_hz=100.0, channel_names=["C3", "C4"],
                   class_names=["a", "b"], modality="eeg", preprocessing={"bandpass": {"band_hz": [1.0, 20.0]}},
                   splits={"train": np.arange(0, 24), "val": np.arange(24, 32), "test": np.arange(32, 40)},
                   mia={"members": np.arange(0, 24), "nonmembers": np.arange(32, 40), "population": np.arange(24, 32)})


@pytest.mark.parametrize("encoding, settings", [
    ("delta", {}), ("population", {"population": {"n_neurons": 4}}),
    ("rate", {"rate": {"emission": "poisson"}}), ("population", {"population": {"emission": "rate", "max_rate_hz": 40}}),
])
def test_encode_signals_equals_the_stage(encoding, settings):
    win = _windows()
    cfg = encode_settings(settings)
    stage = encode_windows(win, encoding, cfg, seed=4)
    pop = win.mia["population"]  # fit_split: population, the default
    spikes, encoder = encode_signals(win.signals, win.fs_hz, encoding, settings, fit_on=win.signals[pop],
                                     channel_names=win.channel_names, band_hz=20.0, seed=4)
    assert np.array_equal(spikes, stage.spikes)
    assert encoder["fitted"] == stage.encoder["fitted"] and encoder["timebase"] == stage.encoder["timebase"]
    assert encoder["channel_names"] == stage.channel_names and encoder["stats"] == stage.stats
    json.dumps({k: v for k, v in encoder.items()})  # the record is JSON-able, as spikes.h5 stores it
    # new windows with the fitted record (nothing refitted); the stage's own record does the same
    assert np.array_equal(apply_encoder(win.signals[:7], encoder), spikes[:7])
    assert np.array_equal(apply_encoder(win.signals[:7], stage.encoder), spikes[:7])


def test_encode_signals_checks_what_the_stage_checks():
    x = _windows().signals
    with pytest.raises(BiospikeError, match="aliases"):
        encode_signals(x, 100.0, "delta", {"dt_s": 0.05})  # 20 Hz reads of a band up to 50 Hz
    with pytest.raises(BiospikeError, match="unknown encoding"):
        encode_signals(x, 100.0, "morse")
    with pytest.raises(BiospikeError, match="invalid config at 'encode/delta/threshold'"):
        encode_signals(x, 100.0, "delta", {"delta": {"threshold": -1}})
    with pytest.raises(BiospikeError, match="windows, channels, samples"):
        encode_signals(x[0], 100.0, "delta")
    with pytest.raises(BiospikeError, match="fit_on"):
        encode_signals(x, 100.0, "delta", fit_on=x[:, :1])
    spikes, encoder = encode_signals(x, 100.0, "delta")  # defaults: fitted on the windows themselves
    assert encoder["fitted_on"] == "signals" and encoder["channel_names"][:2] == ["ch0+", "ch0-"]
    assert spikes.shape == (40, encoder["timebase"]["n_steps"], 4)
    with pytest.raises(BiospikeError, match="like the encoder's windows"):
        apply_encoder(x[:, :, :50], encoder)


def _snn_and_data(n_in=6):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 30)
    x = (rng.random((30, 25, n_in)) < 0.05 + 0.3 * (np.arange(n_in)[None, :] % 3 == y[:, None])[:, None, :]).astype(np.uint8)
    torch.manual_seed(0)
    snn = build_model({"kind": "snn", "n_in": n_in, "n_hidden": [16], "n_out": 3, "input_scale": 3.0})
    return snn, x, y


def test_simulate_model_equals_the_nir_file_path(tmp_path):
    from biospike.deploy.cli import SIMULATION_KEYS, evaluate_snn_target
    from biospike.deploy.nir_export import export_nir, read_nir, write_nir
    from biospike.deploy.simulator import network_from_nir
    from biospike.metrics import finite

    snn, x, y = _snn_and_data()
    write_nir(tmp_path / "model.nir", export_nir(snn))
    cfg = {k: v for k, v in section_settings("deploy").items() if k in SIMULATION_KEYS}
    profile = load_profile(HARDWARE_DIR / "loihi.yaml")
    via_file = finite(evaluate_snn_target(network_from_nir(read_nir(tmp_path / "model.nir")), profile, x, y, x[:10], cfg))
    in_memory = simulate_model(snn, "loihi", x, y, x_calib=x[:10])
    assert in_memory["target"] == "loihi" and in_memory["calibration_windows"] == 10
    for key in ("fits", "accuracy", "balanced_accuracy", "fidelity", "per_inference", "energy", "latency"):
        assert in_memory[key] == via_file[key], key
    # the deploy section's settings apply
    assert "early_exit" not in simulate_model(snn, profile, x, y, settings={"early_exit": {"enabled": False}})


def test_simulate_model_runs_the_ann_on_an_mcu_and_refuses_mismatches():
    snn, x, y = _snn_and_data()
    ann = build_model({"kind": "ann", "n_in": 6, "n_hidden": [16], "n_out": 3})
    mcu = simulate_model(ann, HARDWARE_DIR / "cortex_m4.yaml", x, y)
    assert mcu["model"] == "ann" and mcu["per_inference"]["macs"] == 25 * (6 * 16 + 16 * 3 + 2 * (16 + 3))
    with pytest.raises(BiospikeError, match="runs the ANN baseline"):
        simulate_model(snn, "cortex_m4", x, y)
    with pytest.raises(BiospikeError, match="runs a spiking model"):
        simulate_model(ann, "loihi2", x, y)
    with pytest.raises(BiospikeError, match="no hardware profile 'abacus'"):
        simulate_model(snn, "abacus", x, y)


def test_resolve_profile_accepts_every_form():
    path = HARDWARE_DIR / "xylo_audio2.yaml"
    byname = resolve_profile("xylo_audio2")
    assert isinstance(byname, HardwareProfile) and byname.name == "xylo_audio2"
    assert resolve_profile(path).values == byname.values and resolve_profile(byname) is byname
    import yaml

    assert resolve_profile(yaml.safe_load(path.read_text())).values == byname.values
