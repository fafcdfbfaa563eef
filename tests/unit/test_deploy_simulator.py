"""Property tests of the edge simulator (hypothesis): zero input, monotone energy, event counts
equal dense counts, and high-precision quantization reproducing the float model."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from biospike.deploy.hardware import energy_j, profile_from_dict
from biospike.deploy.nir_export import export_nir
from biospike.deploy.quantize import calibration_bounds, quantize_network
from biospike.deploy.simulator import count_events, network_from_nir, simulate_float, simulate_int
from biospike.models import build_model

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def profile(weight_bits=8, state_bits=24, decay_bits=12, shift=0, **model):
    values = {"cores": 1, "weight_bits": weight_bits, "state_bits": state_bits, "decay_bits": decay_bits,
              "max_weight_shift": shift, "energy_synop_j": 2e-12, "energy_neuron_update_j": 5e-12,
              "static_power_w": 1e-4}
    return profile_from_dict({"name": "t", "title": "test target", "kind": "neuromorphic", "latency_model": "timestep",
                              "neuron_model": model, "values": values,
                              "sources": {k: {"ref": "test fixture", "verified": "no: test"} for k in values}})


def make_net(seed, hidden, recurrent=False, bias=True, gain=4.0, n_in=6):
    torch.manual_seed(seed)
    model = build_model({"kind": "snn", "n_in": n_in, "n_hidden": hidden, "n_out": 3, "recurrent": recurrent,
                         "bias": bias})
    with torch.no_grad():
        for fc in model.fc:
            fc.weight.mul_(gain)
    return network_from_nir(export_nir(model))


def spikes(seed, n=4, steps=30, n_in=6, p=0.3):
    rng = np.random.default_rng(seed)
    return (rng.random((n, steps, n_in)) < p).astype(np.uint8)


@SETTINGS
@given(seed=st.integers(0, 10_000), recurrent=st.booleans(), steps=st.integers(1, 40))
def test_zero_input_gives_no_spikes_and_no_dynamic_energy(seed, recurrent, steps):
    net = make_net(seed, [10, 6], recurrent=recurrent, bias=False)
    x = np.zeros((3, steps, 6), np.uint8)
    prof = profile()
    for trace, weights in ((simulate_float(net, x), None),):
        counts = count_events(net, trace, x, weights)
        assert all(s.sum() == 0 for s in trace.spikes.values())
        assert counts["syn_events"].sum() == 0
    qnet = quantize_network(net, prof)
    qtrace = simulate_int(qnet, x)
    counts = count_events(net, qtrace, x, qnet.weight_ints)
    assert all(s.sum() == 0 for s in qtrace.spikes.values()) and not qtrace.readout.any()
    e = energy_j(prof, counts["syn_events"].sum(1).mean(), 0.0, 0.0, time_s=steps * 1e-3)
    assert e["dynamic_j"] == 0.0 and e["static_j"] > 0


@SETTINGS
@given(seed=st.integers(0, 10_000), extra=st.integers(1, 60))
def test_energy_monotone_in_input_spikes(seed, extra):
    """Adding input spikes never lowers the input-driven synaptic events, and for a network whose
    only synapses are input synapses (readout straight from the inputs) never lowers the energy."""
    rng = np.random.default_rng(seed)
    x = spikes(seed)
    more = x.copy()
    flat = more.reshape(-1)
    flat[rng.choice(flat.size, size=min(extra, flat.size), replace=False)] += 1
    prof = profile()
    for hidden in ([], [8]):
        net = make_net(seed, hidden)
        qnet = quantize_network(net, prof)
        first = [pr for pr in net.projections if pr.src == "input"]
        c0 = count_events(net, simulate_int(qnet, x), x, qnet.weight_ints)
        c1 = count_events(net, simulate_int(qnet, more), more, qnet.weight_ints)
        w_in = np.count_nonzero(qnet.weight_ints[first[0].name], axis=0)
        assert (more @ w_in).sum() >= (x @ w_in).sum()
        if not hidden:
            e0 = energy_j(prof, c0["syn_events"].sum(), c0["neuron_updates"].sum(), 0.0, 0.03)["total_j"]
            e1 = energy_j(prof, c1["syn_events"].sum(), c1["neuron_updates"].sum(), 0.0, 0.03)["total_j"]
            assert e1 > e0 or (w_in.sum() == 0 and e1 == e0)


@SETTINGS
@given(seed=st.integers(0, 10_000), recurrent=st.booleans(), p=st.floats(0.05, 0.6))
def test_event_counts_equal_dense_computation(seed, recurrent, p):
    net = make_net(seed, [12, 7], recurrent=recurrent)
    x = spikes(seed, p=p) * np.random.default_rng(seed).integers(1, 3, (4, 30, 6)).astype(np.uint8)
    trace = simulate_float(net, x)
    counts = count_events(net, trace, x)
    dense = 0.0
    for pr in net.projections:
        src = x if pr.src == "input" else trace.spikes[pr.src]
        act = torch.as_tensor(src, dtype=torch.float64)
        if pr.recurrent:
            act = act[:, :-1]  # delivered in the next step; the last step's spikes never are
        nz = torch.as_tensor(pr.weight != 0, dtype=torch.float64)
        dense += float(F.linear(act, nz).sum())  # every (input, synapse) product, counted densely
    assert counts["syn_events"].sum() == dense
    assert counts["spikes"].sum() == sum(s.sum() for s in trace.spikes.values())
    assert counts["neuron_updates"].sum() == x.shape[0] * x.shape[1] * sum(pp.size for pp in net.pops)


@SETTINGS
@given(seed=st.integers(0, 10_000), recurrent=st.booleans())
def test_high_bit_width_quantization_equals_float(seed, recurrent):
    net = make_net(seed, [16, 8], recurrent=recurrent)
    x = spikes(seed, n=6, steps=40)
    ref = simulate_float(net, x)
    prof = profile(weight_bits=22, state_bits=44, decay_bits=18)
    qnet = quantize_network(net, prof, calibration_bounds(net, x))
    got = simulate_int(qnet, x)
    agree = np.mean([np.mean(got.spikes[k] == ref.spikes[k]) for k in ref.spikes])
    assert agree >= 0.995
    assert got.saturations == 0
    lsb = qnet.pops[net.readout]["sigma"]
    scale = np.abs(ref.readout).max() + 1e-9
    assert np.abs(got.readout * lsb - ref.readout).max() / scale < 0.05


def test_xylo_bitshift_decay_and_subtractive_reset():
    from biospike.deploy.simulator import _decay

    x = np.array([127, 20, 2, 1, 0, -1, -2, -20, -100], np.int64)
    # measured with xylosim: a positive state loses at least 1; negative states floor-shift
    np.testing.assert_array_equal(_decay(x, "bitshift", np.full(9, 4), 0), [120, 19, 1, 0, 0, 0, -1, -18, -93])
    np.testing.assert_array_equal(_decay(x, "multiply", np.full(9, 1024), 12), [95, 15, 1, 0, 0, 0, -1, -15, -75])
