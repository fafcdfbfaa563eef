"""ANN-to-SNN conversion: the model kind ``converted``.

The trained ANN baseline (:class:`biospike.models.ann.ANN`: Linear -> leaky integrator -> ReLU per
hidden layer, leaky-integrator readout) becomes an :class:`biospike.models.snn.SNN` of the same
shape by data-based weight normalisation and threshold balancing (Diehl et al. 2015, "Fast-
classifying, high-accuracy spiking deep networks through weight and threshold balancing";
Rueckauer et al. 2017, "Conversion of continuous-valued deep networks to efficient event-driven
networks"). No weight is trained again. The result is an ordinary SNN checkpoint, so the attack,
NIR export, edge simulation and report treat it like the surrogate-trained SNN.

The mapping (exact for the linear parts; the spiking non-linearity approximates the ReLU, see the
limits below):

- the ANN's hidden filter ``h_t = d h_{t-1} + (1 - d) I_t`` (``d = exp(-dt / tau_mem)``) becomes
  the LIF's synaptic current: norse's step jumps the current by its input and decays it by
  ``1 - dt / tau_syn``, so ``tau_syn = dt / (1 - d)`` gives ``i_t = h_t / (1 - d)`` exactly;
- the ReLU becomes an integrate-and-fire membrane (``tau_mem`` of :data:`DEFAULT_TAU_MEM_S`, long
  against the windows, so the leak is small) with reset to zero (Diehl et al. 2015) and
  threshold 1: its firing rate in spikes per step approximates ``relu(h) / lambda`` where
  ``lambda`` is the layer's activation scale, the ``percentile``-th percentile of the ANN's positive
  activations on the training windows (Rueckauer et al. 2017; ``norm: max`` is Diehl's maximum);
- layer ``l``'s weights become ``W_l lambda_{l-1} g_l`` and its bias ``b_l g_l`` with
  ``g_l = (1 - d) tau_mem / (dt lambda_l)`` (the next layer sees spikes, ``a_{l-1} ~ lambda_{l-1} s``);
- the ANN's one-pole readout is the LI readout with ``readout_tau_syn = dt`` (no synaptic
  filter) and ``readout_tau_mem = dt / (1 - d_out)``, its weights ``W_out lambda_L``: the logits are
  the ANN's, so a membership attack sees outputs on the ANN's scale.

Limits of the approximation: a spike per step at most caps the rate at ``lambda``; the reset to
zero fires at ``1 / ceil(lambda / h)`` spikes per step instead of ``h / lambda``; and the membrane
keeps negative drive that the ReLU would cut, so a neuron pushed below zero starts late when its
drive turns positive (the long ``tau_mem`` forgets it slowly). The first two shrink with the
number of steps: :func:`substep_sweep` runs the same ANN converted at ``dt / k``, where one spike
per sub-step stands for ``lambda k`` of activity, on each input step held for ``k`` sub-steps
(T k steps), against the ANN. The deployed model runs at the encoding's step (k = 1) like every
other model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from biospike.errors import BiospikeError
from biospike.models import batches, predict_logits
from biospike.models.ann import ANN
from biospike.models.snn import SNN, SNNArch, spread_indices

__all__ = ["DEFAULT_TAU_MEM_S", "NORMS", "activation_scales", "conversion_settings", "convert_ann", "converted_stage",
           "fit_converted", "fit_many_converted", "substep_input", "substep_sweep"]

log = logging.getLogger("biospike.convert")

NORMS = ("percentile", "max")
# membrane time constant of the converted integrate-and-fire neurons (the schema's train.convert
# default): long against the windows, so a neuron keeps its charge between spikes
DEFAULT_TAU_MEM_S = 10.0


def conversion_settings(train_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``train.convert`` with the schema's defaults (norm, percentile, tau_mem_s, substeps, max_windows)."""
    from biospike.config import section_settings

    return dict(section_settings("train", train_cfg)["convert"])


def _plain_ann(model: torch.nn.Module) -> ANN:
    plain = getattr(model, "_module", model)
    if not isinstance(plain, ANN):
        raise BiospikeError(f"ANN-to-SNN conversion needs the ANN baseline, got {type(plain).__name__}")
    return plain


def activation_scales(ann: torch.nn.Module, x: np.ndarray, norm: str = "percentile", percentile: float = 99.9,
                      batch_size: int = 64) -> list[float]:
    """Per hidden layer, the activation scale ``lambda`` of data-based normalisation: the
    ``percentile``-th percentile (``norm: percentile``, Rueckauer et al. 2017) or the maximum
    (``norm: max``, Diehl et al. 2015) of the ANN's positive ReLU activations over windows ``x``
    (N, T, C), every step and neuron. A layer that is never active gets 1 (its neurons stay silent)."""
    net = _plain_ann(ann)
    if norm not in NORMS:
        raise BiospikeError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    positives: list[list[np.ndarray]] = [[] for _ in net.fc]
    net.eval()
    with torch.no_grad():
        for xb in batches(x, batch_size):
            _, acts = net.forward_trace(xb)
            for layer, a in enumerate(acts):
                flat = a.reshape(-1)
                positives[layer].append(flat[flat > 0].double().numpy())
    scales = []
    for values in positives:
        v = np.concatenate(values) if values else np.zeros(0)
        if v.size == 0:
            scales.append(1.0)
        elif norm == "max":
            scales.append(float(v.max()))
        else:
            scales.append(float(np.percentile(v, percentile)))
    return scales


