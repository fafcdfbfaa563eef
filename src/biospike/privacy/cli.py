"""Stages ``biospike harden`` (DP training, or its canary audit) and ``biospike privacy-table``.

harden:   spikes.h5 -> R/{ds}/{enc}/dpsnn_eps{E}/{model.pt, metrics.json, curve.csv, privacy.json}
          with ``--audit FILE``: the one-run canary audit of the same recipe -> audit.json
          (``--epsilon none --audit FILE`` audits the non-private SNN recipe, train.fit).
privacy-table: the targets' metrics/privacy/audit files + the non-private snn -> privacy_utility.csv/.json
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["PUBLIC_FIT_SPLITS", "TABLE_COLUMNS", "audit_stage", "cli_harden", "cli_table", "dp_fit", "harden_stage",
           "overlapping_units", "parse_epsilon", "prepare", "preprocessing_record", "table_rows", "write_table"]

log = logging.getLogger("biospike.privacy")

# encoder.fitted_on values that name public data (encode.fit_split: population = mia/population)
PUBLIC_FIT_SPLITS = ("population",)


# ------------------------------------------------------------------------------------ data


def overlapping_units(spikes: Any, train_idx: np.ndarray, other_idx: np.ndarray, unit: str) -> list[str]:
    """Privacy units (windows, or subjects) that have windows both in ``train_idx`` and in
    ``other_idx``: data of such a unit is not public with respect to a ``unit``-level guarantee."""
    if unit == "window":
        return sorted(np.intersect1d(train_idx, other_idx).astype(str).tolist())
    subject = np.asarray(spikes.subject).astype(str)
    return sorted(set(subject[train_idx]) & set(subject[other_idx]))


def prepare(spikes: Any, train_cfg: Mapping[str, Any], unit: str, root_seed: int, dataset: str,
            spikes_path: str | Path) -> dict:
    """Everything the DP run needs from spikes.h5: the same training windows as the non-private
    snn (train.select_train_indices), validation/test/public windows, an architecture whose
    ``input_scale: auto`` and class weights come from public data, and the preprocessing record.

    The population pool counts as public only if it shares no privacy unit with the training
    windows: with ``unit: subject`` and a split below subject level (record, segment, block) it can
    hold windows of training subjects, and is then refused."""
    from biospike.train import arch_for
    from biospike.trainset import class_weights, require_splits, split_indices, training_windows

    require_splits(spikes, spikes_path)
    labels = np.asarray(spikes.labels, dtype=np.int64)
    train_idx, train_all = training_windows(spikes, train_cfg, root_seed, dataset)
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("the training split holds fewer than two classes", spikes_path)
    public_idx = split_indices(spikes, "population", "mia")
    val_idx = split_indices(spikes, "val")
    # statistics the recipe fits (input gain, class weights, initialisation, noise allocation)
    # come from public data when there is any, else from the validation split (not public)
    stat_idx, stat_pool = (public_idx, "population") if len(public_idx) else (val_idx, "validation")
    shared = overlapping_units(spikes, train_all, stat_idx, unit)
    if shared:
        raise BiospikeError(
            f"privacy.unit is '{unit}' but {len(shared)} {unit}(s) of the {stat_pool} pool also have training "
            f"windows (the split is below the privacy unit: split_by record, segment or block keeps a subject in "
            f"several pools), so its windows are not public for a {unit}-level guarantee, yet the DP recipe fits "
            f"the initialisation, input scale, class weights, noise allocation (and an encoder fitted on it) "
            f"there; split by subject (datasets.<name>.split_by: subject) or use privacy.unit: window", spikes_path)
    stat_source = ("population split (public: no training unit in it)" if stat_pool == "population" else
                   "validation split (no training unit in it, but not public: its subjects are not protected)")
    arch = arch_for("snn", spikes, train_cfg, index=stat_idx)
    n_classes = len(spikes.class_names)
    weight, weight_source = None, "none (train.class_weighting is not 'balanced')"
    if train_cfg["class_weighting"] in ("balanced", "sampler"):
        weight = class_weights(labels[stat_idx], n_classes)
        weight[weight == 0] = 1.0  # a class absent from the public data keeps weight 1
        weight_source = f"balanced class weights from the {stat_source}"
    return {
        "train_cfg": train_cfg, "labels": labels, "train_idx": train_idx, "train_all": train_all,
        "val_idx": val_idx, "test_idx": split_indices(spikes, "test"),
        "public_idx": public_idx,  # empty without a population pool: no public data then
        "arch": arch, "class_weight": weight,
        "preprocessing": preprocessing_record(spikes, stat_pool, stat_source, weight_source, train_cfg,
                                              subsampled=len(train_idx) < len(train_all)),
    }


def preprocessing_record(spikes: Any, stat_pool: str, stat_source: str, weight_source: str,
                         train_cfg: Mapping[str, Any], subsampled: bool = False) -> list[dict]:
    """What was fitted on which data before DP training, and whether that is inside the guarantee.

    Per statistic: ``fitted_on``; ``public`` (the data is public: no unit of it is protected);
    ``private`` (it was computed from the protected training units); ``inside_guarantee``
    (it cannot weaken the stated epsilon for the training units); ``privatized`` (noised and
    accounted)."""
    public_stats = stat_pool == "population"
    enc = dict(spikes.encoder or {})
    # encode stage: encoder.fitted_on = encode.fit_split (train | population)
    fit = enc.get("fitted_on") or enc.get("fit_split") or enc.get("fit")
    fit_text = str(fit.get("split") if isinstance(fit, Mapping) else fit) if fit else None
    if fit_text is None:
        enc_private, enc_public, enc_note = True, False, (
            "the encoder did not record what its statistics were fitted on; treated as fitted on private data")
    else:
        enc_private = fit_text.lower() not in PUBLIC_FIT_SPLITS
        enc_public = not enc_private
        enc_note = (f"fitted on the {fit_text} split: " + (
            "private training data, NOT covered by the DP guarantee (a small leak: per-channel "
            "statistics); fit the encoder on the population split (encode.fit_split: population) "
            "to close it" if enc_private
            else "public data (the attacker's reference pool, never trained on, no training unit in it)"))
    auto = train_cfg.get("input_scale") == "auto"
    return [
        {"statistic": "ingest filters (notch, band-pass, resample)", "fitted_on": "each recording itself",
         "public": False, "private": False, "inside_guarantee": True, "privatized": False,
         "note": "per-recording signal processing, no statistic across units; with window-level privacy, "
                 "overlapping windows (stride < window) share samples, so one stretch of signal lies in "
                 "several units (group privacy); subject-level privacy covers it"},
        {"statistic": f"encoder parameters ({enc.get('name', 'unknown')})", "fitted_on": fit_text,
         "public": enc_public, "private": enc_private, "inside_guarantee": not enc_private, "privatized": False,
         "note": enc_note},
        {"statistic": "input_scale (train.input_scale: auto) and the initialisation" if auto
         else "input_scale (fixed in config)", "fitted_on": stat_source if auto else "config",
         "public": public_stats or not auto, "private": False, "inside_guarantee": True, "privatized": False,
         "note": "never computed from training windows under DP"},
        {"statistic": "class weights", "fitted_on": weight_source, "public": public_stats, "private": False,
         "inside_guarantee": True, "privatized": False,
         "note": "private class counts would make every unit's loss depend on the others'"},
        {"statistic": "adaptive noise allocation", "fitted_on": stat_source if public_stats else
         "nothing (no public data: data-independent shares)", "public": True, "private": False,
         "inside_guarantee": True, "privatized": False,
         "note": "shares from public windows and the current (already private) model"},
        {"statistic": "training-window subsample (train.max_train_windows)", "fitted_on": "training labels",
         "public": False, "private": subsampled, "inside_guarantee": not subsampled, "privatized": False,
         "note": ("class-stratified subsample of the training split (the same windows as the non-private snn): "
                  "which windows are trained on depends on the class counts, so the guarantee covers the "
                  "windows actually used, not the whole split" if subsampled else
                  "no subsample: every training window is used")},
    ]


# ------------------------------------------------------------------------------------ harden


def _units(spikes: Any, idx: np.ndarray, unit: str) -> np.ndarray:
    return idx.astype(str) if unit == "window" else np.asarray(spikes.subject)[idx].astype(str)


def parse_epsilon(text: str) -> float | None:
    """``--epsilon``: a positive finite number, or None for ``none``/``inf``/``nonprivate``
    (any case); anything else is an error."""
    if text.lower() in ("none", "inf", "nonprivate"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise BiospikeError(f"--epsilon must be a number or 'none', got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise BiospikeError(f"--epsilon must be a positive number, got {text!r}")
    return value


def _check_preprocessing(settings: Any, records: list[dict], spikes_path: str | Path) -> None:
    private = [r for r in records if r["private"] is not False and r["statistic"].startswith("encoder")]
    if private and settings.public_preprocessing == "require":
        raise BiospikeError(f"privacy.public_preprocessing is 'require' but {private[0]['note']}", spikes_path)
    for r in private:
        log.warning("privacy: %s: %s", r["statistic"], r["note"])


def _names(ctx: Any, spikes: Any) -> tuple[str, str]:
    return ctx.name("dataset", spikes.dataset), ctx.name("encoding", spikes.encoding)


def harden_stage(ctx: Any, spikes_path: str | Path, outdir: str | Path, epsilon: float, progress: bool = True) -> dict:
    """DP-train the snn at target ``epsilon``; write model.pt, metrics.json, curve.csv, privacy.json."""
    from biospike import train
    from biospike.config import derive_seed
    from biospike.metrics import BOOTSTRAP_N, evaluate
    from biospike.models import count_parameters, predict_logits, resolve_device, save_checkpoint
    from biospike.privacy.dp import DPSettings, dp_train
    from biospike.results import metrics_record, write_target
    from biospike.store import provenance, read_spikes
    from biospike.targets import dp_target

    start_s = time.perf_counter()
    settings = DPSettings.from_config(ctx["privacy"])
    train_cfg = ctx["train"]
    _check_learning(train_cfg)
    spikes = read_spikes(spikes_path)
    dataset, encoding = _names(ctx, spikes)
    d = prepare(spikes, train_cfg, settings.unit, ctx.root_seed(), dataset, spikes_path)
    device = resolve_device(train_cfg["device"])  # train.device: DP training runs there too
    _check_preprocessing(settings, d["preprocessing"], spikes_path)
    name = dp_target(epsilon)
    seed = ctx.derive_seed("harden", dataset, encoding, name)
    x, labels = spikes.spikes, d["labels"]
    tr, va, te, pub = d["train_idx"], d["val_idx"], d["test_idx"], d["public_idx"]
    log.info("harden %s/%s eps=%g: %d train windows, %s-level units, %d public windows", dataset, encoding,
             epsilon, len(tr), settings.unit, len(pub))
    res = dp_train(d["arch"], x[tr], labels[tr], _units(spikes, tr, settings.unit), x[va], labels[va], settings,
                   epsilon, seed, x_public=x[pub] if len(pub) else None, y_public=labels[pub] if len(pub) else None,
                   class_weight=d["class_weight"], progress=progress, desc=f"harden eps{epsilon:g}", device=device)
    model = res.model
    class_names = list(spikes.class_names)
    splits = {split: evaluate(predict_logits(model, x[idx]), labels[idx], spikes.subject[idx], class_names, index=idx,
                              n_bootstrap=0 if split == "train" else BOOTSTRAP_N,
                              seed=derive_seed(seed, "utility", split))
              for split, idx in (("train", tr), ("val", va), ("test", te))}
    eval_split, eval_idx = ("test", te) if len(te) else ("val", va)
    firing = train.firing_summary(train.firing_stats(model, x[eval_idx]), float(spikes.dt_s), eval_split)
    firing["init_mean_rate_per_step"] = None
    privacy = {**res.privacy, "target": name, "preprocessing": d["preprocessing"],
               "outside_guarantee": ["metrics.json 'train' block (evaluated on the private training windows "
                                     "without noise: internal diagnostics, do not publish with the model)"]}
    metrics = metrics_record(
        model=name, dataset=dataset, encoding=encoding, class_names=class_names, splits=splits,
        n_windows={"train": len(tr), "train_available": len(d["train_all"]), "val": len(va), "test": len(te)},
        seed=seed, history=res.history, best_epoch=res.best_epoch, stopped_early=False, arch=d["arch"],
        n_parameters=count_parameters(model), firing=firing, spikes_per_inference=firing["spikes_per_inference"],
        errors=firing["errors"], time_steps=int(x.shape[1]), dt_s=float(spikes.dt_s),
        privacy={k: privacy[k] for k in ("epsilon", "delta", "privacy_unit", "accountant", "noise_multiplier",
                                         "sample_rate", "steps")})
    prov = provenance({"privacy": ctx["privacy"], "train": train_cfg, "target": name, "dataset": dataset,
                       "encoding": encoding}, inputs=[spikes_path], seed=seed)
    metrics["provenance"] = prov
    privacy["provenance"] = prov
    privacy["wall_time_s"] = res.wall_time_s
    metrics["wall_time_s"] = time.perf_counter() - start_s
    meta = {"class_names": class_names, "dt_s": float(spikes.dt_s), "channel_names": list(spikes.channel_names),
            "dataset": dataset, "encoding": encoding, "model": name, "seed": seed,
            "train_indices": tr.tolist(), "best_epoch": res.best_epoch, "epochs_run": len(res.history),
            "history": res.history, "encoder": spikes.encoder, "source": spikes.source,
            "privacy": {k: privacy[k] for k in ("epsilon", "delta", "privacy_unit", "accountant")}}
    write_target(outdir, metrics, [{k: v for k, v in row.items() if k != "allocation"} for row in res.history],
                 lambda dd: save_checkpoint(dd / "model.pt", model, meta), extra_json={"privacy.json": privacy})
    return metrics


def _check_learning(train_cfg: Mapping[str, Any]) -> None:
    """DP-SGD trains every layer by gradients: an STDP feature layer would leave the guarantee
    (its unsupervised updates are not clipped or noised), so refuse rather than drop it silently."""
    if train_cfg.get("learning", "surrogate") != "surrogate":
        raise BiospikeError(f"DP-SGD trains the hidden layers by surrogate gradients; train.learning is "
                            f"{train_cfg['learning']!r} (STDP updates are not privatised): use the stdp model kind "
                            f"for STDP and keep train.learning surrogate")


def dp_fit(target: Any, spikes: Any, train_idx: np.ndarray, val_idx: np.ndarray, settings: Mapping[str, Any],
           seed: int, public_idx: np.ndarray | None = None, progress: bool = False) -> tuple[Any, dict]:
    """DP-SGD at ``target``'s epsilon on chosen windows: the recipe of a DP target, for the
    attacks' reference models (the threat model's attacker knows it). Like the target, the input
    scale, initialisation, class weights and noise allocation come from windows never trained on
    (``public_idx``, the attacker's own OUT population windows); the noise follows
    ``privacy.noise``, the epsilon is recomputed for this training set's size."""
    from biospike.privacy.dp import DPSettings, dp_train
    from biospike.train import arch_for
    from biospike.trainset import class_weights

    dp_settings = DPSettings.from_config(settings["privacy"])
    train_cfg = settings["train"]
    _check_learning(train_cfg)
    labels = np.asarray(spikes.labels, dtype=np.int64)
    public = np.sort(np.asarray(public_idx if public_idx is not None else [], dtype=np.int64))
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("fewer than two classes among the training windows")
    arch = arch_for("snn", spikes, train_cfg, index=public if len(public) else train_idx[:0])
    weight = None
    if train_cfg["class_weighting"] in ("balanced", "sampler") and len(public):
        weight = class_weights(labels[public], len(spikes.class_names))
        weight[weight == 0] = 1.0
    x = spikes.spikes
    res = dp_train(arch, x[train_idx], labels[train_idx], _units(spikes, train_idx, dp_settings.unit), x[val_idx],
                   labels[val_idx], dp_settings, float(target.value), seed,
                   x_public=x[public] if len(public) else None, y_public=labels[public] if len(public) else None,
                   class_weight=weight, progress=progress, desc=f"reference {target.name}")
    info = {"arch": arch, "best_epoch": res.best_epoch, "epochs_run": len(res.history), "history": res.history,
            "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "wall_time_s": res.wall_time_s,
            "privacy": {k: res.privacy[k] for k in ("epsilon", "delta", "privacy_unit", "noise_mode", "replayable")}}
    return res.model, info


def audit_stage(ctx: Any, spikes_path: str | Path, out_path: str | Path, epsilon: float | None,
                progress: bool = True, label: str | None = None) -> dict:
    """One-run canary audit of the DP recipe at ``epsilon`` (None: the non-private snn recipe,
    ``train.fit`` with the train section) on this dataset's training windows."""
    from biospike import train
    from biospike.metrics import finite
    from biospike.models import resolve_device
    from biospike.privacy.audit import run_audit
    from biospike.privacy.dp import DPSettings
    from biospike.store import provenance, read_spikes, write_json
    from biospike.targets import dp_target

    start_s = time.perf_counter()
    settings = DPSettings.from_config(ctx["privacy"])
    train_cfg = ctx["train"]
    _check_learning(train_cfg)
    spikes = read_spikes(spikes_path)
    dataset, encoding = _names(ctx, spikes)
    d = prepare(spikes, train_cfg, settings.unit, ctx.root_seed(), dataset, spikes_path)
    device = resolve_device(train_cfg["device"])
    label = label or (dp_target(epsilon) if epsilon is not None else "snn_nonprivate")
    seed = ctx.derive_seed("audit", dataset, encoding, label)
    x, labels = spikes.spikes, d["labels"]
    tr, va, pub = d["train_idx"], d["val_idx"], d["public_idx"]
    log.info("audit %s %s/%s: %d training windows (%s-level units)", label, dataset, encoding, len(tr), settings.unit)
    audit_cfg = settings.audit
    early_stopping = audit_cfg["nonprivate"] == "early_stopping"

    def nonprivate_fit(arch, x_fit, y_fit, x_v, y_v, fit_seed):
        if early_stopping:  # exactly the snn target's recipe
            return train.fit(arch, x_fit, y_fit, x_v, y_v, train_cfg, fit_seed, progress=progress).model
        # the snn recipe (Adam, train.lr, batches) without early stopping, to the last epoch
        cfg = {**train_cfg, "epochs": int(audit_cfg["nonprivate_epochs"])}
        return train.fit(arch, x_fit, y_fit, x_v[:0], y_v[:0], cfg, fit_seed, progress=progress).model

    try:
        out = run_audit(d["arch"], x[tr], labels[tr], _units(spikes, tr, settings.unit), x[va], labels[va], settings,
                        epsilon, seed, x_public=x[pub] if len(pub) else None,
                        y_public=labels[pub] if len(pub) else None, class_weight=d["class_weight"],
                        nonprivate_fit=nonprivate_fit, progress=progress, device=device)
    except ValueError as exc:  # audit settings the data cannot meet (too few public windows for canaries)
        raise BiospikeError(str(exc), spikes_path) from None
    recipe = ("privacy.dp.dp_train (the harden recipe, canaries as extra units; last iterate)" if epsilon is not None
              else "train.fit, the snn target's recipe with early stopping" if early_stopping else
              f"train.fit (Adam, train.lr) for {audit_cfg['nonprivate_epochs']} epochs, no early stopping, last epoch")
    out = {"target": label, "dataset": dataset, "encoding": encoding, "recipe": recipe, **out}
    out["provenance"] = provenance({"privacy": ctx["privacy"], "target": label}, inputs=[spikes_path], seed=seed)
    out["wall_time_s"] = time.perf_counter() - start_s
    write_json(out_path, finite(out))
    return out


# ------------------------------------------------------------------------------------ table


TABLE_COLUMNS = ("target", "epsilon_target", "epsilon", "delta", "privacy_unit", "accountant", "noise_multiplier",
                 "sample_rate", "steps", "test_balanced_accuracy", "test_accuracy", "test_macro_f1",
                 "val_balanced_accuracy", "audit_epsilon_lower_bound", "audit_canary_auc")


def table_rows(target_dirs: Sequence[str | Path], nonprivate_dir: str | Path | None,
               nonprivate_audit: str | Path | None = None) -> list[dict]:
    """One row (the keys of ``TABLE_COLUMNS``) per DP target directory, from its metrics.json,
    privacy.json and audit.json, sorted by epsilon; then the non-private directory's row, if given
    (epsilon inf, noise multiplier 0, its audit from ``nonprivate_audit``)."""
    from biospike.store import read_json

    def row_for(d: Path, audit_path: Path | None) -> dict:
        metrics = read_json(d / "metrics.json")
        priv = read_json(d / "privacy.json") if (d / "privacy.json").is_file() else None
        audit = read_json(audit_path) if audit_path is not None and audit_path.is_file() else None
        return {
            "target": d.name,
            "epsilon_target": priv["target_epsilon"] if priv else None,
            "epsilon": priv["epsilon"] if priv else math.inf,
            "delta": priv["delta"] if priv else None,
            "privacy_unit": priv["privacy_unit"] if priv else None,
            "accountant": priv["accountant"] if priv else None,
            "noise_multiplier": priv["noise_multiplier"] if priv else 0.0,
            "sample_rate": priv["sample_rate"] if priv else None,
            "steps": priv["steps"] if priv else None,
            "test_balanced_accuracy": metrics["test"]["balanced_accuracy"],
            "test_accuracy": metrics["test"]["accuracy"],
            "test_macro_f1": metrics["test"]["macro_f1"],
            "val_balanced_accuracy": metrics["val"]["balanced_accuracy"],
            "audit_epsilon_lower_bound": audit["epsilon_lower_bound"] if audit else None,
            "audit_canary_auc": audit["canary_auc"] if audit else None,
        }

    rows = [row_for(Path(d), Path(d) / "audit.json") for d in target_dirs]
    rows.sort(key=lambda r: r["epsilon"])
    if nonprivate_dir is not None:
        rows.append(row_for(Path(nonprivate_dir), Path(nonprivate_audit) if nonprivate_audit else None))
    return rows


def write_table(rows: list[dict], out_csv: str | Path, inputs: Sequence[str | Path], ctx: Any) -> None:
    """Write ``rows`` to ``out_csv`` (columns ``TABLE_COLUMNS``, infinite epsilon as ``inf``, None
    empty) and its .json twin (rows with infinite epsilon as null, columns, a note, provenance)."""
    from biospike.store import atomic_path, provenance, write_json

    def fmt(v: Any) -> Any:
        if v is None:
            return ""
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.6g}"
        return v

    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(TABLE_COLUMNS)
        for r in rows:
            writer.writerow([fmt(r[c]) for c in TABLE_COLUMNS])
    json_rows = [{k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in r.items()} for r in rows]
    write_json(Path(out_csv).with_suffix(".json"), {
        "rows": json_rows, "columns": list(TABLE_COLUMNS),
        "note": "epsilon None = non-private; audit lower bounds are one-run (Steinke et al. 2023) at the stated confidence",
        "provenance": provenance({"privacy": ctx["privacy"]}, inputs=inputs, seed=ctx.seed),
    })


