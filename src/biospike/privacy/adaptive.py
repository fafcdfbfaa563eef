"""The two adaptive schemes, built so the accounted epsilon stays valid (derivation: docs/privacy.md).

1. :class:`QuantileClipper` - adaptive clipping (Andrew et al., NeurIPS 2021). The clip bound
   follows a privately estimated quantile of the per-unit gradient norms: each sampled unit adds
   ``b_i - 1/2`` (``b_i`` = 1 if it was not clipped), the sum gets N(0, sigma_b^2), is divided by
   the *expected* number of units per batch, and ``C <- C exp(-eta (b~ - gamma))``.
   Centring and the expected denominator are what make the count a sensitivity-1/2 Gaussian
   query; Opacus 1.6's ``AdaClipDPOptimizer`` counts ``b_i`` uncentred and divides by the realised
   batch size (which Poisson sampling makes private), so biospike does not use it (see docs).

2. Adaptive noise allocation across neuron groups (in the spirit of ADPSNN / RADP-SNN):
   group k gets clip bound ``C_k = C sqrt(s_k)`` and noise std ``sigma_k = z C_k / sqrt(a_k)``
   with ``sum s_k = sum a_k = 1``, so ``(sum C_k^2/sigma_k^2)^-1/2 = z`` exactly, whatever the
   shares. Shares come only from *public* data (the population split, whose subjects are never
   trained on) and the current model (itself a post-processing of already privatised
   gradients): ``s_k`` from median per-sample gradient norms, relevance ``r_k`` from the
   spike-label correlation ratio (eta^2) of each neuron's spike count; less relevant groups get
   a smaller budget share ``a_k`` and hence more noise.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from biospike.models import device_of
from biospike.privacy.grad_sample import finalize_grad_samples

__all__ = ["GROUPINGS", "Allocation", "Block", "GroupLayout", "QuantileClipper", "allocate", "correlation_ratio",
           "group_layout", "neuron_blocks", "public_allocation", "row_sq_norms", "uniform_allocation"]

GROUPINGS = ("flat", "layer", "neuron")


@dataclasses.dataclass
class Block:
    """Parameters whose first axis indexes the same neurons: a neuron's incoming weights."""

    name: str
    params: list[tuple[str, nn.Parameter]]
    n_neurons: int


def neuron_blocks(model: nn.Module) -> list[Block]:
    """Blocks of the SNN/ANN: hidden layer l = fc[l] (+ rec[l]); readout = out."""
    plain = getattr(model, "_module", model)
    blocks = []
    rec = getattr(plain, "rec", None)
    for layer, fc in enumerate(plain.fc):
        params = [(f"fc.{layer}.{n}", p) for n, p in fc.named_parameters()]
        if rec is not None:
            params += [(f"rec.{layer}.{n}", p) for n, p in rec[layer].named_parameters()]
        blocks.append(Block(f"hidden{layer}", params, fc.out_features))
    blocks.append(Block("readout", [(f"out.{n}", p) for n, p in plain.out.named_parameters()],
                        plain.out.out_features))
    covered = {id(p) for b in blocks for _, p in b.params}
    missing = [n for n, p in plain.named_parameters() if id(p) not in covered and p.requires_grad]
    if missing:
        raise ValueError(f"parameters outside any neuron block would escape clipping: {missing}")
    return blocks


@dataclasses.dataclass
class GroupLayout:
    """Which clipping/noise group each row (neuron) of each block belongs to."""

    grouping: str
    names: list[str]  # one per group
    row_group: list[torch.Tensor]  # per block: (n_neurons,) int64 group index
    n_params: np.ndarray  # parameters per group

    @property
    def n_groups(self) -> int:
        """Number of groups (``len(names)``)."""
        return len(self.names)


