"""STDP features (biospike.stdp, the ``stdp`` model kind): the trace and pair rule on hand-made
spike trains, the normalisation, and the whole unsupervised phase on data with three input
groups: features specialise (they do not collapse), neurons stay alive, the hidden layer is frozen
while the readout trains, and the network stays an exportable recurrent SNN."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.config import derive_seed, section_settings
from biospike.errors import BiospikeError
from biospike.models import init_model, make_arch
from biospike.stdp import (
    exp_trace,
    feature_similarity,
    lateral_inhibition,
    normalise_rows,
    stdp_delta,
    stdp_pretrain,
)
from biospike.train import fit, fit_many


@given(st.lists(st.integers(0, 3), min_size=1, max_size=40), st.floats(0.0, 0.99))
@settings(max_examples=40, deadline=None)
def test_trace_is_the_exponential_recursion(counts, decay):
    s = torch.tensor(counts, dtype=torch.float64)[None, :, None]
    tr = exp_trace(s, decay)[0, :, 0].numpy()
    expect, acc = [], 0.0
    for c in counts:
        acc = decay * acc + c
        expect.append(acc)
    np.testing.assert_allclose(tr, expect, rtol=1e-12, atol=1e-12)


def _train(T, times):
    s = torch.zeros(1, T, 1)
    for t in times:
        s[0, t, 0] = 1.0
    return s


def test_pair_rule_signs_and_timing():
    decay = 0.5
    pre, post = _train(10, [2]), _train(10, [5])  # pre 3 steps before post: potentiation decay^3
    dw = stdp_delta(pre, post, exp_trace(pre, decay), exp_trace(post, decay), 1.0, 1.0)
    assert dw.item() == pytest.approx(decay**3)
    pre, post = _train(10, [5]), _train(10, [2])  # post 3 steps before pre: depression decay^2 (trace at t-1)
    dw = stdp_delta(pre, post, exp_trace(pre, decay), exp_trace(post, decay), 1.0, 2.0)
    assert dw.item() == pytest.approx(-2.0 * decay**2)
    same = _train(10, [4])  # same step: the pre spike drove the post one here (current first)
    dw = stdp_delta(same, same, exp_trace(same, decay), exp_trace(same, decay), 1.0, 1.0)
    assert dw.item() == pytest.approx(1.0)


def test_rows_are_non_negative_with_fixed_l1_norm_and_dead_rows_revive():
    w = torch.tensor([[1.0, -2.0, 3.0], [0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    out = normalise_rows(w, torch.tensor([2.0, 3.0, 1.0]))
    assert (out >= 0).all()
    np.testing.assert_allclose(out.sum(1).numpy(), [2.0, 3.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(out[0].numpy(), [0.5, 0.0, 1.5], rtol=1e-6)
    np.testing.assert_allclose(out[1].numpy(), [1.0, 1.0, 1.0], rtol=1e-6)
    inh = lateral_inhibition(4, 0.3)  # 0.3 lost when the 3 others spike together
    assert torch.all(inh.diagonal() == 0) and torch.allclose(inh - torch.eye(4) * 0.1, torch.full((4, 4), -0.1))
    assert lateral_inhibition(64, 6.0).sum(1).allclose(torch.full((64,), -6.0))  # width-independent total
    with pytest.raises(BiospikeError):
        lateral_inhibition(3, -1.0)


def _grouped(n=300, steps=100, channels=15, seed=0):
    """Three classes, each driving its own third of the channels (Poisson, 0.2 vs 0.02 per step)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    rates = np.full((3, channels), 0.02)
    for k in range(3):
        rates[k, 5 * k:5 * k + 5] = 0.2
    x = (rng.random((n, steps, channels)) < rates[y][:, None, :]).astype(np.uint8)
    return x, y


def _cfg(**over):
    return section_settings("train", {"learning": "stdp", "recurrent": True, "hidden": [24], "epochs": 4, **over})


def test_unsupervised_phase_specialises_features_and_freezes_them():
    x, _ = _grouped()
    cfg = _cfg()
    arch = make_arch("snn", x.shape[2], 3, 1e-3, cfg, x)
    model = init_model(arch, x, seed=3)
    summary = stdp_pretrain(model, x, cfg["stdp"], seed=5)
    layer = summary["layers"][0]
    # features specialise: rows far less alike than the random start, every input group has takers
    assert layer["feature_similarity_after"] < layer["feature_similarity_before"] - 0.15, layer
    w = model.fc[0].weight.detach().numpy()
    preferred = np.argmax(np.stack([w[:, 5 * k:5 * k + 5].sum(1) for k in range(3)]), axis=0)
    assert set(preferred) == {0, 1, 2}
    # homeostasis: alive, near the target rate (20 Hz at 1 ms)
    assert layer["silent_neurons"] <= 2 and 5 < layer["final_rate_hz"] < 60
    assert (w >= 0).all() and np.allclose(w.sum(1), layer["row_l1_norm"], rtol=1e-4)
    rec = model.rec[0].weight.detach()  # the lateral inhibition, as configured
    assert torch.equal(rec, lateral_inhibition(24, cfg["stdp"]["inhibition"]))
    assert not any(p.requires_grad for m in (*model.fc, *model.rec) for p in m.parameters())
    assert model.out.weight.requires_grad