def cli_harden(argv: list[str], prog: str) -> int:
    """``biospike harden``: parse ``argv``; DP-train the snn for ``--epsilon`` into ``--outdir``,
    or with ``--audit FILE`` run the canary audit instead (an error if its lower bound exceeds the
    claimed epsilon); returns the exit code."""
    from biospike.cliutil import load_context, setup_logging, stage_parser
    from biospike.config import seed_everything

    parser = stage_parser(prog, "DP-SGD training of the snn with an accounted (epsilon, delta); or its canary audit",
                          sections=("privacy", "train"), names=("dataset", "encoding"))
    parser.add_argument("--input", required=True, help="spikes.h5")
    parser.add_argument("--epsilon", required=True, help="target epsilon (as in privacy.epsilons); 'none' only with --audit")
    parser.add_argument("--outdir", help="R/{dataset}/{encoding}/dpsnn_eps{E} (training)")
    parser.add_argument("--audit", metavar="FILE", help="run the one-run canary audit instead and write FILE (audit.json)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()
    ctx = load_context(args)
    epsilon = parse_epsilon(args.epsilon)
    seed_everything(ctx.root_seed(), args.threads)
    if args.audit:
        out = audit_stage(ctx, args.input, args.audit, epsilon, progress=not args.no_progress)
        log.info("audit %s: epsilon lower bound %.3f (claimed %s), canary AUC %.3f", out["target"],
                 out["epsilon_lower_bound"], out["claimed_epsilon"], out["canary_auc"])
        if out["consistent"] is False:
            raise BiospikeError(f"the audit's lower bound {out['epsilon_lower_bound']:.3f} exceeds the claimed "
                                f"epsilon {out['claimed_epsilon']:.3f}: the DP implementation is broken", args.audit)
        return 0
    if epsilon is None:
        raise BiospikeError("--epsilon none is only meaningful with --audit (the non-private snn is `biospike train`)")
    if not args.outdir:
        raise BiospikeError("--outdir is required (or --audit FILE)")
    metrics = harden_stage(ctx, args.input, args.outdir, epsilon, progress=not args.no_progress)
    p = metrics["privacy"]
    log.info("%s: epsilon %.3f (delta %.2g, %s, %s-level), test balanced accuracy %.3f, %.1f s", metrics["model"],
             p["epsilon"], p["delta"], p["accountant"], p["privacy_unit"], metrics["test"]["balanced_accuracy"],
             metrics["wall_time_s"])
    return 0


def cli_table(argv: list[str], prog: str) -> int:
    """``biospike privacy-table``: parse ``argv``, write the privacy-utility table (.csv and .json)
    of the DP targets and the non-private snn; returns the exit code."""
    from biospike.cliutil import load_context, setup_logging, stage_parser

    parser = stage_parser(prog, "privacy-utility table: DP targets + the non-private snn", sections=("privacy",))
    parser.add_argument("--targets", nargs="+", required=True, help="dpsnn_eps{E} directories")
    parser.add_argument("--nonprivate", help="the non-private snn directory (R/{ds}/{enc}/snn)")
    parser.add_argument("--nonprivate-audit", help="audit.json of the non-private recipe")
    parser.add_argument("--output", required=True, help="privacy_utility.csv (a .json twin is written beside it)")
    args = parser.parse_args(argv)
    setup_logging()
    ctx = load_context(args)
    rows = table_rows(args.targets, args.nonprivate, args.nonprivate_audit)
    inputs = [Path(t) / f for t in args.targets for f in ("metrics.json", "privacy.json", "audit.json")]
    if args.nonprivate:
        inputs.append(Path(args.nonprivate) / "metrics.json")
    write_table(rows, args.output, inputs, ctx)
    for r in rows:
        log.info("%-16s epsilon=%-8s test balanced accuracy=%.3f audit lower bound=%s", r["target"],
                 "inf" if math.isinf(r["epsilon"]) else f"{r['epsilon']:.3f}", r["test_balanced_accuracy"],
                 "n/a" if r["audit_epsilon_lower_bound"] is None else f"{r['audit_epsilon_lower_bound']:.3f}")
    return 0
