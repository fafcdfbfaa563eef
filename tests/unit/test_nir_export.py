"""NIR export: loads with nir.read, per-neuron arrays, correct time constants, LI readout kept,
and the float simulation of the NIR graph reproduces the torch model exactly."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from biospike.deploy.nir_export import export_nir, graph_metadata, read_nir, write_nir
from biospike.deploy.simulator import network_from_nir, simulate_float
from biospike.errors import BiospikeError
from biospike.models import build_model, save_checkpoint


def _snn(seed=0, gain=4.0, **arch):
    torch.manual_seed(seed)
    spec = {"kind": "snn", "n_in": 10, "n_hidden": [24, 12], "n_out": 3, "dt_s": 1e-3, **arch}
    model = build_model(spec)
    with torch.no_grad():  # random weights strong enough for non-trivial firing
        for fc in model.fc:
            fc.weight.mul_(gain)
            if fc.bias is not None:
                fc.bias.uniform_(-0.05, 0.1)
        if model.rec is not None:
            for rec in model.rec:
                rec.weight.mul_(2.0)
    return model.eval()


def _inputs(seed=0, n=16, steps=60, channels=10, p=0.3):
    rng = np.random.default_rng(seed)
    return (rng.random((n, steps, channels)) < p).astype(np.uint8) * rng.integers(1, 3, (n, steps, channels)).astype(np.uint8)


def test_export_loads_with_per_neuron_arrays_and_correct_time_constants(tmp_path):
    model = _snn(tau_mem_s=0.03, tau_syn_s=0.004, dt_s=0.002, recurrent=True, input_scale=1.5)
    path = tmp_path / "model.nir"
    write_nir(path, export_nir(model, [f"c{i}" for i in range(10)], ["a", "b", "c"]))
    graph = nir.read(path)
    lif = graph.nodes["lif0"]
    assert isinstance(lif, nir.CubaLIF) and lif.tau_mem.shape == (24,)
    np.testing.assert_allclose(lif.tau_mem, 0.03)  # seconds, not off by 1e3
    np.testing.assert_allclose(lif.tau_syn, 0.004)
    np.testing.assert_allclose(lif.w_in, 0.004 / 0.002)
    assert isinstance(graph.nodes["readout"], nir.CubaLI)  # LI readout kept
    assert ("lif0", "rec0") in graph.edges and ("rec0", "lif0") in graph.edges
    assert isinstance(graph.nodes["scale"], nir.Scale)
    meta = graph_metadata(graph)
    assert meta["dt_s"] == 0.002 and meta["class_names"] == ["a", "b", "c"] and meta["channel_names"][3] == "c3"


@pytest.mark.parametrize("arch", [
    {},
    {"impl": "norse"},
    {"recurrent": True, "input_scale": 2.0},
    {"bias": False, "input_scale": 0.7},
    {"n_hidden": [16], "tau_mem_s": 0.011, "tau_syn_s": 0.003, "v_th": 0.8},
    {"output_scale": 0.37, "input_scale": 1.3},  # both gains the trainer's auto scaling sets
])
def test_float_simulation_of_nir_reproduces_torch(tmp_path, arch):
    model = _snn(**arch)
    path = tmp_path / "m.nir"
    write_nir(path, export_nir(model))
    net = network_from_nir(read_nir(path))
    x = _inputs()
    trace = simulate_float(net, x)
    with torch.no_grad():
        volts, hidden = model.forward_trace(torch.as_tensor(x, dtype=torch.float32))
    rates = [h.mean().item() for h in hidden]
    assert all(0.002 < r < 0.6 for r in rates) and rates[0] > 0.01, rates  # non-trivial firing
    for ref, name in zip(hidden, trace.spikes, strict=True):
        np.testing.assert_array_equal(trace.spikes[name], ref.numpy())
    np.testing.assert_allclose(trace.readout, volts.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(trace.logits, model(torch.as_tensor(x, dtype=torch.float32)).detach().numpy(), atol=1e-5)


def test_export_cli_and_ann_rejected(tmp_path):
    from biospike.cli import main

    snn = _snn()
    save_checkpoint(tmp_path / "snn.pt", snn, {"class_names": ["a", "b", "c"], "channel_names": [f"c{i}" for i in range(10)]})
    assert main(["export", "--params", json.dumps({"seed": 3}), "--model", str(tmp_path / "snn.pt"),
                 "--output", str(tmp_path / "out" / "model.nir")]) == 0
    meta = graph_metadata(nir.read(tmp_path / "out" / "model.nir"))
    assert meta["class_names"] == ["a", "b", "c"] and "provenance" in meta and "importer" not in meta
    assert main(["export", "--model", str(tmp_path / "snn.pt"), "--output", str(tmp_path / "s.nir"),
                 "--for-importer", "snntorch"]) == 0
    meta = graph_metadata(nir.read(tmp_path / "s.nir"))
    assert meta["importer"] == "snntorch" and meta["class_names"] == ["a", "b", "c"] and "readout_removed" in meta
    ann = build_model({"kind": "ann", "n_in": 10, "n_hidden": [8], "n_out": 3})
    save_checkpoint(tmp_path / "ann.pt", ann, {})
    assert main(["export", "--model", str(tmp_path / "ann.pt"), "--output", str(tmp_path / "a.nir")]) == 2
    assert not (tmp_path / "a.nir").exists()


def test_unsupported_graph_is_a_clear_error():
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])),
                                "lif": nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
                                "output": nir.Output(output_type=np.array([3]))},
                         edges=[("input", "lif"), ("lif", "output")], metadata={"dt_s": 0.001})
    with pytest.raises(BiospikeError, match="not supported"):
        network_from_nir(graph)


def test_learned_per_neuron_constants_are_exported_per_neuron(tmp_path):
    """Trainable dynamics: the NIR graph carries each neuron's learned tau_mem, tau_syn and
    threshold, and simulating it reproduces the torch model (to float rounding of the constants)."""
    model = _snn(trainable=["tau_mem", "tau_syn", "v_th"], trainable_layers=[0])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # as after training: every neuron of layer 0 has its own constants
        for p in model.dynamics["0"].parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))
    constants = model.neuron_constants()
    assert np.ptp(constants[0]["tau_mem_s"]) > 1e-3 and np.ptp(constants[1]["tau_mem_s"]) == 0  # layer 1 fixed
    assert (constants[0]["tau_mem_s"] > 1e-3).all() and (constants[0]["v_th"] > 0).all()
    path = tmp_path / "m.nir"
    write_nir(path, export_nir(model))
    graph = nir.read(path)
    np.testing.assert_allclose(graph.nodes["lif0"].tau_mem, constants[0]["tau_mem_s"], rtol=1e-12)
    np.testing.assert_allclose(graph.nodes["lif0"].v_threshold, constants[0]["v_th"], rtol=1e-12)
    np.testing.assert_allclose(graph.nodes["lif0"].w_in, constants[0]["tau_syn_s"] / 1e-3, rtol=1e-12)
    x = _inputs()
    trace = simulate_float(network_from_nir(read_nir(path)), x)
    with torch.no_grad():
        volts, hidden = model.forward_trace(torch.as_tensor(x, dtype=torch.float32))
    for ref, name in zip(hidden, trace.spikes, strict=True):
        assert 0.01 < ref.mean() and np.mean(trace.spikes[name] == ref.numpy()) > 0.995
    np.testing.assert_allclose(trace.logits, volts.mean(dim=1).numpy(), atol=0.05 * float(volts.abs().max()))
