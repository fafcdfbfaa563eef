"""The attacker's side of the data: candidate set, reference-model training, model queries.

Candidate set: ``mia/members`` + ``mia/nonmembers`` + ``mia/population`` of spikes.h5, in that
order (members = the target's training pool, non-members = test windows never trained on,
population = the attacker's reference data from other subjects). Reference model k trains on
the candidates where ``keep[k]`` is true: every candidate subject (``reference_unit: subject``;
below subject level a run of consecutive windows of one record, see :func:`membership_groups`;
or every window) is IN for half of the K models (see
:func:`biospike.attacks.mia.keep_masks`), which gives online LiRA its IN and OUT models and
offline LiRA / RMIA their OUT models, from one set of K models. The K models are trained in
shards of ``attack.reference_shard_size`` (one Snakemake job and one ``shard{s}.pt`` file each),
stacked into one vectorised ensemble where the kind registers ``fit_many``
(:mod:`biospike.models.ensemble`), one by one otherwise (e.g. DP-SGD reference models).

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

__all__ = ["POOLS", "TIME_CONSTANT_KEYS", "candidate_pools", "candidates", "candidates_digest", "fit_group",
           "fit_group_many", "keep_seed", "membership_groups", "n_reference_models", "query_logits", "query_logits_many",
           "rebin_time", "reference_keep", "reference_training_set", "shards", "spikes_at", "time_constants_in_steps",
           "train_shard", "train_stage"]

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
    """The candidate set: window indices of the pools concatenated in ``POOLS`` order."""
    return np.concatenate([pools[name] for name in POOLS])


def candidates_digest(cand: np.ndarray) -> str:
    """A 16-hex-digit SHA-256 of the candidate indices (stored with reference models, checked on load)."""
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
    """The seed of a dataset/encoding/kind's reference keep masks, derived from the root seed."""
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


