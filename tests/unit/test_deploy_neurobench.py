"""Cross-check: synaptic-operation counts of the simulator equal NeuroBench's SynapticOperations.

NeuroBench counts, through forward pre-hooks on every nn.Linear call, the (non-zero input,
non-zero weight) pairs, bias excluded (``single_layer_MACs``: binarised inputs through a binarised
weight copy). The SNN's neuron dynamics are parameter-free functions, so its Linear layers are
the only connection layers and no activation hooks see norse's (spikes, state) tuples. Inputs
are binary here: NeuroBench binarises inputs, while our count weights a multi-spike input by its
count (the event-driven cost), so the two agree exactly for 0/1 spike trains.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biospike.deploy.nir_export import export_nir
from biospike.deploy.simulator import count_events, network_from_nir, simulate_float
from biospike.models import build_model

try:  # bench extra; CI without it checks against the same definition re-implemented below
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel
except ImportError:  # pragma: no cover - depends on the environment
    SynapticOperations = TorchModel = None


def neurobench_definition(model, xt) -> float:
    """NeuroBench's SynapticOperations definition (metrics/utils/layers/macs.py, neurobench 2.3):
    for every call of a connection layer, (input != 0) through a copy of the layer whose non-zero
    weights are 1 and whose bias is 0, summed over outputs; summed over calls."""
    total = [0.0]

    def pre_hook(layer, inputs):
        nz = (layer.weight != 0).to(inputs[0].dtype)
        total[0] += float(torch.nn.functional.linear((inputs[0] != 0).to(nz.dtype), nz).sum())

    hooks = [m.register_forward_pre_hook(pre_hook) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(xt)
    for h in hooks:
        h.remove()
    return total[0]


@pytest.mark.parametrize("recurrent", [False, True])
def test_synaptic_events_equal_neurobench(recurrent):
    torch.manual_seed(4)
    model = build_model({"kind": "snn", "n_in": 12, "n_hidden": [20, 14], "n_out": 4, "recurrent": recurrent,
                         "input_scale": 1.0, "impl": "norse"})
    with torch.no_grad():
        for fc in model.fc:
            fc.weight.mul_(4.0)
            fc.weight[fc.weight.abs() < 0.05] = 0.0  # some absent synapses: fan-out < layer width
    model.eval()
    rng = np.random.default_rng(1)
    x = (rng.random((8, 40, 12)) < 0.3).astype(np.uint8)
    net = network_from_nir(export_nir(model))
    trace = simulate_float(net, x)
    ours = count_events(net, trace, x)["syn_events"].sum()

    xt = torch.as_tensor(x, dtype=torch.float32)
    assert sum(s.sum() for s in trace.spikes.values()) > 100
    assert ours == neurobench_definition(model, xt)
    if TorchModel is None:
        return
    nb_model = TorchModel(model)
    nb_model.register_hooks()
    with torch.no_grad():
        preds = nb_model(xt)
    result = SynapticOperations()(nb_model, preds, (xt, torch.zeros(len(x))))
    nb_total = (result["Effective_ACs"] + result["Effective_MACs"]) * len(x)
    assert ours == pytest.approx(nb_total, rel=0, abs=0.5)


def _trained_like(kind_settings: dict | None = None):
    from biospike.models import init_model, make_arch

    rng = np.random.default_rng(2)
    x = (rng.random((24, 30, 6)) < 0.25).astype(np.uint8)
    y = rng.integers(0, 3, 24)
    arch = make_arch("snn", 6, 3, 1e-3, {"hidden": [16, 8], "tau_mem_s": 0.01, "tau_syn_s": 0.005,
                                         **(kind_settings or {})}, x)
    model = init_model(arch, x, seed=3).eval()
    with torch.no_grad():
        model.fc[1].weight[model.fc[1].weight.abs() < 0.1] = 0.0  # absent synapses: connection sparsity > 0
    return model, x, y


@pytest.mark.parametrize("settings", [{}, {"front_end": "temporal_kernel", "temporal_kernel": {"steps": 3, "dilation": 2}},
                                      {"trainable": ["tau_mem", "tau_syn", "v_th"]}, {"neuron": "alif"}])
def test_neurobench_view_computes_the_snn_logits(settings):
    from biospike.deploy.neurobench import NeuroBenchView

    model, x, _ = _trained_like(settings)
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        # equal up to the rounding of folding the input gain into the first weights
        torch.testing.assert_close(NeuroBenchView(model)(xt), model(xt), rtol=1e-5, atol=1e-6)
    view = NeuroBenchView(model)
    # the SNN's parameters, once: NeuroBench's footprint and parameter count see the network itself
    assert sum(p.numel() for p in view.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.skipif(SynapticOperations is None, reason="neurobench not installed (the Makefile installs it)")
def test_neurobench_metrics_agree_with_the_simulator_and_the_weights():
    from biospike.deploy.neurobench import neurobench_metrics

    model, x, y = _trained_like()
    got = neurobench_metrics(model, x, y)
    assert got["status"] == "ok" and got["package"].startswith("neurobench ")
    m = got["metrics"]
    net = network_from_nir(export_nir(model))
    trace = simulate_float(net, x)
    # binary input spikes: every effective operation is an accumulate, per window as our count
    ours = count_events(net, trace, x)["syn_events"].sum() / len(x)
    assert m["SynapticOperations"]["Effective_ACs"] == pytest.approx(ours)
    assert m["SynapticOperations"]["Effective_MACs"] == 0
    weights = [model.fc[0].weight, model.fc[1].weight, model.out.weight]
    n_w = sum(w.numel() for w in weights)
    # NeuroBench rounds it to 4 decimals
    assert m["ConnectionSparsity"] == pytest.approx(sum(int((w == 0).sum()) for w in weights) / n_w, abs=1e-4)
    assert m["ConnectionSparsity"] > 0
    assert m["ParameterCount"] == sum(p.numel() for p in model.parameters())
    spikes = [trace.spikes[p.name] for p in net.hidden]
    assert m["ActivationSparsity"] == pytest.approx(1 - sum(float(s.sum()) for s in spikes) / sum(s.size for s in spikes))
    assert len(got["activation_sparsity_by_hidden_layer"]) == 2
    assert m["ClassificationAccuracy"] == pytest.approx(float((model(torch.as_tensor(x, dtype=torch.float32)).argmax(1)
                                                               .numpy() == y).mean()))


def test_neurobench_missing_or_recurrent_is_said_not_hidden(monkeypatch):
    import sys

    from biospike.deploy.neurobench import neurobench_metrics

    model, x, y = _trained_like()
    for name in ["neurobench", *[k for k in sys.modules if k.startswith("neurobench.")]]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    assert neurobench_metrics(model, x, y)["status"] == "not run"
    monkeypatch.undo()
    rec = build_model({"kind": "snn", "n_in": 6, "n_hidden": [8], "n_out": 3, "recurrent": True})
    out = neurobench_metrics(rec, x, y)
    assert out["status"] == "not run" and ("recurrent" in out["reason"] or "not installed" in out["reason"])
