"""Unsupervised spiking features by spike-timing-dependent plasticity: the model kind ``stdp``.

The hidden layers of an :class:`~biospike.models.snn.SNN` learn, layer by layer and without
labels, by pair-based STDP with nearest-neighbour-free (all-to-all) traces (Bi & Poo 1998;
Song, Miller & Abbott 2000; the trace form of Morrison, Diesmann & Gerstner 2008). Three
mechanisms keep the features from collapsing onto one pattern, as in Diehl & Cook 2015
("Unsupervised learning of digit recognition using spike-timing-dependent plasticity"):

- **lateral inhibition**: every hidden neuron inhibits the others of its layer through the SNN's
  recurrent weights, ``W_rec = -inhibition (1 - I) / (H - 1)`` (a soft winner-take-all; ``inhibition``
  is what a neuron loses when all the others spike at once), kept at inference;
- **weight normalisation**: weights stay non-negative and each neuron's incoming weights keep a
  fixed L1 norm, so potentiating one input depresses the others (competition between inputs);
- **homeostasis**: each neuron's bias moves its firing rate towards ``target_rate_hz`` (an
  adaptive-threshold equivalent that NIR and the edge targets can express: a bias current).

Then the hidden layers are frozen, the readout gain is set on the learned features, the readout
weights start at zero, and only the readout (the output projection into the LI
readout) is trained with labels by the usual trainer (:func:`biospike.train.fit`), so the result
is an ordinary recurrent SNN checkpoint that is attacked, exported to NIR and simulated like any
other. The update rule, per batch of B windows of T steps and per layer::

    x_pre(t)  = exp(-dt/tau_pre)  x_pre(t-1)  + s_pre(t)          (pre-synaptic trace)
    x_post(t) = exp(-dt/tau_post) x_post(t-1) + s_post(t)         (post-synaptic trace)
    dW = a_plus  sum_t s_post(t) x_pre(t)^T                          (pre before or with post: LTP)
       - a_minus sum_t x_post(t-1) s_pre(t)^T                        (post before pre: LTD)
    W <- W + lr ||W_i||_1 dW_i / ||dW_i||_1   (row i; a fixed fraction of each row's norm per batch)
    W <- max(W, 0), rows rescaled to their L1 norm

Pre-synaptic spikes in the step of the post spike count as causal because the current jumps
before the membrane update in this network (docs/hardware.md, the NIR mapping).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from biospike.errors import BiospikeError

__all__ = ["exp_trace", "feature_similarity", "freeze_hidden", "lateral_inhibition", "normalise_rows", "stdp_delta",
           "stdp_pretrain"]

log = logging.getLogger("biospike.stdp")


def exp_trace(spikes: torch.Tensor, decay: float) -> torch.Tensor:
    """(B, T, N) spikes -> the (B, T, N) trace ``tr_t = decay tr_{t-1} + s_t`` (tr_{-1} = 0)."""
    if not 0.0 <= decay < 1.0:
        raise BiospikeError(f"trace decay must be in [0, 1), got {decay}")
    out = torch.empty_like(spikes)
    tr = torch.zeros_like(spikes[:, 0])
    for t in range(spikes.shape[1]):
        tr = decay * tr + spikes[:, t]
        out[:, t] = tr
    return out


def stdp_delta(pre: torch.Tensor, post: torch.Tensor, pre_trace: torch.Tensor, post_trace: torch.Tensor,
               a_plus: float, a_minus: float) -> torch.Tensor:
    """Pair-based STDP weight change (H, C) summed over batch and time for pre spikes (B, T, C),
    post spikes (B, T, H) and their traces: LTP ``a_plus s_post(t) x_pre(t)``, LTD ``a_minus
    x_post(t-1) s_pre(t)`` (a post spike in the same step as a pre spike is not depression)."""
    ltp = torch.einsum("bth,btc->hc", post, pre_trace)
    post_before = torch.cat([torch.zeros_like(post_trace[:, :1]), post_trace[:, :-1]], dim=1)
    ltd = torch.einsum("bth,btc->hc", post_before, pre)
    return a_plus * ltp - a_minus * ltd


def normalise_rows(weight: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """Weights clipped at 0 with each row rescaled to L1 norm ``norms`` (H,); an all-zero row gets
    uniform weights (a neuron that lost every input would otherwise be dead for good)."""
    w = weight.clamp(min=0.0)
    sums = w.sum(dim=1, keepdim=True)
    uniform = torch.full_like(w, 1.0 / w.shape[1])
    w = torch.where(sums > 0, w / sums.clamp(min=1e-30), uniform)
    return w * norms[:, None]


def lateral_inhibition(width: int, strength: float) -> torch.Tensor:
    """(H, H) recurrent weights: each neuron inhibits every other one, not itself, by
    ``strength / (H - 1)``, so that ``strength`` is the current a neuron loses when all the others
    spike in one step, whatever the width (a per-pair strength would grow with H)."""
    if strength < 0:
        raise BiospikeError(f"train.stdp.inhibition must be >= 0, got {strength}")
    return -float(strength) / max(1, width - 1) * (1.0 - torch.eye(width))


def feature_similarity(weight: torch.Tensor) -> float:
    """Mean cosine similarity between the rows of (H, C) weights over distinct pairs: 1 when
    every neuron learned the same feature (collapse)."""
    w = weight / weight.norm(dim=1, keepdim=True).clamp(min=1e-30)
    sim = w @ w.T
    n = w.shape[0]
    return float((sim.sum() - sim.diagonal().sum()) / max(1, n * (n - 1)))


def freeze_hidden(model: Any) -> None:
    """No gradient for the hidden layers' weights (fc, rec): the readout alone trains after STDP."""
    for module in [*model.fc, *(model.rec or [])]:
        for p in module.parameters():
            p.requires_grad_(False)


