"""Training: surrogate-gradient BPTT for the SNN, the same loop for the ANN baseline.

Stage ``biospike train``: ``spikes.h5`` (+ ``windows.h5``) -> the model kind's checkpoint,
``metrics.json`` and ``curve.csv``. Which function trains a kind is the kind's registration
(:data:`biospike.registry.MODEL_KINDS`); this module trains the two networks:

- :func:`fit` -- Adam, early stopping on validation balanced accuracy (best weights restored),
  class-balanced loss or sampling, optional firing-rate regulariser; seeded by one integer.
- :func:`fit_on` -- :func:`fit` on chosen windows of a spikes file (the attacks' reference models).
- :func:`predict_logits` -- logits in eval mode, batched, on the model's device.
- :func:`firing_stats`, :func:`firing_summary` -- firing per layer, spikes per inference,
  silent/saturated flags.
- :func:`train_stage` -- the stage: files in, files out.

Architectures and their data-driven initialisation are the networks' own (:mod:`biospike.models`),
metrics are :mod:`biospike.metrics`, the output files :mod:`biospike.results`.
"""

from __future__ import annotations

import copy
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

from biospike.config import derive_seed, section_settings
from biospike.errors import BiospikeError
from biospike.kinds import MODEL_KINDS
from biospike.metrics import BOOTSTRAP_N, balanced_accuracy, evaluate
from biospike.models import (
    batches,
    device_of,
    init_model,
    is_spiking,
    make_arch,
    predict_logits,
    resolve_device,
)
from biospike.trainset import class_weights

__all__ = ["SATURATED_RATE", "SELECT_MODES", "SILENT_RATE", "MembershipAdversary", "TrainResult", "adversarial_settings",
           "adversarial_stage", "arch_for", "cli", "converged_settings", "defended_stage", "fit_adversarial",
           "converged_stage", "firing_rates", "firing_stats", "firing_summary", "fit", "fit_converged", "fit_many",
           "fit_many_converged", "fit_many_on", "fit_on", "kind_settings", "load_base", "network_of", "predict_logits", "StageData",
           "stage_data", "train_settings", "train_stage", "write_trained"]

log = logging.getLogger("biospike.train")

# A hidden layer whose mean rate (spikes per neuron per step) is below / above these is an error.
SILENT_RATE = 1e-3
SATURATED_RATE = 0.9


