"""Which windows train a model: the split indices, the class-stratified cap, class weights.

Every trainer (SNN, ANN, classical, DP-SGD, the attacks' target replicas) selects its training
windows here, so they all train on the same windows of a dataset.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from biospike.config import derive_seed
from biospike.errors import BiospikeError

__all__ = ["class_weights", "names_and_seed", "require_splits", "select_train_indices", "split_indices",
           "subsample_seed", "training_windows"]


def split_indices(data: Any, name: str, group: str = "splits") -> np.ndarray:
    """Sorted window indices of ``data.<group>[name]`` (empty when the split is absent)."""
    idx = getattr(data, group).get(name)
    return np.sort(np.asarray(idx, dtype=np.int64)) if idx is not None else np.zeros(0, dtype=np.int64)


def require_splits(data: Any, source: Any, names: tuple[str, ...] = ("train", "val", "test")) -> None:
    """Refuse ``data`` (Windows or Spikes) without each split in ``names``; the error names ``source``."""
    for name in names:
        if name not in data.splits:
            raise BiospikeError(f"no '{name}' split in splits/", source)


def subsample_seed(root_seed: int, dataset: str) -> int:
    """The seed of the training-window subsample: one per dataset, the same for every model and
    encoding, so snn, ann and classical train on the same windows."""
    return derive_seed(int(root_seed), "train", dataset, "subsample")


def select_train_indices(train_idx: np.ndarray, labels: np.ndarray, max_windows: int | None, seed: int) -> np.ndarray:
    """At most ``max_windows`` training windows, stratified by class (proportions kept, every class
    kept), sorted. Attacks need this exact set: it is stored as ``train_indices`` in model.pt's meta."""
    train_idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    if not max_windows or len(train_idx) <= max_windows:
        return train_idx
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)[train_idx]
    keep = []
    for cls in np.unique(y):
        members = train_idx[y == cls]
        n_keep = max(1, int(round(len(members) * max_windows / len(train_idx))))
        keep.append(rng.choice(members, size=min(n_keep, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def training_windows(data: Any, settings: dict, root_seed: int, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """(the windows a dataset's models train on, the whole train split)."""
    train_all = split_indices(data, "train")
    labels = np.asarray(data.labels, dtype=np.int64)
    return select_train_indices(train_all, labels, settings["max_train_windows"], subsample_seed(root_seed, dataset)), train_all


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """n / (K n_c) for classes present (0 for absent ones): each class weighs the same in the loss."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def names_and_seed(ctx: Any, data: Any, kind: str) -> tuple[str, str, int]:
    """Dataset and encoding the stage was given (else recorded in the input file), and the
    model's seed derived from the root seed and those names."""
    dataset = ctx.name("dataset", getattr(data, "dataset", None))
    encoding = ctx.name("encoding", getattr(data, "encoding", None))
    return dataset, encoding, ctx.derive_seed("train", dataset, encoding, kind)
