"""The temporal-kernel front end (the tconv kind): a causal 1-D convolution over time of the input
spikes, its NIR export as delayed projections, the simulator on that graph, DP per-sample
gradients, and the limits that refuse it where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.config import load_yaml, validate_config
from biospike.deploy.hardware import load_profile
from biospike.deploy.mapping import map_network
from biospike.deploy.nir_export import export_nir, for_importer, read_nir, write_nir
from biospike.deploy.quantize import calibration_bounds, quantize_network
from biospike.deploy.simulator import count_events, network_from_nir, simulate_float, simulate_int
from biospike.errors import BiospikeError
from biospike.models import build_model, init_model, make_arch
from biospike.models.snn import TemporalKernel, delay_embed
from biospike.privacy.dp import loss_sum
from biospike.privacy.grad_sample import grad_sample_module
from tests.unit.test_dp_per_sample import _one_at_a_time

torch.set_num_threads(1)
HARDWARE = "config/hardware"


def _spikes(n=12, steps=40, channels=4, p=0.15, seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, steps, channels)) < p).astype(np.float32)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 30), st.integers(0, 2**16))
def test_delay_embed_blocks_are_delayed_copies(kernel_steps, dilation, steps, seed):
    x = torch.as_tensor(_spikes(n=2, steps=steps, channels=3, p=0.5, seed=seed))
    e = delay_embed(x, kernel_steps, dilation)
    assert e.shape == (2, steps, 3 * kernel_steps)
    for k in range(kernel_steps):
        d = k * dilation
        block = e[:, :, 3 * k:3 * (k + 1)]
        assert torch.equal(block[:, d:], x[:, :steps - d]) if d < steps else True
        assert not block[:, :min(d, steps)].any()  # nothing before the window starts


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 19), st.integers(0, 2**16))
def test_temporal_kernel_is_causal_and_spans_its_taps(kernel_steps, dilation, t0, seed):
    torch.manual_seed(seed)
    tk = TemporalKernel(3, 5, kernel_steps, dilation)
    x = torch.as_tensor(_spikes(n=1, steps=20, channels=3, p=0.3, seed=seed))
    x2 = x.clone()
    x2[0, t0, 0] += 1.0  # one more input spike at step t0
    diff = (tk(x2) - tk(x)).abs().sum(dim=2)[0]
    span = (kernel_steps - 1) * dilation
    changed = set(torch.nonzero(diff > 1e-6).flatten().tolist())
    # only the steps t0 + k*dilation see it: never the past, never beyond the kernel's span
    assert changed <= {t0 + k * dilation for k in range(kernel_steps)}
    assert all(t0 <= t <= t0 + span for t in changed)


def test_temporal_kernel_equals_a_causal_conv1d():
    torch.manual_seed(0)
    tk = TemporalKernel(4, 6, kernel_steps=5, dilation=2)
    x = torch.as_tensor(_spikes(n=3, steps=30, channels=4, p=0.3))
    # Conv1d weight (H, C, K) whose last entry is the undelayed tap, input left-padded
    w = torch.stack([tk.tap_weight(k) for k in range(5)][::-1], dim=2)
    pad = (5 - 1) * 2
    ref = torch.nn.functional.conv1d(torch.nn.functional.pad(x.transpose(1, 2), (pad, 0)), w, tk.bias, dilation=2)
    torch.testing.assert_close(tk(x), ref.transpose(1, 2), rtol=1e-5, atol=1e-5)


def _tconv_arch(x: np.ndarray, steps=4, dilation=2, **over) -> dict:
    settings_ = {"front_end": "temporal_kernel", "temporal_kernel": {"steps": steps, "dilation": dilation},
                 "hidden": [16], "tau_mem_s": 0.01, "tau_syn_s": 0.005, **over}
    return make_arch("snn", x.shape[2], 3, 1e-3, settings_, x)


def test_front_end_setting_builds_the_kernel_and_default_stays_linear():
    x = _spikes()
    arch = _tconv_arch(x)
    assert (arch["kernel_steps"], arch["kernel_dilation"]) == (4, 2)
    model = init_model(arch, x, seed=1)
    assert isinstance(model.fc[0], TemporalKernel) and model.fc[0].weight.shape == (16, 4 * 4)
    plain = make_arch("snn", 4, 3, 1e-3, {"hidden": [16]}, x)
    assert "kernel_steps" not in plain and isinstance(init_model(plain, x, seed=1).fc[0], torch.nn.Linear)
    # auto input scale: the kernel's first layer is driven like a Linear's (a few thresholds RMS)
    with torch.no_grad():
        _, hidden = model.forward_trace(torch.as_tensor(x))
    rate = float(hidden[0].mean())
    assert 0.005 < rate < 0.5, rate


def test_front_end_is_set_by_the_kind_not_the_config():
    cfg = load_yaml("config/config.yaml")
    validate_config({**cfg, "train": {**cfg.get("train", {}), "temporal_kernel": {"steps": 3}}})
    with pytest.raises(BiospikeError, match="train/front_end"):
        validate_config({**cfg, "train": {**cfg.get("train", {}), "front_end": "temporal_kernel"}})
    with pytest.raises(BiospikeError, match="temporal_kernel"):  # one tap is no temporal kernel
        validate_config({**cfg, "train": {**cfg.get("train", {}), "temporal_kernel": {"steps": 1}}})


def _trained_like(x: np.ndarray, seed=3):
    arch = _tconv_arch(x, recurrent=False)
    model = init_model(arch, x, seed=seed)
    with torch.no_grad():  # a bias makes the bias path of the export matter
        model.fc[0].bias.uniform_(-0.05, 0.05)
    return model.eval()


def test_nir_export_writes_delayed_taps_and_the_simulator_reproduces_the_model(tmp_path):
    import nir

    x = _spikes(n=10, steps=60, p=0.2)
    model = _trained_like(x)
    graph = export_nir(model)
    delays = {k: n for k, n in graph.nodes.items() if isinstance(n, nir.Delay)}
    assert sorted(delays) == ["delay0_d2", "delay0_d4", "delay0_d6"]
    assert np.allclose(delays["delay0_d6"].delay, 6e-3)
    write_nir(tmp_path / "m.nir", graph)
    net = network_from_nir(read_nir(tmp_path / "m.nir"))
    assert sorted(p.delay_steps for p in net.incoming("lif0")) == [0, 2, 4, 6]
    trace = simulate_float(net, x)
    with torch.no_grad():
        volts, hidden = model.forward_trace(torch.as_tensor(x))
    assert hidden[0].sum() > 0
    np.testing.assert_array_equal(trace.spikes["lif0"], hidden[0].numpy())  # same arithmetic, bit for bit
    np.testing.assert_allclose(trace.logits, volts.mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)
    # every tap's input spikes are counted as synaptic events, delivered k*dilation steps late
    ev = count_events(net, trace, x)
    fan = sum(float((x[:, :60 - p.delay_steps].sum(axis=(0, 1)) * np.count_nonzero(p.weight, axis=0)).sum())
              for p in net.incoming("lif0"))
    out = net.incoming("readout")[0]
    fan += float((trace.spikes["lif0"].sum(axis=(0, 1)) * np.count_nonzero(out.weight, axis=0)).sum())
    assert ev["syn_events"].sum() == pytest.approx(fan)


def test_integer_simulation_delays_the_taps():
    x = _spikes(n=6, steps=50, p=0.2)
    model = _trained_like(x)
    net = network_from_nir(export_nir(model))
    profile = load_profile(f"{HARDWARE}/loihi.yaml")
    qnet = quantize_network(net, profile, calibration_bounds(net, x))
    trace = simulate_int(qnet, x)
    flat = simulate_float(net, x)
    agree = float((trace.spikes["lif0"] == flat.spikes["lif0"]).mean())
    assert agree > 0.95, agree
    # without the delays (every tap at delay 0) the integer network is a different one
    for p in net.projections:
        p.delay_steps = 0
    undelayed = simulate_int(qnet, x)
    assert not np.array_equal(undelayed.spikes["lif0"], trace.spikes["lif0"])


def test_mapping_refuses_delays_the_target_cannot_make():
    x = _spikes()
    net = network_from_nir(export_nir(_trained_like(x)))
    weights = {p.name: p.weight for p in net.projections}
    base = load_profile(f"{HARDWARE}/loihi.yaml")
    values = {k: v for k, v in base.values.items() if k != "max_delay_steps"}
    unknown = map_network(net, base.__class__(**{**vars(base), "values": values}), weights)
    assert not unknown.fits and any("max_delay_steps" in r for r in unknown.reasons)
    short = map_network(net, base.__class__(**{**vars(base), "values": {**values, "max_delay_steps": 3}}), weights)
    assert not short.fits and any("synaptic delay (steps) needs 6, target has 3" in r for r in short.reasons)
    long = map_network(net, base.__class__(**{**vars(base), "values": {**values, "max_delay_steps": 62}}), weights)
    assert long.fits and long.details["longest_delay_steps"] == 6


@pytest.mark.parametrize("importer", ["norse", "snntorch", "rockpool"])
def test_peer_importers_are_refused_a_delayed_graph(importer):
    graph = export_nir(_trained_like(_spikes()))
    with pytest.raises(BiospikeError, match="no Delay node"):
        for_importer(graph, importer)


def test_dp_per_sample_gradients_of_the_temporal_kernel():
    torch.manual_seed(2)
    x = _spikes(n=5, steps=25, p=0.3)
    model = build_model({**_tconv_arch(x), "input_scale": 6.0})
    xt, y = torch.as_tensor(x), torch.tensor([0, 1, 2, 0, 1])
    reference = _one_at_a_time(model, xt, y)  # each sample's gradient alone
    gsm = grad_sample_module(model)
    gsm.zero_grad(set_to_none=True)
    loss_sum(gsm(xt), y).backward()
    for name, p in gsm._module.named_parameters():
        assert p.grad_sample.shape == (len(x), *p.shape), name
        torch.testing.assert_close(p.grad_sample, reference[name], rtol=1e-4, atol=1e-6, msg=name)
    assert float(reference["fc.0.taps.weight"].abs().sum()) > 0


def test_loihi_delays_take_compartments_from_the_core():
    """NxSDK: 6 delay bits (delays up to 62) leave 128 compartments per core, 3 bits all 1024."""
    x = _spikes(channels=4)
    profile = load_profile(f"{HARDWARE}/loihi.yaml")
    for dilation, per_core in ((2, 1024), (20, 128)):  # longest delay 6 (3 bits) and 60 (6 bits)
        model = init_model(_tconv_arch(x, steps=4, dilation=dilation, hidden=[300]), x, seed=0)
        net = network_from_nir(export_nir(model))
        m = map_network(net, profile, {p.name: p.weight for p in net.projections})
        assert m.fits, m.reasons
        assert m.details["populations"]["lif0"]["neurons_per_core"] <= per_core
        assert m.details["populations"]["lif0"]["cores"] == -(-300 // per_core)


def test_truenorth_ternarises_the_taps_together_and_counts_weight_values():
    """TrueNorth: one positive and one negative weight per neuron over all feed-forward inputs (4
    axon types); per-tap ternarisation gave a neuron up to 2K values and still 'fit'."""
    x = _spikes()
    net = network_from_nir(export_nir(_trained_like(x)))
    tn = load_profile(f"{HARDWARE}/truenorth.yaml")
    q = quantize_network(net, tn, calibration_bounds(net, x))
    rows = np.concatenate([q.weight_ints[p.name] for p in net.incoming("lif0")], axis=1)
    assert max(np.unique(r[r != 0]).size for r in rows) <= 2
    m = map_network(net, tn, q.weight_ints)
    assert m.details["max_weight_values_per_neuron"] <= 4 and not any("weight values" in r for r in m.reasons)
    # the limit is checked: per-tap ternary weights (the former quantization) are refused
    per_tap = {p.name: q.weight_ints[p.name] * (1 + k) for k, p in enumerate(net.incoming("lif0"))}
    refused = map_network(net, tn, {**q.weight_ints, **per_tap})
    assert any("distinct weight values of one neuron" in r for r in refused.reasons)
