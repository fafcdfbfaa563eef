"""The ensemble lever (biospike.snn_ensemble): members' settings, the merged network equal to the
average of its members, and reference ensembles trained together equal to ensembles trained alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biospike.deploy.nir_export import export_nir, read_nir, write_nir
from biospike.deploy.simulator import network_from_nir, simulate_float
from biospike.errors import BiospikeError
from biospike.models import build_model, load_checkpoint, save_checkpoint
from biospike.snn_ensemble import fit_ensemble, fit_many_ensemble, member_settings, merge_snns
from biospike.targets import parse
from tests.unit.test_nir_export import _inputs
from tests.unit.test_train import _one_thread, synthetic  # noqa: F401 (fixture)


def _member(seed: int, width: int, tau_mem_s: float, tau_syn_s: float, input_scale: float, output_scale: float,
             depth: int = 2):
    torch.manual_seed(seed)
    model = build_model({"kind": "snn", "n_in": 10, "n_hidden": [width] * depth, "n_out": 3, "dt_s": 1e-3,
                         "tau_mem_s": tau_mem_s, "tau_syn_s": tau_syn_s, "input_scale": input_scale,
                         "output_scale": output_scale})
    with torch.no_grad():
        for layer, fc in enumerate(model.fc):  # strong enough for firing in every layer
            fc.weight.mul_(4.0 if layer == 0 else 12.0)
            fc.bias.uniform_(-0.05, 0.1)
        model.out.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _members(depth: int = 2):
    return [_member(0, 16, 0.02, 0.005, 1.3, 0.4, depth), _member(1, 8, 0.04, 0.005, 0.8, 1.7, depth),
            _member(2, 24, 0.01, 0.0025, 1.0, 0.9, depth)]


@pytest.mark.parametrize("depth", [1, 2])
def test_merged_network_is_the_average_of_its_members(depth):
    members = _members(depth)
    merged = merge_snns(members)
    assert merged.arch.n_hidden == [48] * depth and merged.arch.input_scale == 1.0
    assert merged.arch.trainable == ["tau_mem", "tau_syn"]  # per neuron; v_th is shared
    x = torch.as_tensor(_inputs(n=24), dtype=torch.float32)
    with torch.no_grad():
        traces = [m.forward_trace(x) for m in members]
        volts, hidden = merged.forward_trace(x)
    # the hidden spikes are the members' side by side; the readout their mean
    for layer in range(depth):
        together = torch.cat([t[1][layer] for t in traces], dim=2)
        assert 0.01 < float(together.mean()) < 0.6
        assert float((hidden[layer] == together).float().mean()) > 0.999
    mean_volts = torch.stack([t[0] for t in traces]).mean(dim=0)
    torch.testing.assert_close(volts, mean_volts, atol=1e-4 * float(mean_volts.abs().max()), rtol=0)
    assert not torch.allclose(traces[0][0], mean_volts, atol=1e-3)  # the members differ: a real average


def test_merged_network_round_trips_and_exports_per_neuron(tmp_path):
    members = _members()
    merged = merge_snns(members)
    save_checkpoint(tmp_path / "model.pt", merged, {"ensemble": [{"hidden": [16, 16]}]})
    loaded, meta = load_checkpoint(tmp_path / "model.pt")
    x = _inputs(n=16)
    with torch.no_grad():
        xt = torch.as_tensor(x, dtype=torch.float32)
        torch.testing.assert_close(loaded(xt), merged(xt))
    path = tmp_path / "m.nir"
    write_nir(path, export_nir(loaded))
    graph = read_nir(path)
    np.testing.assert_allclose(np.sort(np.unique(np.round(graph.nodes["lif0"].tau_mem, 9))), [0.01, 0.02, 0.04],
                               rtol=1e-6)
    trace = simulate_float(network_from_nir(graph), x)
    with torch.no_grad():
        volts, _ = loaded.forward_trace(xt)
    np.testing.assert_allclose(trace.logits, volts.mean(dim=1).numpy(), atol=1e-3 * float(volts.abs().max()))


def test_members_that_cannot_be_merged_are_refused():
    with pytest.raises(BiospikeError, match="number of hidden layers"):
        merge_snns([_member(0, 8, 0.02, 0.005, 1, 1, depth=1), _member(1, 8, 0.02, 0.005, 1, 1, depth=2)])
    other = build_model({"kind": "snn", "n_in": 10, "n_hidden": [8], "n_out": 3, "dt_s": 2e-3})
    with pytest.raises(BiospikeError, match="differ in dt_s"):
        merge_snns([_member(0, 8, 0.02, 0.005, 1, 1, depth=1), other])
    ann = build_model({"kind": "ann", "n_in": 10, "n_hidden": [8], "n_out": 3, "dt_s": 1e-3})
    with pytest.raises(BiospikeError, match="SNNs only"):
        merge_snns([ann])


def test_member_settings_scale_width_and_time_constants_cyclically():
    cfg = {"hidden": [40, 20], "tau_mem_s": 0.05, "tau_syn_s": 0.02,
           "ensemble": {"hidden_scales": [1.0, 0.5], "tau_mem_scales": [1.0, 2.0, 0.5], "tau_syn_scales": [1.0]}}
    members = member_settings(cfg, 4)
    assert [m["hidden"] for m in members] == [[40, 20], [20, 10], [40, 20], [20, 10]]
    assert [m["tau_mem_s"] for m in members] == pytest.approx([0.05, 0.1, 0.025, 0.05])
    assert all(m["tau_syn_s"] == 0.02 for m in members)
    for bad in (1, 2.5):
        with pytest.raises(BiospikeError, match="whole number of members >= 2"):
            member_settings(cfg, bad)
    with pytest.raises(BiospikeError, match="merges LIF members; train.neuron is 'alif'"):
        member_settings({**cfg, "neuron": "alif"}, 2)  # before any member trains


def test_reference_ensembles_trained_together_equal_ensembles_trained_alone():
    sp, _ = synthetic(n_per_subject=20, steps=30)
    target = parse("enssnn_m2")
    assert target.lever.name == "ensemble" and target.reference_groups() == ["enssnn_m2", "snn"]
    settings = {"train": {"epochs": 3, "hidden": [12], "patience": 3,
                          "ensemble": {"hidden_scales": [1.0, 0.5], "tau_mem_scales": [1.0, 2.0],
                                       "tau_syn_scales": [1.0]}}}
    tr, va = sp.splits["train"], sp.splits["val"]
    train_idxs, val_idxs, seeds = [tr[::2], tr[1::2]], [va, va[:20]], [11, 12]
    together = fit_many_ensemble(target, sp, train_idxs, val_idxs, settings, seeds)
    x = torch.as_tensor(sp.spikes[sp.splits["test"]], dtype=torch.float32)
    for (model, info), ti, vi, seed in zip(together, train_idxs, val_idxs, seeds, strict=True):
        alone, alone_info = fit_ensemble(target, sp, ti, vi, settings, seed)
        assert [m["hidden"] for m in info["members"]] == [[12], [6]] and model.arch.n_hidden == [18]
        assert [m["seed"] for m in info["members"]] == [m["seed"] for m in alone_info["members"]]
        with torch.no_grad():
            torch.testing.assert_close(model(x), alone(x), atol=1e-4, rtol=1e-4)