def train_settings(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``train`` section with the schema's defaults; an unknown key or bad value is an error."""
    return section_settings("train", given)


SELECT_MODES = ("best_val", "last")


def _check_select(select: str) -> None:
    if select not in SELECT_MODES:
        raise BiospikeError(f"select must be one of {SELECT_MODES}, got {select!r}")


def network_of(kind: str) -> str:
    """The network class a registered model kind trains (``snn``, ``ann``)."""
    return MODEL_KINDS[kind].network or kind


def kind_settings(kind: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``train`` settings of model kind ``kind``: ``settings`` with what the kind fixes
    (``ModelKind.train_settings``, e.g. the alif kind's ``neuron: alif``) on top."""
    fixed = dict(MODEL_KINDS[kind].train_settings) if kind in MODEL_KINDS else {}
    return {**settings, **{k: list(v) if isinstance(v, tuple) else v for k, v in fixed.items()}}


def arch_for(kind: str, spikes: Any, settings: Mapping[str, Any], index: np.ndarray | None = None) -> dict:
    """:func:`biospike.models.make_arch` of model kind ``kind`` (a registered kind: its network
    and the settings it fixes, :func:`kind_settings`) for a spikes file: sizes, ``dt_s`` and classes from it,
    ``input_scale: auto`` (and the SNN's readout gain) from the windows ``index`` (default: the
    training split; pass a public split's indices when they must not depend on private data)."""
    x = spikes.spikes
    if x.ndim != 3:
        raise BiospikeError(f"spikes must be (N, T, C), got shape {x.shape}")
    if index is None:
        index = spikes.splits.get("train")
        if index is None:
            index = np.arange(len(x))
    x_stats = x[np.sort(np.asarray(index, dtype=np.int64))]
    return make_arch(network_of(kind), int(x.shape[2]), len(spikes.class_names), float(spikes.dt_s),
                     kind_settings(kind, settings), x_stats)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """A trained network (best epoch's weights) with its per-epoch history and timing."""

    model: nn.Module  # best-epoch weights, eval mode, on the training device
    history: list[dict]  # one dict per epoch (see CURVE_COLUMNS)
    best_epoch: int  # 1-based; 0 if no epoch ran
    epochs_run: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0
    init_rates: list[float] = dataclasses.field(default_factory=list)  # hidden rates before training
    pretrain: dict | None = None  # the unsupervised phase's summary (train.learning stdp)


class MembershipAdversary(nn.Module):
    """The inference model of adversarial regularisation (Nasr, Shokri & Houmansadr 2018, "Machine
    learning with membership privacy using adversarial regularization", CCS): from a model's
    softmax output and the one-hot label, the logit that the window was a training member."""

    def __init__(self, n_classes: int, hidden: int) -> None:
        super().__init__()
        self.n_classes = int(n_classes)
        self.net = nn.Sequential(nn.Linear(2 * self.n_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 1))

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Membership logits (B,) of outputs ``logits`` (B, C) with labels ``y`` (B,)."""
        features = torch.cat([torch.softmax(logits, dim=1), nn.functional.one_hot(y, self.n_classes).to(logits.dtype)], 1)
        return self.net(features).squeeze(1)


def _forward(model: nn.Module, xb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits (= what ``model(x)`` returns) and hidden activity (spikes for the SNN)."""
    volts, hidden = model.forward_trace(xb)
    return volts.mean(dim=1), hidden


def _rate_penalty(hidden: Sequence[torch.Tensor], target_rate: float) -> torch.Tensor:
    """Mean over layers and neurons of ((rate - target) / target)^2, rates per step over batch and T."""
    terms = [((h.mean(dim=(0, 1)) - target_rate) / target_rate).pow(2).mean() for h in hidden]
    return torch.stack(terms).mean()


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Adam's parameter groups: weight decay on the weights, none on learned neuron constants
    (``dynamics.*``: decay would pull their raw values to 0, i.e. tau to dt + ln 2 s)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # frozen STDP layers left out
    dyn = [p for n, p in named if n.startswith("dynamics.")]
    rest = [p for n, p in named if not n.startswith("dynamics.")]
    return [{"params": rest, "weight_decay": weight_decay}] + ([{"params": dyn, "weight_decay": 0.0}] if dyn else [])


def fit(arch: dict, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
        cfg: dict, seed: int, progress: bool = True, select: str = "best_val") -> TrainResult:
    """Train ``build_model(arch)`` with Adam on (x_train, y_train); early stopping on x_val.

    x arrays are (N, T, C) uint8 or float spike counts; y are class indices. The model and the
    batch order are seeded from ``seed`` (``derive_seed(seed, "init")`` / ``"batches"``), so the
    same call gives the same weights on the same machine and thread count. The best epoch (highest
    validation balanced accuracy, ties broken by lower validation loss) is restored. Without
    validation windows, or with ``select="last"`` (training to convergence: every epoch runs, no
    early stopping), the last epoch is kept; validation metrics are still recorded.
    """
    cfg = train_settings(cfg)
    _check_select(select)
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
    snn = is_spiking(model)
    pretrain = None
    if cfg["learning"] == "stdp":
        if not snn:
            raise BiospikeError("train.learning stdp trains spiking hidden layers; this network does not spike")
        from biospike.stdp import stdp_pretrain

        pretrain = stdp_pretrain(model, x_train, cfg["stdp"], derive_seed(seed, "stdp"), progress=progress)
    rng = np.random.default_rng(derive_seed(seed, "batches"))
    weights = class_weights(y_train, n_classes)
    loss_weight = torch.as_tensor(weights, dtype=torch.float32, device=device) if cfg["class_weighting"] == "balanced" else None
    criterion = nn.CrossEntropyLoss(weight=loss_weight)
    optimizer = torch.optim.Adam(_param_groups(model, float(cfg["weight_decay"])), lr=float(cfg["lr"]))
    reg_weight = float(cfg["rate_reg"]["weight"])
    target_rate = float(cfg["rate_reg"]["target_hz"]) * float(arch["dt_s"])
    if reg_weight > 0 and not snn:
        reg_weight = 0.0  # the ANN has no spikes to regularise
    if reg_weight > 0 and not 0 < target_rate < 1:
        raise BiospikeError(f"train.rate_reg.target_hz x dt must be in (0, 1) spikes per step, got {target_rate:g}")

    x_train_t = torch.as_tensor(x_train)
    y_train_t = torch.as_tensor(y_train)
    batch_size = int(cfg["batch_size"])
    adv_cfg = cfg["adversarial"]
    adv_weight = float(adv_cfg["weight"])
    if adv_weight > 0:
        # the min-max game of Nasr et al. 2018: an adversary learns to tell training windows from
        # reference windows the model never trains on (the validation windows), the model learns
        # the task while making its members look like those
        if len(x_val) == 0:
            raise BiospikeError("adversarial regularisation needs reference windows the model does not train on "
                                "(the validation split is empty)")
        with torch.random.fork_rng():
            torch.manual_seed(derive_seed(seed, "adversary"))
            adversary = MembershipAdversary(n_classes, int(adv_cfg["attack_hidden"])).to(device)
        adv_optimizer = torch.optim.Adam(adversary.parameters(), lr=float(adv_cfg["attack_lr"]))
        ref_rng = np.random.default_rng(derive_seed(seed, "adversary", "batches"))
        x_ref_t, y_ref_t = torch.as_tensor(x_val), torch.as_tensor(y_val)
        # reference windows drawn like the members: class-balanced when the members are resampled
        # so (else the adversary could learn the label prior instead of membership)
        ref_w = class_weights(y_val, n_classes)[y_val] if cfg["class_weighting"] == "sampler" else None
        ref_p = None if ref_w is None else ref_w / ref_w.sum()
        bce = nn.BCEWithLogitsLoss()
    sample_p = weights[y_train] / weights[y_train].sum() if cfg["class_weighting"] == "sampler" else None

    init_rates = firing_rates(model, x_train[: min(len(x_train), 256)]) if snn else []
    history: list[dict] = []
    best = {"epoch": 0, "score": (-math.inf, -math.inf), "state": copy.deepcopy(model.state_dict())}
    since_best = 0
    epochs = int(cfg["epochs"])
    bar = _epoch_bar(epochs, progress)
    stopped_early = False
    for epoch in range(1, epochs + 1):
        epoch_start_s = time.perf_counter()
        model.train()
        if sample_p is None:
            order = rng.permutation(len(x_train))
        else:
            order = rng.choice(len(x_train), size=len(x_train), replace=True, p=sample_p)
        loss_sum, n_seen, gain_sum = 0.0, 0, 0.0
        spike_sums: list[float] = []
        for lo in range(0, len(order), batch_size):
            idx = torch.as_tensor(order[lo:lo + batch_size])
            xb = x_train_t[idx].to(device=device, dtype=torch.float32)
            yb = y_train_t[idx].to(device)
            logits, hidden = _forward(model, xb)
            loss = criterion(logits, yb)
            if reg_weight > 0:
                loss = loss + reg_weight * _rate_penalty(hidden, target_rate)
            if adv_weight > 0:
                for _ in range(int(adv_cfg["attack_steps"])):  # the adversary's k steps (maximise its gain)
                    # a fresh reference batch per step; the members are this step's batch
                    ref = torch.as_tensor(ref_rng.choice(len(x_val), size=len(idx), replace=ref_p is not None
                                                         or len(x_val) < len(idx), p=ref_p))
                    xr, yr = x_ref_t[ref].to(device=device, dtype=torch.float32), y_ref_t[ref].to(device)
                    with torch.no_grad():
                        ref_logits = model(xr)
                    adv_optimizer.zero_grad(set_to_none=True)
                    adv_loss = (bce(adversary(logits.detach(), yb), torch.ones(len(idx), device=device))
                                + bce(adversary(ref_logits, yr), torch.zeros(len(idx), device=device)))
                    adv_loss.backward()
                    adv_optimizer.step()
                # the model's step: minimise the task loss plus lambda x the adversary's log-gain on members
                gain = -nn.functional.softplus(-adversary(logits, yb)).mean()  # mean log h(f(x), y)
                loss = loss + adv_weight * gain
                gain_sum += float(gain.detach()) * len(idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(idx)
            n_seen += len(idx)
            if snn:
                rates = [float(h.detach().mean()) * len(idx) for h in hidden]
                spike_sums = [a + b for a, b in zip(spike_sums, rates, strict=True)] if spike_sums else rates
        row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum / n_seen}
        if adv_weight > 0:
            row["adversary_log_gain"] = gain_sum / n_seen  # log h on members: -> log(1/2) when they blend in
        if len(x_val):
            val_logits = predict_logits(model, x_val)
            val_loss = float(criterion(torch.as_tensor(val_logits, device=device), torch.as_tensor(y_val, device=device)))
            val_bacc = balanced_accuracy(y_val, val_logits.argmax(axis=1))
            row |= {"val_loss": val_loss, "val_balanced_accuracy": val_bacc,
                    "val_accuracy": float(np.mean(val_logits.argmax(axis=1) == y_val))}
            score = (round(val_bacc, 12), -val_loss) if select == "best_val" else (float(epoch), 0.0)
        else:
            row |= {"val_loss": float("nan"), "val_balanced_accuracy": float("nan"), "val_accuracy": float("nan")}
            score = (float(epoch), 0.0)  # no validation: keep the last epoch
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        row["epoch_time_s"] = time.perf_counter() - epoch_start_s
        for layer, total in enumerate(spike_sums):
            row[f"rate_hidden{layer}_hz"] = total / n_seen / float(arch["dt_s"])
        history.append(row)
        improved = score > best["score"]
        if improved:
            best = {"epoch": epoch, "score": score, "state": copy.deepcopy(model.state_dict())}
            since_best = 0
        else:
            since_best += 1
        _report_epoch(bar, row, best["epoch"], time.perf_counter() - start_s, epochs)
        if select == "best_val" and len(x_val) and since_best >= int(cfg["patience"]):
            stopped_early = epoch < epochs
            break
    if bar is not None:
        bar.close()
    model.load_state_dict(best["state"])
    model.eval()
    return TrainResult(model=model, history=history, best_epoch=best["epoch"], epochs_run=len(history),
                       stopped_early=stopped_early, wall_time_s=time.perf_counter() - start_s,
                       init_rates=init_rates, pretrain=pretrain)


def fit_many(archs: Sequence[dict], xs_train: Sequence[np.ndarray], ys_train: Sequence[np.ndarray],
             xs_val: Sequence[np.ndarray], ys_val: Sequence[np.ndarray], cfg: dict, seeds: Sequence[int],
             progress: bool = True, desc: str = "ensemble", select: str = "best_val") -> list[TrainResult]:
    """:func:`fit` for K members at once (:mod:`biospike.models.ensemble`): member k gets what
    ``fit(archs[k], xs_train[k], ys_train[k], xs_val[k], ys_val[k], cfg, seeds[k])`` gives, to float
    tolerance, with its own initialisation, data order, class weights, Adam state, early stopping
    and restored best epoch. Members that cannot be stacked (e.g. recurrent SNNs) train one by one."""
    from biospike.models.ensemble import MaskedAdam, StackedNetwork, stack_groups, stackable

    if float(train_settings(cfg)["adversarial"]["weight"]) > 0:
        raise BiospikeError("adversarial regularisation trains one adversary per model: members train one by one (fit)")

    cfg = train_settings(cfg)
    _check_select(select)
    if cfg["learning"] == "stdp":  # the unsupervised phase runs per model
        return [fit(a, xt, yt, xv, yv, cfg, s, progress=progress, select=select)
                for a, xt, yt, xv, yv, s in zip(archs, xs_train, ys_train, xs_val, ys_val, seeds, strict=True)]
    n_members = len(archs)
    if not n_members == len(xs_train) == len(ys_train) == len(xs_val) == len(ys_val) == len(seeds):
        raise BiospikeError("fit_many: one architecture, training set, validation set and seed per member")
    device = resolve_device(cfg["device"])
    start_s = time.perf_counter()
    xs_train = [np.asarray(x) for x in xs_train]
    ys_train = [np.asarray(y, dtype=np.int64) for y in ys_train]
    xs_val = [np.asarray(x) for x in xs_val]
    ys_val = [np.asarray(y, dtype=np.int64) for y in ys_val]
    for k in range(n_members):
        n_classes = int(archs[k]["n_out"])
        if len(xs_train[k]) == 0:
            raise BiospikeError(f"member {k}: no training windows")
        if len(xs_train[k]) != len(ys_train[k]) or len(xs_val[k]) != len(ys_val[k]):
            raise BiospikeError(f"member {k}: x and y must have the same number of windows")
        if ys_train[k].min() < 0 or ys_train[k].max() >= n_classes:
            raise BiospikeError(f"member {k}: training labels outside 0..{n_classes - 1}")
    members = [init_model(archs[k], xs_train[k], seeds[k]) for k in range(n_members)]
    reason = stackable(members)
    if reason is not None:
        log.info("%s: training %d members one by one (%s)", desc, n_members, reason)
        return [fit(archs[k], xs_train[k], ys_train[k], xs_val[k], ys_val[k], cfg, seeds[k], progress=progress,
                    select=select) for k in range(n_members)]
    snn = is_spiking(members[0])
    net = StackedNetwork(members).to(device)
    dt_s = float(archs[0]["dt_s"])
    batch_size = int(cfg["batch_size"])
    reg_weight = float(cfg["rate_reg"]["weight"]) if snn else 0.0
    target_rate = float(cfg["rate_reg"]["target_hz"]) * dt_s
    if reg_weight > 0 and not 0 < target_rate < 1:
        raise BiospikeError(f"train.rate_reg.target_hz x dt must be in (0, 1) spikes per step, got {target_rate:g}")
    rngs = [np.random.default_rng(derive_seed(seeds[k], "batches")) for k in range(n_members)]
    criteria, sample_ps = [], []
    for k in range(n_members):
        weights = class_weights(ys_train[k], int(archs[k]["n_out"]))
        loss_weight = (torch.as_tensor(weights, dtype=torch.float32, device=device)
                       if cfg["class_weighting"] == "balanced" else None)
        criteria.append(nn.CrossEntropyLoss(weight=loss_weight))
        sample_ps.append(weights[ys_train[k]] / weights[ys_train[k]].sum() if cfg["class_weighting"] == "sampler" else None)
    optimizer = MaskedAdam(list(net.parameters()), n_members, lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"]))
    x_train_t = [torch.as_tensor(x) for x in xs_train]
    n_steps_t = int(xs_train[0].shape[1])
    y_train_t = [torch.as_tensor(y) for y in ys_train]
    histories: list[list[dict]] = [[] for _ in range(n_members)]
    best = [{"epoch": 0, "score": (-math.inf, -math.inf), "state": net.member_state(k)} for k in range(n_members)]
    since_best = [0] * n_members
    running = [True] * n_members
    stopped_early = [False] * n_members
    epochs = int(cfg["epochs"])
    from biospike.progress import progress as make_progress

    bar = make_progress(total=n_members * epochs, desc=f"{desc} ({n_members} members)") if progress else None
    for epoch in range(1, epochs + 1):
        active = [k for k in range(n_members) if running[k]]
        if not active:
            break
        epoch_start_s = time.perf_counter()
        net.train()
        orders = {}
        for k in active:
            n = len(xs_train[k])
            orders[k] = (rngs[k].permutation(n) if sample_ps[k] is None
                         else rngs[k].choice(n, size=n, replace=True, p=sample_ps[k]))
        loss_sum = dict.fromkeys(active, 0.0)
        n_seen = dict.fromkeys(active, 0)
        spike_sums: dict[int, list[float]] = {k: [] for k in active}
        n_steps = max(math.ceil(len(orders[k]) / batch_size) for k in active)
        for step in range(n_steps):
            lo = step * batch_size
            stepping = [k for k in active if lo < len(orders[k])]
            idx = {k: torch.as_tensor(orders[k][lo:lo + batch_size]) for k in stepping}
            total = None
            for group in stack_groups(stepping, [len(idx[k]) for k in stepping], n_steps_t, net.width):
                xb = [x_train_t[k][idx[k]].to(device=device, dtype=torch.float32) for k in group]
                volts, hidden = net.forward_members(group, xb)
                for i, k in enumerate(group):
                    loss = criteria[k](volts[i].mean(dim=1), y_train_t[k][idx[k]].to(device))
                    if reg_weight > 0:
                        loss = loss + reg_weight * _rate_penalty(hidden[i], target_rate)
                    total = loss if total is None else total + loss
                    loss_sum[k] += float(loss.detach()) * len(idx[k])
                    n_seen[k] += len(idx[k])
                    if snn:
                        rates = [float(h.detach().mean()) * len(idx[k]) for h in hidden[i]]
                        spike_sums[k] = [a + b for a, b in zip(spike_sums[k], rates, strict=True)] if spike_sums[k] else rates
            optimizer.zero_grad()
            total.backward()
            optimizer.step(stepping)
        val_logits = _member_logits(net, active, [xs_val[k] for k in active], device)
        epoch_time_s = time.perf_counter() - epoch_start_s
        for k, logits in zip(active, val_logits, strict=True):
            row: dict[str, Any] = {"epoch": epoch, "train_loss": loss_sum[k] / n_seen[k]}
            y_val = ys_val[k]
            if len(y_val):
                val_loss = float(criteria[k](torch.as_tensor(logits, device=device), torch.as_tensor(y_val, device=device)))
                val_bacc = balanced_accuracy(y_val, logits.argmax(axis=1))
                row |= {"val_loss": val_loss, "val_balanced_accuracy": val_bacc,
                        "val_accuracy": float(np.mean(logits.argmax(axis=1) == y_val))}
                score = (round(val_bacc, 12), -val_loss) if select == "best_val" else (float(epoch), 0.0)
            else:
                row |= {"val_loss": float("nan"), "val_balanced_accuracy": float("nan"), "val_accuracy": float("nan")}
                score = (float(epoch), 0.0)
            row["lr"] = float(cfg["lr"])
            row["epoch_time_s"] = epoch_time_s / len(active)  # the stack's epoch, shared among its members
            for layer, spikes_total in enumerate(spike_sums[k]):
                row[f"rate_hidden{layer}_hz"] = spikes_total / n_seen[k] / dt_s
            histories[k].append(row)
            if score > best[k]["score"]:
                best[k] = {"epoch": epoch, "score": score, "state": net.member_state(k)}
                since_best[k] = 0
            else:
                since_best[k] += 1
            if select == "best_val" and len(y_val) and since_best[k] >= int(cfg["patience"]):
                running[k] = False
                stopped_early[k] = epoch < epochs
        if bar is not None:
            # a stopped member's remaining epochs are work not to be done: count them as done
            bar.update(len(active) + sum((epochs - epoch) for k in active if not running[k]))
            bar.set_postfix(active=sum(running), epoch=epoch)
    if bar is not None:
        bar.close()
    wall_s = time.perf_counter() - start_s
    results = []
    for k in range(n_members):
        net.load_member_state(k, best[k]["state"])
        model = net.member(k).to(device)
        results.append(TrainResult(model=model, history=histories[k], best_epoch=best[k]["epoch"],
                                   epochs_run=len(histories[k]), stopped_early=stopped_early[k],
                                   wall_time_s=wall_s / n_members))
    return results


def _member_logits(net: Any, members: Sequence[int], xs: Sequence[np.ndarray], device: torch.device,
                   batch_size: int = 256) -> list[np.ndarray]:
    """Eval-mode logits of each member on its own windows, in batches of ``batch_size`` per member
    (as :func:`biospike.models.predict_logits` batches a lone network)."""
    net.eval()
    out: list[list[np.ndarray]] = [[] for _ in members]
    longest = max((len(x) for x in xs), default=0)
    from biospike.models.ensemble import stack_groups

    steps = int(xs[0].shape[1]) if len(xs) else 0
    with torch.no_grad():
        for lo in range(0, longest, batch_size):
            pos = [i for i, x in enumerate(xs) if lo < len(x)]
            for group in stack_groups(pos, [min(batch_size, len(xs[i]) - lo) for i in pos], steps, net.width):
                xb = [torch.as_tensor(np.asarray(xs[i][lo:lo + batch_size]), dtype=torch.float32).to(device) for i in group]
                volts, _ = net.forward_members([members[i] for i in group], xb)
                for i, v in zip(group, volts, strict=True):
                    out[i].append(v.mean(dim=1).float().cpu().numpy())
    net.train()
    n_out = int(net.archs[0]["n_out"])
    return [np.concatenate(o).astype(np.float32) if o else np.zeros((0, n_out), dtype=np.float32) for o in out]


def _epoch_bar(epochs: int, progress: bool) -> Any:
    """A tqdm bar on a terminal; None otherwise (then each epoch is one log line)."""
    if not progress:
        return None
    from biospike.progress import progress as make_progress
    from biospike.progress import progress_mode

    if progress_mode(sys.stderr) != "tty":
        return None
    return make_progress(total=epochs, desc="train", leave=False)


def _report_epoch(bar: Any, row: Mapping[str, Any], best_epoch: int, elapsed_s: float = 0.0, epochs: int = 0) -> None:
    """One epoch on the terminal bar, or one log line with the time so far and the time left if
    every remaining epoch runs (early stopping may end sooner)."""
    from biospike.progress import format_duration

    rates = " ".join(f"{k[5:]}={v:.1f}" for k, v in row.items() if k.startswith("rate_"))
    left = elapsed_s / row["epoch"] * max(0, epochs - row["epoch"]) if row["epoch"] else 0.0
    timing = f"[{row['epoch']}/{epochs}, {format_duration(elapsed_s)} elapsed, at most ~{format_duration(left)} left]" \
        if epochs else ""
    text = (f"epoch {row['epoch']}: train_loss={row['train_loss']:.4f} val_loss={row['val_loss']:.4f} "
            f"val_bacc={row['val_balanced_accuracy']:.4f} best={best_epoch} {rates} {timing}").rstrip()
    if bar is not None:
        bar.set_postfix(loss=row["train_loss"], val_bacc=row["val_balanced_accuracy"])
        bar.update(1)
    else:
        log.info(text)


def fit_on(kind: str, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
           seed: int, progress: bool = False, select: str = "best_val") -> tuple[nn.Module, dict]:
    """Train a ``kind`` network on the windows ``train_idx`` of a spikes file, early-stopping on
    ``val_idx`` (the attacks' reference models and target replicas); returns (model, info)."""
    labels = np.asarray(spikes.labels, dtype=np.int64)
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("fewer than two classes among the training windows")
    arch = arch_for(kind, spikes, settings, index=train_idx)
    x = spikes.spikes
    result = fit(arch, x[train_idx], labels[train_idx], x[val_idx], labels[val_idx], kind_settings(kind, settings), seed,
                 progress=progress, select=select)
    if result.pretrain is not None:  # STDP set the readout gain on its learned features
        arch = {**arch, "output_scale": float(result.model.arch.output_scale)}
    info = {"arch": arch, "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
            "history": result.history, "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
            "wall_time_s": result.wall_time_s}
    return result.model, info


def fit_many_on(kind: str, spikes: Any, train_idxs: Sequence[np.ndarray], val_idxs: Sequence[np.ndarray],
                settings: Mapping[str, Any], seeds: Sequence[int], progress: bool = False,
                desc: str = "ensemble", select: str = "best_val") -> list[tuple[nn.Module, dict]]:
    """:func:`fit_on` for K members trained together (:func:`fit_many`); [(model, info), ...]."""
    labels = np.asarray(spikes.labels, dtype=np.int64)
    x = spikes.spikes
    archs = []
    for train_idx in train_idxs:
        if len(np.unique(labels[train_idx])) < 2:
            raise BiospikeError("fewer than two classes among the training windows")
        archs.append(arch_for(kind, spikes, settings, index=train_idx))
    results = fit_many(archs, [x[i] for i in train_idxs], [labels[i] for i in train_idxs], [x[i] for i in val_idxs],
                       [labels[i] for i in val_idxs], kind_settings(kind, settings), seeds, progress=progress, desc=desc,
                       select=select)
    return [(r.model, {"arch": a, "best_epoch": r.best_epoch, "epochs_run": r.epochs_run, "history": r.history,
                       "n_train": int(len(ti)), "n_val": int(len(vi)), "wall_time_s": r.wall_time_s})
            for r, a, ti, vi in zip(results, archs, train_idxs, val_idxs, strict=True)]


def converged_settings(train_cfg: Mapping[str, Any], epochs: float) -> dict[str, Any]:
    """The ``train`` settings of a converged-training variant: ``epochs`` epochs, all of them."""
    if float(epochs) < 1 or float(epochs) != int(epochs):
        raise BiospikeError(f"converged training needs a whole number of epochs >= 1, got {epochs:g}")
    return {**train_settings(train_cfg), "epochs": int(epochs)}


def fit_converged(target: Any, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
                  seed: int, public_idx: np.ndarray | None = None, progress: bool = False) -> tuple[nn.Module, dict]:  # noqa: ARG001
    """One reference model of a converged-training target (lever ``converged``): the base kind
    trained ``target.value`` epochs, the last one kept."""
    cfg = converged_settings(settings["train"], target.value)
    return fit_on(target.kind.name, spikes, train_idx, val_idx, cfg, seed, progress=progress, select="last")


def fit_many_converged(target: Any, spikes: Any, train_idxs: Sequence[np.ndarray], val_idxs: Sequence[np.ndarray],
                       settings: Mapping[str, Any], seeds: Sequence[int], progress: bool = False,
                       desc: str = "ensemble") -> list[tuple[nn.Module, dict]]:
    """:func:`fit_converged` for K reference models at once (:func:`fit_many`)."""
    cfg = converged_settings(settings["train"], target.value)
    return fit_many_on(target.kind.name, spikes, train_idxs, val_idxs, cfg, seeds, progress=progress, desc=desc,
                       select="last")


def converged_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The train stage of a converged-training target (``ctx.names["target"]``, e.g. ``convsnn_ep60``):
    :func:`train_stage` with the target's epochs, no early stopping, the last epoch kept."""
    from biospike.targets import parse

    target = parse(ctx.name("target"))
    return train_stage(ctx, inputs, outdir, progress=progress, target=target.name,
                       train_cfg=converged_settings(ctx["train"], target.value), select="last")


def adversarial_settings(train_cfg: Mapping[str, Any], weight: float) -> dict[str, Any]:
    """The ``train`` settings of an adversarially regularised variant: ``train.adversarial`` with
    the variant's weight lambda."""
    cfg = train_settings(train_cfg)
    if not float(weight) > 0:
        raise BiospikeError(f"adversarial regularisation needs a weight > 0, got {weight:g}")
    return {**cfg, "adversarial": {**cfg["adversarial"], "weight": float(weight)}}


def fit_adversarial(target: Any, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
                    seed: int, public_idx: np.ndarray | None = None, progress: bool = False) -> tuple[nn.Module, dict]:  # noqa: ARG001
    """One reference model of an adversarially regularised target (lever ``advreg``): the base kind
    trained with the target's lambda, its reference windows the reference model's validation windows."""
    return fit_on(target.kind.name, spikes, train_idx, val_idx, adversarial_settings(settings["train"], target.value),
                  seed, progress=progress)


def adversarial_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The train stage of an adversarially regularised target (``ctx.names["target"]``, e.g.
    ``advsnn_l1``): :func:`train_stage` with ``train.adversarial.weight`` = the target's lambda."""
    from biospike.targets import parse

    target = parse(ctx.name("target"))
    return train_stage(ctx, inputs, outdir, progress=progress, target=target.name,
                       train_cfg=adversarial_settings(ctx["train"], target.value))


def load_base(inputs: Mapping[str, Any], kind: str, target: str, data: StageData) -> tuple[nn.Module, dict, str]:
    """The trained ``kind`` model that target ``target`` starts from (``inputs["from"][kind]``):
    (model, meta, path), after checking it was trained on ``data``'s dataset, encoding and
    training windows (a stale checkpoint is an error naming the file)."""
    from biospike.models import load_checkpoint

    path = (inputs.get("from") or {}).get(kind)
    if path is None:
        raise BiospikeError(f"{target} needs the trained {kind} (--from {kind}=R/{{dataset}}/{{encoding}}/{kind}/model.pt)")
    model, meta = load_checkpoint(path)
    if meta.get("encoding") not in (None, data.encoding) or meta.get("dataset") not in (None, data.dataset):
        raise BiospikeError(f"the {kind} checkpoint was trained on {meta.get('dataset')}/{meta.get('encoding')}, "
                            f"not {data.dataset}/{data.encoding}", path)
    trained = np.sort(np.asarray(meta.get("train_indices", []), dtype=np.int64))
    if not np.array_equal(trained, np.sort(data.train_idx)):
        raise BiospikeError(f"the {kind} checkpoint trained on other windows than this dataset's training split "
                            "(stale checkpoint or changed train.max_train_windows)", path)
    return model, meta, str(path)


def defended_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:  # noqa: ARG001
    """The "train" stage of a query-time defense variant (``ctx.names["target"]``): the trained
    base model (``inputs["from"][kind]``) with the defense recorded in its checkpoint, evaluated
    through the defense like any target (utility with CIs, firing under the defense)."""
    from biospike.defenses import defended, defense_spec
    from biospike.targets import parse

    start_s = time.perf_counter()
    target = parse(ctx.name("target"))
    kind = target.kind.name
    spec = defense_spec(target, ctx["defense"])
    cfg = dict(ctx["train"])
    data = stage_data(ctx, inputs, target.name, cfg)
    model, meta, base_path = load_base(inputs, kind, target.name, data)
    wrapped = defended(model, spec, ctx.derive_seed("defense", data.dataset, data.encoding, target.name))
    log.info("%s: the trained %s answering through %s", target.name, kind, spec)
    result = TrainResult(model=wrapped, history=list(meta.get("history", [])), best_epoch=int(meta.get("best_epoch", 0)),
                         epochs_run=int(meta.get("epochs_run", 0)))
    return write_trained(data, target.name, kind, cfg, result, outdir, start_s,
                         extra_metrics={"defense": spec | {"base": kind, "note": "utility measured through the defense "
                                                           "(one stochastic pass per window); curve.csv is the base "
                                                           "model's training curve"}},
                         extra_inputs=[str(base_path)], extra_meta={"defense": spec, "base": kind})


# --------------------------------------------------------------------------------------------
# Inference and firing
# --------------------------------------------------------------------------------------------


def firing_rates(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> list[float]:
    """Mean spikes per neuron per step of each hidden layer over windows x (SNN only)."""
    return firing_stats(model, x, batch_size)["rates"]


def firing_stats(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> dict[str, Any]:
    """Per hidden layer: mean rate, fraction of neurons that never fire; spikes per inference."""
    plain = getattr(model, "_module", model)
    # a model answering through a query-time defense fires as it does under the defense
    net = model if getattr(model, "defense", None) is not None else plain
    device = device_of(plain)
    was_training = plain.training
    plain.eval()
    n = len(x)
    sums: list[torch.Tensor] = []
    input_spikes = 0.0
    with torch.no_grad():
        for xb in batches(x, batch_size):
            input_spikes += float(xb.sum())
            _, hidden = net.forward_trace(xb.to(device))
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
# Stage: files in, files out
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StageData:
    """What every train stage reads before it fits: the spikes file, names, seed and the splits'
    window indices (the training windows after ``train.max_train_windows``)."""

    spikes: Any
    spikes_path: str
    windows_path: str | None
    dataset: str
    encoding: str
    seed: int
    labels: np.ndarray
    train_idx: np.ndarray
    train_all: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray


def stage_data(ctx: Any, inputs: Mapping[str, Any], name: str, cfg: Mapping[str, Any]) -> StageData:
    """Read ``inputs["spikes"]`` (checked against ``inputs["windows"]`` when given) and choose the
    windows target ``name`` trains, validates and is tested on; its seed from the root seed."""
    from biospike.store import read_spikes
    from biospike.trainset import names_and_seed, require_splits, split_indices, training_windows

    spikes_path, windows_path = inputs["spikes"], inputs.get("windows")
    spikes = read_spikes(spikes_path)
    dataset, encoding, seed = names_and_seed(ctx, spikes, name)
    require_splits(spikes, spikes_path)
    labels = np.asarray(spikes.labels, dtype=np.int64)
    train_idx, train_all = training_windows(spikes, cfg, ctx.root_seed(), dataset)
    if windows_path is not None:
        _check_windows_match(windows_path, spikes)
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("the training split holds fewer than two classes", spikes_path)
    return StageData(spikes, str(spikes_path), None if windows_path is None else str(windows_path), dataset, encoding,
                     seed, labels, train_idx, train_all, split_indices(spikes, "val"), split_indices(spikes, "test"))


def train_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True,
                target: str | None = None, train_cfg: Mapping[str, Any] | None = None,
                select: str = "best_val") -> dict[str, Any]:
    """Train the network ``ctx.names["model"]`` (snn | ann) on ``inputs["spikes"]`` (checked
    against ``inputs["windows"]`` when given); write model.pt, metrics.json, curve.csv.
    ``target`` (a lever variant's name; default the kind) names the outputs and seeds the model,
    ``train_cfg`` replaces the ``train`` settings, ``select`` as in :func:`fit`."""
    start_s = time.perf_counter()
    kind = ctx.name("model")
    name = target or kind
    cfg = dict(train_cfg) if train_cfg is not None else ctx["train"]
    data = stage_data(ctx, inputs, name, cfg)
    arch = arch_for(kind, data.spikes, cfg, index=data.train_idx)
    x, labels = data.spikes.spikes, data.labels
    log.info("train %s on %s/%s: %d train (of %d), %d val, %d test windows, T=%d, C=%d, input_scale=%.4g, seed=%d",
             name, data.dataset, data.encoding, len(data.train_idx), len(data.train_all), len(data.val_idx),
             len(data.test_idx), x.shape[1], x.shape[2], arch["input_scale"], data.seed)
    # the recipe settings the kind fixes (the stdp kind's learning) reach the trainer, not only the arch
    result = fit(arch, x[data.train_idx], labels[data.train_idx], x[data.val_idx], labels[data.val_idx],
                 kind_settings(kind, cfg),
                 data.seed, progress=progress, select=select)
    return write_trained(data, name, kind, kind_settings(kind, cfg), result, outdir, start_s)


def write_trained(data: StageData, name: str, kind: str, cfg: Mapping[str, Any], result: TrainResult,
                  outdir: str | Path, start_s: float, extra_metrics: Mapping[str, Any] | None = None,
                  extra_inputs: Sequence[str] = (), extra_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate ``result.model`` on every split (balanced accuracy with bootstrap CIs, firing of a
    spiking model) and write the target's model.pt, metrics.json (``extra_metrics`` merged in),
    curve.csv and per_subject.csv; returns the metrics. ``extra_inputs`` are files besides the
    spikes and windows the model was made from (provenance); ``extra_meta`` goes into the
    checkpoint's meta (a query-time defense: ``defense``)."""
    from biospike.models import count_parameters, save_checkpoint
    from biospike.results import metrics_record, write_target
    from biospike.store import provenance

    spikes, seed, x, labels = data.spikes, data.seed, data.spikes.spikes, data.labels
    model = result.model
    class_names = list(spikes.class_names)
    splits = {split: evaluate(predict_logits(model, x[idx]), labels[idx], spikes.subject[idx], class_names, index=idx,
                              n_bootstrap=0 if split == "train" else BOOTSTRAP_N,
                              seed=derive_seed(seed, "utility", split))
              for split, idx in (("train", data.train_idx), ("val", data.val_idx), ("test", data.test_idx))}
    eval_split, eval_idx = ("test", data.test_idx) if len(data.test_idx) else ("val", data.val_idx)
    if is_spiking(model):
        firing = firing_summary(firing_stats(model, x[eval_idx]), float(spikes.dt_s), eval_split)
        firing["init_mean_rate_per_step"] = result.init_rates
        spikes_per_inference, errors = firing["spikes_per_inference"], firing["errors"]
    else:
        firing, errors = None, []
        spikes_per_inference = {"input": float(x[eval_idx].sum()) / max(1, len(eval_idx)), "hidden": None, "total": None}
    metrics = metrics_record(
        model=name, dataset=data.dataset, encoding=data.encoding, class_names=class_names, splits=splits,
        n_windows={"train": len(data.train_idx), "train_available": len(data.train_all), "val": len(data.val_idx),
                   "test": len(data.test_idx)},
        seed=seed, history=result.history, best_epoch=result.best_epoch, stopped_early=result.stopped_early,
        arch=dataclasses.asdict(getattr(model, "_module", model).arch), n_parameters=count_parameters(model),
        firing=firing, spikes_per_inference=spikes_per_inference, errors=errors,
        time_steps=int(x.shape[1]), dt_s=float(spikes.dt_s), **dict(extra_metrics or {}))
    if result.pretrain is not None:
        metrics["stdp"] = result.pretrain
    meta = {
        "class_names": class_names, "dt_s": float(spikes.dt_s), "channel_names": list(spikes.channel_names),
        "dataset": data.dataset, "encoding": data.encoding, "model": name, "kind": kind, "seed": seed,
        "train_indices": data.train_idx.tolist(), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
        "history": result.history, "encoder": spikes.encoder, "source": spikes.source, **dict(extra_meta or {}),
    }
    inputs_used = [data.spikes_path] + ([data.windows_path] if data.windows_path is not None else []) + list(extra_inputs)
    metrics["provenance"] = provenance({"train": dict(cfg), "model": name, "dataset": data.dataset,
                                        "encoding": data.encoding}, inputs=inputs_used, seed=seed)
    metrics["wall_time_s"] = time.perf_counter() - start_s
    write_target(outdir, metrics, result.history, lambda d: save_checkpoint(d / "model.pt", model, meta))
    return metrics


def _check_windows_match(windows_path: str | Path, spikes: Any) -> None:
    from biospike.store import open_h5

    with open_h5(windows_path, required=("labels",)) as fh:
        labels = fh["labels"][()]
    if len(labels) != len(spikes.labels) or not np.array_equal(labels, spikes.labels):
        raise BiospikeError("windows.h5 labels do not match spikes.h5 (stale or foreign file)", windows_path)


def cli(argv: list[str], prog: str) -> int:
    """``biospike train``: parse ``argv``, train one model kind with its registered trainer and write
    its outputs; with ``train.fail_on_silent`` an error if it reports any (a silent or saturated
    layer), after the outputs are written; returns the exit code."""
    from biospike.cliutil import load_context, setup_logging, stage_parser
    from biospike.config import seed_everything
    from biospike.registry import resolve

    parser = stage_parser(prog, "train a model of one registered kind (snn, alif, dynsnn, ann, converted, classical, ...)",
                          sections=("train", "defense"),
                          names=("dataset", "encoding"))
    parser.add_argument("--input", help="spikes.h5 (kinds that read spikes)")
    parser.add_argument("--windows", help="windows.h5 (kinds that read the raw windows; checked against spikes.h5 otherwise)")
    parser.add_argument("--model", required=True,
                        help=f"model kind ({', '.join(MODEL_KINDS.names())}) or a trained variant of one "
                             "(e.g. convsnn_ep60: trained 60 epochs without early stopping)")
    parser.add_argument("--from", dest="from_models", action="append", default=[], metavar="KIND=PATH",
                        help="a trained model the kind starts from (the converted kind: ann=R/.../ann/model.pt)")
    parser.add_argument("--outdir", required=True, help="R/{dataset}/{encoding}/{model}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    args = parser.parse_args(argv)
    setup_logging()
    from biospike.targets import parse

    target = parse(args.model)
    kind = target.kind
    trainer = kind.trainer
    if target.lever is not None:
        if target.lever.trainer is None:
            raise BiospikeError(f"{args.model} is made by its own stage (lever {target.lever.name!r}), not biospike train")
        trainer = target.lever.trainer
    ctx = load_context(args)
    ctx = dataclasses.replace(ctx, names={**ctx.names, "model": kind.name, "target": target.name})
    inputs = {"spikes": args.input, "windows": args.windows, "from": _from_models(args.from_models)}
    starts_from = kind.from_kinds + ((kind.name,) if target.query_time else ())
    missing = [k for k in starts_from if k not in inputs["from"]]
    if missing:
        raise BiospikeError(f"--model {args.model} starts from trained {', '.join(missing)}: "
                            f"pass --from {missing[0]}=R/{{dataset}}/{{encoding}}/{missing[0]}/model.pt")
    if inputs[kind.input] is None:
        raise BiospikeError(f"--{'input' if kind.input == 'spikes' else 'windows'} ({kind.input}) is required for --model {args.model}")
    seed_everything(ctx.derive_seed("train", ctx.names.get("dataset", ""), ctx.names.get("encoding", ""), args.model)
                    if ctx.names.get("dataset") and ctx.names.get("encoding") else ctx.root_seed(), args.threads)
    metrics = resolve(trainer)(ctx, inputs, Path(args.outdir), progress=not args.no_progress)
    _log_summary(metrics)
    if metrics["errors"] and ctx["train"]["fail_on_silent"]:
        problems = "; ".join(f"{e['message']} (hint: {e['hint']})" for e in metrics["errors"])
        raise BiospikeError(f"{problems}; outputs were written for inspection; "
                            f"set train.fail_on_silent: false to accept", Path(args.outdir) / "metrics.json")
    return 0


def _from_models(pairs: Sequence[str]) -> dict[str, str]:
    """``["ann=path", ...]`` -> ``{"ann": "path"}``; a malformed pair or unknown kind is an error."""
    out = {}
    for pair in pairs:
        kind, sep, path = pair.partition("=")
        if not sep or not path or kind not in MODEL_KINDS:
            raise BiospikeError(f"--from expects KIND=PATH with a registered kind ({', '.join(MODEL_KINDS.names())}), "
                                f"got {pair!r}")
        out[kind] = path
    return out


def _log_summary(metrics: Mapping[str, Any]) -> None:
    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    log.info("%s %s/%s: val balanced accuracy %s, test balanced accuracy %s, test macro-F1 %s, %.1f s",
             metrics["model"], metrics["dataset"], metrics["encoding"], fmt(metrics["val"]["balanced_accuracy"]),
             fmt(metrics["test"]["balanced_accuracy"]), fmt(metrics["test"]["macro_f1"]), metrics["wall_time_s"])
    for err in metrics["errors"]:
        log.error("%s -- hint: %s", err["message"], err["hint"])