def convert_ann(ann: torch.nn.Module, scales: Sequence[float], tau_mem_s: float = DEFAULT_TAU_MEM_S,
                substeps: int = 1) -> SNN:
    """The SNN of an ANN and its per-layer activation ``scales`` (:func:`activation_scales`), run
    at the ANN's step divided by ``substeps`` (module docstring: the mapping)."""
    net = _plain_ann(ann)
    a = net.arch
    if len(scales) != len(a.n_hidden):
        raise BiospikeError(f"conversion needs one activation scale per hidden layer ({len(a.n_hidden)}), got {len(scales)}")
    if any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise BiospikeError(f"activation scales must be positive and finite, got {list(scales)}")
    if substeps < 1:
        raise BiospikeError(f"substeps must be >= 1, got {substeps}")
    dt_s = float(a.dt_s) / substeps
    if tau_mem_s < dt_s:
        raise BiospikeError(f"train.convert.tau_mem_s {tau_mem_s:g} s is shorter than the step {dt_s:g} s")
    keep = 1.0 - math.exp(-dt_s / a.tau_mem_s)  # 1 - d of the hidden filter
    keep_out = 1.0 - math.exp(-dt_s / a.readout_tau_mem_s)
    arch = SNNArch(n_in=a.n_in, n_hidden=list(a.n_hidden), n_out=a.n_out, dt_s=dt_s, tau_mem_s=float(tau_mem_s),
                   tau_syn_s=dt_s / keep, v_th=1.0, v_reset=0.0, v_leak=0.0, readout_tau_mem_s=dt_s / keep_out,
                   readout_tau_syn_s=dt_s, recurrent=False, input_scale=float(a.input_scale), output_scale=1.0,
                   bias=bool(a.bias), impl="fused", kind="snn")
    snn = SNN(arch)
    previous = 1.0  # the input is not rescaled: the first layer sees the ANN's own input
    with torch.no_grad():
        for fc_snn, fc_ann, layer_scale in zip(snn.fc, net.fc, scales, strict=True):
            # k sub-steps: one spike per sub-step stands for scale x k of activity, so the rate is
            # resolved k times finer (the reset to zero loses less of each inter-spike interval)
            scale = float(layer_scale) * substeps
            gain = keep * tau_mem_s / (dt_s * scale) * arch.v_th
            fc_snn.weight.copy_(fc_ann.weight.double().mul(previous * gain).float())
            if a.bias:
                fc_snn.bias.copy_(fc_ann.bias.double().mul(gain).float())
            previous = float(scale)
        snn.out.weight.copy_(net.out.weight.double().mul(previous).float())
        if a.bias:
            snn.out.bias.copy_(net.out.bias)
    return snn.eval()


