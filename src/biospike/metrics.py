"""Utility metrics of a classifier, one definition for every model kind and stage.

Accuracy, balanced accuracy (mean recall over the classes present) and macro-F1 follow
scikit-learn's definitions (checked against it in the tests); :func:`evaluate` gives the
``train`` / ``val`` / ``test`` blocks of every ``metrics.json``, from logits or labels, with
cluster-bootstrap confidence intervals (whole subjects resampled, as the attack CIs resample them:
windows of one person are not independent), the numbers of subjects and windows, and the chance
levels to read them against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["BOOTSTRAP_N", "CI_LEVEL", "balanced_accuracy", "bootstrap_ci", "chance_levels", "cluster_ids", "confusion",
           "evaluate", "finite", "macro_f1", "predictions", "scores"]

BOOTSTRAP_N = 1000
CI_LEVEL = 0.95


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


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """n, accuracy, balanced accuracy and macro-F1 of predicted labels."""
    return {"n": int(len(y)), "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
            "balanced_accuracy": balanced_accuracy(y, pred), "macro_f1": macro_f1(y, pred)}


def cluster_ids(subjects: np.ndarray, index: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """What one bootstrap draw resamples: the subjects when the windows hold at least two, else
    runs of consecutive window indices (the trials, segments or blocks of single-subject data;
    ``index`` gives each window's position in the dataset)."""
    subjects = np.asarray(subjects).astype(str)
    if len(np.unique(subjects)) >= 2 or index is None:
        return subjects, "subject"
    index = np.asarray(index)
    new_run = np.r_[True, np.diff(index) != 1] if len(index) else np.zeros(0, bool)
    return np.cumsum(new_run).astype(str), "contiguous_run"


def bootstrap_ci(y: np.ndarray, pred: np.ndarray, clusters: np.ndarray, n_classes: int, n: int = BOOTSTRAP_N,
                 ci: float = CI_LEVEL, seed: int = 0) -> dict[str, list[float] | None]:
    """Percentile CIs of balanced accuracy and macro-F1 from ``n`` resamples of whole clusters
    (with replacement); None with fewer than two clusters."""
    y, pred, clusters = np.asarray(y, np.int64), np.asarray(pred, np.int64), np.asarray(clusters)
    ids, inverse = np.unique(clusters, return_inverse=True)
    if len(ids) < 2:
        return {"balanced_accuracy": None, "macro_f1": None}
    # one confusion matrix per cluster; a resample is a sum of them
    per_cluster = np.zeros((len(ids), n_classes, n_classes), dtype=np.int64)
    np.add.at(per_cluster, (inverse, y, pred), 1)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ids), size=(n, len(ids)))
    counts = np.stack([np.bincount(row, minlength=len(ids)) for row in picks])  # (n, clusters)
    cms = np.einsum("bc,ckl->bkl", counts, per_cluster).astype(np.float64)
    support = cms.sum(axis=2)
    diag = np.diagonal(cms, axis1=1, axis2=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, diag / np.where(support > 0, support, 1), np.nan)
        bal = np.nanmean(recall, axis=1)
        predicted = cms.sum(axis=1)
        denom = support + predicted
        f1 = np.where(denom > 0, 2 * diag / np.where(denom > 0, denom, 1), np.nan)
        macro = np.nanmean(np.where(denom > 0, f1, np.nan), axis=1)
    q = [(1 - ci) / 2, 1 - (1 - ci) / 2]
    return {"balanced_accuracy": [float(v) for v in np.nanquantile(bal, q)],
            "macro_f1": [float(v) for v in np.nanquantile(macro, q)]}


def chance_levels(y: np.ndarray, n_classes: int) -> dict[str, float | None]:
    """What a classifier that ignores its input scores here: balanced accuracy 1/K over the K
    classes present, and accuracy of always answering the most frequent class."""
    y = np.asarray(y, np.int64)
    if not len(y):
        return {"balanced_accuracy": None, "accuracy": None}
    counts = np.bincount(y, minlength=n_classes)
    return {"balanced_accuracy": 1.0 / int((counts > 0).sum()), "accuracy": float(counts.max() / len(y))}


def predictions(logits_or_labels: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted labels, logits or None) from logits/probabilities (N, K) or labels (N,)."""
    arr = np.asarray(logits_or_labels)
    if arr.ndim == 2:
        if arr.shape[1] != n_classes:
            raise BiospikeError(f"logits have {arr.shape[1]} columns but there are {n_classes} classes")
        return (arr.argmax(axis=1) if len(arr) else np.zeros(0, dtype=np.int64)), arr
    if arr.ndim == 1:
        return arr.astype(np.int64), None
    raise BiospikeError(f"expected logits (N, K) or labels (N,), got shape {arr.shape}")


def evaluate(logits_or_labels: Any, y: np.ndarray, subjects: Sequence[str] | np.ndarray,
             class_names: Sequence[str], index: np.ndarray | None = None, n_bootstrap: int = BOOTSTRAP_N,
             seed: int = 0) -> dict[str, Any]:
    """Metrics of one split: accuracy, balanced accuracy, macro-F1 with cluster-bootstrap CIs,
    the numbers of windows and subjects, chance levels, confusion, per class, per subject.

    ``logits_or_labels``: logits or class probabilities (N, K), or predicted labels (N,). With
    logits, ``nll`` is the mean cross-entropy (unweighted). Subject ids are the hashed ids of
    windows.h5; ``index`` (the windows' positions in the dataset) lets single-subject data resample
    its trials (:func:`cluster_ids`); ``n_bootstrap`` 0 skips the CIs.
    """
    y = np.asarray(y, dtype=np.int64)
    subjects = np.asarray(subjects).astype(str)
    n_classes = len(class_names)
    pred, logits = predictions(logits_or_labels, n_classes)
    nll = None
    if logits is not None and len(logits):
        import torch  # the same float64 log-softmax as the training loss

        logp = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1).numpy()
        nll = float(-np.mean(logp[np.arange(len(y)), y]))
    if len(pred) != len(y) or len(subjects) != len(y):
        raise BiospikeError("predictions, labels and subjects differ in length")
    out = scores(y, pred)
    clusters, unit = cluster_ids(subjects, index)
    out["n_subjects"] = int(len(np.unique(subjects)))
    if n_bootstrap > 0 and len(y):
        cis = bootstrap_ci(y, pred, clusters, n_classes, n_bootstrap, CI_LEVEL, seed)
        out["balanced_accuracy_ci"], out["macro_f1_ci"] = cis["balanced_accuracy"], cis["macro_f1"]
        out["ci"] = {"level": CI_LEVEL, "n_bootstrap": n_bootstrap, "unit": unit,
                     "n_clusters": int(len(np.unique(clusters))),
                     "method": "percentile bootstrap over whole clusters (windows of one cluster resampled together)"}
    out["chance"] = chance_levels(y, n_classes)
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
    out["per_subject"] = {str(s): scores(y[subjects == s], pred[subjects == s]) for s in sorted(set(subjects))}
    if nll is not None:
        out["nll"] = nll
    return out


def finite(obj: Any) -> Any:
    """NaN and infinities -> None, numpy scalars -> Python, recursively: strict JSON."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return finite(obj.tolist())
    return obj
