"""Reference ensembles: K networks trained as one stack equal K networks trained alone."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from biospike.models import build_model, make_arch
from biospike.models.ensemble import (
    MaskedAdam,
    StackedNetwork,
    load_members,
    save_members,
    stackable,
)
from biospike.train import fit, fit_many

T_STEPS, CHANNELS, CLASSES = 30, 6, 3


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    rate = 0.05 + 0.1 * (np.arange(CHANNELS)[None, None, :] == y[:, None, None])
    return (rng.random((n, T_STEPS, CHANNELS)) < rate).astype(np.uint8), y


def _members(kind: str, cfg: dict, sizes=(70, 95, 40), val_sizes=(30, 0, 25)):
    """Members with different training-set sizes (different batch counts per epoch), one without
    validation windows (never stops early) -- what the masked optimiser must handle."""
    train = [_data(n, 10 + i) for i, n in enumerate(sizes)]
    val = [_data(n, 20 + i) for i, n in enumerate(val_sizes)]
    archs = [make_arch(kind, CHANNELS, CLASSES, 1e-3, cfg, x) for x, _ in train]
    return archs, train, val


def _assert_same(alone, together):
    assert [r.best_epoch for r in alone] == [r.best_epoch for r in together]
    assert [r.epochs_run for r in alone] == [r.epochs_run for r in together]
    assert [r.stopped_early for r in alone] == [r.stopped_early for r in together]
    for a, b in zip(alone, together, strict=True):
        for name, value in a.model.state_dict().items():
            torch.testing.assert_close(b.model.state_dict()[name], value, rtol=1e-6, atol=1e-7)
        for row_a, row_b in zip(a.history, b.history, strict=True):
            for key in ("train_loss", "val_loss", "val_balanced_accuracy"):
                np.testing.assert_allclose(row_b[key], row_a[key], rtol=1e-6, equal_nan=True)
        assert a.model.arch == b.model.arch  # each member keeps its own input and readout gains


@pytest.mark.parametrize("kind", ["snn", "alif", "tconv", "ann"])
@pytest.mark.parametrize("weighting", ["balanced", "sampler"])
def test_stacked_members_equal_members_trained_alone(kind, weighting):
    cfg = {"epochs": 5, "patience": 2, "batch_size": 16, "hidden": [24], "lr": 0.01, "class_weighting": weighting,
           "rate_reg": {"weight": 0.3, "target_hz": 20.0}, "weight_decay": 1e-4}
    if kind == "alif":  # the SNN with adaptive-threshold neurons (the alif model kind)
        kind, cfg = "snn", {**cfg, "neuron": "alif", "tau_adapt_s": 0.01, "adapt_beta": 0.3}
    if kind == "tconv":  # the SNN with a temporal-kernel front end (the tconv model kind)
        kind, cfg = "snn", {**cfg, "front_end": "temporal_kernel", "temporal_kernel": {"steps": 3, "dilation": 2}}
    archs, train, val = _members(kind, cfg)
    assert archs[0].get("neuron", "lif") == cfg.get("neuron", "lif")
    seeds = [101, 102, 103]
    alone = [fit(archs[k], *train[k], *val[k], cfg, seeds[k], progress=False) for k in range(3)]
    together = fit_many(archs, [t[0] for t in train], [t[1] for t in train], [v[0] for v in val],
                        [v[1] for v in val], cfg, seeds, progress=False)
    _assert_same(alone, together)
    if kind == "snn":  # the test is not trivially passing: training moved the weights apart
        assert not torch.equal(together[0].model.fc[0].weight, together[1].model.fc[0].weight)


def test_members_that_cannot_stack_train_one_by_one():
    cfg = {"epochs": 2, "patience": 2, "batch_size": 16, "hidden": [16], "recurrent": True}
    archs, train, val = _members("snn", cfg, sizes=(40, 50), val_sizes=(10, 10))
    assert "recurrent" in stackable([build_model(a) for a in archs])
    together = fit_many(archs, [t[0] for t in train], [t[1] for t in train], [v[0] for v in val], [v[1] for v in val],
                        cfg, [1, 2], progress=False)
    alone = [fit(archs[k], *train[k], *val[k], cfg, k + 1, progress=False) for k in range(2)]
    _assert_same(alone, together)


def test_masked_adam_is_torch_adam_for_each_member_with_its_own_steps():
    torch.manual_seed(0)
    k, shape = 3, (4, 5)
    stacked = torch.nn.Parameter(torch.randn(k, *shape))
    lone = [torch.nn.Parameter(stacked[i].detach().clone()) for i in range(k)]
    opt = MaskedAdam([stacked], k, lr=0.05, weight_decay=0.01)
    refs = [torch.optim.Adam([p], lr=0.05, weight_decay=0.01) for p in lone]
    schedule = [[0, 1, 2], [0, 2], [2], [0, 1, 2], [1]]  # members skip steps (short epochs, stopped)
    for active in schedule:
        grads = torch.randn(k, *shape)
        stacked.grad = grads.clone()
        opt.step(active)
        for i in active:
            lone[i].grad = grads[i].clone()
            refs[i].step()
    for i in range(k):
        assert torch.equal(stacked[i].detach(), lone[i].detach())
    assert opt.steps == [3, 3, 4]


def test_stack_round_trip_and_member_extraction(tmp_path):
    from biospike.models import init_model

    cfg = {"hidden": [12]}
    archs, train, _ = _members("snn", cfg, sizes=(30, 30), val_sizes=(0, 0))
    models = [init_model(a, t[0], seed) for a, t, seed in zip(archs, train, (5, 6), strict=True)]
    net = StackedNetwork(models)
    x = torch.as_tensor(train[0][0][:7], dtype=torch.float32)
    volts, hidden = net.forward_members([1], [x])
    alone_volts, alone_hidden = models[1].forward_trace(x)
    assert torch.equal(volts[0], alone_volts) and torch.equal(hidden[0][0], alone_hidden[0])
    path = tmp_path / "shard0.pt"
    keep = torch.tensor([[True, False, True], [False, True, True]])
    save_members(path, [net.member(0), net.member(1)], [{"index": 0}, {"index": 1}], extra={"keep": keep})
    loaded, metas, extra = load_members(path)
    assert [m["index"] for m in metas] == [0, 1] and torch.equal(extra["keep"], keep)
    for a, b in zip(loaded, models, strict=True):
        assert torch.equal(a(x), b.eval()(x))
    with pytest.raises(ValueError, match="differ in more than"):
        other = init_model({**archs[0], "tau_mem_s": 0.03}, train[0][0], 1)
        StackedNetwork([models[0], other])


def test_stacked_queries_equal_lone_queries():
    """The attacks query a reference shard through one time loop; the logits are the lone models'."""
    from biospike.attacks.references import query_logits, query_logits_many
    from biospike.models import init_model

    archs, train, _ = _members("snn", {"hidden": [12]}, sizes=(30, 30, 30), val_sizes=(0, 0, 0))
    models = [init_model(a, t[0], seed).eval() for a, t, seed in zip(archs, train, (1, 2, 3), strict=True)]
    kernel = {"hidden": [12], "front_end": "temporal_kernel", "temporal_kernel": {"steps": 4, "dilation": 1}}
    tk_archs, tk_train, _ = _members("snn", kernel, sizes=(30, 30), val_sizes=(0, 0))
    tk_models = [init_model(a, t[0], seed).eval() for a, t, seed in zip(tk_archs, tk_train, (1, 2), strict=True)]
    x = _data(50, 99)[0]
    for (n_q, p), group in itertools.product(((1, 0.0), (3, 0.1)), (models, tk_models)):
        together = query_logits_many(group, x, n_q, p, seed=5, batch_size=16)
        for model, logits in zip(group, together, strict=True):
            np.testing.assert_allclose(logits, query_logits(model, x, n_q, p, seed=5, batch_size=16), rtol=1e-6, atol=1e-7)
