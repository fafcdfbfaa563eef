"""``biospike attack``, ``biospike attack-train`` and ``biospike attack-sweep``: files in, files out.

- ``attack``: target model + reference models + spikes.h5 -> ``attack/summary.json`` and one
  ``{attack}_{level}_roc.csv`` per attack and membership level; for DP targets the measured ROC is
  checked against the (epsilon, delta) ceiling, and a violation beyond the confidence bounds
  fails the run.
- ``attack-train``: a shard of reference models (``--role reference``, ``shard{s}.pt``) or a
  time-step-sweep target (``--role target``).
- ``attack-sweep``: the time-step sweep's per-T summaries -> ``t_sweep.json`` + ``.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biospike.attacks import metrics as M
from biospike.attacks import mia
from biospike.attacks import references as R
from biospike.config import derive_seed
from biospike.errors import BiospikeError

__all__ = ["attack_stage", "ceiling_applies", "cli", "cli_sweep", "cli_train", "load_references", "sweep_table"]

log = logging.getLogger("biospike.attacks")


# --------------------------------------------------------------------------------------------
# attack-train
# --------------------------------------------------------------------------------------------


def cli_train(argv: list[str], prog: str) -> int:
    """``biospike attack-train``: parse ``argv``; train one shard of reference models
    (``--role reference``) or a time-step-sweep target (``--role target``); returns the exit code."""
    from biospike.cliutil import load_context, setup_logging, stage_parser
    from biospike.config import seed_everything

    parser = stage_parser(prog, "train a shard of reference models (or a time-step-sweep target) for the attacks",
                          sections=("attack", "train", "privacy"), names=("dataset", "encoding"))
    parser.add_argument("--spikes", required=True, help="R/{dataset}/{encoding}/spikes.h5")
    parser.add_argument("--kind", required=True, help="reference group: the target whose recipe trains it (snn, ann, ...)")
    parser.add_argument("--role", default="reference", choices=("reference", "target"))
    parser.add_argument("--shard", type=int, help="reference shard s (role reference): members s*S .. s*S+S-1, "
                                                  "S = attack.reference_shard_size")
    parser.add_argument("--time-steps", type=int, help="re-bin the spikes to T steps (time-step sweep)")
    parser.add_argument("--output", help="role reference: the shard's ensemble file (refs/{group}/shard{s}.pt)")
    parser.add_argument("--outdir", help="role target: the model's directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    setup_logging()
    ctx = load_context(args)
    seed_everything(ctx.derive_seed("attack-train"), args.threads)
    if args.role == "reference":
        if args.shard is None or args.output is None:
            parser.error("--role reference needs --shard and --output")
        R.train_shard(ctx, args.spikes, args.output, args.kind, args.shard, time_steps=args.time_steps,
                      progress=not args.no_progress)
    else:
        if args.outdir is None:
            parser.error("--role target needs --outdir")
        R.train_stage(ctx, args.spikes, args.outdir, args.kind, time_steps=args.time_steps)
    return 0


# --------------------------------------------------------------------------------------------
# attack
# --------------------------------------------------------------------------------------------


def _load_model(path: Path) -> tuple[Any, dict]:
    from biospike.models import load_checkpoint

    return load_checkpoint(path)


def _kind_of(model: Any) -> str:
    return str(getattr(model, "_module", model).arch.kind)


def _reference_members(path: Path) -> list[tuple[Any, dict, np.ndarray]]:
    """(model, meta, keep mask) of each reference model in a shard file (``shard{s}.pt``)."""
    from biospike.models.ensemble import load_members

    models, metas, extra = load_members(path)
    keep = extra.get("keep")
    if keep is None or len(keep) != len(models):
        raise BiospikeError("reference shard without one keep mask per model", path)
    return [(m, meta, np.asarray(kp.numpy() if hasattr(kp, "numpy") else kp)) for m, meta, kp in zip(models, metas, keep, strict=True)]


def load_references(ref_files: Sequence[str | Path], cand: np.ndarray, kind: str,
                    time_steps: int) -> tuple[list, np.ndarray, str]:
    """Reference models of the shard files ``ref_files``, their (K, N) keep masks and their group
    (the recipe that trained them); every mismatch with this candidate set, network kind or
    time-step count is an error naming the stale file, and so are references of mixed groups
    or a member given twice."""
    digest = R.candidates_digest(cand)
    models, keeps, groups, seen = [], [], set(), set()
    for d in ref_files:
        d = Path(d)
        for model, meta, keep in _reference_members(d):
            if keep.dtype != bool or keep.shape != (len(cand),):
                raise BiospikeError(f"keep mask has shape {keep.shape} ({keep.dtype}); the candidate set has {len(cand)} windows "
                                    "(reference model trained on another spikes.h5?)", d)
            if meta.get("index") in seen:
                raise BiospikeError(f"reference model {meta.get('index')} given twice", d)
            seen.add(meta.get("index"))
            if meta.get("candidates_digest") not in (None, digest):
                raise BiospikeError("reference model was trained for another candidate set (stale reference model)", d)
            if _kind_of(model) != kind:
                raise BiospikeError(f"reference model is {_kind_of(model)!r} but the target is {kind!r}", d)
            if meta.get("time_steps") not in (None, time_steps):
                raise BiospikeError(f"reference model was trained at T={meta['time_steps']} but the attack runs at T={time_steps}", d)
            models.append(model)
            keeps.append(keep)
            groups.add(str(meta.get("kind") or kind))
    if not models:
        raise BiospikeError("no reference models given (--refs)")
    if len(groups) > 1:
        raise BiospikeError(f"reference models of several groups given together: {sorted(groups)}", ref_files[0])
    return models, np.stack(keeps), groups.pop()


def _privacy_info(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    from biospike.store import read_json

    rec = read_json(path)
    if not rec.get("private", True):
        return None
    try:
        eps, delta = float(rec["epsilon"]), float(rec["delta"])
    except (KeyError, TypeError, ValueError):
        raise BiospikeError("privacy.json lacks numeric 'epsilon' and 'delta'", path) from None
    return {"epsilon": eps, "delta": delta, "unit": str(rec.get("privacy_unit", "window"))}


def _write_roc(path: Path, labels: np.ndarray | None, scores: np.ndarray | None) -> None:
    from biospike.store import atomic_path

    table = M.roc_table(labels, scores) if labels is not None else np.zeros((0, 3))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["fpr", "tpr", "threshold"])
        for fpr, tpr, thr in table:
            writer.writerow([f"{fpr:.8g}", f"{tpr:.8g}", "inf" if math.isinf(thr) else f"{thr:.10g}"])


def _level_data(level: str, scores: np.ndarray, labels: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """(scores, labels, bootstrap clusters, notes) at window or subject level."""
    if level == "window":
        return scores, labels, None, {}
    # subject level: subjects with windows on both sides (splits by record/segment/block) are dropped
    ids, inverse = np.unique(subjects, return_inverse=True)
    frac = np.bincount(inverse, weights=labels.astype(float)) / np.bincount(inverse)
    clean = (frac == 0) | (frac == 1)
    keep = clean[inverse]
    g_scores, g_labels, _ = M.aggregate_by_group(scores[keep], labels[keep], subjects[keep])
    return g_scores, g_labels, None, {"aggregation": "mean of window scores per subject",
                                      "n_subjects_dropped_mixed": int((~clean).sum())}


@dataclasses.dataclass
class _Queries:
    """What every reference group is scored on: the target's candidates x (members, then
    non-members) and RMIA's population samples z, with the query modes (plain, input dropout)."""

    x_pos: np.ndarray
    z_pos: np.ndarray
    xq: np.ndarray
    yq: np.ndarray
    modes: list[tuple[str, int, float]]
    seed: int
    batch_size: int


