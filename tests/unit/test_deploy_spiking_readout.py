"""Targets whose neurons only spike (TrueNorth, Speck): spike-count readout, and TrueNorth's
linear leak. The chips' rules, then a trained-like network through quantization and simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biospike.deploy.hardware import load_profile, profile_from_dict
from biospike.deploy.nir_export import export_nir
from biospike.deploy.quantize import calibration_bounds, quantize_network
from biospike.deploy.simulator import (
    _decay,
    count_events,
    network_from_nir,
    simulate_float,
    simulate_int,
)
from biospike.models import init_model, make_arch

HW = Path("config/hardware")


def test_linear_leak_is_truenorths_leak_reversal():
    """V <- V + sgn(V) * lambda with lambda <= 0 (leak reversal on; Cassidy et al. 2013, as NeMo
    implements it): the membrane moves |lambda| towards 0 per tick, stays at 0, and may step over 0
    by less than |lambda|."""
    v = np.array([10, 4, 3, 1, 0, -1, -3, -10], np.int64)
    np.testing.assert_array_equal(_decay(v, "linear", np.full(8, 4), 0), [6, 0, -1, -3, 0, 3, 1, -6])
    lone = np.array([37], np.int64)
    path = []
    for _ in range(12):
        lone = _decay(lone, "linear", np.array([5]), 0)
        path.append(int(lone[0]))
    assert path[:7] == [32, 27, 22, 17, 12, 7, 2] and all(abs(p) <= 3 for p in path[7:])


def _spiking_profile(**values):
    base = {"cores": 1, "weight_bits": 16, "state_bits": 32, "decay_bits": 0, "max_weight_shift": 0,
            "max_spikes_per_step": 1, "energy_synop_j": 1e-12, "energy_neuron_update_j": 1e-12, "static_power_w": 1e-3,
            **values}
    model = {"synapse": "none", "decay": "none", "order": "decay_then_input", "reset": "to_value",
             "bias_target": "membrane", "readout": "spikes"}
    return profile_from_dict({"name": "s", "title": "spiking-readout test target", "kind": "neuromorphic",
                              "latency_model": "timestep", "neuron_model": model, "values": base,
                              "sources": {k: {"ref": "test fixture", "verified": "no: test"} for k in base}})


def _trained_like(seed=0, n=60, steps=80, classes=3):
    """Windows whose class drives its own group of channels, and an SNN whose first layer and
    readout are set by hand to read them (a stand-in for a trained model, no training loop)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    groups = np.arange(6) // 2
    rate = 0.04 + 0.25 * (groups[None, None, :] == y[:, None, None])
    x = (rng.random((n, steps, 6)) < rate).astype(np.float32)
    arch = make_arch("snn", 6, classes, 1e-3, {"hidden": [9], "tau_mem_s": 0.02, "tau_syn_s": 0.005}, x)
    model = init_model(arch, x, seed=seed)
    with torch.no_grad():
        hid = torch.zeros(9, 6)
        for h in range(9):
            hid[h, 2 * (h // 3):2 * (h // 3) + 2] = 1.0
        model.fc[0].weight.copy_(hid * 3.0 / arch["input_scale"])
        model.out.weight.copy_(torch.eye(classes).repeat_interleave(3, dim=1) - 0.3)
        model.out.bias.fill_(-0.5)  # every class's drive starts negative: the count readout needs its offset
    return model.eval(), x, y


def test_spike_count_readout_follows_the_float_decision():
    model, x, y = _trained_like()
    net = network_from_nir(export_nir(model))
    ref = simulate_float(net, x)
    assert (ref.logits.argmax(1) == y).mean() > 0.9  # the stand-in model reads the classes
    qnet = quantize_network(net, _spiking_profile(), calibration_bounds(net, x))
    trace = simulate_int(qnet, x)
    assert trace.readout_spikes
    assert set(np.unique(trace.readout)) <= {0.0, 1.0}  # binary spikes, one per step at most
    counts = trace.readout.sum(axis=1)
    readout = qnet.pops[net.readout]
    assert readout["readout"] == "spike_count" and readout["threshold"] is not None
    assert readout["readout_offset"] > 0  # the offset that lifts negative drives
    assert counts.max(axis=1).min() > 0  # no window is a tie of silent readout neurons
    agree = float((counts.argmax(1) == ref.logits.argmax(1)).mean())
    assert agree > 0.9, agree
    # readout spikes are output events: counted with the hidden ones
    events = count_events(net, trace, x)
    hidden = sum(float(s.sum()) for s in trace.spikes.values())
    assert events["spikes"].sum() == pytest.approx(hidden + float(trace.readout.sum()))


def test_without_the_offset_negative_drives_leave_the_readout_silent():
    model, x, _ = _trained_like()
    net = network_from_nir(export_nir(model))
    qnet = quantize_network(net, _spiking_profile(), calibration_bounds(net, x))
    readout = qnet.pops[net.readout]
    assert readout["readout_offset"] > 0
    ref = simulate_float(net, x).logits.argmax(1)
    with_offset = float((simulate_int(qnet, x).readout.sum(axis=1).argmax(1) == ref).mean())
    readout["bias_membrane"] = readout["bias_membrane"] - readout["readout_offset"]
    counts = simulate_int(qnet, x).readout.sum(axis=1)
    silent = counts.sum(axis=1) == 0
    assert silent.mean() > 0.2  # windows where every readout neuron stays below threshold
    # what the offset is for: the counts follow the float decision more closely with it
    assert float((counts.argmax(1) == ref).mean()) < with_offset - 0.05, with_offset


@pytest.mark.parametrize("target", ["truenorth", "speck"])
def test_spike_only_targets_decode_spike_counts(target):
    model, x, y = _trained_like(seed=1)
    net = network_from_nir(export_nir(model))
    profile = load_profile(HW / f"{target}.yaml")
    assert profile.neuron_model["readout"] == "spikes"
    qnet = quantize_network(net, profile, calibration_bounds(net, x))
    trace = simulate_int(qnet, x)
    assert trace.readout_spikes and set(np.unique(trace.readout)) <= {0.0, 1.0}
    assert (trace.logits.argmax(1) == y).mean() > 0.6


def test_truenorth_hidden_neurons_leak_linearly():
    """Two sub-threshold inputs 10 membrane time constants apart: the float LIF forgets the first,
    and so does TrueNorth with the linear leak; a perfect integrator (no leak) adds them and fires."""
    from biospike.models import build_model

    model = build_model({"kind": "snn", "n_in": 1, "n_hidden": [1], "n_out": 2, "dt_s": 1e-3, "tau_mem_s": 0.02,
                         "tau_syn_s": 0.005, "bias": False})
    with torch.no_grad():
        # on TrueNorth one input deposits its whole charge at once, (tau_syn / tau_mem) w = 0.6 thresholds
        model.fc[0].weight.fill_(0.6 * 0.02 / 0.005)
        model.out.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    x = np.zeros((1, 300, 1), np.float32)
    x[0, [5, 205], 0] = 1.0
    net = network_from_nir(export_nir(model.eval()))
    tn = load_profile(HW / "truenorth.yaml")
    assert tn.neuron_model["decay"] == "linear"
    qnet = quantize_network(net, tn, calibration_bounds(net, x))
    hidden = qnet.pops["lif0"]
    # lambda = a * threshold / 2: what the exponential decay removes per step at half threshold
    a = net.dt_s / net.pop("lif0").tau_mem_s
    np.testing.assert_array_equal(hidden["d_mem"], np.maximum(1, np.round(a * hidden["threshold"] / 2)).astype(np.int64))
    assert simulate_float(net, x).spikes["lif0"].sum() == 0
    assert simulate_int(qnet, x).spikes["lif0"].sum() == 0
    hidden["d_mem"] = np.zeros_like(hidden["d_mem"])
    assert simulate_int(qnet, x).spikes["lif0"].sum() == 1


def test_spike_count_readout_needs_calibration_windows_and_no_synaptic_current():
    from biospike.errors import BiospikeError

    model, x, _ = _trained_like()
    net = network_from_nir(export_nir(model))
    from biospike.deploy.cli import simulate_model

    assert quantize_network(net, _spiking_profile()).pops[net.readout]["readout_calibrated"] is False
    with pytest.raises(BiospikeError, match="decodes spike counts"):
        simulate_model(model, _spiking_profile(), x, np.zeros(len(x), np.int64))
    prof = _spiking_profile()
    prof.neuron_model = {**prof.neuron_model, "synapse": "current"}
    with pytest.raises(BiospikeError, match="synapse: none"):
        quantize_network(net, prof, calibration_bounds(net, x))
