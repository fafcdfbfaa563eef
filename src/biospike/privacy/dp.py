"""DP-SGD for the project's SNN: Poisson sampling of privacy units, per-unit clipping, Gaussian
noise, optional adaptive clipping and adaptive per-group noise; epsilon from Opacus' accountant.

Per-sample gradients come from Opacus' ``GradSampleModule`` (hooks mode) around the SNN. The SNN
applies every weight ``nn.Linear`` to all time steps at once on (B, T, C) - batch first, time
second - so each sample is one row of the batch axis and the gradient Opacus returns for it is
summed over its time steps: clipping is per sample, never per (sample, step). The optional
recurrent ``nn.Linear`` is called once per step on (B, H); Opacus accumulates its per-sample
gradient over the calls, which the tests check against one-sample-at-a-time gradients.

The clipping, aggregation, noise and optimiser step are biospike's own (not Opacus'
``DPOptimizer``) because the adaptive schemes need per-group bounds, per-group noise, per-subject
aggregation and a correctly normalised private count; what is released per step is exactly the
mechanism derived in ``docs/privacy.md``, and its one noise multiplier goes to the accountant.

A step, for the sampled units U (each unit = one window, or one subject's windows):

    g_u      = mean over the unit's windows of the per-sample gradient          (per unit)
    g_u,k    = g_u restricted to group k  ->  clipped to norm C_k
    release  = (sum_u clip(g_u) + N(0, diag(sigma_k^2))) / m                 (m = E|U|, public)
    count    = sum_u (1[unit not clipped] - 1/2) + N(0, sigma_b^2)          (adaptive clipping)
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from biospike.errors import BiospikeError
from biospike.privacy import accounting
from biospike.privacy.adaptive import (
    QuantileClipper,
    group_layout,
    neuron_blocks,
    public_allocation,
    row_sq_norms,
    uniform_allocation,
)
from biospike.train import device_of, predict_logits

UNITS = ("window", "subject")


@dataclasses.dataclass
class AdaptiveClipping:
    enabled: bool = True
    target_quantile: float = 0.5
    lr_eta: float = 0.2
    # share rho of the per-step privacy budget (1/z^2) spent on the clipped count:
    # (2 sigma_b)^-2 = rho / z^2, so sigma_b = z / (2 sqrt(rho)) and z_grad = z / sqrt(1 - rho)
    count_budget_share: float = 0.05
    min_clip: float = 1e-3
    max_clip: float = 100.0
    # step size follows the bound: lr_t = lr x C_0 / C_t, so shrinking C does not stall training
    # (the update scale is then set by lr alone; C_t is already private, so this is post-processing)
    scale_lr: bool = True


@dataclasses.dataclass
class AdaptiveNoise:
    enabled: bool = True
    groups: str = "layer"  # layer | neuron
    strength: float = 0.5  # 0: equal noise std everywhere; 1: signal-to-noise proportional to relevance
    public_windows: int = 64  # public windows used per allocation update


@dataclasses.dataclass
class DPSettings:
    """The ``privacy`` config section, typed. Unknown keys are a config error (schema)."""

    epsilons: list[float] = dataclasses.field(default_factory=lambda: [1.0, 3.0, 8.0])
    delta: float | str = 1e-5
    unit: str = "window"
    accountant: str = "prv"
    max_grad_norm: float = 1.0
    epochs: int = 15
    batch_size: int = 64  # expected windows per batch (window unit)
    subjects_per_batch: int = 4  # expected subjects per batch (subject unit)
    windows_per_subject: int | None = None  # cap on a sampled subject's windows per step (None: all)
    lr: float = 0.5
    optimizer: str = "sgd"  # sgd (momentum 0.9) | adam
    select: str = "best_val"  # best_val | last
    adaptive_clipping: AdaptiveClipping = dataclasses.field(default_factory=AdaptiveClipping)
    adaptive_noise: AdaptiveNoise = dataclasses.field(default_factory=AdaptiveNoise)
    public_preprocessing: str = "warn"  # warn | require
    audit: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> DPSettings:
        cfg = {k: v for k, v in cfg.items() if k != "enabled"}  # `enabled` is the workflow's switch
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise BiospikeError(f"unknown privacy settings: {unknown} (known: {sorted(known | {'enabled'})})")
        try:
            clip = AdaptiveClipping(**cfg.pop("adaptive_clipping", {}) or {})
            noise = AdaptiveNoise(**cfg.pop("adaptive_noise", {}) or {})
        except TypeError as exc:
            raise BiospikeError(f"privacy.adaptive_clipping / adaptive_noise: {exc}") from None
        out = cls(**cfg, adaptive_clipping=clip, adaptive_noise=noise)
        if out.unit not in UNITS:
            raise BiospikeError(f"privacy.unit must be one of {UNITS}, got {out.unit!r}")
        if out.accountant not in accounting.ACCOUNTANTS:
            raise BiospikeError(f"privacy.accountant must be one of {accounting.ACCOUNTANTS}, got {out.accountant!r}")
        if out.adaptive_noise.groups not in ("layer", "neuron"):
            raise BiospikeError(f"privacy.adaptive_noise.groups must be 'layer' or 'neuron', got {out.adaptive_noise.groups!r}")
        return out


@dataclasses.dataclass
class DPResult:
    model: nn.Module
    history: list[dict]
    best_epoch: int
    privacy: dict
    wall_time_s: float


def loss_sum(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over samples of (class-weighted) cross-entropy: each sample's gradient is its own."""
    return nn.functional.cross_entropy(logits, y, weight=weight, reduction="sum")


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(y_pred[y_true == c] == c) for c in range(n_classes) if np.any(y_true == c)]
    return float(np.mean(recalls)) if recalls else float("nan")


