"""An ensemble of M SNNs with different architectural parameters, averaging their outputs: the
ensemble lever (``ens{kind}_m{M}``), a privacy lever of the SNN literature beside DP-SGD and the
query-time defenses.

Member ``i`` (0-based) is the base kind trained on the same windows with its own seed and the
``train`` settings varied by ``train.ensemble``: hidden widths times ``hidden_scales[i % n]``,
membrane and synaptic time constants times ``tau_mem_scales[i % n]`` and ``tau_syn_scales[i % n]``.
The ensemble's output is the average of the members' readout traces (their logits, which are the
readout averaged over time, average the same way).

Because the LI readout is linear, that average is itself one SNN (:func:`merge_snns`): the
members' hidden layers side by side (block-diagonal between hidden layers, the input weights
stacked, each member's input gain folded into its rows), per-neuron time constants, and one
readout whose weights are the members' scaled by their readout gain over M. So the ensemble is
exported to NIR (per-neuron constants), simulated and costed on the edge targets like any SNN:
its energy is that of all M members, which is what an ensemble costs on a chip. The merged network
equals the average of the members to float32 rounding (test).

The attacker knows the recipe: its reference models are ensembles trained the same way
(``references: matched``); single SNN references give the non-adaptive number beside them.
Every member sees every training window, so averaging is not expected to remove the membership
signal (SELENA-style ensembles train members on disjoint subsets for that, Tang et al. 2022); it
smooths the output, and the measured leakage says what that buys.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biospike.config import derive_seed
from biospike.errors import BiospikeError

__all__ = ["ensemble_stage", "fit_ensemble", "fit_many_ensemble", "member_settings", "merge_snns"]

log = logging.getLogger("biospike.ensemble")


def member_settings(train_cfg: Mapping[str, Any], n_members: float) -> list[dict[str, Any]]:
    """The ``train`` settings of each of the ``n_members`` members (see the module docstring); an
    error when M is not a whole number >= 2 (a member's time constant below the step fails in
    :func:`biospike.models.make_arch`, naming it)."""
    from biospike.train import train_settings

    if float(n_members) != int(n_members) or int(n_members) < 2:
        raise BiospikeError(f"an ensemble needs a whole number of members >= 2, got {n_members:g}")
    cfg = train_settings(train_cfg)
    if cfg["neuron"] != "lif":  # refused before M networks are trained, not at the merge
        raise BiospikeError(f"an SNN ensemble merges LIF members; train.neuron is {cfg['neuron']!r}")
    spec = cfg["ensemble"]
    out = []
    for i in range(int(n_members)):
        def scale(key: str, i: int = i) -> float:
            values = spec[key]
            return float(values[i % len(values)])

        member = {**cfg, "hidden": [max(1, round(h * scale("hidden_scales"))) for h in cfg["hidden"]],
                  "tau_mem_s": cfg["tau_mem_s"] * scale("tau_mem_scales"),
                  "tau_syn_s": cfg["tau_syn_s"] * scale("tau_syn_scales")}
        out.append(member)
    return out


def member_seed(seed: int, index: int) -> int:
    """Member ``index``'s training seed, from the ensemble's."""
    return derive_seed(seed, "ensemble_member", index)


# the per-neuron constant of a learned name (biospike.models.snn.TRAINABLE), as neuron_constants() keys it
_CONSTANT_KEY = {"tau_mem": "tau_mem_s", "tau_syn": "tau_syn_s", "v_th": "v_th"}

# architecture fields every member must share to be merged into one network
_SHARED = ("n_in", "n_out", "dt_s", "v_reset", "v_leak", "readout_tau_mem_s", "readout_tau_syn_s", "recurrent", "bias",
           "impl", "neuron", "surrogate", "surrogate_alpha")


def merge_snns(members: Sequence[nn.Module]) -> nn.Module:
    """One SNN whose readout equals the average of the members' readouts (to float rounding):
    hidden layers side by side, per-neuron constants, input and readout gains folded into the
    weights. Members must be LIF SNNs of the same depth and shared fields (``_SHARED``); the
    widths and the hidden neurons' constants may differ."""
    from biospike.models import SNN, SNNArch
    from biospike.models.snn import TRAINABLE, _softplus_inverse

    plains = [getattr(m, "_module", m) for m in members]
    if len(plains) < 1 or not all(isinstance(p, SNN) for p in plains):
        raise BiospikeError("an SNN ensemble merges SNNs only")
    archs = [p.arch for p in plains]
    for key in _SHARED:
        values = {repr(getattr(a, key)) for a in archs}
        if len(values) > 1:
            raise BiospikeError(f"ensemble members differ in {key} ({', '.join(sorted(values))}): they cannot be merged "
                                "into one network")
    depth = {len(a.n_hidden) for a in archs}
    if len(depth) > 1:
        raise BiospikeError("ensemble members must have the same number of hidden layers")
    if archs[0].neuron != "lif":
        raise BiospikeError(f"an SNN ensemble merges LIF members, not {archs[0].neuron!r}")
    n_layers, n_members = len(archs[0].n_hidden), len(plains)
    constants = [p.neuron_constants() for p in plains]  # per member, per layer: {tau_mem_s, tau_syn_s, v_th}
    merged_constants = [{key: np.concatenate([c[layer][key] for c in constants]) for key in constants[0][layer]}
                        for layer in range(n_layers)]
    first = archs[0]
    # per neuron in the merged network: the constants that differ anywhere from member 1's scalar
    trainable = [name for name in TRAINABLE
                 if any(np.any(lc[_CONSTANT_KEY[name]] != getattr(first, _CONSTANT_KEY[name])) for lc in merged_constants)]
    arch = dataclasses.replace(first, n_hidden=[sum(a.n_hidden[la] for a in archs) for la in range(n_layers)],
                               input_scale=1.0, output_scale=1.0, trainable=trainable, trainable_layers=None,
                               kind="snn")
    merged = SNN(SNNArch.from_dict(dataclasses.asdict(arch)))
    with torch.no_grad():
        for layer in range(n_layers):
            if layer == 0:  # every member reads all inputs: stack the rows, each member's input gain folded in
                weight = torch.cat([p.fc[0].weight * p.arch.input_scale for p in plains], dim=0)
            else:
                weight = torch.block_diag(*[p.fc[layer].weight for p in plains])
            merged.fc[layer].weight.copy_(weight)
            if first.bias:
                merged.fc[layer].bias.copy_(torch.cat([p.fc[layer].bias for p in plains]))
            if merged.rec is not None:
                merged.rec[layer].weight.copy_(torch.block_diag(*[p.rec[layer].weight for p in plains]))
            dyn = merged.dynamics[str(layer)] if str(layer) in merged.dynamics else None
            for name in dyn.names if dyn is not None else ():
                value = torch.as_tensor(merged_constants[layer][_CONSTANT_KEY[name]], dtype=torch.float64)
                raw = _softplus_inverse(value - first.dt_s if name.startswith("tau") else value)
                getattr(dyn, f"raw_{name}").copy_(raw.float())
        gains = [p.arch.output_scale / n_members for p in plains]
        merged.out.weight.copy_(torch.cat([p.out.weight * g for p, g in zip(plains, gains, strict=True)], dim=1))
        if first.bias:
            merged.out.bias.copy_(sum(p.out.bias * g for p, g in zip(plains, gains, strict=True)))
    return merged.eval()


