"""Cross-check: our Xylo-mode integer simulation against the bit-accurate xylosim (xylosim.v2).

The quantized network is loaded into ``xylosim.v2.XyloLayer`` (Xylo Audio 2 core) with the same
integer weights, shifts, dashes, thresholds and biases; hidden spikes and output membrane traces
must be identical on test inputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biospike.deploy.hardware import load_profile
from biospike.deploy.nir_export import export_nir
from biospike.deploy.quantize import calibration_bounds, quantize_network
from biospike.deploy.simulator import network_from_nir, simulate_int
from biospike.models import build_model

xylosim_v2 = pytest.importorskip("xylosim.v2")
PROFILE = Path(__file__).resolve().parents[2] / "config" / "hardware" / "xylo_audio2.yaml"


def to_xylosim(qnet):
    """A xylosim XyloLayer holding ``qnet``; returns (layer, keep-alive list of synapse objects)."""
    net = qnet.net
    hidden = net.hidden
    offsets = np.cumsum([0] + [p.size for p in hidden])
    index = {p.name: offsets[k] for k, p in enumerate(hidden)}
    n_hid = int(offsets[-1])
    n_out = net.pop(net.readout).size
    syn_in = [[] for _ in range(net.n_in)]
    syn_rec = [[] for _ in range(n_hid)]
    syn_out = [[] for _ in range(n_hid)]
    shifts = {"input": 0, "hidden": 0, "output": 0}
    for pr in net.projections:
        w = qnet.weight_ints[pr.name]
        if pr.src == "input":
            group, rows, dst0 = "input", syn_in, index[pr.dst]
            src0 = 0
        elif pr.dst == net.readout:
            group, rows, dst0, src0 = "output", syn_out, 0, index[pr.src]
        else:
            group, rows, dst0, src0 = "hidden", syn_rec, index[pr.dst], index[pr.src]
        shifts[group] = qnet.shifts[pr.name]
        for j in range(w.shape[1]):
            for i in np.flatnonzero(w[:, j]):
                rows[src0 + j].append(xylosim_v2.XyloSynapse(int(dst0 + i), 0, int(w[i, j])))
    qp = [qnet.pops[p.name] for p in hidden]
    qo = qnet.pops[net.readout]
    thr = [int(t) for p in qp for t in p["threshold"]]
    dash_mem = [int(d) for p in qp for d in p["d_mem"]]
    dash_syn = [[int(d), int(d)] for p in qp for d in p["d_syn"]]
    bias = [int(b) for p in qp for b in p["bias_membrane"]]
    bias_out = [int(b) for b in qo["bias_membrane"]]
    has_bias = any(bias) or any(bias_out)
    layer = xylosim_v2.XyloLayer(syn_in, syn_rec, syn_out, [[] for _ in range(n_hid)], thr, [32767] * n_out,
                                 has_bias, bias, bias_out, shifts["input"], shifts["hidden"], shifts["output"],
                                 dash_mem, [int(d) for d in qo["d_mem"]], dash_syn,
                                 [[int(d)] for d in qo["d_syn"]], "biospike")
    return layer, (syn_in, syn_rec, syn_out)


def _net(seed, hidden, recurrent, bias):
    torch.manual_seed(seed)
    model = build_model({"kind": "snn", "n_in": 8, "n_hidden": hidden, "n_out": 3, "recurrent": recurrent,
                         "bias": bias, "input_scale": 2.0})
    with torch.no_grad():
        for fc in model.fc:
            fc.weight.mul_(4.0)
            if fc.bias is not None:
                fc.bias.uniform_(-0.05, 0.1)
    return network_from_nir(export_nir(model))


@pytest.mark.parametrize("seed,hidden,recurrent,bias", [
    (0, [20], False, False), (1, [16, 12], False, True), (2, [16], True, True), (3, [12, 10], True, False),
])
def test_xylo_mode_equals_xylosim(seed, hidden, recurrent, bias):
    net = _net(seed, hidden, recurrent, bias)
    rng = np.random.default_rng(seed)
    x = (rng.random((6, 80, 8)) < 0.25).astype(np.uint8) * rng.integers(1, 3, (6, 80, 8)).astype(np.uint8)
    qnet = quantize_network(net, load_profile(PROFILE), calibration_bounds(net, x))
    ours = simulate_int(qnet, x)
    total_spikes = sum(int(s.sum()) for s in ours.spikes.values())
    assert total_spikes > 50  # non-trivial activity
    for b in range(len(x)):
        layer, _keep = to_xylosim(qnet)
        layer.evolve([[int(c) for c in row] for row in x[b]])
        spikes = np.asarray(layer.rec_recurrent_spikes)  # (T, n_hidden)
        mine = np.concatenate([ours.spikes[p.name][b] for p in net.hidden], axis=1)
        np.testing.assert_array_equal(mine, spikes)
        v_out = np.asarray(layer.rec_v_mem_out).T  # (T, n_out)
        np.testing.assert_array_equal(ours.readout[b].astype(np.int64), v_out)