@torch.no_grad()
def _eval(model: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int, batch: int = 256) -> tuple[float, float, float]:
    """Validation loss, balanced accuracy, accuracy (validation subjects are not training units)."""
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    logits = torch.as_tensor(predict_logits(model, x, batch))  # batched, on the model's device, eval mode
    model.train()
    yt = torch.as_tensor(y)
    loss = float(nn.functional.cross_entropy(logits, yt))
    pred = logits.argmax(1).numpy()
    return loss, _balanced_accuracy(np.asarray(y), pred, n_classes), float(np.mean(pred == np.asarray(y)))


def unit_index(units: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Map unit labels (one per window) to 0..U-1; return (unit id per window, windows per unit)."""
    _, inverse = np.unique(np.asarray(units).astype(str), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return inverse, np.split(order, bounds)


def plan(n_units: int, settings: DPSettings) -> dict:
    """Expected units per batch m, sample rate q = m / n, steps per epoch ~ 1/q, total steps."""
    if n_units < 2:
        raise BiospikeError(f"DP training needs at least 2 privacy units ({settings.unit}s), got {n_units}")
    m = settings.batch_size if settings.unit == "window" else settings.subjects_per_batch
    m = float(min(max(1, m), n_units))
    q = m / n_units
    steps_per_epoch = max(1, round(1.0 / q))
    return {"expected_units_per_batch": m, "sample_rate": q, "steps_per_epoch": steps_per_epoch,
            "steps": steps_per_epoch * settings.epochs}


def calibrate(target_epsilon: float, n_units: int, settings: DPSettings) -> dict:
    """Noise multipliers for a target epsilon; epsilon recomputed by the accountant for the
    exact (z, q, steps) that training will use."""
    p = plan(n_units, settings)
    delta = accounting.resolve_delta(settings.delta, n_units)
    z = accounting.noise_multiplier_for(target_epsilon, delta, p["sample_rate"], p["steps"], settings.accountant)
    rho = settings.adaptive_clipping.count_budget_share
    if settings.adaptive_clipping.enabled and not 0.0 < rho < 1.0:
        raise BiospikeError(f"privacy.adaptive_clipping.count_budget_share must be in (0, 1), got {rho}")
    sigma_b = z / (2.0 * math.sqrt(rho)) if settings.adaptive_clipping.enabled else 0.0
    z_grad = accounting.gradient_multiplier(z, sigma_b)
    history = [(z, p["sample_rate"], p["steps"])]
    eps = accounting.epsilon(history, delta, settings.accountant)
    return {**p, "delta": delta, "noise_multiplier": z, "gradient_noise_multiplier": z_grad,
            "count_noise_std": sigma_b, "epsilon": eps, "accountant_history": history}


class StepwiseLinearGrads:
    """Per-sample gradients of ``nn.Linear`` layers that are called once per time step (the SNN's
    recurrent weights), computed in one batched product after the backward pass.

    Opacus' hooks handle such a layer correctly (its per-sample gradient is accumulated over the
    T calls, tested) but run an einsum and an accumulation of a (B, H, H) tensor per call; here
    each call only stores its input and, via a tensor hook, its output gradient, and
    :meth:`finalize` sets ``weight.grad_sample = sum_t g_t^T a_t`` per sample in one einsum.
    """

    def __init__(self, modules: list[nn.Linear]) -> None:
        self.modules = modules
        self.inputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in modules}
        self.grads: dict[int, dict[int, torch.Tensor]] = {id(m): {} for m in modules}
        self.handles = [m.register_forward_hook(self._forward_hook) for m in modules]

    def _forward_hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not (module.training and torch.is_grad_enabled() and output.requires_grad):
            return
        acts = self.inputs[id(module)]
        acts.append(inputs[0].detach())
        store, call = self.grads[id(module)], len(acts) - 1

        def keep(grad: torch.Tensor) -> None:
            store[call] = grad.detach()

        output.register_hook(keep)

    def finalize(self) -> None:
        """Set ``grad_sample`` of every tracked parameter from the stored calls; clear them."""
        for m in self.modules:
            acts, grads = self.inputs[id(m)], self.grads[id(m)]
            if acts:
                a = torch.stack(acts)  # (T, B, in)
                zero = a.new_zeros(a.shape[1], m.out_features)
                g = torch.stack([grads.get(t, zero) for t in range(len(acts))])
                m.weight.grad_sample = torch.einsum("tbo,tbi->boi", g, a)
                if m.bias is not None:
                    m.bias.grad_sample = g.sum(dim=0)
            acts.clear()
            grads.clear()

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def grad_sample_module(model: nn.Module) -> nn.Module:
    """Opacus ``GradSampleModule`` (hooks mode, batch first, summed loss) around the SNN; the
    recurrent Linears, if any, are left to :class:`StepwiseLinearGrads` (``gsm.stepwise``)."""
    from opacus import GradSampleModule

    rec = list(getattr(model, "rec", None) or [])
    for m in rec:  # Opacus skips modules without trainable parameters when adding its hooks
        m.requires_grad_(False)
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    for m in rec:
        m.requires_grad_(True)
    gsm.stepwise = StepwiseLinearGrads(rec) if rec else None
    return gsm


def finalize_grad_samples(gsm: nn.Module) -> None:
    """Call after ``backward()``: completes ``grad_sample`` of the stepwise (recurrent) layers."""
    stepwise = getattr(gsm, "stepwise", None)
    if stepwise is not None:
        stepwise.finalize()


def _grads_per_unit(gs: torch.Tensor, local_unit: torch.Tensor, n_local: int, counts: torch.Tensor | None) -> torch.Tensor:
    if counts is None:  # window unit: one window per unit
        return gs
    out = gs.new_zeros((n_local, *gs.shape[1:])).index_add_(0, local_unit, gs)
    return out / counts.view(-1, *([1] * (gs.dim() - 1)))


class _Sampler:
    """Poisson sampling of units; a subject unit contributes its windows (optionally capped)."""

    def __init__(self, unit_windows: list[np.ndarray], q: float, cap: int | None, rng: np.random.Generator) -> None:
        self.unit_windows, self.q, self.cap, self.rng = unit_windows, q, cap, rng

    def draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(window indices, local unit id per window, number of sampled units)."""
        chosen = np.flatnonzero(self.rng.random(len(self.unit_windows)) < self.q)
        idx, local = [], []
        for j, u in enumerate(chosen):
            w = self.unit_windows[u]
            if self.cap is not None and len(w) > self.cap:
                w = np.sort(self.rng.choice(w, size=self.cap, replace=False))
            idx.append(w)
            local.append(np.full(len(w), j))
        if not idx:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), 0
        return np.concatenate(idx), np.concatenate(local), len(chosen)


