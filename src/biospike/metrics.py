"""Utility metrics of a classifier, one definition for every model kind and stage.

Accuracy, balanced accuracy (mean recall over the classes present) and macro-F1 follow
scikit-learn's definitions (checked against it in the tests); :func:`evaluate` gives the
``train`` / ``val`` / ``test`` blocks of every ``metrics.json``, from logits or labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["balanced_accuracy", "confusion", "evaluate", "finite", "macro_f1", "scores"]


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
             class_names: Sequence[str]) -> dict[str, Any]:
    """Metrics of one split: accuracy, balanced accuracy, macro-F1, confusion, per class, per subject.

    ``logits_or_labels``: logits or class probabilities (N, K), or predicted labels (N,). With
    logits, ``nll`` is the mean cross-entropy (unweighted). Subject ids are the hashed ids of
    windows.h5.
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
