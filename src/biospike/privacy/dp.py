"""DP-SGD for the project's networks: Poisson sampling of privacy units, per-unit clipping,
Gaussian noise, optional adaptive clipping and adaptive per-group noise; epsilon from Opacus'
accountant (:mod:`biospike.privacy.accounting`).

The step itself is :mod:`biospike.privacy.optimizer` (a ``DPOptimizer`` with overridable phases:
clip and accumulate, add noise, scale; the adaptive schemes are its subclasses); per-sample
gradients are :mod:`biospike.privacy.grad_sample`. This module holds the settings, the sampling
plan and the noise calibration, and runs the epochs: what is released per step is exactly the
mechanism derived in ``docs/privacy.md``, and its one noise multiplier goes to the accountant.
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
from biospike.models import predict_logits
from biospike.privacy import accounting
from biospike.privacy.adaptive import group_layout, neuron_blocks
from biospike.privacy.grad_sample import grad_sample_module
from biospike.privacy.noise import NoiseSource, noise_source
from biospike.privacy.optimizer import (
    AdaptiveClipDPOptimizer,
    AdaptiveDPOptimizer,
    AllocatedNoiseDPOptimizer,
    DPOptimizer,
)

__all__ = ["UNITS", "AdaptiveClipping", "AdaptiveNoise", "DPResult", "DPSettings", "calibrate", "dp_train",
           "loss_sum", "make_optimizer", "plan", "unit_index"]

UNITS = ("window", "subject")


@dataclasses.dataclass(frozen=True)
class AdaptiveClipping:
    """The ``privacy.adaptive_clipping`` settings (Andrew et al. 2021 quantile clipping)."""

    enabled: bool
    target_quantile: float
    lr_eta: float
    # share rho of the per-step privacy budget (1/z^2) spent on the clipped count:
    # (2 sigma_b)^-2 = rho / z^2, so sigma_b = z / (2 sqrt(rho)) and z_grad = z / sqrt(1 - rho)
    count_budget_share: float
    min_clip: float
    max_clip: float
    # step size follows the bound: lr_t = lr x C_0 / C_t, so shrinking C does not stall training
    # (the update scale is then set by lr alone; C_t is already private, so this is post-processing)
    scale_lr: bool


@dataclasses.dataclass(frozen=True)
class AdaptiveNoise:
    """The ``privacy.adaptive_noise`` settings (per-group noise allocated from public windows)."""

    enabled: bool
    groups: str  # layer | neuron
    strength: float  # 0: equal noise std everywhere; 1: signal-to-noise proportional to relevance
    public_windows: int  # public windows used per allocation update


@dataclasses.dataclass(frozen=True)
class DPSettings:
    """The ``privacy`` config section, typed (validated and completed from the schema)."""

    epsilons: list[float]
    delta: float | str
    unit: str
    accountant: str
    max_grad_norm: float
    epochs: int
    batch_size: int  # expected windows per batch (window unit)
    subjects_per_batch: int  # expected subjects per batch (subject unit)
    windows_per_subject: int | None  # cap on a sampled subject's windows per step (None: all)
    lr: float
    optimizer: str  # sgd (momentum 0.9) | adam
    select: str  # best_val | last
    adaptive_clipping: AdaptiveClipping
    adaptive_noise: AdaptiveNoise
    public_preprocessing: str
    noise: str  # secret (OS CSPRNG, default) | seeded (replayable research mode)
    audit: dict

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None = None) -> DPSettings:
        """From a ``privacy`` section (missing keys take the schema's defaults)."""
        from biospike.config import section_settings

        cfg = section_settings("privacy", cfg)
        cfg.pop("enabled")  # the workflow's switch
        return cls(**{**cfg, "adaptive_clipping": AdaptiveClipping(**cfg["adaptive_clipping"]),
                      "adaptive_noise": AdaptiveNoise(**cfg["adaptive_noise"])})


@dataclasses.dataclass
class DPResult:
    """A DP-SGD-trained network with its per-epoch history, best epoch, privacy record
    (privacy.json) and wall time in seconds."""

    model: nn.Module
    history: list[dict]
    best_epoch: int
    privacy: dict
    wall_time_s: float


def loss_sum(logits: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over samples of (class-weighted) cross-entropy: each sample's gradient is its own."""
    return nn.functional.cross_entropy(logits, y, weight=weight, reduction="sum")


@torch.no_grad()
def _eval(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> tuple[float, float, float]:
    """Validation loss, balanced accuracy, accuracy (validation subjects are not training units)."""
    from biospike.metrics import balanced_accuracy

    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    logits = torch.as_tensor(predict_logits(model, x, batch))  # batched, on the model's device, eval mode
    model.train()
    loss = float(nn.functional.cross_entropy(logits, torch.as_tensor(y)))
    pred = logits.argmax(1).numpy()
    return loss, balanced_accuracy(np.asarray(y), pred), float(np.mean(pred == np.asarray(y)))


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


def make_optimizer(model: nn.Module, gsm: nn.Module, settings: DPSettings, cal: dict, noise: NoiseSource,
                   loss_fn, x_public: np.ndarray | None, y_public: np.ndarray | None, seed: int) -> DPOptimizer:
    """The DP optimizer of ``settings``: plain, adaptive clipping, adaptive noise, or both."""
    params = [p for p in model.parameters() if p.requires_grad]
    inner = (torch.optim.Adam(params, lr=settings.lr) if settings.optimizer == "adam"
             else torch.optim.SGD(params, lr=settings.lr, momentum=0.9))
    blocks = neuron_blocks(model)
    ac, an = settings.adaptive_clipping, settings.adaptive_noise
    have_public = x_public is not None and len(x_public) > 0
    allocate = an.enabled and an.groups != "flat" and have_public
    layout = group_layout(blocks, an.groups if an.enabled else "flat")
    args = (inner, gsm, blocks, layout, cal["gradient_noise_multiplier"], settings.max_grad_norm,
            cal["expected_units_per_batch"], noise, settings.unit == "subject")
    clip_kw = {"target_quantile": ac.target_quantile, "lr_eta": ac.lr_eta, "count_noise_std": cal["count_noise_std"],
               "min_clip": ac.min_clip, "max_clip": ac.max_clip, "scale_lr": ac.scale_lr, "base_lr": settings.lr}
    noise_kw = {"x_public": torch.as_tensor(x_public) if have_public else None, "y_public": y_public,
                "strength": an.strength, "public_windows": an.public_windows, "loss_fn": loss_fn, "seed": seed}
    if ac.enabled and allocate:
        return AdaptiveDPOptimizer(*args, **clip_kw, **noise_kw)
    if ac.enabled:
        return AdaptiveClipDPOptimizer(*args, **clip_kw)
    if allocate:
        return AllocatedNoiseDPOptimizer(*args, **noise_kw)
    return DPOptimizer(*args)


def _dp_train(arch: dict, x_train: np.ndarray, y_train: np.ndarray, units: np.ndarray,
              x_val: np.ndarray, y_val: np.ndarray, settings: DPSettings, target_epsilon: float,
              seed: int, x_public: np.ndarray | None = None, y_public: np.ndarray | None = None,
              class_weight: np.ndarray | None = None, progress: bool = True, desc: str = "harden",
              device: str | torch.device = "cpu") -> DPResult:
    """Train ``arch`` with DP-SGD at ``target_epsilon``.

    ``units`` labels each training window with its privacy unit (window index, or subject id).
    ``x_public``/``y_public`` (never trained on) feed the data-driven initialisation and the
    adaptive noise allocation.
    ``class_weight`` (per class, from public data only: private class counts would couple every
    sample's loss to the others' and void the per-unit sensitivity) weights the loss.
    ``device``: where the model, forward/backward and per-sample gradients run (``train.device``);
    the data stay on the CPU and each batch moves over, and the noise is drawn on the CPU. The
    returned model is on ``device``.

    ``seed`` drives what may be public (initialisation, the public windows an allocation update
    reads); the noise and the sampling of units come from ``settings.noise`` (secret by default,
    :mod:`biospike.privacy.noise`), never from ``seed`` unless the replayable research mode asks.
    """
    from biospike.models import build_model, init_model
    from biospike.progress import progress as progress_bar

    start_s = time.perf_counter()
    unit_of_window, unit_windows = unit_index(units)
    n_units = len(unit_windows)
    cal = calibrate(target_epsilon, n_units, settings)

    # the project's data-driven initialisation (models.init_model), calibrated on public windows
    # only; without public data the plain seeded init (the arch already carries its scales)
    if x_public is not None and len(x_public):
        model = init_model(arch, np.asarray(x_public), seed)
    else:
        torch.manual_seed(seed)
        model = build_model(arch)
    torch.manual_seed(seed)
    device = torch.device(device)
    model.to(device)
    model.train()
    gsm = grad_sample_module(model)
    noise = noise_source(settings.noise, seed)
    sampler = _Sampler(unit_windows, cal["sample_rate"], settings.windows_per_subject if settings.unit == "subject" else None,
                       noise.sampler_rng)
    x_all = torch.as_tensor(x_train)
    y_all = torch.as_tensor(np.asarray(y_train, dtype=np.int64))
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32, device=device)

    def loss_fn(logits, y):
        return loss_sum(logits, y, weight)

    opt = make_optimizer(model, gsm, settings, cal, noise, loss_fn, x_public, y_public, seed)
    history: list[dict] = []
    best = (-math.inf, 0)
    best_state = {k: v.clone() for k, v in model.state_dict().items()}
    bar = progress_bar(range(settings.epochs), desc=desc) if progress else range(settings.epochs)
    for epoch in bar:
        epoch_s = time.perf_counter()
        opt.on_epoch_start(epoch)
        first = len(opt.step_log)
        for _ in range(cal["steps_per_epoch"]):
            idx, local, n_sampled = sampler.draw()
            opt.step(loss_fn, x_all, y_all, idx, local, n_sampled)
        steps = opt.step_log[first:]
        val_loss, val_bacc, val_acc = _eval(model, x_val, y_val)
        fracs = [s["unclipped_fraction"] for s in steps if s["unclipped_fraction"] is not None]
        row = {"epoch": epoch + 1, "val_loss": val_loss, "val_balanced_accuracy": val_bacc, "val_accuracy": val_acc,
               "lr": float(opt.optimizer.param_groups[0]["lr"]), "epoch_time_s": time.perf_counter() - epoch_s,
               "clip_bound": float(np.mean([s["clip"] for s in steps])),
               "clip_bound_end": float(getattr(opt, "clipper", opt).clip),
               "z_eff_min": float(min(s["z_eff"] for s in steps)), "z_eff_max": float(max(s["z_eff"] for s in steps)),
               "private_unclipped_fraction": float(np.mean(fracs)) if fracs else float("nan")}
        if opt.layout.grouping != "flat":
            row["allocation"] = opt.allocation.summary()
            row["noise_std_ratio_max_over_min"] = row["allocation"]["noise_ratio_max_over_min"]
        history.append(row)
        score = val_bacc if np.isfinite(val_bacc) else -val_loss
        if settings.select == "last" or len(x_val) == 0 or score > best[0]:  # no validation: the last epoch
            best = (score, epoch + 1)
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        if progress and hasattr(bar, "set_postfix"):
            bar.set_postfix(val_bacc=val_bacc, clip=steps[-1]["clip"] if steps else 0.0)
    if gsm.stepwise is not None:
        gsm.stepwise.close()
    gsm._close()  # remove Opacus' hooks and per-sample buffers: a plain model leaves here
    model.load_state_dict(best_state)
    model.eval()
    z_grad = cal["gradient_noise_multiplier"]
    zs = [s["z_eff"] for s in opt.step_log]
    if zs and max(abs(z - z_grad) for z in zs) > 1e-6 * z_grad:  # the invariant the accounting rests on
        raise RuntimeError(f"effective noise multiplier drifted from {z_grad}: {min(zs)}..{max(zs)}")
    privacy = _privacy_record(cal, settings, target_epsilon, n_units, opt.layout,
                              x_public is not None and len(x_public) > 0, history, best[1]) | noise.record()
    return DPResult(model, history, best[1], privacy, time.perf_counter() - start_s)


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
    }
    try:
        record["epsilon_check_dp_accounting_pld"] = accounting.dp_accounting_epsilon(cal["accountant_history"], cal["delta"], "pld")
    except ImportError:
        record["epsilon_check_dp_accounting_pld"] = None
    return record