def _signals(model: Any, q: _Queries) -> dict[str, np.ndarray]:
    return {mode: R.query_logits(model, q.xq, n_q, p, q.seed, q.batch_size) for mode, n_q, p in q.modes}


def _scores(names: Sequence[str], target_logits: dict[str, np.ndarray], refs: list, keep: np.ndarray, q: _Queries,
            cfg: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every attack's scores of the candidates x, with one group of reference models."""
    per_mode = {mode: R.query_logits_many(refs, q.xq, n_q, p, q.seed, q.batch_size) for mode, n_q, p in q.modes}
    ref_logits = [{mode: per_mode[mode][k] for mode in per_mode} for k in range(len(refs))]
    log.info("queried %d reference models on %d windows (%s)", len(refs), len(q.xq),
             ", ".join(f"{mode}: {n_q} queries, p={p:g}" for mode, n_q, p in q.modes))
    keep_x, keep_z = keep[:, q.x_pos], keep[:, q.z_pos]
    n_x = len(q.x_pos)
    xs, zs = np.arange(n_x), np.arange(n_x, len(q.xq))
    scores: dict[str, np.ndarray] = {}
    details: dict[str, Any] = {}
    rmia_cfg = dict(cfg["rmia"])
    if rmia_cfg["offline_a"] == "auto" and len(refs) < 3:
        rmia_cfg["offline_a"] = mia.OFFLINE_A_FALLBACK
        details["rmia_offline_a_source"] = f"fixed {mia.OFFLINE_A_FALLBACK} (tuning needs >= 3 reference models, have {len(refs)})"
    run_cfg = {**cfg, "rmia": rmia_cfg}
    for mode, _, _ in q.modes:
        tgt = mia.signals_from_logits(target_logits[mode], q.yq)
        ref = mia.signals_from_logits(np.stack([r[mode] for r in ref_logits]), q.yq)
        base = [n.removesuffix("_dropout") for n in names if n.endswith("_dropout") == (mode == "dropout")]
        sc, det = mia.run_attacks(base, tgt.take(xs), ref.take(xs), keep_x, tgt.take(zs), ref.take(zs), keep_z, run_cfg)
        suffix = "_dropout" if mode == "dropout" else ""
        scores |= {f"{n}{suffix}": v for n, v in sc.items()}
        details |= {f"{k}{suffix}": v for k, v in det.items()}
    return scores, details


def ceiling_applies(privacy_unit: str, level: str, split_unit: str) -> tuple[bool, str]:
    """Whether a measured ROC above the (epsilon, delta) ceiling proves a broken DP path.

    The ceiling bounds any test between training sets that differ in one privacy unit. It applies
    to the attack's members and non-members only when they are exchangeable a priori: the level
    is the privacy unit's, and the split assigned those very units to members and non-members at
    random. Otherwise (window-level privacy: members and non-members are different subjects,
    records or trials) a model can tell them apart without any bug, e.g. by subject shift: the
    check is reported, never fatal."""
    if level != privacy_unit:
        return False, f"the guarantee is per {privacy_unit}; at {level} level it only holds through group privacy"
    if split_unit != privacy_unit:
        return False, (f"members and non-members are whole {split_unit.replace('_', ' ')}s split apart, not "
                       f"{privacy_unit}s drawn at random: a difference between those groups (e.g. subject shift) "
                       f"can exceed the {privacy_unit}-level ceiling without a bug; reported, not fatal")
    return True, f"members and non-members are {privacy_unit}s assigned at random by the split"


def _evaluate(names: Sequence[str], scores: Mapping[str, np.ndarray], labels_x: np.ndarray, subjects: np.ndarray,
              window_clusters: np.ndarray | None, window_unit: str, split_unit: str, cfg: Mapping[str, Any],
              privacy: dict | None, seed_keys: tuple, roc_dir: Path | None) -> tuple[dict, list]:
    """Per attack and membership level: AUC, TPR at low FPR with CIs, the DP ceiling check; the
    ROC files when ``roc_dir`` is given. Returns (results, fatal ceiling violations)."""
    boot = cfg["bootstrap"]
    results: dict[str, dict] = {}
    violations = []
    for name in names:
        results[name] = {}
        for level in cfg["levels"]:
            s, y, clusters, notes = _level_data(level, scores[name], labels_x, subjects)
            if level == "window":
                clusters = window_clusters
            entry: dict[str, Any] = dict(notes)
            if y.all() or not y.any():
                entry |= {"status": "not estimable", "reason": f"no {'non-' if y.all() else ''}members at {level} level",
                          "n_members": int(y.sum()), "n_nonmembers": int((~y).sum())}
                results[name][level] = entry
                if roc_dir is not None:
                    _write_roc(roc_dir / f"{name}_{level}_roc.csv", None, None)  # header only: no curve
                continue
            seed = derive_seed(*seed_keys, name, level, "bootstrap")
            entry |= M.evaluate_scores(y, s, int(boot["n"]), float(boot["ci"]), seed, clusters)
            # what one bootstrap draw resamples: subjects (subject level), or windows grouped by split unit
            entry["bootstrap_unit"] = "subject" if level == "subject" else window_unit
            if privacy is not None:
                unit_level = "subject" if privacy["unit"] == "subject" else "window"
                if level == unit_level:
                    check = M.dp_ceiling_check(y, s, privacy["epsilon"], privacy["delta"], float(boot["ci"]),
                                               clusters=clusters, n_bootstrap=int(boot["n"]),
                                               seed=derive_seed(seed, "ceiling"))
                    fatal, why = ceiling_applies(unit_level, level, split_unit)
                    check |= {"checked": True, "fatal": fatal, "why": why}
                    entry["dp_ceiling"] = check
                    if check["violated"] and fatal:
                        violations.append((name, level, check))
                else:
                    entry["dp_ceiling"] = {"checked": False, "fatal": False,
                                           "reason": ceiling_applies(privacy["unit"], level, split_unit)[1]}
            if roc_dir is not None:
                _write_roc(roc_dir / f"{name}_{level}_roc.csv", y, s)
            results[name][level] = entry
    return results, violations


def attack_stage(ctx: Any, target_path: str | Path, spikes_path: str | Path, ref_files: Sequence[str | Path],
                 outdir: str | Path, privacy_path: str | Path | None = None, time_steps: int | None = None,
                 families: Sequence[str] | None = None, compare_ref_files: Sequence[str | Path] = ()) -> dict:
    """Run every configured attack on one target; write summary.json and the ROC files.

    ``ref_files`` (shard files) hold the threat model's reference models (trained with the target's own recipe:
    for a DP target, the same DP-SGD at the same epsilon); the attacks with ``compare_ref_files``
    (e.g. non-private references for a DP target) are reported beside them under ``comparison``.
    The target and reference models are queried on ``train.device``."""
    from biospike.models import resolve_device
    from biospike.store import provenance, read_spikes, write_json

    start_s = time.perf_counter()
    target_path, spikes_path, outdir = Path(target_path), Path(spikes_path), Path(outdir)
    cfg = ctx["attack"]
    device = resolve_device(ctx["train"]["device"])
    native = read_spikes(spikes_path)
    dataset, encoding, root = ctx.name("dataset", native.dataset), ctx.name("encoding", native.encoding), ctx.root_seed()
    names = mia.attack_names(cfg, families)
    spikes = R.spikes_at(native, time_steps)
    t_steps = int(spikes.spikes.shape[1])
    pools = R.candidate_pools(spikes, spikes_path)
    cand = R.candidates(pools)
    pos_of = {int(w): i for i, w in enumerate(cand)}

    target, meta = _load_model(target_path)
    target_name = ctx.name("target", meta.get("model"))
    target.to(device)
    kind = _kind_of(target)
    if meta.get("time_steps") not in (None, t_steps):
        raise BiospikeError(f"target was trained at T={meta['time_steps']} but the attack runs at T={t_steps}", target_path)
    # members: the windows the target actually trained on (train.py may subsample the train split)
    trained = np.asarray(meta.get("train_indices", pools["members"]), dtype=np.int64)
    outside = np.setdiff1d(trained, pools["members"])
    if outside.size:
        raise BiospikeError(f"target trained on {outside.size} windows outside mia/members: its membership "
                            "labels cannot be read from the MIA pools", target_path)
    members = np.intersect1d(trained, pools["members"])
    nonmembers = pools["nonmembers"]
    x_idx = np.concatenate([members, nonmembers])
    labels_x = np.r_[np.ones(len(members), bool), np.zeros(len(nonmembers), bool)]
    x_pos = np.array([pos_of[int(w)] for w in x_idx])
    pop_pos = np.arange(len(pools["members"]) + len(nonmembers), len(cand))
    rng = np.random.default_rng(derive_seed(root, "attack", dataset, encoding, "population"))
    n_pop = min(int(cfg["rmia"]["n_population"]), len(pop_pos))
    z_pos = np.sort(rng.choice(pop_pos, size=n_pop, replace=False))

    refs, keep, reference_group = load_references(ref_files, cand, kind, t_steps)
    refs = [m.to(device) for m in refs]
    # a query-time defense (biospike.defenses): the target answers through it, and the threat
    # model's attacker, who knows it, wraps its references in it (adaptive); the same references
    # without it give the non-adaptive comparison below
    defense = meta.get("defense")
    plain_refs = refs
    if defense:
        from biospike.defenses import defended

        target = defended(target, defense, derive_seed(root, "defense", dataset, encoding, target_name, "target"))
        refs = [defended(m, defense, derive_seed(root, "defense", dataset, encoding, target_name, "reference", k))
                for k, m in enumerate(plain_refs)]
    y_all = np.asarray(spikes.labels, dtype=np.int64)
    query_pos = np.r_[x_pos, z_pos]
    drop = cfg["input_dropout"]
    dropout_wanted = any(n.endswith("_dropout") for n in names)
    q = _Queries(x_pos=x_pos, z_pos=z_pos, xq=spikes.spikes[cand[query_pos]], yq=y_all[cand[query_pos]],
                 modes=[("plain", 1, 0.0)] + ([("dropout", int(drop["n_queries"]), float(drop["p"]))] if dropout_wanted else []),
                 seed=derive_seed(root, "attack", dataset, encoding, "dropout"), batch_size=int(cfg["query_batch_size"]))
    target_logits = _signals(target, q)
    scores, details = _scores(names, target_logits, refs, keep, q, cfg)
    n_x = len(x_pos)

    privacy = _privacy_info(privacy_path)
    subjects = np.asarray(spikes.subject)[x_idx].astype(str)
    # window-level CIs resample whole split units: subjects when the split was by subject, else
    # runs of consecutive windows (trials, blocks); resampling the one subject of single-subject
    # data would give a zero-width interval
    groups, group_unit = R.membership_groups(spikes, pools)
    boot = cfg["bootstrap"]
    window_clusters = np.asarray(groups)[x_pos] if boot["by_subject"] else None
    window_unit = group_unit if boot["by_subject"] else "window"
    outdir.mkdir(parents=True, exist_ok=True)
    seed_keys = (root, "attack", dataset, encoding, target_name)
    results, violations = _evaluate(names, scores, labels_x, subjects, window_clusters, window_unit, group_unit, cfg,
                                    privacy, seed_keys, outdir)

    def strongest_of(scored: Mapping[str, np.ndarray], res: Mapping[str, dict]) -> dict | None:
        window_ok = [n for n in names if "auc" in res[n].get("window", {})]
        if "window" not in cfg["levels"] or not window_ok or int(boot["n_permutations"]) <= 0:
            return None
        # clusters as for the window CIs: whole split units keep their membership under permutation
        out = M.strongest_attack_test(labels_x, {n: scored[n] for n in window_ok}, window_clusters,
                                      int(boot["n_permutations"]), derive_seed(*seed_keys, "permutation"))
        out["unit"] = window_unit
        return out

    strongest = strongest_of(scores, results)
    y_t = y_all[x_idx]
    pred = target_logits["plain"][0][:n_x].argmax(axis=1)
    acc_mem = float(np.mean(pred[labels_x] == y_t[labels_x]))
    acc_non = float(np.mean(pred[~labels_x] == y_t[~labels_x]))
    summary = {
        "target": target_name, "dataset": dataset, "encoding": encoding, "model_kind": kind,
        "reference_kind": reference_group, "K": len(refs), "time_steps": t_steps, "dt_s": float(spikes.dt_s),
        "attacks": results, "attack_names": names, "levels": list(cfg["levels"]),
        "strongest_window": strongest,
        "n_members": int(labels_x.sum()), "n_nonmembers": int((~labels_x).sum()),
        "n_member_subjects": int(len(np.unique(subjects[labels_x]))),
        "n_nonmember_subjects": int(len(np.unique(subjects[~labels_x]))),
        "n_population_z": int(n_pop),
        "n_queries": int(drop["n_queries"]) if dropout_wanted else 1,
        "dropout_p": float(drop["p"]) if dropout_wanted else 0.0,
        "rmia_gamma": float(cfg["rmia"]["gamma"]), "lira_fixed_variance": bool(cfg["lira"]["fixed_variance"]),
        "details": details,
        "target_accuracy": {"members": acc_mem, "nonmembers": acc_non, "gap": acc_mem - acc_non},
        "privacy": privacy,
        "split_unit": group_unit,
        "defense": defense,
        "dp_ceiling_violated": (any(e.get("dp_ceiling", {}).get("violated") for r in results.values() for e in r.values())
                                if privacy is not None else None),
        "dp_ceiling_fatal_violation": bool(violations) if privacy is not None else None,
    }
    comparison = None
    if compare_ref_files:
        c_refs, c_keep, c_group = load_references(compare_ref_files, cand, kind, t_steps)
        comparison = ([m.to(device) for m in c_refs], c_keep, {
            "reference_kind": c_group, "K": len(c_refs),
            "note": "the same attacks with reference models not trained like the target (not the threat model's "
                    "attacker, who knows the recipe); shown to make the difference visible"})
    elif defense:
        comparison = (plain_refs, keep, {
            "reference_kind": f"{reference_group} (without the defense)", "K": len(plain_refs), "adaptive": False,
            "note": "the non-adaptive attack: the same reference models, not wrapped in the target's defense (an "
                    "attacker who ignores it); the threat model's attacker knows the defense (the main rows)"})
    if comparison is not None:
        c_refs, c_keep, head = comparison
        c_scores, c_details = _scores(names, target_logits, c_refs, c_keep, q, cfg)
        c_results, _ = _evaluate(names, c_scores, labels_x, subjects, window_clusters, window_unit, group_unit, cfg,
                                 None, (*seed_keys, "comparison"), None)
        summary["comparison"] = {**head, "attacks": c_results, "strongest_window": strongest_of(c_scores, c_results),
                                 "details": c_details}
    inputs = [target_path, spikes_path, *(*ref_files, *compare_ref_files)] + \
        ([privacy_path] if privacy_path else [])
    summary["provenance"] = provenance({"attack": cfg, "target": target_name, "time_steps": time_steps},
                                       inputs=inputs, seed=root)
    summary["wall_time_s"] = time.perf_counter() - start_s
    if violations and cfg["fail_on_ceiling_violation"]:
        write_json(outdir / "ceiling_violation.json", summary)
        name, level, c = violations[0]
        w = c["worst"]
        raise BiospikeError(
            f"measured TPR {w['tpr']:.4f} (lower {c['ci_level']:.0%} bound {w['tpr_lower']:.4f}) exceeds the DP ceiling "
            f"{w['ceiling']:.4f} = e^{c['epsilon']:.3g} x {w.get('fpr_upper', w['fpr']):.4g} + {c['delta']:.3g} at FPR {w['fpr']:.4g} "
            f"({name}, {level} level, where members and non-members are {level}s assigned at random; "
            f"{len(violations)} attack/level pair(s) in violation): this means a bug in the DP path "
            f"(details in ceiling_violation.json)", target_path)
    write_json(outdir / "summary.json", summary)
    return summary


def cli(argv: list[str], prog: str) -> int:
    """``biospike attack``: parse ``argv``, run :func:`attack_stage` on a target model and its
    reference shards, log each attack's AUC; returns the exit code."""
    from biospike.cliutil import load_context, setup_logging, stage_parser
    from biospike.config import seed_everything

    parser = stage_parser(prog, "membership-inference attacks (LOSS, LiRA, RMIA, input dropout) on a trained model",
                          sections=("attack", "train"), names=("dataset", "encoding", "target"))
    parser.add_argument("--target-model", required=True, help="R/{dataset}/{encoding}/{target}/model.pt")
    parser.add_argument("--spikes", required=True, help="R/{dataset}/{encoding}/spikes.h5")
    parser.add_argument("--refs", nargs="+", required=True,
                        help="reference shard files (refs/{group}/shard{s}.pt), trained with the target's recipe")
    parser.add_argument("--compare-refs", nargs="+", default=(),
                        help="a second reference group whose attacks are reported beside (e.g. non-private ones)")
    parser.add_argument("--privacy", help="privacy.json of a DP target: check the ROC against its ceiling")
    parser.add_argument("--time-steps", type=int, help="re-bin the spikes to T steps (time-step sweep)")
    parser.add_argument("--families", nargs="+", choices=mia.ATTACK_FAMILIES, help="override attack.attacks")
    parser.add_argument("--no-input-dropout", action="store_true", help="no input-dropout queries (the T sweep)")
    parser.add_argument("--outdir", required=True, help="R/{dataset}/{encoding}/{target}/attack")
    args = parser.parse_args(argv)
    setup_logging()
    ctx = load_context(args)
    if args.no_input_dropout:
        ctx["attack"]["input_dropout"]["enabled"] = False
    seed_everything(ctx.derive_seed("attack"), args.threads)
    summary = attack_stage(ctx, args.target_model, args.spikes, args.refs, args.outdir, args.privacy,
                           args.time_steps, args.families, compare_ref_files=args.compare_refs)
    for name in summary["attack_names"]:
        for level, r in summary["attacks"][name].items():
            if "auc" in r:
                log.info("%-20s %-7s AUC %.3f [%.3f, %.3f]  TPR@1%%FPR %s", name, level, r["auc"], *r["auc_ci"],
                         r["tpr_at_1pct_fpr"] if isinstance(r["tpr_at_1pct_fpr"], str) else f"{r['tpr_at_1pct_fpr']:.4f}")
    return 0


# --------------------------------------------------------------------------------------------
# attack-sweep
# --------------------------------------------------------------------------------------------


def sweep_table(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[dict], dict]:
    """Rows (T, attack, level, AUC, CI, TPR@1%FPR, accuracies) and, per attack and level, the
    Spearman correlation of AUC with T and whether the AUC at the largest T is above the one at
    the smallest T with non-overlapping CIs."""
    from scipy import stats

    rows = []
    for s in sorted(summaries, key=lambda s: s["time_steps"]):
        for name in s["attack_names"]:
            for level, r in s["attacks"][name].items():
                if "auc" not in r:
                    continue
                rows.append({"time_steps": s["time_steps"], "dt_s": s["dt_s"], "attack": name, "level": level,
                             "auc": r["auc"], "auc_ci_low": r["auc_ci"][0], "auc_ci_high": r["auc_ci"][1],
                             "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"],
                             "member_accuracy": s["target_accuracy"]["members"],
                             "nonmember_accuracy": s["target_accuracy"]["nonmembers"]})
    trend: dict[str, dict] = {}
    for key in sorted({(r["attack"], r["level"]) for r in rows}):
        pts = [r for r in rows if (r["attack"], r["level"]) == key]
        entry: dict[str, Any] = {"time_steps": [p["time_steps"] for p in pts], "auc": [p["auc"] for p in pts]}
        if len(pts) >= 3:
            rho = stats.spearmanr(entry["time_steps"], entry["auc"]).statistic
            entry["spearman_rho"] = None if rho is None or np.isnan(rho) else float(rho)
        else:
            entry["spearman_rho"] = None
        if len(pts) >= 2:
            lo, hi = pts[0], pts[-1]
            entry["auc_change_first_to_last"] = hi["auc"] - lo["auc"]
            entry["rise_beyond_ci"] = bool(hi["auc_ci_low"] > lo["auc_ci_high"])
            entry["fall_beyond_ci"] = bool(hi["auc_ci_high"] < lo["auc_ci_low"])
        trend[f"{key[0]}/{key[1]}"] = entry
    return rows, trend


