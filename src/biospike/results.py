"""The outputs every trained target writes, built and written in one place for every model kind:
``metrics.json`` (the same fields for an SNN, an ANN, a classical model or a DP-SGD model),
``curve.csv`` (one row per epoch) and the checkpoint, all atomically."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from biospike.metrics import finite

__all__ = ["CURVE_COLUMNS", "PER_SUBJECT_COLUMNS", "metrics_record", "write_curve", "write_per_subject",
           "write_target"]

CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_accuracy", "lr")


def metrics_record(*, model: str, dataset: str, encoding: str, class_names: Sequence[str],
                   splits: Mapping[str, dict], n_windows: Mapping[str, int], seed: int,
                   history: Sequence[Mapping[str, Any]], best_epoch: int, stopped_early: bool,
                   arch: Mapping[str, Any], n_parameters: int, firing: dict | None = None,
                   spikes_per_inference: dict | None = None, errors: Sequence[dict] = (),
                   **extra: Any) -> dict[str, Any]:
    """The ``metrics.json`` record of one trained target (``extra``: kind-specific fields such as
    ``time_steps``, ``dt_s`` or a DP model's ``privacy`` summary)."""
    record: dict[str, Any] = {"model": model, "dataset": dataset, "encoding": encoding, "class_names": list(class_names)}
    record |= dict(splits)
    record |= {
        "firing": firing,
        "spikes_per_inference": spikes_per_inference,
        "status": "error" if errors else "ok",
        "errors": list(errors),
        "n_parameters": int(n_parameters),
        "n_windows": dict(n_windows),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "stopped_early": stopped_early,
        "history": {"best": history[best_epoch - 1] if best_epoch else {}, "final": history[-1] if history else {}},
        "arch": dict(arch),
        "seed": seed,
    }
    record |= extra
    return record


def write_curve(path: str | Path, history: Sequence[Mapping[str, Any]]) -> None:
    """One row per epoch: the standard columns, then any extra ones (rates, clip bounds) by name."""
    from biospike.store import atomic_path

    extra = sorted({k for row in history for k in row if k not in CURVE_COLUMNS})
    columns = [*CURVE_COLUMNS, *extra]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in history:
            writer.writerow(["" if row.get(c) is None or (isinstance(row.get(c), float) and not math.isfinite(row[c]))
                             else (f"{row[c]:.6g}" if isinstance(row[c], float) else row[c]) for c in columns])


PER_SUBJECT_COLUMNS = ("split", "subject", "n", "accuracy", "balanced_accuracy", "macro_f1")


def write_per_subject(path: str | Path, metrics: Mapping[str, Any], splits: Sequence[str] = ("val", "test")) -> None:
    """One row per subject of the validation and test splits: the scores a clinical reader wants
    to see spread out, not only averaged."""
    from biospike.store import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(PER_SUBJECT_COLUMNS)
        for split in splits:
            for subject, row in (metrics.get(split) or {}).get("per_subject", {}).items():
                writer.writerow([split, subject, row["n"]] + [
                    "" if row[k] is None or (isinstance(row[k], float) and not math.isfinite(row[k])) else f"{row[k]:.6g}"
                    for k in ("accuracy", "balanced_accuracy", "macro_f1")])


def write_target(outdir: str | Path, metrics: Mapping[str, Any], curve: Sequence[Mapping[str, Any]],
                 save_model: Callable[[Path], None], extra_json: Mapping[str, Any] | None = None) -> None:
    """Write a target's checkpoint (``save_model(outdir)``), ``curve.csv``, ``per_subject.csv``,
    any extra JSON files (name -> record, e.g. ``privacy.json``) and ``metrics.json`` last, each
    atomically."""
    from biospike.store import write_json

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    save_model(outdir)
    write_curve(outdir / "curve.csv", curve)
    write_per_subject(outdir / "per_subject.csv", metrics)
    for name, record in (extra_json or {}).items():
        write_json(outdir / name, finite(record))
    write_json(outdir / "metrics.json", finite(metrics))
