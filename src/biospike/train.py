"""Training: surrogate-gradient BPTT for the SNN, the same loop for the ANN baseline, metrics.

Stage ``biospike train``: ``spikes.h5`` (+ ``windows.h5``) -> ``model.pt`` (or ``model.joblib`` for
the classical baseline, see :mod:`biospike.classical`), ``metrics.json``, ``curve.csv``.

Public API (other stages build on it; signatures are fixed):

- :func:`make_arch` -- architecture dict for ``models.build_model`` from the data and the config;
  ``input_scale: auto`` is computed from the training split so that the default network fires.
- :func:`fit` -- Adam, early stopping on validation balanced accuracy (best weights restored),
  class-balanced loss or sampling, optional firing-rate regulariser; seeded by one integer.
- :func:`predict_logits`, :func:`evaluate` -- logits and the metrics of ``metrics.json``.
- :func:`firing_summary` -- firing rate per layer, spikes per inference, silent/saturated flags.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biospike.config import derive_seed
from biospike.errors import BiospikeError

log = logging.getLogger("biospike.train")

# Mirrors the schema's defaults (workflow/schemas/config.schema.yaml $defs/train) so library callers
# (privacy, attacks, tests) get the same behaviour as the workflow without a validated config.
DEFAULTS: dict[str, Any] = {
    "epochs": 20,
    "batch_size": 64,
    "lr": 0.005,
    "weight_decay": 0.0,
    "patience": 5,
    "hidden": [64],
    "recurrent": False,
    "tau_mem_s": 0.05,
    "tau_syn_s": 0.02,
    "v_th": 1.0,
    "readout_tau_mem_s": 0.05,
    "readout_tau_syn_s": 0.02,
    "surrogate": "super",
    "surrogate_alpha": 100.0,
    "input_scale": "auto",
    "impl": "fused",
    "rate_reg": {"weight": 0.0, "target_hz": 20.0},
    "class_weighting": "balanced",
    "fail_on_silent": True,
    "max_train_windows": 2000,
    "device": "cpu",
}

# Keys a rule adds to the train section in --params (not training settings).
RESERVED_KEYS = ("seed", "model", "dataset", "encoding")

# A hidden layer whose mean rate (spikes per neuron per step) is below / above these is an error.
SILENT_RATE = 1e-3
SATURATED_RATE = 0.9
# input_scale "auto": the membrane drive's RMS across neurons and steps at initialisation, in v_th.
AUTO_DRIVE_RMS = 3.0


def train_settings(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``cfg`` over :data:`DEFAULTS`; an unknown key is an error (it would be silently ignored)."""
    from biospike.config import deep_merge

    cfg = {k: v for k, v in (cfg or {}).items() if k not in RESERVED_KEYS}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise BiospikeError(f"unknown train settings: {unknown} (known: {sorted(DEFAULTS)})")
    out = deep_merge(DEFAULTS, cfg)
    if out["class_weighting"] not in ("balanced", "sampler", "none"):
        raise BiospikeError(f"train.class_weighting must be balanced, sampler or none, not {out['class_weighting']!r}")
    return out


def resolve_device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise BiospikeError(
                f"train.device is 'cuda' but CUDA is not available to torch {torch.__version__} "
                f"(CPU-only build or no GPU visible); set train.device: cpu")
        return torch.device("cuda")
    raise BiospikeError(f"train.device must be 'cpu' or 'cuda', not {name!r}")


# --------------------------------------------------------------------------------------------
# Architecture
# --------------------------------------------------------------------------------------------