def group_layout(blocks: list[Block], grouping: str) -> GroupLayout:
    """The group of every row (neuron) of ``blocks``: ``flat`` one group ``all``, ``layer`` one per
    block, ``neuron`` one per row (``<block>/<row>``); with each group's parameter count (a row's
    incoming weights plus its bias). An unknown ``grouping`` is a ValueError."""
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r} (expected one of {GROUPINGS})")
    names: list[str] = []
    row_group = []
    for block in blocks:
        if grouping == "flat":
            if not names:
                names.append("all")
            row_group.append(torch.zeros(block.n_neurons, dtype=torch.long))
        elif grouping == "layer":
            row_group.append(torch.full((block.n_neurons,), len(names), dtype=torch.long))
            names.append(block.name)
        else:
            start = len(names)
            names += [f"{block.name}/{j}" for j in range(block.n_neurons)]
            row_group.append(torch.arange(start, start + block.n_neurons))
    n_params = np.zeros(len(names))
    for block, rows in zip(blocks, row_group, strict=True):
        per_row = sum(p[0].numel() if p.dim() > 1 else 1 for _, p in block.params)
        np.add.at(n_params, rows.numpy(), per_row)
    return GroupLayout(grouping, names, row_group, n_params)


@dataclasses.dataclass
class Allocation:
    """Clip-bound shares ``s_k`` and noise-budget shares ``a_k`` (each sums to 1)."""

    clip_share: np.ndarray
    budget_share: np.ndarray
    relevance: np.ndarray | None = None
    source: str = "data-independent"

    def bounds(self, clip_total: float, z_grad: float) -> tuple[np.ndarray, np.ndarray]:
        """(C_k, sigma_k) for total clip bound C and gradient noise multiplier z."""
        clip_k = clip_total * np.sqrt(self.clip_share)
        sigma_k = z_grad * clip_k / np.sqrt(self.budget_share)
        return clip_k, sigma_k

    def summary(self) -> dict:
        """For privacy.json: min/median/max of the clip and budget shares (and of the relevance, if
        any), the allocation's source, and the largest over the smallest per-group noise std."""
        def stats(v):
            return {"min": float(v.min()), "median": float(np.median(v)), "max": float(v.max())}

        out = {"source": self.source, "clip_share": stats(self.clip_share),
               "budget_share": stats(self.budget_share),
               "noise_ratio_max_over_min": float(np.sqrt((self.clip_share / self.budget_share).max()
                                                         / (self.clip_share / self.budget_share).min()))}
        if self.relevance is not None:
            out["relevance"] = stats(self.relevance)
        return out


def uniform_allocation(layout: GroupLayout) -> Allocation:
    """Data-independent: C_k^2 proportional to the group's parameter count, equal noise std."""
    share = layout.n_params / layout.n_params.sum()
    return Allocation(share, share.copy())