def _member_record(settings: Mapping[str, Any], info: Mapping[str, Any], seed: int) -> dict[str, Any]:
    return {"hidden": list(settings["hidden"]), "tau_mem_s": float(settings["tau_mem_s"]),
            "tau_syn_s": float(settings["tau_syn_s"]), "seed": int(seed), "best_epoch": int(info["best_epoch"]),
            "epochs_run": int(info["epochs_run"]), "wall_time_s": float(info.get("wall_time_s", 0.0))}


def _ensemble_info(fitted: Sequence[tuple[nn.Module, dict]], cfgs: Sequence[Mapping[str, Any]], seeds: Sequence[int],
                   merged: nn.Module) -> dict[str, Any]:
    first = fitted[0][1]
    return {"arch": dataclasses.asdict(merged.arch), "best_epoch": int(first["best_epoch"]),
            "epochs_run": int(first["epochs_run"]), "history": first["history"], "n_train": first["n_train"],
            "n_val": first["n_val"], "wall_time_s": float(sum(i.get("wall_time_s", 0.0) for _, i in fitted)),
            "members": [_member_record(c, i, s) for (_, i), c, s in zip(fitted, cfgs, seeds, strict=True)]}


def fit_ensemble(target: Any, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
                 seed: int, public_idx: np.ndarray | None = None, progress: bool = False) -> tuple[nn.Module, dict]:  # noqa: ARG001
    """One ensemble of ``target.value`` members (a reference model of an ensemble target, or the
    target itself): each member the base kind trained on ``train_idx`` with its settings and seed,
    merged (:func:`merge_snns`). Returns (merged model, info with ``members``)."""
    from biospike.train import fit_on

    cfgs = member_settings(settings["train"], target.value)
    seeds = [member_seed(seed, i) for i in range(len(cfgs))]
    fitted = []
    for i, (c, s) in enumerate(zip(cfgs, seeds, strict=True)):
        log.info("%s member %d/%d: hidden %s, tau_mem %.4g s, tau_syn %.4g s, seed %d", target.name, i + 1, len(cfgs),
                 c["hidden"], c["tau_mem_s"], c["tau_syn_s"], s)
        fitted.append(fit_on(target.kind.name, spikes, train_idx, val_idx, c, s, progress=progress))
    merged = merge_snns([m for m, _ in fitted])
    return merged, _ensemble_info(fitted, cfgs, seeds, merged)


