"""``biospike simulate`` end to end on a tiny synthetic dataset: every target, JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from biospike.cli import main
from biospike.models import build_model, save_checkpoint
from biospike.store import Spikes, write_spikes

HW = Path(__file__).resolve().parents[2] / "config" / "hardware"


def _setup(tmp_path, n_in=6):
    rng = np.random.default_rng(0)
    n, steps = 40, 30
    y = rng.integers(0, 3, n)
    rates = 0.05 + 0.3 * (np.arange(n_in)[None, :] % 3 == y[:, None])
    x = (rng.random((n, steps, n_in)) < rates[:, None, :]).astype(np.uint8)
    write_spikes(tmp_path / "spikes.h5", Spikes(
        spikes=x, labels=y, subject=np.array([f"s{i % 8}" for i in range(n)]), dt_s=1e-3,
        channel_names=[f"c{i}" for i in range(n_in)], class_names=["a", "b", "c"], encoder={"name": "t"}, stats={},
        splits={"train": np.arange(0, 24), "val": np.arange(24, 28), "test": np.arange(28, 40)}))
    torch.manual_seed(0)
    snn = build_model({"kind": "snn", "n_in": n_in, "n_hidden": [16], "n_out": 3, "input_scale": 3.0})
    save_checkpoint(tmp_path / "snn.pt", snn, {"class_names": ["a", "b", "c"]})
    save_checkpoint(tmp_path / "ann.pt", build_model({"kind": "ann", "n_in": n_in, "n_hidden": [16], "n_out": 3}), {})
    assert main(["export", "--model", str(tmp_path / "snn.pt"), "--output", str(tmp_path / "model.nir")]) == 0


def test_simulate_every_target(tmp_path):
    _setup(tmp_path)
    params = json.dumps({"seed": 5, "max_test_windows": 10, "early_exit": {"enabled": True, "confidence": 0.6}})
    for target in ("loihi", "xylo_audio2", "speck", "truenorth", "spinnaker2", "loihi2"):
        out = tmp_path / "deploy" / f"{target}.json"
        assert main(["simulate", "--params", params, "--model", str(tmp_path / "snn.pt"), "--nir", str(tmp_path / "model.nir"),
                     "--spikes", str(tmp_path / "spikes.h5"), "--hardware", str(HW / f"{target}.yaml"),
                     "--output", str(out)]) == 0
        d = json.loads(out.read_text())
        assert d["target"] == target and d["fits"] is True and d["reasons"] == []
        assert d["test_windows"]["selected"] == 10 and d["accuracy"]["n_windows"] == 10
        assert 0 <= d["accuracy"]["quantized"] <= 1 and 0 <= d["fidelity"]["spike_agreement"] <= 1
        assert d["per_inference"]["syn_events"] > 0 and d["energy"]["per_inference_j"] > 0
        assert d["latency"]["per_inference_s"] >= 30e-3 - 1e-12  # real time: one step per dt at least
        assert len(d["accuracy_vs_time"]["accuracy_by_step"]) == 30
        assert "early_exit" in d and d["latency"]["time_to_decision_s"] <= d["latency"]["per_inference_s"] + 1e-12
        assert d["provenance"]["inputs"] and d["hardware"]["sources"]
    mcu = tmp_path / "deploy" / "cortex_m4.json"
    assert main(["simulate", "--params", params, "--model", str(tmp_path / "ann.pt"), "--spikes", str(tmp_path / "spikes.h5"),
                 "--hardware", str(HW / "cortex_m4.yaml"), "--output", str(mcu)]) == 0
    d = json.loads(mcu.read_text())
    assert d["model"] == "ann" and d["per_inference"]["macs"] == 30 * (6 * 16 + 16 * 3 + 2 * (16 + 3))
    assert d["energy"]["per_inference_j"] == d["per_inference"]["macs"] * 1.0 * 300e-12


def test_simulate_errors_are_one_line(tmp_path, capsys):
    _setup(tmp_path)
    out = tmp_path / "x.json"
    code = main(["simulate", "--model", str(tmp_path / "snn.pt"), "--spikes", str(tmp_path / "spikes.h5"),
                 "--hardware", str(HW / "cortex_m4.yaml"), "--output", str(out)])
    assert code == 2 and "ANN" in capsys.readouterr().err and not out.exists()
    code = main(["simulate", "--model", str(tmp_path / "snn.pt"), "--spikes", str(tmp_path / "spikes.h5"),
                 "--hardware", str(HW / "loihi.yaml"), "--output", str(out)])
    assert code == 2 and "--nir" in capsys.readouterr().err and not out.exists()