def allocate(clip_share: np.ndarray, relevance: np.ndarray, strength: float, floor: float = 0.01) -> np.ndarray:
    """Budget shares ``a_k`` proportional to ``s_k ((1 - lambda) + lambda r_k / mean r)``.

    ``lambda = 0`` gives equal noise std on every coordinate (plain per-layer clipping);
    ``lambda = 1`` makes each group's signal-to-noise ratio proportional to its relevance.
    ``floor`` keeps every group's share positive (no group gets infinite noise).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"allocation strength must be in [0, 1], got {strength}")
    r = np.asarray(relevance, dtype=float)
    mean = r.mean()
    weight = np.ones_like(r) if mean <= 0 or not np.isfinite(mean) else (1 - strength) + strength * r / mean
    a = np.asarray(clip_share, dtype=float) * np.maximum(weight, floor)
    return a / a.sum()


def correlation_ratio(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """eta^2 of each column of ``values`` (N, K) with the class labels: between-class variance
    over total variance (0 for a constant column)."""
    values = np.asarray(values, dtype=float)
    total = ((values - values.mean(axis=0)) ** 2).sum(axis=0)
    between = np.zeros(values.shape[1])
    for c in np.unique(labels):
        sel = values[labels == c]
        between += len(sel) * (sel.mean(axis=0) - values.mean(axis=0)) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        eta2 = np.where(total > 0, between / np.where(total > 0, total, 1.0), 0.0)
    return np.clip(eta2, 0.0, 1.0)


def row_sq_norms(grads: list[torch.Tensor]) -> torch.Tensor:
    """Sum of squared per-unit gradients per neuron row: list of (U, rows, ...) -> (U, rows)."""
    total = None
    for g in grads:
        sq = g.pow(2)
        sq = sq.flatten(2).sum(dim=2) if sq.dim() > 2 else sq
        total = sq if total is None else total + sq
    return total


def public_allocation(gsm: nn.Module, blocks: list[Block], layout: GroupLayout, x_public: torch.Tensor,
                      y_public: np.ndarray, strength: float, loss_fn, max_windows: int = 128,
                      seed: int = 0) -> Allocation:
    """Shares from public windows and the current (already private) model.

    ``gsm`` is the training model wrapped in Opacus' ``GradSampleModule``; one forward/backward on
    the public windows gives both the per-sample gradient norms (clip shares) and the hidden spike
    counts (relevance). Gradients are cleared afterwards: nothing of this reaches the optimiser.
    Runs on the model's device; the shares come back as numpy arrays.
    """
    if layout.grouping == "flat":
        return Allocation(np.ones(1), np.ones(1), None, "public")
    rng = np.random.default_rng(seed)
    n = len(x_public)
    pick = np.sort(rng.choice(n, size=min(n, max_windows), replace=False))
    plain = gsm._module
    device = device_of(plain)
    x = x_public[pick].float().to(device)
    y_np = np.asarray(y_public)[pick]
    params = [p for _, p in plain.named_parameters()]
    for p in params:
        p.grad_sample = None
        p.grad = None
    was_training = plain.training
    plain.train()
    volts, spikes = plain.forward_trace(x)  # the Linear hooks capture activations as in gsm(x)
    logits = volts.mean(dim=1)
    loss_fn(logits, torch.as_tensor(y_np, device=device)).backward()
    finalize_grad_samples(gsm)
    med = np.zeros(layout.n_groups)
    for block, rows in zip(blocks, layout.row_group, strict=True):
        sq = row_sq_norms([p.grad_sample for _, p in block.params])  # (N, rows)
        grp = torch.zeros(sq.shape[0], layout.n_groups, dtype=sq.dtype, device=device)
        grp.index_add_(1, rows.to(device), sq.detach())
        med += np.median(grp.cpu().numpy(), axis=0)
    for p in params:
        p.grad_sample = None
        p.grad = None
    plain.train(was_training)
    floor = 0.01 * med.mean() if med.mean() > 0 else 1.0
    clip_share = (med + floor) / (med + floor).sum()
    features = [s.detach().sum(dim=1).cpu().numpy() for s in spikes] + [logits.detach().cpu().numpy()]
    relevance = np.zeros(layout.n_groups)
    counts = np.zeros(layout.n_groups)
    for feat, rows in zip(features, layout.row_group, strict=True):
        np.add.at(relevance, rows.numpy(), correlation_ratio(feat, y_np))
        np.add.at(counts, rows.numpy(), 1)
    relevance /= np.maximum(counts, 1)
    return Allocation(clip_share, allocate(clip_share, relevance, strength), relevance, "public")


@dataclasses.dataclass
class QuantileClipper:
    """Andrew et al. (2021) geometric update of the clip bound from a private unclipped fraction."""

    clip: float
    target_quantile: float
    lr_eta: float
    count_noise_std: float  # sigma_b on the centred count sum(b_i - 1/2)
    expected_units: float  # the public denominator (expected units per batch)
    min_clip: float = 1e-6
    max_clip: float = 1e6

    def update(self, unclipped: int, n_units: int, noise_source=None) -> float:
        """One step: noise the centred count, estimate the unclipped fraction, move the bound.
        Returns the private estimate b~ (released; the true count never leaves this method).
        ``noise_source`` (:class:`biospike.privacy.noise.NoiseSource`) draws the count noise."""
        noise = 0.0
        if self.count_noise_std > 0:
            noise = (noise_source.scalar_normal(self.count_noise_std) if noise_source is not None
                     else float(torch.normal(0.0, self.count_noise_std, (1,))))
        centred = (unclipped - 0.5 * n_units) + noise
        frac = min(1.0, max(0.0, centred / self.expected_units + 0.5))
        self.clip = float(min(self.max_clip, max(self.min_clip, self.clip * math.exp(-self.lr_eta * (frac - self.target_quantile)))))
        return frac