def fit_many_ensemble(target: Any, spikes: Any, train_idxs: Sequence[np.ndarray], val_idxs: Sequence[np.ndarray],
                      settings: Mapping[str, Any], seeds: Sequence[int], progress: bool = False,
                      desc: str = "ensemble") -> list[tuple[nn.Module, dict]]:
    """:func:`fit_ensemble` for K reference ensembles at once: member ``i`` of every reference has
    the same architecture, so the K copies of member ``i`` train as one stack (:func:`biospike.
    train.fit_many_on`), M stacks in all; equal to K calls of :func:`fit_ensemble`."""
    from biospike.train import fit_many_on

    cfgs = member_settings(settings["train"], target.value)
    seeds_by_ref = [[member_seed(s, i) for i in range(len(cfgs))] for s in seeds]
    by_member = [fit_many_on(target.kind.name, spikes, train_idxs, val_idxs, c, [ref[i] for ref in seeds_by_ref],
                             progress=progress, desc=f"{desc} member {i + 1}/{len(cfgs)}")
                 for i, c in enumerate(cfgs)]
    out = []
    for k, member_seeds in enumerate(seeds_by_ref):
        fitted = [by_member[i][k] for i in range(len(cfgs))]
        merged = merge_snns([m for m, _ in fitted])
        out.append((merged, _ensemble_info(fitted, cfgs, member_seeds, merged)))
    return out


def ensemble_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:
    """The train stage of an ensemble target (``ctx.names["target"]``, e.g. ``enssnn_m3``): M
    members trained on the training split (early-stopped on validation, as the base kind), merged,
    evaluated and written like any trained target; ``metrics.json`` lists the members."""
    from biospike.targets import parse
    from biospike.train import TrainResult, stage_data, write_trained

    start_s = time.perf_counter()
    target = parse(ctx.name("target"))
    cfg = dict(ctx["train"])
    data = stage_data(ctx, inputs, target.name, cfg)
    merged, info = fit_ensemble(target, data.spikes, data.train_idx, data.val_idx, {"train": cfg}, data.seed,
                                progress=progress)
    result = TrainResult(model=merged, history=info["history"], best_epoch=info["best_epoch"],
                         epochs_run=info["epochs_run"], wall_time_s=info["wall_time_s"])
    return write_trained(data, target.name, target.kind.name, cfg, result, outdir, start_s,
                         extra_metrics={"ensemble": {"members": info["members"], "note": (
                             "the members' readouts averaged, merged into one SNN (hidden layers side by side); "
                             "curve.csv is member 1's training curve")}},
                         extra_meta={"ensemble": info["members"]})
