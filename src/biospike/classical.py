"""Classical baseline: standardized logistic regression on per-channel RMS and band powers.

A sanity floor for the networks, computed on the **raw windows** of windows.h5 (not on spikes),
so it also tells whether an encoding lost the information a simple spectral model finds.
Output: ``model.joblib`` (a dict holding the scikit-learn pipeline and the feature settings),
and ``metrics.json`` / ``curve.csv`` in the same schema as :mod:`biospike.train`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

N_BANDS = 6  # log-spaced bands between ~2 cycles per window and Nyquist
C_REG = 1.0  # inverse L2 strength of the logistic regression
__all__ = ["C_REG", "N_BANDS", "band_edges_hz", "class_logits", "classical_stage", "features", "fit_classical",
           "predict_classical"]

_EPS = 1e-12


def band_edges_hz(fs_hz: float, n_samples: int, n_bands: int = N_BANDS) -> np.ndarray:
    """n_bands + 1 log-spaced edges from max(0.5 Hz, 2 cycles per window) to fs/2."""
    low = max(0.5, 2.0 * fs_hz / n_samples)
    return np.geomspace(low, fs_hz / 2.0, n_bands + 1)


def features(signals: np.ndarray, fs_hz: float, n_bands: int = N_BANDS) -> np.ndarray:
    """(N, C, L) windows -> (N, C * (1 + n_bands)): log RMS and log Welch band power per channel."""
    from scipy.signal import welch

    signals = np.asarray(signals, dtype=np.float64)
    n, n_ch, n_samples = signals.shape
    rms = np.sqrt(np.mean(signals**2, axis=2))
    freqs, psd = welch(signals, fs=fs_hz, nperseg=min(n_samples, 256), axis=2)
    edges = band_edges_hz(fs_hz, n_samples, n_bands)
    bands = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (freqs >= lo) & (freqs <= hi) if hi == edges[-1] else (freqs >= lo) & (freqs < hi)
        if not sel.any():  # a band narrower than the Welch resolution: nearest bin
            sel = np.zeros_like(freqs, dtype=bool)
            sel[np.argmin(np.abs(freqs - np.sqrt(lo * hi)))] = True
        bands.append(psd[:, :, sel].mean(axis=2))
    feats = np.concatenate([np.log(rms + _EPS)[:, :, None], np.log(np.stack(bands, axis=2) + _EPS)], axis=2)
    return feats.reshape(n, n_ch * (1 + n_bands)).astype(np.float64)


def fit_classical(x: np.ndarray, y: np.ndarray, class_weighting: str, seed: int) -> Any:
    """StandardScaler + multinomial LogisticRegression (lbfgs, deterministic)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    weight = None if class_weighting == "none" else "balanced"  # 'sampler' ~ balanced for a convex model
    clf = LogisticRegression(C=C_REG, max_iter=2000, class_weight=weight, random_state=seed % (2**32))
    return make_pipeline(StandardScaler(), clf).fit(x, y)


def class_logits(pipe: Any, feats: np.ndarray, n_classes: int) -> np.ndarray:
    """Log-probabilities (N, K) over all classes (a class absent from training gets -inf -> -1e9)."""
    out = np.full((len(feats), n_classes), -1e9)
    if len(feats):
        proba = pipe.predict_proba(feats)
        out[:, pipe.classes_] = np.log(np.clip(proba, 1e-12, None))
    return out


def classical_stage(ctx: Any, inputs: Mapping[str, Any], outdir: str | Path, progress: bool = True) -> dict[str, Any]:  # noqa: ARG001
    """Train on the train split of ``inputs["windows"]``; write model.joblib, metrics.json, curve.csv."""
    import joblib

    from biospike.config import derive_seed
    from biospike.metrics import BOOTSTRAP_N, evaluate
    from biospike.results import metrics_record, write_target
    from biospike.store import atomic_path, provenance, read_windows
    from biospike.trainset import names_and_seed, require_splits, split_indices, training_windows

    start_s = time.perf_counter()
    windows_path = inputs["windows"]
    cfg = ctx["train"]
    win = read_windows(windows_path)
    dataset, encoding, seed = names_and_seed(ctx, win, "classical")
    require_splits(win, windows_path)
    labels = np.asarray(win.labels, dtype=np.int64)
    train_idx, train_all = training_windows(win, cfg, ctx.root_seed(), dataset)
    val_idx, test_idx = split_indices(win, "val"), split_indices(win, "test")
    if len(np.unique(labels[train_idx])) < 2:
        raise BiospikeError("the training split holds fewer than two classes", windows_path)
    feats = features(win.signals, win.fs_hz)
    if not np.all(np.isfinite(feats)):
        raise BiospikeError("non-finite values in the windows (features are NaN/inf)", windows_path)
    pipe = fit_classical(feats[train_idx], labels[train_idx], cfg["class_weighting"], seed)
    class_names = list(win.class_names)
    n_classes = len(class_names)
    splits = {name: evaluate(class_logits(pipe, feats[idx], n_classes), labels[idx], win.subject[idx], class_names,
                             index=idx, n_bootstrap=0 if name == "train" else BOOTSTRAP_N,
                             seed=derive_seed(seed, "utility", name))
              for name, idx in (("train", train_idx), ("val", val_idx), ("test", test_idx))}
    row = {"epoch": 1, "train_loss": splits["train"].get("nll"), "val_loss": splits["val"].get("nll"),
           "val_balanced_accuracy": splits["val"]["balanced_accuracy"], "val_accuracy": splits["val"]["accuracy"],
           "lr": None}
    clf = pipe[-1]
    metrics = metrics_record(
        model="classical", dataset=dataset, encoding=encoding, class_names=class_names, splits=splits,
        n_windows={"train": len(train_idx), "train_available": len(train_all), "val": len(val_idx), "test": len(test_idx)},
        seed=seed, history=[row], best_epoch=1, stopped_early=False,
        arch={"kind": "classical", "features": "log RMS + log Welch band power per channel",
              "n_bands": N_BANDS, "band_edges_hz": band_edges_hz(win.fs_hz, win.signals.shape[2]).tolist(),
              "C": C_REG, "n_features": int(feats.shape[1])},
        n_parameters=int(clf.coef_.size + clf.intercept_.size))
    metrics["provenance"] = provenance({"train": cfg, "model": "classical", "dataset": dataset, "encoding": encoding},
                                       inputs=[windows_path], seed=seed)
    metrics["wall_time_s"] = time.perf_counter() - start_s
    from biospike.encode.stage import window_source

    payload = {"pipeline": pipe, "fs_hz": float(win.fs_hz), "n_bands": N_BANDS, "class_names": class_names,
               "source": window_source(win), "dataset": dataset, "model": "classical",
               "channel_names": list(win.channel_names), "train_indices": train_idx.tolist(), "seed": seed}

    def save(directory: Path) -> None:
        with atomic_path(directory / "model.joblib") as tmp:
            joblib.dump(payload, tmp)

    write_target(outdir, metrics, [row], save)
    return metrics


def predict_classical(model_path: str | Path, signals: np.ndarray) -> np.ndarray:
    """Log-probabilities (N, K) of a saved classical model on raw windows (N, C, L)."""
    import joblib

    try:
        payload = joblib.load(model_path)
    except (OSError, EOFError, KeyError, ValueError) as exc:
        raise BiospikeError(f"not a readable classical model ({exc})", model_path) from None
    feats = features(signals, payload["fs_hz"], payload["n_bands"])
    return class_logits(payload["pipeline"], feats, len(payload["class_names"]))
