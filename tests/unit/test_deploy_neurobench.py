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

nb_workload = pytest.importorskip("neurobench.metrics.workload")
nb_models = pytest.importorskip("neurobench.models")


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

    nb_model = nb_models.TorchModel(model)
    nb_model.register_hooks()
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        preds = nb_model(xt)
    metric = nb_workload.SynapticOperations()
    result = metric(nb_model, preds, (xt, torch.zeros(len(x))))
    nb_total = (result["Effective_ACs"] + result["Effective_MACs"]) * len(x)
    assert sum(s.sum() for s in trace.spikes.values()) > 100
    assert ours == pytest.approx(nb_total, rel=0, abs=0.5)
