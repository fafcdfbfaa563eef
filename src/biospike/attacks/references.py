"""The attacker's side of the data: candidate set, reference-model training, model queries.

Candidate set: ``mia/members`` + ``mia/nonmembers`` + ``mia/population`` of spikes.h5, in that
order (members = the target's training pool, non-members = test windows never trained on,
population = the attacker's reference data from other subjects). Reference model k trains on
the candidates where ``keep[k]`` is true: every candidate subject (``reference_unit: subject``;
below subject level a run of consecutive windows of one record, see :func:`membership_groups`;
or every window) is IN for half of the K models (see
:func:`biospike.attacks.mia.keep_masks`), which gives online LiRA its IN and OUT models and
offline LiRA / RMIA their OUT models, from one set of K models (one Snakemake job each).

Time-step sweep: :func:`rebin_time` re-bins a window's spikes into T steps over the same
duration; :func:`time_constants_in_steps` scales the neuron time constants with the step.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from biospike.attacks.mia import keep_masks, thin_spikes
from biospike.config import derive_seed
from biospike.errors import BiospikeError

log = logging.getLogger("biospike.attacks")

POOLS = ("members", "nonmembers", "population")


def candidate_pools(spikes: Any, path: str | Path = "spikes.h5") -> dict[str, np.ndarray]:
    """The three MIA pools (sorted window indices); missing, empty or overlapping pools are an error."""
    pools = {}
    for name in POOLS:
        idx = spikes.mia.get(name)
        if idx is None or len(idx) == 0:
            raise BiospikeError(f"mia/{name} is missing or empty: the attack needs members, non-members and a population", path)
        pools[name] = np.sort(np.asarray(idx, dtype=np.int64))
    allidx = np.concatenate(list(pools.values()))
    if len(np.unique(allidx)) != len(allidx):
        raise BiospikeError("mia pools overlap (a window is in two of members/nonmembers/population)", path)
    if allidx.max() >= len(spikes.labels) or allidx.min() < 0:
        raise BiospikeError("mia pool index out of range", path)
    return pools


def candidates(pools: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([pools[name] for name in POOLS])


def candidates_digest(cand: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(cand, dtype=np.int64).tobytes()).hexdigest()[:16]


def membership_groups(spikes: Any, pools: Mapping[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """One group label per candidate window, so a reference model draws whole split units.

    When the three pools hold disjoint subjects the split was by subject, and the group is the
    subject. Otherwise (single-subject data split by segment, block or record) the split unit
    is not stored per window, but each unit is a run of consecutive windows of one record inside
    one pool, so the group is that run: a union of whole units, never a part of one.
    """
    subject = np.asarray(spikes.subject).astype(str)
    per_pool = [set(subject[pools[name]]) for name in POOLS]
    disjoint = all(not (a & b) for i, a in enumerate(per_pool) for b in per_pool[i + 1:])
    if disjoint and len(set().union(*per_pool)) >= 2:
        return subject[candidates(pools)], "subject"
    # spikes.h5 carries no record ids (windows.h5 does): without them a run may span two
    # adjacent records of one pool, still a union of whole units
    record = getattr(spikes, "record", None)
    record = np.asarray(record).astype(str) if record is not None else None
    labels: list[str] = []
    for name in POOLS:
        idx = pools[name]
        new_run = np.ones(len(idx), dtype=bool)
        new_run[1:] = np.diff(idx) != 1
        if record is not None:
            new_run[1:] |= record[idx[1:]] != record[idx[:-1]]
        labels += [f"{name}:{r}" for r in np.cumsum(new_run)]
    return np.asarray(labels), "contiguous_run"


def keep_seed(root_seed: int, dataset: str, encoding: str, kind: str) -> int:
    return derive_seed(root_seed, "ref", dataset, encoding, kind, "keep")


def reference_keep(root_seed: int, dataset: str, encoding: str, kind: str, n_candidates: int, n_models: int,
                   groups: np.ndarray | None = None) -> np.ndarray:
    """(K, N) keep masks of a dataset/encoding/kind's reference models (deterministic by seed);
    with ``groups`` (the candidates' subjects) whole subjects are IN or OUT."""
    return keep_masks(n_candidates, n_models, keep_seed(root_seed, dataset, encoding, kind), groups)


def rebin_time(x: np.ndarray, n_steps: int) -> np.ndarray:
    """Spike counts (N, T0, C) -> (N, n_steps, C) over the same duration: step t goes to bin
    floor(t n_steps / T0) (summed when coarser; spread out with empty steps when finer)."""
    if n_steps < 1:
        raise ValueError(f"time steps must be >= 1, got {n_steps}")
    n, t0, c = x.shape
    if n_steps == t0:
        return x
    dest = (np.arange(t0) * n_steps) // t0
    out = np.zeros((n, n_steps, c), dtype=np.int64)
    np.add.at(out, (slice(None), dest), x.astype(np.int64))
    if x.dtype == np.uint8:
        out = np.minimum(out, 255)
    return out.astype(x.dtype)


TIME_CONSTANT_KEYS = ("tau_mem_s", "tau_syn_s", "readout_tau_mem_s", "readout_tau_syn_s")


def time_constants_in_steps(train_cfg: Mapping[str, Any], dt_factor: float) -> dict[str, Any]:
    """Scale the neuron time constants with the step length (dt_new / dt_old), so that every
    decay per step, i.e. the network's dynamics in steps, stays the same across the sweep: only
    the number of steps changes (the time-step count of Guan et al.). Fixed time constants in
    seconds would make coarse steps (dt > tau) numerically unstable."""
    out = dict(train_cfg)
    for key in TIME_CONSTANT_KEYS:
        out[key] = float(out[key]) * dt_factor
    return out


def spikes_at(spikes: Any, n_steps: int | None) -> Any:
    """A copy of ``spikes`` re-binned to ``n_steps`` (None or the native T: unchanged)."""
    import dataclasses

    if n_steps is None or n_steps == spikes.spikes.shape[1]:
        return spikes
    t0 = spikes.spikes.shape[1]
    return dataclasses.replace(spikes, spikes=rebin_time(spikes.spikes, n_steps), dt_s=spikes.dt_s * t0 / n_steps)


# --------------------------------------------------------------------------------------------
# queries
# --------------------------------------------------------------------------------------------


def query_logits(model: Any, x: np.ndarray, n_queries: int = 1, dropout_p: float = 0.0, seed: int = 0,
                 batch_size: int = 256) -> np.ndarray:
    """Black-box queries: logits (Q, N, C). With ``dropout_p`` > 0 each query drops that fraction
    of input spikes (query q uses the RNG ``derive_seed(seed, q)``, so target and reference
    models see the same perturbed inputs)."""
    from biospike.models import predict_logits

    if n_queries < 1:
        raise ValueError("n_queries must be >= 1")
    if dropout_p == 0.0:
        one = predict_logits(model, x, batch_size)
        return np.repeat(one[None], 1, axis=0)
    out = []
    for q in range(n_queries):
        rng = np.random.default_rng(derive_seed(seed, "query", q))
        out.append(predict_logits(model, thin_spikes(x, dropout_p, rng), batch_size))
    return np.stack(out)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def fit_group(group: str, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
              seed: int, public_idx: np.ndarray | None = None, progress: bool = False) -> tuple[Any, dict]:
    """Train one model of reference group ``group``, a target name, with that target's own recipe:
    its kind's registered fit function, or its lever's (DP-SGD at the target's epsilon).
    ``settings`` holds the config sections (``train``, and ``privacy`` for a DP group);
    ``public_idx`` are windows the attacker holds and the model never trains on. Returns
    (model, info for meta)."""
    from biospike.registry import resolve
    from biospike.targets import parse

    target = parse(group)
    if target.lever is not None:
        if target.lever.fit is None:
            raise BiospikeError(f"lever {target.lever.name!r} has no fit function: {group} cannot have reference models")
        return resolve(target.lever.fit)(target, spikes, train_idx, val_idx, settings, seed,
                                         public_idx=public_idx, progress=progress)
    if target.kind.fit is None:
        raise BiospikeError(f"model kind {target.kind.name!r} has no fit function: it cannot have reference models")
    return resolve(target.kind.fit)(target.kind.name, spikes, train_idx, val_idx, settings["train"], seed,
                                    progress=progress)


def reference_training_set(pools: Mapping[str, np.ndarray], keep_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of one reference model: it trains on its kept
    candidates; early stopping uses its OUT population windows (data the attacker holds and the
    model never trains on)."""
    cand = candidates(pools)
    n_m, n_n = len(pools["members"]), len(pools["nonmembers"])
    train_idx = np.sort(cand[keep_row])
    pop_pos = np.arange(n_m + n_n, len(cand))
    val_idx = np.sort(cand[pop_pos[~keep_row[pop_pos]]])
    return train_idx, val_idx


def train_stage(ctx: Any, spikes_path: str | Path, outdir: str | Path, group: str, role: str,
                index: int | None = None, time_steps: int | None = None, progress: bool = False) -> dict:
    """Train one reference model of ``group`` (role "reference", index k) or a time-step-sweep
    replica of the target ``group`` (role "target")."""
    from biospike.models import save_checkpoint
    from biospike.store import provenance, read_spikes
    from biospike.trainset import split_indices, training_windows

    spikes_path, outdir = Path(spikes_path), Path(outdir)
    cfg, train_cfg = ctx["attack"], ctx["train"]
    native = read_spikes(spikes_path)
    dataset, encoding = ctx.name("dataset", native.dataset), ctx.name("encoding", native.encoding)
    root = ctx.root_seed()
    spikes = spikes_at(native, time_steps)
    t_steps = int(spikes.spikes.shape[1])
    if time_steps is not None:
        train_cfg = time_constants_in_steps(train_cfg, spikes.dt_s / native.dt_s)
    pools = candidate_pools(spikes, spikes_path)
    cand = candidates(pools)
    sweep_key = () if time_steps is None else ("T", t_steps)
    meta: dict[str, Any] = {"role": role, "kind": group, "dataset": dataset, "encoding": encoding,
                            "time_steps": t_steps, "dt_s": float(spikes.dt_s), "class_names": list(spikes.class_names),
                            "candidates_digest": candidates_digest(cand), "n_candidates": int(len(cand))}
    keep_row = None
    if role == "reference":
        n_models = int(cfg["t_sweep_reference_models"] if time_steps is not None else cfg["n_reference_models"])
        if index is None or not 0 <= index < n_models:
            raise BiospikeError(f"reference model index {index} outside 0..{n_models - 1}")
        groups, unit = (membership_groups(spikes, pools) if cfg["reference_unit"] == "subject"
                        else (None, "window"))
        if unit == "contiguous_run":
            log.info("the pools share subjects (split below subject level): reference models draw "
                     "runs of consecutive windows of one record (%d groups) instead of subjects",
                     len(np.unique(groups)))
        keep = reference_keep(root, dataset, encoding, group, len(cand), n_models, groups)
        keep_row = keep[index]
        train_idx, val_idx = reference_training_set(pools, keep_row)
        public_idx = val_idx  # the OUT population windows: the attacker's own data, never trained on
        if not cfg["reference_early_stopping"]:  # mimic a target trained without early stopping
            val_idx = val_idx[:0]
        seed = derive_seed(root, "ref", dataset, encoding, group, index, *sweep_key)
        meta |= {"index": index, "n_reference_models": n_models, "reference_unit": cfg["reference_unit"],
                 "reference_groups": unit, "n_reference_groups": int(len(np.unique(groups))) if groups is not None else None}
    elif role == "target":
        train_idx, _ = training_windows(spikes, train_cfg, root, dataset)
        val_idx = split_indices(spikes, "val")
        public_idx = split_indices(spikes, "population", "mia")
        seed = derive_seed(root, "train", dataset, encoding, group)  # the train rule's seed for this model
    else:
        raise BiospikeError(f"unknown role {role!r} (reference | target)")
    log.info("attack-train %s %s k=%s on %s/%s T=%d: %d train, %d val windows, seed %d",
             role, group, index, dataset, encoding, t_steps, len(train_idx), len(val_idx), seed)
    model, info = fit_group(group, spikes, train_idx, val_idx, {**ctx.settings, "train": train_cfg}, seed,
                            public_idx=public_idx, progress=progress)
    meta |= {"seed": seed, "train_indices": train_idx.tolist(), "best_epoch": info["best_epoch"],
             "epochs_run": info["epochs_run"], "history": info["history"], "n_train": info["n_train"], "n_val": info["n_val"]}
    if "privacy" in info:
        meta["privacy"] = info["privacy"]
    meta["provenance"] = provenance({"attack": cfg, "train": train_cfg, "role": role, "kind": group, "index": index,
                                     "time_steps": time_steps}, inputs=[spikes_path], seed=seed)
    outdir.mkdir(parents=True, exist_ok=True)
    if keep_row is not None:
        from biospike.store import atomic_path

        with atomic_path(outdir / "keep.npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, keep_row)
    save_checkpoint(outdir / "model.pt", model, meta)
    return meta
