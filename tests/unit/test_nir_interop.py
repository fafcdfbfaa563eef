"""Our NIR graphs in the peers' importers: norse ``from_nir``, snnTorch ``import_from_nir`` and
rockpool ``from_nir``, run for real on graphs written to disk and read back.

Each peer gets the variant :func:`for_importer` writes for it; where a peer cannot represent a
node (a readout, recurrence, a reset), the test pins that limit (docs/hardware.md, "NIR in other
tools"): if a peer release lifts it, the pinned test fails and the docs need updating.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from biospike.deploy.nir_export import (
    IMPORTERS,
    export_nir,
    for_importer,
    graph_metadata,
    read_nir,
    write_nir,
)
from biospike.errors import BiospikeError
from tests.unit.test_nir_export import _inputs as nir_test_inputs
from tests.unit.test_nir_export import _snn as nir_test_snn

DT_S = 2e-3
ARCHS = {
    "feedforward": {},
    "recurrent": {"recurrent": True},
    "scaled": {"input_scale": 2.0, "output_scale": 0.5, "bias": False},
}


def _model(**arch):
    return nir_test_snn(dt_s=DT_S, tau_mem_s=0.02, tau_syn_s=0.005, **arch)


def _variant(tmp_path, model, importer: str):
    """The importer's variant of the model's graph, through a file (what a user would hand over)."""
    path = tmp_path / f"{importer}.nir"
    write_nir(path, for_importer(export_nir(model), importer))
    return read_nir(path)


def _reference(model, x):
    """Our model: hidden spikes per layer, the output projection per step, and the logits."""
    with torch.no_grad():
        volts, hidden = model.forward_trace(x)
        projection = model.out(hidden[-1]) * float(model.arch.output_scale)
        logits = model(x)
    return hidden, projection, logits


def _hooked(module, names):
    """Record the outputs of the named children on every call."""
    record: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for name in names:
        getattr(module, name).register_forward_hook(
            lambda _m, _i, out, name=name: record[name].append(out[0] if isinstance(out, tuple) else out))
    return record


def _li_readout_logits(stream: torch.Tensor, readout: dict) -> torch.Tensor:
    """Our CubaLI readout (NIR semantics, forward Euler as written in the graph metadata) driven by
    a (B, T, n_out) stream: mean over time of the voltage."""
    dt = readout["dt_s"]
    a_syn = dt / torch.as_tensor(readout["tau_syn_s"], dtype=torch.float32)
    a_mem = dt / torch.as_tensor(readout["tau_mem_s"], dtype=torch.float32)
    cur = torch.zeros(stream.shape[0], stream.shape[2])
    volt = torch.zeros_like(cur)
    volts = []
    for t in range(stream.shape[1]):
        cur = cur + stream[:, t]
        volt = volt + a_mem * (cur - volt)
        cur = cur - a_syn * cur
        volts.append(volt)
    return torch.stack(volts, 1).mean(1)


def _readout_of(model) -> dict:
    arch = model.arch
    n = model.out.out_features
    return {"dt_s": float(arch.dt_s), "tau_syn_s": [arch.readout_tau_syn_s] * n, "tau_mem_s": [arch.readout_tau_mem_s] * n}


def test_for_importer_records_its_changes_and_refuses_what_it_cannot_express():
    graph = export_nir(_model(input_scale=1.5))
    for importer in IMPORTERS:
        variant = for_importer(graph, importer)
        meta = graph_metadata(variant)
        assert meta["importer"] == importer and meta["importer_convention"] == IMPORTERS[importer]
        assert not any(isinstance(n, nir.Scale) for n in variant.nodes.values())  # no peer maps Scale
        assert ("readout" in variant.nodes) == (importer == "norse")
    assert "scale" in graph.nodes and "readout" in graph.nodes  # the input graph is untouched
    snn_meta = graph_metadata(for_importer(graph, "snntorch"))
    assert snn_meta["dt_s"] == 1e-4 and snn_meta["source_dt_s"] == DT_S
    lif = for_importer(graph, "snntorch").nodes["lif0"]
    np.testing.assert_allclose(lif.r, lif.tau_mem / 1e-4)  # snnTorch's r convention
    assert meta["format"] == "biospike-snn-nir/1+" + importer  # not taken for our own graph
    with pytest.raises(BiospikeError, match="already the 'snntorch' variant"):
        for_importer(for_importer(graph, "snntorch"), "rockpool")
    with pytest.raises(BiospikeError, match="longer than dt"):
        for_importer(export_nir(nir_test_snn(dt_s=0.005, tau_syn_s=0.005)), "rockpool")
    with pytest.raises(BiospikeError, match="unknown NIR importer"):
        for_importer(graph, "lava")
    with pytest.raises(BiospikeError, match="v_leak = v_reset = 0"):
        for_importer(export_nir(_model(v_reset=-0.2)), "snntorch")
    with pytest.raises(BiospikeError, match="not a biospike NIR graph"):
        for_importer(nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "output": nir.Output(np.array([2]))},
                                  edges=[("input", "output")]), "norse")


# ---------------------------------------------------------------------------------------------
# norse 1.1: every hidden spike exact; the CubaLI readout is dropped by the importer


@pytest.mark.parametrize("arch", ARCHS.values(), ids=ARCHS.keys())
def test_norse_from_nir_reproduces_every_hidden_spike(tmp_path, arch):
    import norse.torch as norse

    model = _model(**arch)
    x = torch.as_tensor(nir_test_inputs(), dtype=torch.float32)
    hidden, projection, logits = _reference(model, x)
    imported = norse.from_nir(_variant(tmp_path, model, "norse"), dt=DT_S)
    assert "readout" not in dict(imported.named_children())  # pinned: norse drops the LI readout
    record = _hooked(imported, ["lif0", "lif1"])
    state, outputs = None, []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = imported(x[:, t], state)
            outputs.append(out)
    outputs = torch.stack(outputs, 1)
    assert hidden[0].mean() > 0.01  # non-trivial firing
    for name, ours in zip(("lif0", "lif1"), hidden, strict=True):
        torch.testing.assert_close(torch.stack(record[name], 1), ours, rtol=0, atol=0)
    # its output is our last projection; our readout on it gives our logits
    torch.testing.assert_close(outputs, projection, rtol=0, atol=1e-6)
    torch.testing.assert_close(_li_readout_logits(outputs, _readout_of(model)), logits, rtol=0, atol=1e-5)


def test_norse_cannot_read_the_scale_node_of_the_plain_graph(tmp_path):
    import norse.torch as norse

    path = tmp_path / "plain.nir"
    write_nir(path, export_nir(_model(input_scale=2.0)))
    with pytest.raises(KeyError):  # pinned: norse 1.1 maps no nir.Scale (the variant uses a diagonal Linear)
        norse.from_nir(read_nir(path), dt=DT_S)


# ---------------------------------------------------------------------------------------------
# snnTorch 1.0: feed-forward spikes exact; no CubaLI readout; recurrence fails inside nirtorch


def _snntorch_run(imported, x):
    import snntorch.utils

    record = _hooked(imported, ["lif0", "lif1"])
    outputs = []
    with torch.no_grad():
        snntorch.utils.reset(imported)
        for t in range(x.shape[1]):
            out = imported(x[:, t])
            outputs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outputs, 1), {k: torch.stack(v, 1) for k, v in record.items()}


@pytest.mark.parametrize("arch", [ARCHS["feedforward"], ARCHS["scaled"]], ids=["feedforward", "scaled"])
def test_snntorch_import_reproduces_every_hidden_spike(tmp_path, arch):
    from snntorch.import_nir import import_from_nir

    model = _model(**arch)
    x = torch.as_tensor(nir_test_inputs(), dtype=torch.float32)
    hidden, projection, logits = _reference(model, x)
    variant = _variant(tmp_path, model, "snntorch")
    outputs, spikes = _snntorch_run(import_from_nir(variant), x)
    assert hidden[0].mean() > 0.01
    for name, ours in zip(("lif0", "lif1"), hidden, strict=True):
        torch.testing.assert_close(spikes[name], ours, rtol=0, atol=0)
    torch.testing.assert_close(outputs, projection, rtol=0, atol=1e-6)
    # the readout the variant removed, as its metadata states it, gives our logits
    readout = json.loads(graph_metadata(variant)["readout_removed"])
    torch.testing.assert_close(_li_readout_logits(outputs, readout), logits, rtol=0, atol=1e-5)


def test_snntorch_limits_are_pinned(tmp_path):
    from snntorch.import_nir import import_from_nir

    path = tmp_path / "plain.nir"
    plain = export_nir(_model())
    write_nir(path, plain)
    with pytest.raises(AssertionError, match="r not supported"):  # it takes only r = tau_mem / 1e-4 s
        import_from_nir(read_nir(path))
    graph = for_importer(plain, "snntorch")
    with_readout = nir.NIRGraph(nodes={**graph.nodes, "readout": plain.nodes["readout"]},
                                edges=[e for e in graph.edges if e != ("out", "output")]
                                + [("out", "readout"), ("readout", "output")])
    with pytest.raises(ValueError, match="CubaLI"):  # and it has no node for an LI readout
        import_from_nir(with_readout)
    # learned per-neuron thresholds: snnTorch's Synaptic takes one threshold per layer
    lif = graph.nodes["lif0"]
    graph.nodes["lif0"] = nir.CubaLIF(tau_syn=lif.tau_syn, tau_mem=lif.tau_mem, r=lif.r, v_leak=lif.v_leak,
                                      v_threshold=np.linspace(0.8, 1.2, lif.v_threshold.size), v_reset=lif.v_reset,
                                      w_in=lif.w_in)
    with pytest.raises(AssertionError, match="v_thr must be same"):
        import_from_nir(graph)


@pytest.mark.xfail(strict=True, raises=AttributeError,
                   reason="snnTorch 1.0 wraps lif<->rec in a sub-graph that nirtorch 2.6's nir_to_torch cannot build")
def test_snntorch_imports_recurrent_graphs(tmp_path):
    from snntorch.import_nir import import_from_nir

    import_from_nir(_variant(tmp_path, _model(recurrent=True), "snntorch"))


# ---------------------------------------------------------------------------------------------
# rockpool 3.1: exact up to the first second spike (LIFTorch resets by subtraction)


def _first_second_spike_step(*layers: np.ndarray) -> np.ndarray:
    """Per sample, the first step at which some neuron of any layer has fired twice in all (a
    multi-spike step counts): until then no reset has acted on a membrane that fires again."""
    counts = np.concatenate([np.cumsum(layer, axis=1) for layer in layers], axis=2).max(axis=2)  # (B, T)
    twice = counts >= 2
    return np.where(twice.any(1), twice.argmax(1), counts.shape[1])


@pytest.mark.parametrize("arch", [ARCHS["feedforward"], ARCHS["recurrent"], ARCHS["scaled"]],
                         ids=["feedforward", "recurrent", "scaled"])
def test_rockpool_from_nir_agrees_until_the_reset_differs(tmp_path, arch):
    from rockpool.nn.modules.torch.nir import from_nir

    model = _model(**arch)
    x = torch.as_tensor(nir_test_inputs(), dtype=torch.float32)
    hidden, _, _ = _reference(model, x)
    imported = from_nir(_variant(tmp_path, model, "rockpool"))
    assert imported.lif0.dt == pytest.approx(DT_S)  # inferred from r, as rockpool does
    record = _hooked(imported, ["lif0", "lif1"])
    with torch.no_grad():
        imported(x)
    theirs = [record[name][0].numpy() for name in ("lif0", "lif1")]  # spike counts per step
    ours = [h.numpy() for h in hidden]
    # until either network has a neuron fire twice, no reset rule has acted yet: counts equal
    limit = np.minimum(_first_second_spike_step(*ours), _first_second_spike_step(*theirs))
    compared = np.arange(ours[0].shape[1])[None, :] < limit[:, None]
    assert sum(int(o[compared].sum()) for o in ours) >= 20  # the compared stretch holds spikes
    for mine, peer in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(peer[compared], mine[compared])
    # pinned: after it, subtractive reset (rockpool) and reset to v_reset (ours) part ways
    assert any((peer != mine).any() for mine, peer in zip(ours, theirs, strict=True))


def test_rockpool_refuses_the_readout(tmp_path):
    from rockpool.nn.modules.torch.nir import from_nir

    path = tmp_path / "plain.nir"
    write_nir(path, export_nir(_model()))
    with pytest.raises(NotImplementedError, match="CubaLI"):
        from_nir(read_nir(path))