def stdp_pretrain(model: Any, x_train: np.ndarray, cfg: Mapping[str, Any], seed: int,
                  progress: bool = False) -> dict[str, Any]:
    """Train the hidden layers of ``model`` (a recurrent LIF :class:`SNN`) by STDP on the spike
    windows ``x_train`` (N, T, C), layer by layer, then freeze them (:func:`freeze_hidden`).
    ``cfg`` is ``train.stdp``. Returns a summary per layer (rates, feature similarity before and
    after, relative weight change) for metrics.json."""
    from biospike.progress import progress as make_progress

    arch = model.arch
    if model.rec is None or arch.neuron != "lif" or arch.trainable:
        raise BiospikeError("STDP features need a recurrent LIF network (its recurrent weights hold the lateral "
                            "inhibition) without learned constants: train.recurrent true, train.neuron lif, "
                            "train.trainable []")
    if not arch.bias:
        raise BiospikeError("STDP homeostasis moves each neuron's bias: the network needs biases (arch bias true)")
    x_train = np.asarray(x_train)
    rng = np.random.default_rng(seed)
    n_use = min(len(x_train), int(cfg["max_windows"]))
    use = np.sort(rng.choice(len(x_train), size=n_use, replace=False))
    dt = float(arch.dt_s)
    decay_pre, decay_post = math.exp(-dt / float(cfg["tau_pre_s"])), math.exp(-dt / float(cfg["tau_post_s"]))
    target = float(cfg["target_rate_hz"]) * dt
    if not 0 < target < 1:
        raise BiospikeError(f"train.stdp.target_rate_hz x dt must be in (0, 1) spikes per step, got {target:g}")
    # a bias of v_th dt / tau_syn alone holds the current (and the membrane) at v_th
    bias_unit = float(arch.v_th) * dt / float(arch.tau_syn_s)
    lr, hlr = float(cfg["lr"]), float(cfg["homeostasis_lr"])
    a_plus, a_minus = 1.0, float(cfg["a_minus_ratio"])
    summary: dict[str, Any] = {"layers": [], "windows": int(n_use), "epochs": int(cfg["epochs"])}
    start_s = time.perf_counter()
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    device = next(model.parameters()).device
    x_all = torch.as_tensor(x_train[use])
    batch_size = int(cfg["batch_size"])
    n_batches = len(arch.n_hidden) * int(cfg["epochs"]) * math.ceil(n_use / batch_size)
    bar = make_progress(total=n_batches, desc="stdp", leave=False) if progress else None
    with torch.no_grad():
        # every layer starts from non-negative random rows whose drive holds the current near
        # 1.5 v_th at the layer's mean input, and with the inhibition in place
        for layer in range(len(arch.n_hidden)):
            model.rec[layer].weight.copy_(lateral_inhibition(arch.n_hidden[layer], float(cfg["inhibition"])))
            model.fc[layer].bias.zero_()
        for layer, fc in enumerate(model.fc):
            _, hidden = model.forward_trace(x_all[: min(64, n_use)].to(device=device, dtype=torch.float32))
            pre_mean = (float(x_all.float().mean()) * float(arch.input_scale) if layer == 0
                        else float(hidden[layer - 1].mean()))
            norm = 1.5 * float(arch.v_th) * dt / (float(arch.tau_syn_s) * max(pre_mean, 1e-6))
            norms = torch.full((fc.out_features,), norm, device=device)
            fc.weight.copy_(normalise_rows(torch.rand(fc.weight.shape, generator=gen).to(device), norms))
            sim_before = feature_similarity(fc.weight)
            w_start = fc.weight.clone()
            rates: list[float] = []
            for epoch in range(int(cfg["epochs"])):
                rates = []  # the last epoch's, for the summary
                order = rng.permutation(n_use)
                for lo in range(0, n_use, batch_size):
                    xb = x_all[order[lo:lo + batch_size]].to(device=device, dtype=torch.float32)
                    _, hidden = model.forward_trace(xb)
                    pre = xb * float(arch.input_scale) if layer == 0 else hidden[layer - 1]
                    post = hidden[layer]
                    delta = stdp_delta(pre, post, exp_trace(pre, decay_pre), exp_trace(post, decay_post),
                                       a_plus, a_minus)
                    step = delta / delta.abs().sum(dim=1, keepdim=True).clamp(min=1e-30)
                    fc.weight.copy_(normalise_rows(fc.weight + lr * norms[:, None] * step, norms))
                    rate = post.mean(dim=(0, 1))
                    fc.bias.add_(hlr * bias_unit * (target - rate) / target)
                    rates.append(float(rate.mean()))
                    if bar is not None:
                        bar.update(1)
                log.info("stdp layer %d epoch %d/%d: mean rate %.3g spikes/step (target %.3g), feature "
                         "similarity %.3f", layer, epoch + 1, int(cfg["epochs"]), float(np.mean(rates)), target,
                         feature_similarity(fc.weight))
            summary["layers"].append({
                "layer": layer, "width": int(fc.out_features), "row_l1_norm": norm,
                "feature_similarity_before": sim_before, "feature_similarity_after": feature_similarity(fc.weight),
                "relative_weight_change": float((fc.weight - w_start).norm() / w_start.norm().clamp(min=1e-30)),
                "final_rate_hz": float(np.mean(rates)) / dt if rates else None,  # mean over the last epoch
                "silent_neurons": None})
        _, hidden = model.forward_trace(x_all[: min(256, n_use)].to(device=device, dtype=torch.float32))
        for row, h in zip(summary["layers"], hidden, strict=True):
            row["silent_neurons"] = int((h.sum(dim=(0, 1)) == 0).sum())
    if bar is not None:
        bar.close()
    # the readout gain was set on the random initial features; set it on the learned ones (the
    # readout's features at unit RMS, as for every SNN), else the logits start far too large
    model.calibrate_readout_(x_train[use])
    summary["output_scale"] = float(model.arch.output_scale)
    # the logits are linear in the readout weights over frozen features (a convex problem: no
    # symmetry to break), and random weights over features that share a large common mode start
    # every window at the same confident wrong answer: start the readout at zero (chance)
    with torch.no_grad():
        model.out.weight.zero_()
        if model.out.bias is not None:
            model.out.bias.zero_()
    freeze_hidden(model)
    summary["wall_time_s"] = time.perf_counter() - start_s
    return summary