def cli_sweep(argv: list[str], prog: str) -> int:
    """``biospike attack-sweep``: parse ``argv``, collect the per-T attack summaries into
    t_sweep.json (rows, trend, provenance) and t_sweep.csv; returns the exit code."""
    from biospike.cliutil import stage_parser
    from biospike.store import atomic_path, provenance, read_json, write_json

    parser = stage_parser(prog, "collect the time-step sweep's attack summaries")
    parser.add_argument("--summaries", nargs="+", required=True, help="t_sweep/T{T}/attack/summary.json files")
    parser.add_argument("--output", required=True, help="t_sweep.json")
    parser.add_argument("--csv", required=True, help="t_sweep.csv")
    args = parser.parse_args(argv)
    summaries = [read_json(p) for p in args.summaries]
    rows, trend = sweep_table(summaries)
    out = {"rows": rows, "trend": trend,
           "finding_tested": "membership leakage rises with the number of time steps T (Guan et al. 2025)",
           "provenance": provenance({"summaries": list(args.summaries)}, inputs=args.summaries)}
    columns = ["time_steps", "dt_s", "attack", "level", "auc", "auc_ci_low", "auc_ci_high", "tpr_at_1pct_fpr",
               "member_accuracy", "nonmember_accuracy"]
    with atomic_path(args.csv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    write_json(args.output, out)
    return 0