def make_arch(kind: str, spikes: Any, cfg: Mapping[str, Any], index: np.ndarray | None = None) -> dict:
    """Architecture dict for :func:`biospike.models.build_model`.

    ``spikes`` is a :class:`biospike.store.Spikes`; sizes, ``dt_s`` and classes come from it.
    ``input_scale: auto`` is computed from the windows ``index`` (default: the training split),
    see :func:`auto_input_scale`, and so is the SNN's ``output_scale`` (see :func:`init_model`);
    pass a public split's indices when they must not depend on private data (DP training).
    """
    cfg = train_settings(cfg)
    if kind not in ("snn", "ann"):
        raise BiospikeError(f"unknown model kind {kind!r} for make_arch (expected snn or ann)")
    x = spikes.spikes
    if x.ndim != 3:
        raise BiospikeError(f"spikes must be (N, T, C), got shape {x.shape}")
    n_in = int(x.shape[2])
    arch: dict[str, Any] = {
        "kind": kind,
        "n_in": n_in,
        "n_hidden": [int(h) for h in cfg["hidden"]],
        "n_out": len(spikes.class_names),
        "dt_s": float(spikes.dt_s),
        "tau_mem_s": float(cfg["tau_mem_s"]),
        "readout_tau_mem_s": float(cfg["readout_tau_mem_s"]),
    }
    if kind == "snn":
        arch |= {
            "tau_syn_s": float(cfg["tau_syn_s"]),
            "v_th": float(cfg["v_th"]),
            "readout_tau_syn_s": float(cfg["readout_tau_syn_s"]),
            "recurrent": bool(cfg["recurrent"]),
            "surrogate": str(cfg["surrogate"]),
            "surrogate_alpha": float(cfg["surrogate_alpha"]),
            "impl": str(cfg["impl"]),
        }
    _check_time_constants(arch)
    if index is None:
        index = spikes.splits.get("train")
        if index is None:
            index = np.arange(len(x))
    x_stats = x[np.sort(np.asarray(index, dtype=np.int64))]
    scale = cfg["input_scale"]
    if scale == "auto":
        scale = auto_input_scale(x_stats, arch)
    elif not isinstance(scale, (int, float)) or not scale > 0:
        raise BiospikeError(f"train.input_scale must be 'auto' or a positive number, not {scale!r}")
    arch["input_scale"] = float(scale)
    if kind == "snn" and len(x_stats):
        # the readout gain of init_model, measured once on a reference init (fixed seed, global RNG
        # untouched) so that any build_model(arch) gets it, e.g. the DP trainer's
        with torch.random.fork_rng():
            arch["output_scale"] = float(init_model(arch, x_stats, seed=0).arch.output_scale)
    return arch


def _check_time_constants(arch: Mapping[str, Any]) -> None:
    """norse's forward-Euler step decays a state by (1 - dt/tau) per step: with dt > tau the state
    flips sign every step and grows (dt = 2 tau already oscillates forever), so refuse it."""
    dt_s = float(arch["dt_s"])
    keys = ("tau_mem_s", "tau_syn_s", "readout_tau_mem_s", "readout_tau_syn_s")
    bad = {k: arch[k] for k in keys if k in arch and dt_s > float(arch[k]) * (1 + 1e-9)}
    if bad:
        listed = ", ".join(f"train.{k}={v:g}" for k, v in bad.items())
        raise BiospikeError(
            f"the encoding's time step dt={dt_s:g} s is longer than {listed}: the Euler update of the "
            f"neurons is unstable when dt > tau; raise these time constants to at least {dt_s:g} s "
            f"(per dataset under datasets.<name>.train) or use a finer encode.dt_s")