def test_fit_trains_the_readout_alone_on_the_stdp_features():
    x, y = _grouped(n=240)
    cfg = _cfg(epochs=3)
    arch = make_arch("snn", x.shape[2], 3, 1e-3, cfg, x[:180])
    result = fit(arch, x[:180], y[:180], x[180:], y[180:], cfg, seed=11, progress=False)
    reference = init_model(arch, x[:180], seed=11)
    stdp_pretrain(reference, x[:180], cfg["stdp"], derive_seed(11, "stdp"))
    # the hidden layer is exactly what STDP made; the readout moved
    torch.testing.assert_close(result.model.fc[0].weight, reference.fc[0].weight, rtol=0, atol=0)
    torch.testing.assert_close(result.model.fc[0].bias, reference.fc[0].bias, rtol=0, atol=0)
    assert not torch.equal(result.model.out.weight, reference.out.weight)
    assert result.pretrain["layers"][0]["width"] == 24
    assert result.history[result.best_epoch - 1]["val_balanced_accuracy"] > 0.8  # separable groups
    # references of the stdp kind: fit_many runs the same per-model recipe
    many = fit_many([arch], [x[:180]], [y[:180]], [x[180:]], [y[180:]], cfg, [11], progress=False)
    torch.testing.assert_close(many[0].model.out.weight, result.model.out.weight, rtol=0, atol=0)


def test_stdp_checkpoint_reloads_with_its_readout_gain(tmp_path):
    from biospike.deploy.nir_export import export_nir
    from biospike.deploy.simulator import network_from_nir, simulate_float
    from biospike.models import load_checkpoint, predict_logits, save_checkpoint

    x, y = _grouped(n=160)
    cfg = _cfg(epochs=2)
    arch = make_arch("snn", x.shape[2], 3, 1e-3, cfg, x[:120])
    model = fit(arch, x[:120], y[:120], x[120:], y[120:], cfg, seed=2, progress=False).model
    assert model.arch.output_scale != arch["output_scale"]  # set again on the STDP features
    save_checkpoint(tmp_path / "m.pt", model, {})
    loaded, _ = load_checkpoint(tmp_path / "m.pt")
    np.testing.assert_array_equal(predict_logits(loaded, x[120:]), predict_logits(model, x[120:]))
    trace = simulate_float(network_from_nir(export_nir(loaded)), x[120:140])
    np.testing.assert_allclose(trace.logits, predict_logits(model, x[120:140]), atol=1e-5, rtol=0)


def test_a_config_may_not_set_the_learning_rule():
    from biospike.config import load_yaml, validate_config

    cfg = load_yaml("config/config.yaml")
    validate_config(cfg)
    with pytest.raises(BiospikeError, match="train/learning"):
        validate_config({**cfg, "train": {**cfg.get("train", {}), "learning": "stdp"}})
    name = next(iter(cfg["datasets"]))
    bad = {**cfg, "datasets": {**cfg["datasets"], name: {**cfg["datasets"][name], "train": {"learning": "stdp"}}}}
    with pytest.raises(BiospikeError, match="set by the model kind"):
        validate_config(bad)


def test_stdp_refuses_networks_it_cannot_train():
    x, _ = _grouped(n=40)
    for over in ({"recurrent": False}, {"trainable": ["v_th"]}, {"neuron": "alif"}):
        cfg = _cfg(**over)
        model = init_model(make_arch("snn", x.shape[2], 3, 1e-3, cfg, x), x, seed=0)
        with pytest.raises(BiospikeError, match="recurrent LIF"):
            stdp_pretrain(model, x, cfg["stdp"], seed=0)
    cfg = _cfg()
    model = init_model(make_arch("snn", x.shape[2], 3, 1e-3, cfg, x), x, seed=0)
    with pytest.raises(BiospikeError, match="target_rate_hz"):
        stdp_pretrain(model, x, {**cfg["stdp"], "target_rate_hz": 2000.0}, seed=0)


def test_dp_refuses_stdp_learning():
    from biospike.privacy.cli import _check_learning

    with pytest.raises(BiospikeError, match="not privatised"):
        _check_learning({"learning": "stdp"})
    _check_learning({"learning": "surrogate"})


def test_feature_similarity_bounds():
    assert feature_similarity(torch.ones(4, 3)) == pytest.approx(1.0)
    assert feature_similarity(torch.eye(3)) == pytest.approx(0.0)
    assert math.isfinite(feature_similarity(torch.zeros(2, 3)))