def query_logits_many(models: list, x: np.ndarray, n_queries: int = 1, dropout_p: float = 0.0, seed: int = 0,
                      batch_size: int = 256) -> list[np.ndarray]:
    """:func:`query_logits` of every model in ``models`` on the same queries, [(Q, N, C), ...].
    Models that stack (:mod:`biospike.models.ensemble`: a reference shard) are queried together
    through one time loop, each on its own copy of the rows, which gives what querying each alone
    gives; others one by one."""
    from biospike.models import device_of
    from biospike.models.ensemble import StackedNetwork, stack_groups, stackable

    if n_queries < 1:
        raise ValueError("n_queries must be >= 1")
    if len(models) < 2 or stackable(models) is not None:
        return [query_logits(m, x, n_queries, dropout_p, seed, batch_size) for m in models]
    import torch

    device = device_of(models[0])
    net = StackedNetwork(models).to(device).eval()
    members = list(range(len(models)))
    out: list[list[np.ndarray]] = [[] for _ in members]
    n_q = 1 if dropout_p == 0.0 else n_queries
    for q in range(n_q):
        xq = x if dropout_p == 0.0 else thin_spikes(x, dropout_p, np.random.default_rng(derive_seed(seed, "query", q)))
        per_member: list[list[np.ndarray]] = [[] for _ in members]
        with torch.no_grad():
            for lo in range(0, len(xq), batch_size):
                xb = torch.as_tensor(np.asarray(xq[lo:lo + batch_size]), dtype=torch.float32).to(device)
                for group in stack_groups(members, [len(xb)] * len(members), xb.shape[1], net.width):
                    volts, _ = net.forward_members(group, [xb] * len(group))
                    for k, v in zip(group, volts, strict=True):
                        per_member[k].append(v.mean(dim=1).float().cpu().numpy())
        for k in members:
            out[k].append(np.concatenate(per_member[k]).astype(np.float32) if per_member[k]
                          else np.zeros((0, int(net.archs[k]["n_out"])), dtype=np.float32))
    return [np.stack(o) for o in out]


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
    candidates; early stopping (and a DP recipe's public calibration) uses its OUT population
    windows, data the attacker holds and the model never trains on. When the keep mask holds
    every population unit (few population subjects, one draw in 2^n), every OUT candidate serves
    instead: the attacker holds those windows too, without their labels for the target."""
    cand = candidates(pools)
    n_m, n_n = len(pools["members"]), len(pools["nonmembers"])
    train_idx = np.sort(cand[keep_row])
    pop_pos = np.arange(n_m + n_n, len(cand))
    val_idx = np.sort(cand[pop_pos[~keep_row[pop_pos]]])
    if len(val_idx) == 0:
        val_idx = np.sort(cand[~keep_row])
    return train_idx, val_idx


def n_reference_models(attack_cfg: Mapping[str, Any], group: str) -> int:
    """K of reference group ``group``: the first ``reference_models_by_group`` pattern it matches,
    else ``n_reference_models``."""
    from fnmatch import fnmatch

    for pattern, k in (attack_cfg.get("reference_models_by_group") or {}).items():
        if fnmatch(group, pattern):
            return int(k)
    return int(attack_cfg["n_reference_models"])


def shards(n_models: int, shard_size: int) -> list[list[int]]:
    """The member indices of each shard: consecutive runs of ``shard_size`` (the last may be shorter)."""
    if n_models < 1 or shard_size < 1:
        raise ValueError("n_models and shard_size must be >= 1")
    return [list(range(lo, min(n_models, lo + shard_size))) for lo in range(0, n_models, shard_size)]


def fit_group_many(group: str, spikes: Any, train_idxs: list[np.ndarray], val_idxs: list[np.ndarray],
                   settings: Mapping[str, Any], seeds: list[int], public_idxs: list[np.ndarray],
                   progress: bool = False, desc: str = "references") -> list[tuple[Any, dict]]:
    """K models of reference group ``group``: one stacked ensemble when the recipe (the kind's, or
    its lever's) registers ``fit_many``, else :func:`fit_group` per member (DP-SGD trains each
    member with its own accountant)."""
    from biospike.registry import resolve
    from biospike.targets import parse

    target = parse(group)
    if target.lever is None and target.kind.fit_many is not None:
        return resolve(target.kind.fit_many)(target.kind.name, spikes, train_idxs, val_idxs, settings["train"], seeds,
                                             progress=progress, desc=desc)
    if target.lever is not None and target.lever.fit_many is not None:
        return resolve(target.lever.fit_many)(target, spikes, train_idxs, val_idxs, settings, seeds,
                                              progress=progress, desc=desc)
    out = []
    bar = None
    if progress:
        from biospike.progress import progress as make_progress

        bar = make_progress(total=len(seeds), desc=f"{desc} one by one")
    for train_idx, val_idx, seed, public_idx in zip(train_idxs, val_idxs, seeds, public_idxs, strict=True):
        out.append(fit_group(group, spikes, train_idx, val_idx, settings, seed, public_idx=public_idx))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def _prepared(ctx: Any, spikes_path: Path, time_steps: int | None) -> tuple[Any, Any, dict, str, str, int, dict]:
    from biospike.store import read_spikes

    train_cfg = ctx["train"]
    native = read_spikes(spikes_path)
    dataset, encoding = ctx.name("dataset", native.dataset), ctx.name("encoding", native.encoding)
    spikes = spikes_at(native, time_steps)
    if time_steps is not None:
        train_cfg = time_constants_in_steps(train_cfg, spikes.dt_s / native.dt_s)
    pools = candidate_pools(spikes, spikes_path)
    meta = {"dataset": dataset, "encoding": encoding, "time_steps": int(spikes.spikes.shape[1]),
            "dt_s": float(spikes.dt_s), "class_names": list(spikes.class_names),
            "candidates_digest": candidates_digest(candidates(pools)), "n_candidates": int(len(candidates(pools)))}
    return spikes, pools, train_cfg, dataset, encoding, int(spikes.spikes.shape[1]), meta


def train_shard(ctx: Any, spikes_path: str | Path, output: str | Path, group: str, shard: int,
                time_steps: int | None = None, progress: bool = True) -> list[dict]:
    """Train shard ``shard`` of reference group ``group`` (members ``shards(K, S)[shard]`` of the K
    = ``attack.n_reference_models``, or ``t_sweep_reference_models`` with ``time_steps``) and write
    them, their keep masks and metas to one ensemble file ``output``. Member k's keep mask, data
    and seed do not depend on the shard size: any sharding gives the same K models."""
    from biospike.models.ensemble import save_members
    from biospike.store import provenance

    spikes_path = Path(spikes_path)
    cfg = ctx["attack"]
    spikes, pools, train_cfg, dataset, encoding, t_steps, common = _prepared(ctx, spikes_path, time_steps)
    root = ctx.root_seed()
    n_models = int(cfg["t_sweep_reference_models"]) if time_steps is not None else n_reference_models(cfg, group)
    all_shards = shards(n_models, int(cfg["reference_shard_size"]))
    if not 0 <= shard < len(all_shards):
        raise BiospikeError(f"reference shard {shard} outside 0..{len(all_shards) - 1} "
                            f"({n_models} models in shards of {cfg['reference_shard_size']})")
    members = all_shards[shard]
    cand = candidates(pools)
    groups, unit = (membership_groups(spikes, pools) if cfg["reference_unit"] == "subject" else (None, "window"))
    if unit == "contiguous_run":
        log.info("the pools share subjects (split below subject level): reference models draw "
                 "runs of consecutive windows of one record (%d groups) instead of subjects", len(np.unique(groups)))
    keep = reference_keep(root, dataset, encoding, group, len(cand), n_models, groups)
    sweep_key = () if time_steps is None else ("T", t_steps)
    train_idxs, val_idxs, public_idxs, seeds = [], [], [], []
    for k in members:
        train_idx, val_idx = reference_training_set(pools, keep[k])
        public_idxs.append(val_idx)  # the OUT population windows: the attacker's own data, never trained on
        val_idxs.append(val_idx if cfg["reference_early_stopping"] else val_idx[:0])  # no stopping: as a converged target
        train_idxs.append(train_idx)
        seeds.append(derive_seed(root, "ref", dataset, encoding, group, k, *sweep_key))
    log.info("reference models %s k=%d..%d of %d on %s/%s T=%d: %d-%d train windows each",
             group, members[0], members[-1], n_models, dataset, encoding, t_steps,
             min(len(t) for t in train_idxs), max(len(t) for t in train_idxs))
    fitted = fit_group_many(group, spikes, train_idxs, val_idxs, {**ctx.settings, "train": train_cfg}, seeds,
                            public_idxs, progress=progress, desc=f"references {group} shard {shard}")
    metas = []
    for k, seed, train_idx, (_, info) in zip(members, seeds, train_idxs, fitted, strict=True):
        meta = {**common, "role": "reference", "kind": group, "index": k, "n_reference_models": n_models,
                "reference_unit": cfg["reference_unit"], "reference_groups": unit,
                "n_reference_groups": int(len(np.unique(groups))) if groups is not None else None,
                "seed": seed, "train_indices": train_idx.tolist(), "best_epoch": info["best_epoch"],
                "epochs_run": info["epochs_run"], "history": info["history"], "n_train": info["n_train"],
                "n_val": info["n_val"]}
        if "privacy" in info:
            meta["privacy"] = info["privacy"]
        metas.append(meta)
    import torch

    metas[0]["provenance"] = provenance({"attack": cfg, "train": train_cfg, "role": "reference", "kind": group,
                                         "shard": shard, "members": members, "time_steps": time_steps},
                                        inputs=[spikes_path], seed=root)
    save_members(output, [m for m, _ in fitted], metas, extra={"keep": torch.as_tensor(keep[members])})
    return metas


def train_stage(ctx: Any, spikes_path: str | Path, outdir: str | Path, group: str, time_steps: int | None = None,
                progress: bool = False) -> dict:
    """Train a time-step-sweep replica of the target ``group`` at ``time_steps`` (the train
    rule's recipe and seed on re-binned spikes) into ``outdir/model.pt``."""
    from biospike.models import save_checkpoint
    from biospike.store import provenance
    from biospike.trainset import split_indices, training_windows

    spikes_path, outdir = Path(spikes_path), Path(outdir)
    spikes, _, train_cfg, dataset, encoding, t_steps, meta = _prepared(ctx, spikes_path, time_steps)
    root = ctx.root_seed()
    train_idx, _ = training_windows(spikes, train_cfg, root, dataset)
    val_idx = split_indices(spikes, "val")
    public_idx = split_indices(spikes, "population", "mia")
    seed = derive_seed(root, "train", dataset, encoding, group)  # the train rule's seed for this model
    log.info("attack-train target %s on %s/%s T=%d: %d train, %d val windows, seed %d",
             group, dataset, encoding, t_steps, len(train_idx), len(val_idx), seed)
    model, info = fit_group(group, spikes, train_idx, val_idx, {**ctx.settings, "train": train_cfg}, seed,
                            public_idx=public_idx, progress=progress)
    meta |= {"role": "target", "kind": group, "seed": seed, "train_indices": train_idx.tolist(),
             "best_epoch": info["best_epoch"], "epochs_run": info["epochs_run"], "history": info["history"],
             "n_train": info["n_train"], "n_val": info["n_val"]}
    if "privacy" in info:
        meta["privacy"] = info["privacy"]
    meta["provenance"] = provenance({"attack": ctx["attack"], "train": train_cfg, "role": "target", "kind": group,
                                     "time_steps": time_steps}, inputs=[spikes_path], seed=seed)
    outdir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(outdir / "model.pt", model, meta)
    return meta