def dp_train(*args, **kwargs) -> DPResult:
    """See :func:`_dp_train`. Silences two known-harmless warnings: torch's full-backward-hook
    note (the input spikes do not require gradients) and the RDP order note Opacus' PRV
    accountant triggers while sizing its domain."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        return _dp_train(*args, **kwargs)


def _dp_train(arch: dict, x_train: np.ndarray, y_train: np.ndarray, units: np.ndarray,
             x_val: np.ndarray, y_val: np.ndarray, settings: DPSettings, target_epsilon: float | None,
             seed: int, x_public: np.ndarray | None = None, y_public: np.ndarray | None = None,
             class_weight: np.ndarray | None = None, progress: bool = True, desc: str = "harden",
             device: str | torch.device = "cpu") -> DPResult:
    """Train ``arch`` with DP-SGD at ``target_epsilon`` (``None``: the same loop without clipping
    or noise, the non-private reference of the audit and the benchmark).

    ``units`` labels each training window with its privacy unit (window index, or subject id).
    ``x_public``/``y_public`` (never trained on) feed the adaptive noise allocation.
    ``class_weight`` (per class, from public data only: private class counts would couple every
    sample's loss to the others' and void the per-unit sensitivity) weights the loss.
    ``device``: where the model, forward/backward and per-sample gradients run (``train.device``,
    resolved by :func:`biospike.train.resolve_device`); the data stay on the CPU and each batch
    moves over, and the noise is drawn on the CPU from the seeded generator, so the noise stream
    does not depend on the device. The returned model is on ``device``.
    """
    from biospike.models import build_model
    from biospike.progress import progress as progress_bar

    start_s = time.perf_counter()
    private = target_epsilon is not None
    unit_of_window, unit_windows = unit_index(units)
    n_units = len(unit_windows)
    n_classes = int(arch["n_out"])
    cal = calibrate(target_epsilon, n_units, settings) if private else {**plan(n_units, settings), "delta": None}
    m, q = cal["expected_units_per_batch"], cal["sample_rate"]

    # the project's data-driven initialisation (train.init_model), calibrated on public windows
    # only; without public data the plain seeded init (the arch already carries its scales)
    if x_public is not None and len(x_public):
        from biospike.train import init_model

        model = init_model(arch, np.asarray(x_public), seed)
    else:
        torch.manual_seed(seed)
        model = build_model(arch)
    torch.manual_seed(seed)
    device = torch.device(device)
    model.to(device)
    model.train()
    gsm = grad_sample_module(model) if private else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=settings.lr) if settings.optimizer == "adam"
           else torch.optim.SGD(params, lr=settings.lr, momentum=0.9))
    rng = np.random.default_rng(seed)
    noise_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    sampler = _Sampler(unit_windows, q, settings.windows_per_subject if settings.unit == "subject" else None, rng)
    x_all = torch.as_tensor(x_train)
    y_all = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32, device=device)

    def loss_fn(logits, y):
        return loss_sum(logits, y, weight)

    blocks = neuron_blocks(model)
    an = settings.adaptive_noise
    layout = group_layout(blocks, an.groups if (private and an.enabled) else "flat")
    have_public = x_public is not None and len(x_public) > 0
    allocation = uniform_allocation(layout)
    ac = settings.adaptive_clipping
    clipper = QuantileClipper(settings.max_grad_norm, ac.target_quantile, ac.lr_eta, cal.get("count_noise_std", 0.0),
                              m, ac.min_clip, ac.max_clip) if (private and ac.enabled) else None
    clip = settings.max_grad_norm
    z_grad = cal.get("gradient_noise_multiplier", 0.0)

    history: list[dict] = []
    best = (-math.inf, 0)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    bar = progress_bar(range(settings.epochs), desc=desc) if progress else range(settings.epochs)
    for epoch in bar:
        epoch_s = time.perf_counter()
        if private and an.enabled and layout.grouping != "flat" and have_public:
            allocation = public_allocation(gsm, blocks, layout, torch.as_tensor(x_public), np.asarray(y_public),
                                           an.strength, loss_fn, an.public_windows, seed=seed + epoch)
        z_effs, fracs, clips = [], [], []
        if not private:
            _nonprivate_epoch(model, opt, x_all, y_all, settings.batch_size, rng, weight)
        for _ in range(cal["steps_per_epoch"] if private else 0):
            if clipper is not None:
                clip = clipper.clip
                if ac.scale_lr and settings.optimizer == "sgd":  # Adam is invariant to the scale
                    for group in opt.param_groups:
                        group["lr"] = settings.lr * settings.max_grad_norm / clip
            clip_k, sigma_k = allocation.bounds(clip, z_grad)
            z_effs.append(accounting.effective_multiplier(clip_k, sigma_k))
            clips.append(clip)
            idx, local, n_sampled = sampler.draw()
            unclipped = _dp_step(gsm, loss_fn, blocks, layout, opt, x_all, y_all, idx, local, n_sampled,
                                 settings.unit == "subject", torch.as_tensor(clip_k, dtype=torch.float32),
                                 torch.as_tensor(sigma_k, dtype=torch.float32), m, noise_gen)
            if clipper is not None:
                fracs.append(clipper.update(unclipped, n_sampled, noise_gen))
        val_loss, val_bacc, val_acc = _eval(model, x_val, y_val, n_classes)
        row = {"epoch": epoch + 1, "val_loss": val_loss, "val_balanced_accuracy": val_bacc, "val_accuracy": val_acc,
               "lr": float(opt.param_groups[0]["lr"]), "epoch_time_s": time.perf_counter() - epoch_s}
        if private:
            row |= {"clip_bound": float(np.mean(clips)), "clip_bound_end": float(clipper.clip if clipper else clip),
                    "z_eff_min": float(np.min(z_effs)), "z_eff_max": float(np.max(z_effs)),
                    "private_unclipped_fraction": float(np.mean(fracs)) if fracs else float("nan")}
            if layout.grouping != "flat":
                row["allocation"] = allocation.summary()
                row["noise_std_ratio_max_over_min"] = row["allocation"]["noise_ratio_max_over_min"]
        history.append(row)
        score = val_bacc if np.isfinite(val_bacc) else -val_loss
        if settings.select == "last" or score > best[0]:
            best = (score, epoch + 1)
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if progress and hasattr(bar, "set_postfix"):
            bar.set_postfix(val_bacc=val_bacc, clip=clips[-1] if clips else 0.0)
    if gsm is not None:
        if gsm.stepwise is not None:
            gsm.stepwise.close()
        gsm._close()  # remove Opacus' hooks and per-sample buffers: a plain model leaves here
    model.load_state_dict(best_state)
    model.eval()
    if private:
        zs = [z for h in history for z in (h["z_eff_min"], h["z_eff_max"])]
        if max(abs(z - z_grad) for z in zs) > 1e-6 * z_grad:  # the invariant the accounting rests on
            raise RuntimeError(f"effective noise multiplier drifted from {z_grad}: {min(zs)}..{max(zs)}")
    privacy = _privacy_record(cal, settings, target_epsilon, n_units, layout, have_public, history, best[1]) if private else {
        "private": False, "unit": settings.unit, "n_units": n_units, **{k: cal[k] for k in ("sample_rate", "steps_per_epoch", "steps")}}
    return DPResult(model, history, best[1], privacy, time.perf_counter() - start_s)


def clipped_unit_sum(gsm, loss_fn, blocks, layout, xb: torch.Tensor, yb: torch.Tensor, local: np.ndarray,
                     n_units: int, per_subject: bool, clip_k: torch.Tensor) -> tuple[dict[int, torch.Tensor], int]:
    """Sum over units of their group-wise clipped gradients, before noise.

    ``local`` gives each window's unit (0..n_units-1); a subject unit's gradient is the mean of its
    windows' per-sample gradients, clipped once. Returns ({id(param): summed clipped gradient},
    number of units not clipped in any group - private, only ever released through the noisy count).
    """
    for p in gsm.parameters():
        p.grad_sample = None
        p.grad = None
    loss_fn(gsm(xb), yb).backward()
    finalize_grad_samples(gsm)
    device = xb.device
    local_t = torch.as_tensor(local, device=device)
    counts = torch.bincount(local_t, minlength=n_units).float() if per_subject else None
    unit_grads = {id(p): _grads_per_unit(p.grad_sample, local_t, n_units, counts)
                  for b in blocks for _, p in b.params}
    row_group = [rows.to(device) for rows in layout.row_group]
    clip_k = clip_k.to(device)
    group_sq = torch.zeros(n_units, layout.n_groups, device=device)
    for block, rows in zip(blocks, row_group, strict=True):
        group_sq.index_add_(1, rows, row_sq_norms([unit_grads[id(p)] for _, p in block.params]))
    norms = group_sq.sqrt()
    factor = torch.clamp(clip_k / (norms + 1e-12), max=1.0)  # (U, K)
    unclipped = int((norms <= clip_k).all(dim=1).sum())
    summed: dict[int, torch.Tensor] = {}
    for block, rows in zip(blocks, row_group, strict=True):
        f_rows = factor[:, rows]  # (U, rows)
        for _, p in block.params:
            summed[id(p)] = torch.einsum("ur...,ur->r...", unit_grads[id(p)], f_rows)
            p.grad_sample = None
    return summed, unclipped


def _dp_step(gsm, loss_fn, blocks, layout, opt, x_all, y_all, idx, local, n_sampled, per_subject, clip_k, sigma_k, m, gen) -> int:
    """One DP-SGD step: clipped sum + N(0, sigma_k^2) per group, divided by the public m.
    The noise comes from the CPU generator ``gen`` (same stream on any device), then moves."""
    device = device_of(gsm)
    summed, unclipped = ({}, 0) if not n_sampled else clipped_unit_sum(
        gsm, loss_fn, blocks, layout, x_all[idx].float().to(device), y_all[idx].to(device), local, n_sampled,
        per_subject, clip_k)
    for block, rows in zip(blocks, layout.row_group, strict=True):
        s_rows = sigma_k[rows]
        for _, p in block.params:
            noise = (torch.randn(p.shape, generator=gen) * s_rows.view(-1, *([1] * (p.dim() - 1)))).to(p.device)
            total = summed[id(p)] + noise if id(p) in summed else noise
            p.grad = (total / m).to(p.dtype)
    opt.step()
    return unclipped


def _nonprivate_epoch(model, opt, x_all, y_all, batch_size, rng, weight) -> None:
    device = device_of(model)
    order = rng.permutation(len(x_all))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        opt.zero_grad(set_to_none=True)
        logits = model(x_all[idx].float().to(device))
        nn.functional.cross_entropy(logits, y_all[idx].to(device), weight=weight).backward()
        opt.step()


def _privacy_record(cal: dict, settings: DPSettings, target_epsilon: float, n_units: int, layout, have_public: bool,
                    history: list[dict], selected_epoch: int) -> dict:
    ac, an = settings.adaptive_clipping, settings.adaptive_noise
    record = {
        "private": True,
        "target_epsilon": float(target_epsilon),
        "epsilon": cal["epsilon"],
        "delta": cal["delta"],
        "delta_setting": settings.delta,
        "accountant": settings.accountant,
        "accountant_library": "opacus",
        "mechanism": "Poisson-subsampled Gaussian, add/remove-one-unit adjacency",
        "noise_multiplier": cal["noise_multiplier"],
        "gradient_noise_multiplier": cal["gradient_noise_multiplier"],
        "count_noise_std": cal["count_noise_std"],
        "sample_rate": cal["sample_rate"],
        "expected_units_per_batch": cal["expected_units_per_batch"],
        "steps": cal["steps"],
        "steps_per_epoch": cal["steps_per_epoch"],
        "epochs": settings.epochs,
        "accountant_history": [list(h) for h in cal["accountant_history"]],
        "privacy_unit": settings.unit,
        "n_units": n_units,
        "windows_per_subject_cap": settings.windows_per_subject if settings.unit == "subject" else None,
        "max_grad_norm_initial": settings.max_grad_norm,
        "clipping_history": [{"epoch": h["epoch"], "clip_bound_mean": h["clip_bound"], "clip_bound_end": h["clip_bound_end"],
                              "private_unclipped_fraction": h["private_unclipped_fraction"]} for h in history],
        "adaptive_clipping": {**dataclasses.asdict(ac), "estimator": "Andrew et al. 2021, centred count / expected batch size"}
        if ac.enabled else {"enabled": False},
        "adaptive_noise": {**dataclasses.asdict(an), "n_groups": layout.n_groups,
                           "allocation_source": "public population split + current model" if have_public else
                           "no public data: data-independent (parameter-count) allocation",
                           "z_eff": cal["gradient_noise_multiplier"],
                           "last_allocation": history[-1].get("allocation")} if an.enabled else {"enabled": False},
        "selected_epoch": selected_epoch,
        "selection": settings.select + " (validation subjects are not training units; every iterate is covered by the accountant)",
        "optimizer": settings.optimizer,
        "lr": settings.lr,
        "noise_rng": "torch.Generator seeded from the config seed: reproducible, not cryptographically secure",
    }
    try:
        record["epsilon_check_dp_accounting_pld"] = accounting.dp_accounting_epsilon(cal["accountant_history"], cal["delta"], "pld")
    except ImportError:
        record["epsilon_check_dp_accounting_pld"] = None
    return record
