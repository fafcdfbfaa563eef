"""Per-sample gradients of the project's SNN under Opacus, and biospike's per-unit clipping.

The reference for each sample is the gradient of that sample alone (batch of one), so a layout
mistake (time folded into the batch axis, i.e. clipping per (sample, step)) cannot pass.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from opacus import GradSampleModule

from biospike.models import build_model
from biospike.privacy.adaptive import group_layout, neuron_blocks
from biospike.privacy.dp import loss_sum
from biospike.privacy.grad_sample import grad_sample_module
from biospike.privacy.optimizer import DPOptimizer

torch.set_num_threads(1)


def _arch(recurrent: bool, impl: str, hidden=(6,)) -> dict:
    return {"kind": "snn", "n_in": 5, "n_hidden": list(hidden), "n_out": 3, "dt_s": 1e-3, "recurrent": recurrent,
            "input_scale": 8.0, "impl": impl, "tau_mem_s": 5e-3, "tau_syn_s": 2e-3}


def _data(n=5, steps=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, steps, 5, generator=g) < 0.4).float()
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _one_at_a_time(model, x, y) -> dict[str, torch.Tensor]:
    out = {n: [] for n, _ in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        loss_sum(model(x[i:i + 1]), y[i:i + 1]).backward()
        for n, p in model.named_parameters():
            out[n].append(p.grad.detach().clone())
    return {n: torch.stack(v) for n, v in out.items()}


@pytest.mark.parametrize("recurrent,impl", [(False, "fused"), (False, "norse"), (True, "norse"), (True, "fused")])
def test_opacus_per_sample_gradients_equal_single_sample_gradients(recurrent, impl):
    torch.manual_seed(3)
    model = build_model(_arch(recurrent, impl, hidden=(6, 4)))
    with torch.no_grad():  # default-initialised weights leave a second layer silent
        model.fc[1].weight.mul_(6.0)
    x, y = _data()
    reference = _one_at_a_time(model, x, y)
    # the hidden layers must actually spike, or the check is vacuous for the deeper weights
    with torch.no_grad():
        _, spikes = model.forward_trace(x)
    assert all(float(s.sum()) > 0 for s in spikes)
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    gsm.zero_grad(set_to_none=True)
    loss_sum(gsm(x), y).backward()
    for name, p in gsm._module.named_parameters():
        # one row per sample: time was not folded into the batch axis
        assert p.grad_sample.shape == (len(x), *p.shape), name
        torch.testing.assert_close(p.grad_sample, reference[name], rtol=1e-4, atol=1e-6, msg=name)
        assert float(reference[name].abs().sum()) > 0, f"{name}: zero gradient, vacuous check"
    if recurrent:
        assert "rec.0.weight" in reference


def test_folding_time_into_the_batch_would_be_detected():
    """Negative control: a Linear fed (B*T, C) yields B*T 'samples' (per (sample, step) clipping),
    which is exactly what the shape assertion above rules out."""
    lin = torch.nn.Linear(5, 3)
    gsm = GradSampleModule(lin, batch_first=True, loss_reduction="sum")
    x, _ = _data(n=4, steps=7)
    gsm(x.reshape(-1, 5)).sum().backward()
    assert lin.weight.grad_sample.shape[0] == 4 * 7 != 4


@pytest.mark.parametrize("grouping,recurrent", [("flat", False), ("layer", False), ("neuron", False),
                                                ("flat", True), ("neuron", True)])
def test_clipped_unit_sum_matches_manual_clipping(grouping, recurrent):
    """biospike's path: Opacus hooks for the per-call Linears, batched stepwise gradients for the
    recurrent ones (grad_sample_module), then per-group clipping."""
    torch.manual_seed(1)
    model = build_model(_arch(recurrent, "fused"))
    x, y = _data(n=6)
    reference = _one_at_a_time(model, x, y)
    gsm = grad_sample_module(model)
    blocks = neuron_blocks(model)
    layout = group_layout(blocks, grouping)
    rng = np.random.default_rng(0)
    clip_k = torch.as_tensor(rng.uniform(0.01, 0.2, layout.n_groups), dtype=torch.float32)
    opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=0.0), gsm, blocks, layout, 1.0, 1.0, 6.0,
                      torch.Generator(), per_subject=False)
    summed, unclipped = opt.clip_and_accumulate(loss_sum, x, y, np.arange(6), 6, clip_k)
    # manual: per sample, per group norm, clip, sum
    expected = {id(p): torch.zeros_like(p) for _, p in model.named_parameters()}
    n_unclipped = 0
    for i in range(6):
        sq = torch.zeros(layout.n_groups)
        for block, rows in zip(blocks, layout.row_group, strict=True):
            for name, _ in block.params:
                g = reference[name][i]
                sq.index_add_(0, rows, g.pow(2).reshape(g.shape[0], -1).sum(1))
        norm = sq.sqrt()
        n_unclipped += int(bool((norm <= clip_k).all()))
        factor = torch.clamp(clip_k / norm, max=1.0)
        for block, rows in zip(blocks, layout.row_group, strict=True):
            for name, p in block.params:
                g = reference[name][i]
                expected[id(p)] += g * factor[rows].view(-1, *([1] * (g.dim() - 1)))
    for _, p in model.named_parameters():
        torch.testing.assert_close(summed[id(p)], expected[id(p)], rtol=1e-4, atol=1e-7)
    assert unclipped == n_unclipped
    # each unit's clipped contribution has norm <= sqrt(sum_k C_k^2)
    total = torch.sqrt(sum(v.pow(2).sum() for v in summed.values()))
    assert float(total) <= 6 * float(clip_k.pow(2).sum().sqrt()) + 1e-6