def auto_input_scale(x: np.ndarray, arch: Mapping[str, Any], max_windows: int = 256) -> float:
    """Input gain that makes the first hidden layer's drive about ``AUTO_DRIVE_RMS`` thresholds.

    Ignoring threshold and reset, a LIF neuron's membrane is a linear filter of its input current
    ``I = s W x`` (synapse then membrane). With ``nn.Linear``'s default init (weights uniform in
    +-1/sqrt(C), variance 1/(3C)) and zero bias, the mean square of that membrane drive over neurons
    and time is ``s^2 / (3C) * sum_c E[F_c^2]`` where ``F_c`` is channel c's filtered spike train
    in the training data. Solving for ``s`` takes both the input rate and the fan-in into account.
    For the ANN the filter is its leaky integrator and the target is unit RMS before the ReLU.
    """
    from biospike.models.ann import _leaky
    from biospike.models.fused import LIScan, lif_constants

    if len(x) == 0:
        raise BiospikeError("no training windows to compute input_scale 'auto' from")
    pick = np.unique(np.linspace(0, len(x) - 1, num=min(len(x), max_windows)).round().astype(np.int64))
    xs = torch.as_tensor(np.asarray(x[pick]), dtype=torch.float64)
    n_in = xs.shape[2]
    dt_s = float(arch["dt_s"])
    with torch.no_grad():
        if arch["kind"] == "snn":
            a_mem, a_syn_neg = lif_constants(torch.tensor(1.0 / arch["tau_mem_s"], dtype=torch.float64),
                                             torch.tensor(1.0 / arch["tau_syn_s"], dtype=torch.float64), dt_s)
            filtered = LIScan.apply(xs, a_mem, a_syn_neg, torch.tensor(0.0, dtype=torch.float64))
            target = AUTO_DRIVE_RMS * float(arch["v_th"])
        else:
            decay = math.exp(-dt_s / float(arch["tau_mem_s"]))
            filtered = _leaky(xs, decay)
            target = 1.0
        power = float(filtered.pow(2).mean(dim=(0, 1)).sum())
    if not power > 0:
        raise BiospikeError("the training windows carry no input spikes: nothing to scale (check the encoder)")
    return float(target * math.sqrt(3.0 * n_in / power))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def init_model(arch: Mapping[str, Any], x_calib: np.ndarray, seed: int, max_windows: int = 256) -> nn.Module:
    """``build_model(arch)`` seeded by ``derive_seed(seed, "init")``, then, for an SNN, a data-driven
    initialisation on ``x_calib`` (a few training windows; DP training should pass public ones,
    e.g. the population split):

    - each hidden layer after the first gets its weights rescaled so that its membrane drive has an
      RMS of ``AUTO_DRIVE_RMS`` thresholds, as ``input_scale: auto`` does for the first layer
      (default-initialised weights fed by sparse spikes leave a second layer silent);
    - unless ``arch`` sets ``output_scale``, it is chosen so that the readout's features (the
      time-averaged, readout-filtered last hidden spikes) have unit RMS, as the ANN's do. Spikes
      are sparse, so without it the logits start ~100x smaller than the ANN's and Adam needs
      hundreds of steps just to grow the readout weights. The value is stored in the arch.
    """
    from biospike.models import build_model
    from biospike.models.fused import LIScan, lif_constants

    arch = dict(arch)
    output_scale = arch.pop("output_scale", None)
    torch.manual_seed(derive_seed(seed, "init"))
    if output_scale is not None:
        arch["output_scale"] = float(output_scale)
    model = build_model(arch)
    if not _is_snn(model) or len(x_calib) == 0:
        return model
    pick = np.unique(np.linspace(0, len(x_calib) - 1, num=min(len(x_calib), max_windows)).round().astype(np.int64))
    zero = torch.tensor(0.0, dtype=torch.float64)

    def filtered(current: torch.Tensor, params: Any) -> torch.Tensor:
        a_mem, a_syn_neg = lif_constants(params.tau_mem_inv.double(), params.tau_syn_inv.double(), model.arch.dt_s)
        return LIScan.apply(current.double(), a_mem, a_syn_neg, zero)

    with torch.no_grad():
        h = torch.as_tensor(np.asarray(x_calib[pick]), dtype=torch.float32) * model.arch.input_scale
        for layer, fc in enumerate(model.fc):
            if layer > 0:
                rms = float(filtered(torch.nn.functional.linear(h, fc.weight), model.lif_p).pow(2).mean().sqrt())
                if rms > 0:
                    fc.weight.mul_(AUTO_DRIVE_RMS * model.arch.v_th / rms)
            h = model.lif_layer(fc(h), layer)
        if output_scale is None:
            features = filtered(h, model.li_p).mean(dim=1)
            rms = float(features.pow(2).mean().sqrt())
            model.arch.output_scale = 1.0 / rms if rms > 0 else 1.0
    return model


@dataclasses.dataclass
class TrainResult:
    model: nn.Module  # best-epoch weights, eval mode, on the training device
    history: list[dict]  # one dict per epoch (see CURVE_COLUMNS)
    best_epoch: int  # 1-based; 0 if no epoch ran
    epochs_run: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0
    init_rates: list[float] = dataclasses.field(default_factory=list)  # hidden rates before training


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (K n_c) for classes present (0 for absent ones): each class weighs the same in the loss."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def _is_snn(model: nn.Module) -> bool:
    from biospike.models.snn import SNN

    return isinstance(getattr(model, "_module", model), SNN)


