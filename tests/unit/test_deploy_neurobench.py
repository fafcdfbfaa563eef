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