def substep_input(x: np.ndarray | torch.Tensor, substeps: int) -> torch.Tensor:
    """Windows (N, T, C) with every step held for ``substeps`` steps: (N, T substeps, C)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    return x if substeps == 1 else torch.repeat_interleave(x, substeps, dim=1)


def _conversion_info(scales: Sequence[float], cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"from": "ann", "norm": cfg["norm"], "percentile": float(cfg["percentile"]) if cfg["norm"] == "percentile"
            else None, "activation_scales": [float(s) for s in scales], "tau_mem_s": float(cfg["tau_mem_s"]),
            "reference": "Diehl et al. 2015 (weight and threshold balancing, reset to zero); "
                         "Rueckauer et al. 2017 (percentile normalisation)"}


def substep_sweep(ann: torch.nn.Module, scales: Sequence[float], x: np.ndarray, y: np.ndarray,
                  substeps: Sequence[int], tau_mem_s: float = DEFAULT_TAU_MEM_S) -> list[dict[str, Any]]:
    """Accuracy of the converted SNN against its time steps: per ``k`` of ``substeps``, the ANN
    converted at ``dt / k`` and run on the windows ``x`` held for ``k`` sub-steps (T k steps);
    its balanced accuracy on labels ``y``, the ANN's, and the fraction of windows where both
    predict the same class."""
    from biospike.metrics import balanced_accuracy

    y = np.asarray(y, dtype=np.int64)
    ann_pred = predict_logits(ann, x).argmax(axis=1)
    rows = []
    for k in substeps:
        snn = convert_ann(ann, scales, tau_mem_s, substeps=int(k))
        preds = []
        with torch.no_grad():
            for xb in batches(x, 64):
                preds.append(snn(substep_input(xb, int(k))).argmax(dim=1).numpy())
        pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
        rows.append({"substeps": int(k), "time_steps": int(x.shape[1]) * int(k),
                     "balanced_accuracy": balanced_accuracy(y, pred) if len(y) else None,
                     "ann_balanced_accuracy": balanced_accuracy(y, ann_pred) if len(y) else None,
                     "agreement_with_ann": float(np.mean(pred == ann_pred)) if len(y) else None})
    return rows


# --------------------------------------------------------------------------------------------
# reference models (the attacker knows the recipe: train an ANN, convert it)
# --------------------------------------------------------------------------------------------


def fit_converted(kind: str, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray,  # noqa: ARG001
                  settings: Mapping[str, Any], seed: int, progress: bool = False,
                  select: str = "best_val") -> tuple[torch.nn.Module, dict]:
    """One model of the ``converted`` recipe on chosen windows: the ANN trained as
    :func:`biospike.train.fit_on` trains it, then converted with scales from its training windows."""
    from biospike.train import fit_on

    cfg = conversion_settings(settings)
    ann, info = fit_on("ann", spikes, train_idx, val_idx, settings, seed, progress=progress, select=select)
    return _converted(ann, spikes.spikes[np.sort(train_idx)], cfg, info)


def fit_many_converted(kind: str, spikes: Any, train_idxs: Sequence[np.ndarray], val_idxs: Sequence[np.ndarray],  # noqa: ARG001
                       settings: Mapping[str, Any], seeds: Sequence[int], progress: bool = False,
                       desc: str = "ensemble", select: str = "best_val") -> list[tuple[torch.nn.Module, dict]]:
    """:func:`fit_converted` for K models: the K ANNs trained as one stacked ensemble."""
    from biospike.train import fit_many_on

    cfg = conversion_settings(settings)
    anns = fit_many_on("ann", spikes, train_idxs, val_idxs, settings, seeds, progress=progress, desc=desc, select=select)
    return [_converted(ann, spikes.spikes[np.sort(ti)], cfg, info)
            for (ann, info), ti in zip(anns, train_idxs, strict=True)]


def _converted(ann: torch.nn.Module, x_train: np.ndarray, cfg: Mapping[str, Any],
               info: Mapping[str, Any]) -> tuple[SNN, dict]:
    ann = getattr(ann, "_module", ann).cpu()
    x_fit = _subsample(x_train, int(cfg["max_windows"]))
    scales = activation_scales(ann, x_fit, cfg["norm"], float(cfg["percentile"]))
    snn = convert_ann(ann, scales, float(cfg["tau_mem_s"]))
    return snn, {**info, "arch": dataclasses.asdict(snn.arch), "conversion": _conversion_info(scales, cfg)}


def _subsample(x: np.ndarray, max_windows: int) -> np.ndarray:
    """At most ``max_windows`` windows spread evenly over ``x`` (deterministic: no seed needed)."""
    return np.asarray(x[spread_indices(len(x), max_windows)])


# --------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------


def converted_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:  # noqa: ARG001
    """The train stage of the ``converted`` kind: the dataset's trained ANN (``inputs["from"]["ann"]``)
    converted with activation scales from the windows it trained on, evaluated like any target;
    metrics.json gains a ``conversion`` block (scales, settings, the sub-step sweep on the test split)."""
    from biospike.train import TrainResult, load_base, stage_data, write_trained

    start_s = time.perf_counter()
    kind = ctx.name("model")
    cfg = dict(ctx["train"])
    conv = conversion_settings(cfg)
    data = stage_data(ctx, inputs, kind, cfg)
    ann, ann_meta, ann_path = load_base(inputs, "ann", kind, data)
    _plain_ann(ann)
    x, labels = data.spikes.spikes, data.labels
    scales = activation_scales(ann, _subsample(x[np.sort(data.train_idx)], int(conv["max_windows"])), conv["norm"],
                               float(conv["percentile"]))
    snn = convert_ann(ann, scales, float(conv["tau_mem_s"]))
    log.info("converted the ANN of %s/%s: activation scales %s (%s), tau_mem %.3g s", data.dataset, data.encoding,
             ", ".join(f"{s:.4g}" for s in scales), conv["norm"], conv["tau_mem_s"])
    eval_idx = data.test_idx if len(data.test_idx) else data.val_idx
    sweep = substep_sweep(ann, scales, x[eval_idx], labels[eval_idx], conv["substeps"], float(conv["tau_mem_s"]))
    for row in sweep:
        log.info("converted, %d sub-steps (T=%d): balanced accuracy %s, ANN %s, agreement %s", row["substeps"],
                 row["time_steps"], _fmt(row["balanced_accuracy"]), _fmt(row["ann_balanced_accuracy"]),
                 _fmt(row["agreement_with_ann"]))
    history = list(ann_meta.get("history", []))
    result = TrainResult(model=snn, history=history, best_epoch=int(ann_meta.get("best_epoch", 0)),
                         epochs_run=int(ann_meta.get("epochs_run", 0)))
    conversion = _conversion_info(scales, conv) | {
        "substep_sweep": {"split": "test" if len(data.test_idx) else "val", "rows": sweep},
        "note": "curve.csv is the ANN's training curve: the converted SNN is not trained"}
    return write_trained(data, kind, kind, cfg, result, outdir, start_s, extra_metrics={"conversion": conversion},
                         extra_inputs=[str(ann_path)])


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"
