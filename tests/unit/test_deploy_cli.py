"""``biospike simulate`` end to end on a tiny synthetic dataset: every target, JSON contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from biospike.cli import main
from biospike.models import build_model, save_checkpoint
from biospike.store import Spikes, write_spikes
from tests.conftest import envelope

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
    params = envelope(seed=5, dataset="d", encoding="delta", target="snn",
                      deploy={"max_test_windows": 10, "early_exit": {"enabled": True, "confidence": 0.6}})
    for target in ("loihi", "xylo_audio2", "speck", "truenorth", "spinnaker2", "loihi2"):
        out = tmp_path / "deploy" / f"{target}.json"
        assert main(["simulate", "--params", params, "--model", str(tmp_path / "snn.pt"), "--nir", str(tmp_path / "model.nir"),
                     "--spikes", str(tmp_path / "spikes.h5"), "--hardware", str(HW / f"{target}.yaml"),
                     "--output", str(out)]) == 0
        d = json.loads(out.read_text())
        assert d["target"] == target and d["fits"] is True and d["reasons"] == []
        assert d["test_windows"]["selected"] == 10 and d["accuracy"]["n_windows"] == 10
        assert 0 <= d["accuracy"]["quantized"] <= 1 and 0 <= d["fidelity"]["spike_agreement"] <= 1
        dynamic_terms = set(d["energy"]["terms"]["modelled"]) - {"static"}
        assert d["per_inference"]["syn_events"] > 0 and (d["energy"]["dynamic_priced_j"] > 0) == bool(dynamic_terms)
        # a target with a term no source publishes has no total: unknown, not a number without it
        unknown = d["energy"]["terms"]["unknown"]
        assert (d["energy"]["per_inference_j"] is None) == bool(unknown), (target, unknown)
        assert d["energy"]["per_inference_j"] is None or d["energy"]["per_inference_j"] > 0
        # compute latency apart from the real-time window; the EDP is taken on it
        lat, en = d["latency"], d["energy"]
        assert lat["compute_latency_known"] == (lat["compute_per_inference_s"] is not None)
        if lat["compute_per_inference_s"] is None or en["total_at_compute_latency_j"] is None:
            assert en["edp_compute_js"] is None
        else:
            assert lat["compute_per_inference_s"] == pytest.approx(lat["compute_step_s"] * lat["steps"])
            assert en["edp_compute_js"] == pytest.approx(en["total_at_compute_latency_j"] * lat["compute_per_inference_s"])
        if target == "xylo_audio2":  # the chip computes a 30 ms window in well under a millisecond
            assert lat["compute_per_inference_s"] < 1e-3 < lat["window_s"] == lat["per_inference_s"]
        assert d["latency"]["per_inference_s"] >= 30e-3 - 1e-12  # real time: one step per dt at least
        assert len(d["accuracy_vs_time"]["accuracy_by_step"]) == 30
        assert "early_exit" in d and d["latency"]["time_to_decision_s"] <= d["latency"]["per_inference_s"] + 1e-12
        assert d["provenance"]["inputs"] and d["hardware"]["sources"]
    mcu = tmp_path / "deploy" / "cortex_m4.json"
    assert main(["simulate", "--params", params, "--model", str(tmp_path / "ann.pt"), "--spikes", str(tmp_path / "spikes.h5"),
                 "--hardware", str(HW / "cortex_m4.yaml"), "--output", str(mcu)]) == 0
    d = json.loads(mcu.read_text())
    assert d["model"] == "ann" and d["per_inference"]["macs"] == 30 * (6 * 16 + 16 * 3 + 2 * (16 + 3))
    assert d["energy"]["dynamic_j"] == d["per_inference"]["macs"] * 1.0 * 300e-12
    # real time: the MCU sleeps for the rest of each window after computing
    idle_s = d["latency"]["window_s"] - d["latency"]["compute_per_inference_s"]
    assert d["energy"]["static_j"] == pytest.approx(3.3e-6 * idle_s)
    assert d["energy"]["per_inference_j"] == pytest.approx(d["energy"]["dynamic_j"] + d["energy"]["static_j"])
    assert d["energy"]["edp_compute_js"] == pytest.approx(d["energy"]["dynamic_j"] * d["latency"]["compute_per_inference_s"])


def test_simulate_errors_are_one_line(tmp_path, capsys):
    _setup(tmp_path)
    out = tmp_path / "x.json"
    code = main(["simulate", "--seed", "1", "--dataset", "d", "--encoding", "delta", "--model", str(tmp_path / "snn.pt"),
                 "--spikes", str(tmp_path / "spikes.h5"), "--hardware", str(HW / "cortex_m4.yaml"), "--output", str(out)])
    assert code == 2 and "ANN" in capsys.readouterr().err and not out.exists()
    code = main(["simulate", "--seed", "1", "--dataset", "d", "--encoding", "delta", "--model", str(tmp_path / "snn.pt"),
                 "--spikes", str(tmp_path / "spikes.h5"), "--hardware", str(HW / "loihi.yaml"), "--output", str(out)])
    assert code == 2 and "--nir" in capsys.readouterr().err and not out.exists()


def test_balanced_accuracy_in_deploy_json_equals_sklearn(tmp_path):
    """Balanced accuracy of the float reference, of the quantized simulation (overall and after
    each elapsed step) and of the MCU's ANN equals scikit-learn's on the same predictions."""
    from sklearn.metrics import balanced_accuracy_score

    from biospike.deploy.hardware import load_profile
    from biospike.deploy.nir_export import read_nir
    from biospike.deploy.quantize import calibration_bounds, quantize_network
    from biospike.deploy.simulator import network_from_nir, simulate_int
    from biospike.models import load_checkpoint
    from biospike.store import read_spikes

    _setup(tmp_path)
    # every test window (12) and every training window as calibration (24 < 64): no seeded subset
    params = envelope(seed=5, dataset="d", encoding="delta", deploy={"max_test_windows": None})
    outs = {}
    for hw, model, nir in (("loihi", "snn.pt", ["--nir", str(tmp_path / "model.nir")]), ("cortex_m4", "ann.pt", [])):
        outs[hw] = tmp_path / f"{hw}.json"
        assert main(["simulate", "--params", params, "--model", str(tmp_path / model), *nir, "--spikes",
                     str(tmp_path / "spikes.h5"), "--hardware", str(HW / f"{hw}.yaml"), "--output", str(outs[hw])]) == 0
    d, m = (json.loads(outs[hw].read_text()) for hw in ("loihi", "cortex_m4"))
    sp = read_spikes(tmp_path / "spikes.h5")
    x, y = sp.spikes[sp.splits["test"]], sp.labels[sp.splits["test"]]
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        snn_pred = load_checkpoint(tmp_path / "snn.pt")[0](xt).argmax(1).numpy()
        ann_pred = load_checkpoint(tmp_path / "ann.pt")[0](xt).argmax(1).numpy()
    assert d["balanced_accuracy"]["float"] == pytest.approx(balanced_accuracy_score(y, snn_pred))
    assert m["balanced_accuracy"]["float"] == pytest.approx(balanced_accuracy_score(y, ann_pred))
    assert m["accuracy"]["float"] == pytest.approx(np.mean(ann_pred == y))  # plain accuracy stays beside it
    net = network_from_nir(read_nir(tmp_path / "model.nir"))
    qnet = quantize_network(net, load_profile(HW / "loihi.yaml"), calibration_bounds(net, sp.spikes[sp.splits["train"]]))
    trace = simulate_int(qnet, x)
    assert d["balanced_accuracy"]["quantized"] == pytest.approx(balanced_accuracy_score(y, trace.logits.argmax(1)))
    assert d["accuracy"]["quantized"] == pytest.approx(np.mean(trace.logits.argmax(1) == y))
    running = np.cumsum(trace.readout, axis=1)  # argmax of the running sum = of the running mean
    by_step = [balanced_accuracy_score(y, running[:, t].argmax(1)) for t in range(x.shape[1])]
    assert d["accuracy_vs_time"]["balanced_accuracy_by_step"] == pytest.approx(by_step, abs=1e-5)


def test_time_course_balanced_accuracy_by_step_and_at_the_early_exit():
    """Imbalanced labels (3 x class 0, 1 x class 1): balanced accuracy differs from accuracy, per
    elapsed step and at the confidence exit; predictions below are worked out by hand."""
    from sklearn.metrics import balanced_accuracy_score

    from biospike.deploy.cli import time_course

    y = np.array([0, 0, 0, 1])
    readout = np.array([
        [[5, 0], [5, 0], [5, 0]],  # confident class 0 from step 1 (softmax 0.993): exits at 1, right
        [[0.1, 0], [0.1, 0], [0.1, 0]],  # never confident: decided at the last step, class 0, right
        [[0, 5], [0, 5], [0, 5]],  # confident class 1 from step 1: exits at 1, wrong
        [[1, 0], [0, 3], [0, 3]],  # class 0 after step 1, class 1 from step 2 on, never confident
    ], dtype=float)
    out = time_course(readout, y, scale=1.0, dt_step_s=1e-3, confidence=0.9)
    preds_by_step = [[0, 0, 1, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert out["balanced_accuracy_by_step"] == pytest.approx(
        [balanced_accuracy_score(y, p) for p in preds_by_step], abs=1e-5)  # 1/3, 5/6, 5/6
    assert out["accuracy_by_step"] == pytest.approx([0.5, 0.75, 0.75])
    exit_pred = [0, 0, 1, 1]
    assert out["early_exit"]["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, exit_pred))
    assert out["early_exit"]["accuracy"] == pytest.approx(0.75)
    assert list(out["_exit_step"]) == [0, 2, 0, 2]


def test_a_model_nir_cannot_express_is_refused_by_export_and_skipped_with_its_reason(tmp_path, capsys):
    """Adaptive-threshold neurons have no NIR node: export refuses with one clear error naming the
    checkpoint, and the edge stage writes a result that skips the model with the reason."""
    _setup(tmp_path)
    alif = build_model({"kind": "snn", "n_in": 6, "n_hidden": [16], "n_out": 3, "input_scale": 3.0, "neuron": "alif"})
    save_checkpoint(tmp_path / "alif.pt", alif, {"class_names": ["a", "b", "c"]})
    assert main(["export", "--model", str(tmp_path / "alif.pt"), "--output", str(tmp_path / "alif.nir")]) == 2
    err = capsys.readouterr().err
    assert "adaptive-threshold" in err and "alif.pt" in err and "Traceback" not in err
    assert not (tmp_path / "alif.nir").exists()
    params = envelope(seed=5, dataset="d", encoding="delta", target="alif", deploy={"max_test_windows": 10})
    out = tmp_path / "deploy" / "loihi.json"
    assert main(["simulate", "--params", params, "--model", str(tmp_path / "alif.pt"), "--spikes",
                 str(tmp_path / "spikes.h5"), "--hardware", str(HW / "loihi.yaml"), "--output", str(out)]) == 0
    d = json.loads(out.read_text())
    assert d["fits"] is False and "adaptive-threshold" in d["skipped"] and d["reasons"] == [d["skipped"]]
    assert d["energy"]["per_inference_j"] is None and d["accuracy"]["quantized"] is None
    assert d["target"] == "loihi" and d["provenance"]["inputs"]


def test_learned_per_neuron_constants_run_on_the_edge_targets(tmp_path):
    """An SNN with trainable dynamics exports per-neuron constants and every neuromorphic target
    quantizes and simulates it (per-neuron decays), like any SNN."""
    _setup(tmp_path)
    torch.manual_seed(1)
    model = build_model({"kind": "snn", "n_in": 6, "n_hidden": [16], "n_out": 3, "input_scale": 3.0,
                         "trainable": ["tau_mem", "tau_syn", "v_th"]})
    with torch.no_grad():
        for p in model.dynamics.parameters():
            p.add_(0.3 * torch.randn(p.shape))
    save_checkpoint(tmp_path / "dyn.pt", model, {"class_names": ["a", "b", "c"]})
    assert main(["export", "--model", str(tmp_path / "dyn.pt"), "--output", str(tmp_path / "dyn.nir")]) == 0
    params = envelope(seed=5, dataset="d", encoding="delta", target="snn", deploy={"max_test_windows": 10})
    for target in ("loihi", "xylo_audio2", "truenorth"):
        out = tmp_path / "deploy" / f"dyn_{target}.json"
        assert main(["simulate", "--params", params, "--model", str(tmp_path / "dyn.pt"), "--nir", str(tmp_path / "dyn.nir"),
                     "--spikes", str(tmp_path / "spikes.h5"), "--hardware", str(HW / f"{target}.yaml"),
                     "--output", str(out)]) == 0
        d = json.loads(out.read_text())
        assert d["fits"] is True and 0 <= d["accuracy"]["quantized"] <= 1 and d["per_inference"]["syn_events"] > 0