def _forward(model: nn.Module, xb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits (= what ``model(x)`` returns) and hidden activity (spikes for the SNN)."""
    volts, hidden = model.forward_trace(xb)
    return volts.mean(dim=1), hidden


def _rate_penalty(hidden: Sequence[torch.Tensor], target_rate: float) -> torch.Tensor:
    """Mean over layers and neurons of ((rate - target) / target)^2, rates per step over batch and T."""
    terms = [((h.mean(dim=(0, 1)) - target_rate) / target_rate).pow(2).mean() for h in hidden]
    return torch.stack(terms).mean()


def fit(arch: dict, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        cfg: dict, seed: int, progress: bool = True) -> TrainResult:
    """Train ``build_model(arch)`` with Adam on (x_train, y_train); early stopping on x_val.

    x arrays are (N, T, C) uint8 or float spike counts; y are class indices. The model and the
    batch order are seeded from ``seed`` (``derive_seed(seed, "init")`` / ``"batches"``), so the
    same call gives the same weights on the same machine and thread count. The best epoch (highest
    validation balanced accuracy, ties broken by lower validation loss) is restored. Without
    validation windows the last epoch is kept.
    """
    cfg = train_settings(cfg)
    device = resolve_device(cfg["device"])
    start_s = time.perf_counter()
    x_train = np.asarray(x_train)
    y_train = np.asarray(y_train, dtype=np.int64)
    x_val = np.asarray(x_val)
    y_val = np.asarray(y_val, dtype=np.int64)
    if len(x_train) == 0:
        raise BiospikeError("no training windows")
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise BiospikeError("x and y must have the same number of windows")
    n_classes = int(arch["n_out"])
    if y_train.min() < 0 or y_train.max() >= n_classes:
        raise BiospikeError(f"training labels outside 0..{n_classes - 1}")

    model = init_model(arch, x_train, seed).to(device)
    snn = _is_snn(model)
    rng = np.random.default_rng(derive_seed(seed, "batches"))
    weights = class_weights(y_train, n_classes)
    loss_weight = torch.as_tensor(weights, dtype=torch.float32, device=device) if cfg["class_weighting"] == "balanced" else None
    criterion = nn.CrossEntropyLoss(weight=loss_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    reg_weight = float(cfg["rate_reg"]["weight"])
    target_rate = float(cfg["rate_reg"]["target_hz"]) * float(arch["dt_s"])
    if reg_weight > 0 and not snn:
        reg_weight = 0.0  # the ANN has no spikes to regularise
    if reg_weight > 0 and not 0 < target_rate < 1:
        raise BiospikeError(f"train.rate_reg.target_hz x dt must be in (0, 1) spikes per step, got {target_rate:g}")

    x_train_t = torch.as_tensor(x_train)
    y_train_t = torch.as_tensor(y_train)
    batch_size = int(cfg["batch_size"])
    sample_p = weights[y_train] / weights[y_train].sum() if cfg["class_weighting"] == "sampler" else None

    init_rates = firing_rates(model, x_train[: min(len(x_train), 256)]) if snn else []
    history: list[dict] = []
    best = {"epoch": 0, "score": (-math.inf, -math.inf), "state": copy.deepcopy(model.state_dict())}
    since_best = 0
    epochs = int(cfg["epochs"])
    bar = _epoch_bar(epochs, progress)
    stopped_early = False
    for epoch in range(1, epochs + 1):
        model.train()
        if sample_p is None:
            order = rng.permutation(len(x_train))
        else:
            order = rng.choice(len(x_train), size=len(x_train), replace=True, p=sample_p)
        loss_sum, n_seen = 0.0, 0
        spike_sums: list[float] = []
        for lo in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[lo:lo + batch_size])
            xb = x_train_t[idx].to(device=device, dtype=torch.float32)
            yb = y_train_t[idx].to(device)
            logits, hidden = _forward(model, xb)
            loss = criterion(logits, yb)
            if reg_weight > 0:
                loss = loss + reg_weight * _rate_penalty(hidden, target_rate)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            if snn:
                rates = [float(h.detach().mean()) * len(idx) for h in hidden]
                spike_sums = [a + b for a, b in zip(spike_sums, rates, strict=True)] if spike_sums else rates
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / n_seen}
        if len(x_val):
            val_logits = predict_logits(model, x_val)
            val_loss = float(criterion(torch.as_tensor(val_logits, device=device), torch.as_tensor(y_val, device=device)))
            val_bacc = balanced_accuracy(y_val, val_logits.argmax(axis=1))
            row |= {"val_loss": val_loss, "val_balanced_accuracy": val_bacc,
                    "val_accuracy": float(np.mean(val_logits.argmax(axis=1) == y_val))}
            score = (round(val_bacc, 12), -val_loss)
        else:
            row |= {"val_loss": float("nan"), "val_balanced_accuracy": float("nan"), "val_accuracy": float("nan")}
            score = (float(epoch), 0.0)  # no validation: keep the last epoch
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        for layer, total in enumerate(spike_sums):
            row[f"rate_hidden{layer}_hz"] = total / n_seen / float(arch["dt_s"])
        history.append(row)
        improved = score > best["score"]
        if improved:
            best = {"epoch": epoch, "score": score, "state": copy.deepcopy(model.state_dict())}
            since_best = 0
        else:
            since_best += 1
        _report_epoch(bar, row, best["epoch"])
        if len(x_val) and since_best >= int(cfg["patience"]):
            stopped_early = epoch < epochs
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best["state"])
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], epochs_run=len(history),
                       stopped_early=stopped_early, wall_time_s=time.perf_counter() - start_s,
                       init_rates=init_rates)


def _epoch_bar(epochs: int, progress: bool) -> Any:
    """A tqdm bar on a terminal; None otherwise (then each epoch is one log line)."""
    if not progress:
        return None
    from biospike.progress import progress as make_progress
    from biospike.progress import progress_mode

    if progress_mode(sys.stderr) != "tty":
        return None
    return make_progress(total=epochs, desc="train", leave=False)


def _report_epoch(bar: Any, row: Mapping[str, Any], best_epoch: int) -> None:
    rates = " ".join(f"{k[5:]}={v:.1f}" for k, v in row.items() if k.startswith("rate_"))
    text = (f"epoch {row['epoch']}: train_loss={row['train_loss']:.4f} val_loss={row['val_loss']:.4f} "
            f"val_bacc={row['val_balanced_accuracy']:.4f} best={best_epoch} {rates}").rstrip()
    if bar is not None:
        bar.set_postfix(loss=row["train_loss"], val_bacc=row["val_balanced_accuracy"])
        bar.update(1)
    else:
        log.info(text)


# --------------------------------------------------------------------------------------------
# Inference and firing
# --------------------------------------------------------------------------------------------


def _batches(x: np.ndarray, batch_size: int):
    for lo in range(0, len(x), batch_size):
        yield torch.as_tensor(np.asarray(x[lo:lo + batch_size]), dtype=torch.float32)


def device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits (N, n_out) float32 for spike counts x (N, T, C), in eval mode without gradients."""
    device = device_of(model)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for xb in _batches(x, batch_size):
            out.append(model(xb.to(device)).float().cpu().numpy())
    model.train(was_training)
    if not out:
        plain = getattr(model, "_module", model)
        return np.zeros((0, int(plain.arch.n_out)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def firing_rates(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> list[float]:
    """Mean spikes per neuron per step of each hidden layer over windows x (SNN only)."""
    return firing_stats(model, x, batch_size)["rates"]


def firing_stats(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> dict[str, Any]:
    """Per hidden layer: mean rate, fraction of neurons that never fire; spikes per inference."""
    plain = getattr(model, "_module", model)
    device = device_of(plain)
    was_training = plain.training
    plain.eval()
    n = len(x)
    sums: list[torch.Tensor] = []
    input_spikes = 0.0
    with torch.no_grad():
        for xb in _batches(x, batch_size):
            input_spikes += float(xb.sum())
            _, hidden = plain.forward_trace(xb.to(device))
            per_neuron = [h.sum(dim=(0, 1)).double().cpu() for h in hidden]  # spikes per neuron
            sums = [a + b for a, b in zip(sums, per_neuron, strict=True)] if sums else per_neuron
    plain.train(was_training)
    steps = int(x.shape[1]) if n else 0
    denom = max(1, n * steps)
    return {
        "rates": [float(s.sum()) / (denom * len(s)) for s in sums],
        "never_fire_fraction": [float((s == 0).double().mean()) for s in sums],
        "hidden_spikes_per_inference": [float(s.sum()) / max(1, n) for s in sums],
        "input_spikes_per_inference": input_spikes / max(1, n),
        "n_neurons": [len(s) for s in sums],
    }


def firing_summary(stats: Mapping[str, Any], dt_s: float, split: str) -> dict[str, Any]:
    """The ``firing`` block of metrics.json, with an error entry per silent or saturated layer."""
    layers, errors = [], []
    for k, rate in enumerate(stats["rates"]):
        name = f"hidden{k}"
        layers.append({
            "name": name,
            "n_neurons": stats["n_neurons"][k],
            "mean_rate_per_step": rate,
            "mean_rate_hz": rate / dt_s,
            "never_fire_fraction": stats["never_fire_fraction"][k],
            "spikes_per_inference": stats["hidden_spikes_per_inference"][k],
        })
        if rate < SILENT_RATE:
            errors.append({
                "code": "silent_layer", "layer": name,
                "message": f"{name} is silent: mean rate {rate:.2e} spikes/neuron/step < {SILENT_RATE:g} on the {split} split",
                "hint": "raise train.input_scale (or use 'auto'), lower train.v_th, lengthen train.tau_syn_s/tau_mem_s, "
                        "or add train.rate_reg {weight: 0.1, target_hz: 20}",
            })
        elif rate > SATURATED_RATE:
            errors.append({
                "code": "saturated_layer", "layer": name,
                "message": f"{name} is saturated: mean rate {rate:.3f} spikes/neuron/step > {SATURATED_RATE:g} on the {split} split",
                "hint": "lower train.input_scale (or use 'auto'), raise train.v_th, or add train.rate_reg with a lower target_hz",
            })
    hidden_total = float(sum(stats["hidden_spikes_per_inference"]))
    return {
        "split": split,
        "layers": layers,
        "spikes_per_inference": {
            "input": stats["input_spikes_per_inference"],
            "hidden": hidden_total,
            "total": stats["input_spikes_per_inference"] + hidden_total,
        },
        "errors": errors,
    }


# --------------------------------------------------------------------------------------------
# Metrics (numpy; scikit-learn's definitions, checked against it in the tests)
# --------------------------------------------------------------------------------------------


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows = true class, columns = predicted class."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return out


def _label_confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | None:
    """Confusion matrix over labels 0..max(label seen), or None when there are no windows."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        return None
    return confusion(y_true, y_pred, int(max(y_true.max(), y_pred.max())) + 1)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in y_true (sklearn.metrics.balanced_accuracy_score)."""
    cm = _label_confusion(y_true, y_pred)
    if cm is None:
        return float("nan")
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean F1 over labels present in y_true or y_pred (sklearn f1_score(average='macro'))."""
    cm = _label_confusion(y_true, y_pred)
    if cm is None:
        return float("nan")
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0  # labels seen in y_true or y_pred
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(np.mean(f1[present]))


def _scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(y)), "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
            "balanced_accuracy": balanced_accuracy(y, pred), "macro_f1": macro_f1(y, pred)}


def evaluate(model_or_logits: Any, y: np.ndarray, subjects: Sequence[str] | np.ndarray,
             class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics of one split: accuracy, balanced accuracy, macro-F1, confusion, per class, per subject.

    ``model_or_logits``: logits or class probabilities (N, K); predicted labels (N,); or a
    ``(model, x)`` tuple, which is run through :func:`predict_logits`. With logits, ``nll`` is the
    mean cross-entropy (unweighted). Subject ids are the hashed ids of windows.h5.
    """
    y = np.asarray(y, dtype=np.int64)
    subjects = np.asarray(subjects).astype(str)
    if isinstance(model_or_logits, tuple):
        model, x = model_or_logits
        model_or_logits = predict_logits(model, x)
    arr = np.asarray(model_or_logits)
    n_classes = len(class_names)
    nll = None
    if arr.ndim == 2:
        if arr.shape[1] != n_classes:
            raise BiospikeError(f"logits have {arr.shape[1]} columns but there are {n_classes} classes")
        pred = arr.argmax(axis=1) if len(arr) else np.zeros(0, dtype=np.int64)
        if len(arr):
            logp = torch.log_softmax(torch.as_tensor(arr, dtype=torch.float64), dim=1).numpy()
            nll = float(-np.mean(logp[np.arange(len(y)), y]))
    elif arr.ndim == 1:
        pred = arr.astype(np.int64)
    else:
        raise BiospikeError(f"expected logits (N, K) or labels (N,), got shape {arr.shape}")
    if len(pred) != len(y) or len(subjects) != len(y):
        raise BiospikeError("predictions, labels and subjects differ in length")
    out = _scores(y, pred)
    cm = confusion(y, pred, n_classes) if len(y) else np.zeros((n_classes, n_classes), dtype=np.int64)
    out["confusion"] = cm.tolist()
    per_class = {}
    for k, name in enumerate(class_names):
        tp, support, predicted = int(cm[k, k]), int(cm[k].sum()), int(cm[:, k].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else float("nan")
        f1 = 2 * tp / (support + predicted) if support + predicted else float("nan")
        per_class[name] = {"support": support, "precision": precision, "recall": recall, "f1": f1}
    out["per_class"] = per_class
    out["per_subject"] = {str(s): _scores(y[subjects == s], pred[subjects == s]) for s in sorted(set(subjects))}
    if nll is not None:
        out["nll"] = nll
    return out


def _finite(obj: Any) -> Any:
    """NaN -> None so metrics.json stays strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------
# Stage: files in, files out
# --------------------------------------------------------------------------------------------

CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_accuracy", "lr")


def select_train_indices(train_idx: np.ndarray, labels: np.ndarray, max_windows: int | None, seed: int) -> np.ndarray:
    """At most ``max_windows`` training windows, stratified by class (proportions kept, every class
    kept), sorted. Attacks need this exact set: it is stored as ``train_indices`` in model.pt's meta.
    The workflow passes :func:`subsample_seed`, the same for every model and encoding of a dataset,
    so snn, ann and classical train on the same windows."""
    train_idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    if not max_windows or len(train_idx) <= max_windows:
        return train_idx
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)[train_idx]
    keep = []
    for cls in np.unique(y):
        members = train_idx[y == cls]
        n_keep = max(1, int(round(len(members) * max_windows / len(train_idx))))
        keep.append(rng.choice(members, size=min(n_keep, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def write_curve(path: str | Path, history: Sequence[Mapping[str, Any]]) -> None:
    from biospike.store import atomic_path

    extra = sorted({k for row in history for k in row if k not in CURVE_COLUMNS})
    columns = [*CURVE_COLUMNS, *extra]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in history:
            writer.writerow(["" if row.get(c) is None or (isinstance(row.get(c), float) and not math.isfinite(row[c]))
                             else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]) for c in columns])


def _split(spikes: Any, name: str) -> np.ndarray:
    idx = spikes.splits.get(name)
    return np.sort(np.asarray(idx, dtype=np.int64)) if idx is not None else np.zeros(0, dtype=np.int64)


def train_stage(spikes_path: str | Path, outdir: str | Path, kind: str, params: Mapping[str, Any],
                windows_path: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Train ``kind`` (snn | ann) on spikes.h5; write model.pt, metrics.json, curve.csv. Returns metrics."""
    from biospike.models import save_checkpoint
    from biospike.models.snn import count_parameters
    from biospike.store import provenance, read_spikes, write_json

    start_s = time.perf_counter()
    outdir = Path(outdir)
    cfg = train_settings(params)
    spikes = read_spikes(spikes_path)
    dataset, encoding, seed = _names_and_seed(params, outdir, kind)
    for name in ("train", "val", "test"):
        if name not in spikes.splits:
            raise BiospikeError(f"no '{name}' split in splits/", spikes_path)
    labels = np.asarray(spikes.labels, dtype=np.int64)
    train_all = _split(spikes, "train")
    train_idx = select_train_indices(train_all, labels, cfg["max_train_windows"], subsample_seed(params, dataset))
    val_idx, test_idx = _split(spikes, "val"), _split(spikes, "test")
    if windows_path is not None:
        _check_windows_match(windows_path, spikes)
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("the training split holds fewer than two classes", spikes_path)

    arch = make_arch(kind, spikes, cfg, index=train_idx)
    log.info("train %s on %s/%s: %d train (of %d), %d val, %d test windows, T=%d, C=%d, input_scale=%.4g, seed=%d",
             kind, dataset, encoding, len(train_idx), len(train_all), len(val_idx), len(test_idx),
             spikes.spikes.shape[1], spikes.spikes.shape[2], arch["input_scale"], seed)
    x = spikes.spikes
    result = fit(arch, x[train_idx], labels[train_idx], x[val_idx], labels[val_idx], cfg, seed, progress=progress)
    model = result.model

    class_names = list(spikes.class_names)
    metrics: dict[str, Any] = {"model": kind, "dataset": dataset, "encoding": encoding, "class_names": class_names}
    for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        metrics[name] = evaluate((model, x[idx]), labels[idx], spikes.subject[idx], class_names)
    errors: list[dict] = []
    if kind == "snn":
        eval_split, eval_idx = ("test", test_idx) if len(test_idx) else ("val", val_idx)
        firing = firing_summary(firing_stats(model, x[eval_idx]), float(spikes.dt_s), eval_split)
        firing["init_mean_rate_per_step"] = result.init_rates
        errors += firing["errors"]
        metrics["firing"] = firing
        metrics["spikes_per_inference"] = firing["spikes_per_inference"]
    else:
        metrics["firing"] = None
        eval_x = x[test_idx] if len(test_idx) else x[val_idx]
        metrics["spikes_per_inference"] = {"input": float(eval_x.sum()) / max(1, len(eval_x)), "hidden": None, "total": None}
    best_row = result.history[result.best_epoch - 1] if result.best_epoch else {}
    metrics |= {
        "status": "error" if errors else "ok",
        "errors": errors,
        "n_parameters": count_parameters(model),
        "n_windows": {"train": len(train_idx), "train_available": len(train_all), "val": len(val_idx), "test": len(test_idx)},
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "history": {"best": best_row, "final": result.history[-1] if result.history else {}},
        "arch": dataclasses.asdict(getattr(model, "_module", model).arch),
        "seed": seed,
        "time_steps": int(x.shape[1]),
        "dt_s": float(spikes.dt_s),
    }
    meta = {
        "class_names": class_names, "dt_s": float(spikes.dt_s), "channel_names": list(spikes.channel_names),
        "dataset": dataset, "encoding": encoding, "model": kind, "seed": seed,
        "train_indices": train_idx.tolist(), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "history": result.history, "encoder": spikes.encoder,
    }
    inputs = [spikes_path] + ([windows_path] if windows_path is not None else [])
    metrics["provenance"] = provenance({"train": cfg, "model": kind, "dataset": dataset, "encoding": encoding},
                                       inputs=inputs, seed=seed)
    metrics["wall_time_s"] = time.perf_counter() - start_s
    outdir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(outdir / "model.pt", model, meta)
    write_curve(outdir / "curve.csv", result.history)
    write_json(outdir / "metrics.json", _finite(metrics))
    return metrics


def subsample_seed(params: Mapping[str, Any], dataset: str) -> int:
    return derive_seed(int(params.get("seed", 0)), "train", dataset, "subsample")


def _names_and_seed(params: Mapping[str, Any], outdir: Path, kind: str) -> tuple[str, str, int]:
    """Dataset and encoding from the rule's params (else from R/{dataset}/{encoding}/{model}); the
    model's seed derived from the root seed and those names."""
    parts = outdir.resolve().parts
    dataset = str(params.get("dataset") or (parts[-3] if len(parts) >= 3 else "dataset"))
    encoding = str(params.get("encoding") or (parts[-2] if len(parts) >= 2 else "encoding"))
    root_seed = int(params.get("seed", 0))
    return dataset, encoding, derive_seed(root_seed, "train", dataset, encoding, kind)


def _check_windows_match(windows_path: str | Path, spikes: Any) -> None:
    from biospike.store import open_h5

    with open_h5(windows_path, required=("labels",)) as fh:
        labels = fh["labels"][()]
    if len(labels) != len(spikes.labels) or not np.array_equal(labels, spikes.labels):
        raise BiospikeError("windows.h5 labels do not match spikes.h5 (stale or foreign file)", windows_path)


def cli(argv: list[str], prog: str) -> int:
    from biospike.cliutil import load_params, stage_parser
    from biospike.config import seed_everything

    parser = stage_parser(prog, "train an SNN, its ANN baseline or the classical baseline")
    parser.add_argument("--input", help="spikes.h5 (snn, ann)")
    parser.add_argument("--windows", help="windows.h5 (classical: the raw windows; snn/ann: checked against spikes.h5)")
    parser.add_argument("--model", required=True, choices=("snn", "ann", "classical"))
    parser.add_argument("--outdir", required=True, help="R/{dataset}/{encoding}/{model}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    params = load_params(args.params)
    cfg = train_settings(params)
    dataset, encoding, seed = _names_and_seed(params, Path(args.outdir), args.model)
    seed_everything(seed, args.threads)
    if args.model == "classical":
        from biospike.classical import classical_stage

        if args.windows is None:
            raise BiospikeError("--windows is required for --model classical")
        metrics = classical_stage(args.windows, args.outdir, params)
    else:
        if args.input is None:
            raise BiospikeError(f"--input spikes.h5 is required for --model {args.model}")
        metrics = train_stage(args.input, args.outdir, args.model, params, windows_path=args.windows,
                              progress=not args.no_progress)
    _log_summary(metrics)
    if metrics["errors"] and cfg["fail_on_silent"]:
        problems = "; ".join(f"{e['message']} (hint: {e['hint']})" for e in metrics["errors"])
        raise BiospikeError(f"{problems}; outputs were written for inspection; "
                            f"set train.fail_on_silent: false to accept", Path(args.outdir) / "metrics.json")
    return 0


def _log_summary(metrics: Mapping[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    log.info("%s %s/%s: val balanced accuracy %s, test balanced accuracy %s, test macro-F1 %s, %.1f s",
             metrics["model"], metrics["dataset"], metrics["encoding"], fmt(metrics["val"]["balanced_accuracy"]),
             fmt(metrics["test"]["balanced_accuracy"]), fmt(metrics["test"]["macro_f1"]), metrics["wall_time_s"])
    for err in metrics["errors"]:
        log.error("%s -- hint: %s", err["message"], err["hint"])
