"""The DP-SGD step as an optimizer with overridable phases (the shape of Opacus' ``DPOptimizer``).

One step for the sampled units U (each unit = one window, or one subject's windows), derived in
``docs/privacy.md``::

    g_u      = mean over the unit's windows of the per-sample gradient          (per unit)
    g_u,k    = g_u restricted to group k  ->  clipped to norm C_k                 clip_and_accumulate
    release  = sum_u clip(g_u) + N(0, diag(sigma_k^2))                            add_noise
    grad     = release / m          (m = E|U|, public)                           scale_grad

:class:`DPOptimizer` runs these phases with one clip bound and equal noise everywhere. The
adaptive schemes change one phase each and are subclasses:

- :class:`AdaptiveClipDPOptimizer` (Andrew et al. 2021) moves the clip bound after each step from
  a privately counted unclipped fraction (``post_step``), and scales SGD's step with it;
- :class:`AllocatedNoiseDPOptimizer` (adaptive noise allocation) re-derives per-group clip bounds
  and noise from public data at each epoch (``on_epoch_start``), keeping the effective multiplier.

Whatever the subclass, every step releases one Gaussian mechanism with the single multiplier the
accountant was given; :meth:`DPOptimizer.step` checks that invariant (``z_eff``) at every step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from biospike.privacy import accounting
from biospike.privacy.adaptive import (
    Allocation,
    Block,
    GroupLayout,
    QuantileClipper,
    public_allocation,
    row_sq_norms,
    uniform_allocation,
)
from biospike.privacy.grad_sample import finalize_grad_samples
from biospike.privacy.noise import NoiseSource

__all__ = ["AdaptiveClipDPOptimizer", "AdaptiveDPOptimizer", "AllocatedNoiseDPOptimizer", "DPOptimizer"]


def _grads_per_unit(gs: torch.Tensor, local_unit: torch.Tensor, n_local: int, counts: torch.Tensor | None) -> torch.Tensor:
    if counts is None:  # window unit: one window per unit
        return gs
    out = gs.new_zeros((n_local, *gs.shape[1:])).index_add_(0, local_unit, gs)
    return out / counts.view(-1, *([1] * (gs.dim() - 1)))


class DPOptimizer:
    """Wraps a torch optimizer around an Opacus ``GradSampleModule``: per-unit clipping to one
    bound, Gaussian noise with multiplier ``noise_multiplier``, division by the expected number of
    units per batch, then the wrapped optimizer's step.

    ``noise`` draws all noise on the CPU (the same stream on any device; secret by default, see
    :mod:`biospike.privacy.noise`); ``per_subject``: a unit's gradient is the mean of its windows'
    per-sample gradients, clipped once.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, gsm: nn.Module, blocks: list[Block], layout: GroupLayout,
                 noise_multiplier: float, max_grad_norm: float, expected_units: float,
                 noise: NoiseSource, per_subject: bool = False) -> None:
        self.optimizer, self.gsm, self.blocks, self.layout = optimizer, gsm, blocks, layout
        self.noise_multiplier = float(noise_multiplier)
        self.max_grad_norm = float(max_grad_norm)
        self.clip = float(max_grad_norm)
        self.expected_units = float(expected_units)
        self.noise = noise
        self.per_subject = per_subject
        self.allocation: Allocation = uniform_allocation(layout)
        self.step_log: list[dict] = []  # per step: clip bound, z_eff, private unclipped fraction

    # --- phases ---------------------------------------------------------------------------

    def on_epoch_start(self, epoch: int) -> None:
        """Hook before an epoch's first step (the allocation subclass updates its shares here)."""

    def pre_step(self) -> None:
        """Hook before a step (the adaptive-clipping subclass sets the step size here)."""

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(per-group clip bounds C_k, per-group noise stds sigma_k) of this step."""
        return self.allocation.bounds(self.clip, self.noise_multiplier)

    def clip_and_accumulate(self, loss_fn, xb: torch.Tensor, yb: torch.Tensor, local: np.ndarray, n_units: int,
                            clip_k: torch.Tensor) -> tuple[dict[int, torch.Tensor], int]:
        """Sum over units of their group-wise clipped gradients, before noise; and the number of
        units not clipped in any group (private: only ever released through a noisy count)."""
        gsm = self.gsm
        for p in gsm.parameters():
            p.grad_sample = None
            p.grad = None
        loss_fn(gsm(xb), yb).backward()
        finalize_grad_samples(gsm)
        device = xb.device
        local_t = torch.as_tensor(local, device=device)
        counts = torch.bincount(local_t, minlength=n_units).float() if self.per_subject else None
        unit_grads = {id(p): _grads_per_unit(p.grad_sample, local_t, n_units, counts)
                      for b in self.blocks for _, p in b.params}
        row_group = [rows.to(device) for rows in self.layout.row_group]
        clip_k = clip_k.to(device)
        group_sq = torch.zeros(n_units, self.layout.n_groups, device=device)
        for block, rows in zip(self.blocks, row_group, strict=True):
            group_sq.index_add_(1, rows, row_sq_norms([unit_grads[id(p)] for _, p in block.params]))
        norms = group_sq.sqrt()
        factor = torch.clamp(clip_k / (norms + 1e-12), max=1.0)  # (U, K)
        unclipped = int((norms <= clip_k).all(dim=1).sum())
        summed: dict[int, torch.Tensor] = {}
        for block, rows in zip(self.blocks, row_group, strict=True):
            f_rows = factor[:, rows]  # (U, rows)
            for _, p in block.params:
                summed[id(p)] = torch.einsum("ur...,ur->r...", unit_grads[id(p)], f_rows)
                p.grad_sample = None
        return summed, unclipped

    def add_noise(self, summed: dict[int, torch.Tensor], sigma_k: torch.Tensor) -> dict[int, torch.Tensor]:
        """Clipped sum + N(0, sigma_k^2) per group; the noise is drawn on the CPU, then moved."""
        out = {}
        for block, rows in zip(self.blocks, self.layout.row_group, strict=True):
            s_rows = sigma_k[rows]
            for _, p in block.params:
                noise = (self.noise.normal(p.shape) * s_rows.view(-1, *([1] * (p.dim() - 1)))).to(p.device)
                out[id(p)] = summed[id(p)] + noise if id(p) in summed else noise
        return out

    def scale_grad(self, released: dict[int, torch.Tensor]) -> None:
        """Divide by the public expected batch size m and hand the result to the optimizer."""
        for block in self.blocks:
            for _, p in block.params:
                p.grad = (released[id(p)] / self.expected_units).to(p.dtype)

    def post_step(self, unclipped: int, n_units: int) -> float | None:
        """Hook after a step; returns the released unclipped-fraction estimate, if any."""
        return None

    # --- the step -------------------------------------------------------------------------

    def step(self, loss_fn, x_all: torch.Tensor, y_all: torch.Tensor, idx: np.ndarray, local: np.ndarray,
             n_units: int) -> None:
        """One DP-SGD step on the sampled windows ``idx`` (their units ``local``, ``n_units`` sampled)."""
        self.pre_step()
        clip = self.clip
        clip_k, sigma_k = self.bounds()
        z_eff = accounting.effective_multiplier(clip_k, sigma_k)
        clip_k_t = torch.as_tensor(clip_k, dtype=torch.float32)
        sigma_k_t = torch.as_tensor(sigma_k, dtype=torch.float32)
        device = next(self.gsm.parameters()).device
        summed, unclipped = ({}, 0) if not n_units else self.clip_and_accumulate(
            loss_fn, x_all[idx].float().to(device), y_all[idx].to(device), local, n_units, clip_k_t)
        self.scale_grad(self.add_noise(summed, sigma_k_t))
        self.optimizer.step()
        frac = self.post_step(unclipped, n_units)
        self.step_log.append({"clip": clip, "z_eff": z_eff, "unclipped_fraction": frac})


class AdaptiveClipDPOptimizer(DPOptimizer):
    """Adaptive clipping (Andrew et al. 2021): after each step the bound follows a privately
    estimated quantile of the per-unit gradient norms (:class:`QuantileClipper`); with
    ``scale_lr`` and SGD the step size is ``lr C_0 / C_t`` (post-processing of private values)."""

    def __init__(self, *args, target_quantile: float, lr_eta: float, count_noise_std: float, min_clip: float,
                 max_clip: float, scale_lr: bool, base_lr: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clipper = QuantileClipper(self.max_grad_norm, target_quantile, lr_eta, count_noise_std,
                                       self.expected_units, min_clip, max_clip)
        self.scale_lr = scale_lr and isinstance(self.optimizer, torch.optim.SGD)  # Adam is invariant to the scale
        self.base_lr = base_lr

    def pre_step(self) -> None:
        """Take the clipper's current bound; with ``scale_lr`` set SGD's step size to ``lr C_0 / C_t``."""
        super().pre_step()
        self.clip = self.clipper.clip
        if self.scale_lr:
            for group in self.optimizer.param_groups:
                group["lr"] = self.base_lr * self.max_grad_norm / self.clip

    def post_step(self, unclipped: int, n_units: int) -> float | None:
        """Move the clip bound from a noisy count of the unclipped units; returns the released
        unclipped-fraction estimate."""
        super().post_step(unclipped, n_units)
        return self.clipper.update(unclipped, n_units, self.noise)


class AllocatedNoiseDPOptimizer(DPOptimizer):
    """Adaptive noise allocation: at each epoch, per-group clip-bound and noise-budget shares from
    public windows and the current (already private) model; ``z_eff`` stays the accountant's."""

    def __init__(self, *args, x_public: torch.Tensor, y_public: np.ndarray, strength: float, public_windows: int,
                 loss_fn, seed: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.x_public, self.y_public = x_public, y_public
        self.strength, self.public_windows, self.loss_fn, self.seed = strength, public_windows, loss_fn, seed

    def on_epoch_start(self, epoch: int) -> None:
        """Re-derive the per-group clip and noise-budget shares from the public windows and the
        current model (seeded by ``seed + epoch``)."""
        super().on_epoch_start(epoch)
        self.allocation = public_allocation(self.gsm, self.blocks, self.layout, self.x_public, self.y_public,
                                            self.strength, self.loss_fn, self.public_windows, seed=self.seed + epoch)


class AdaptiveDPOptimizer(AdaptiveClipDPOptimizer, AllocatedNoiseDPOptimizer):
    """Both adaptive schemes."""
