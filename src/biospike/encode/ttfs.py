"""Time-to-first-spike (TTFS) code: one spike per spike channel and frame, earlier for larger values.

The window's T steps are cut into frames of ``K = frame_steps`` steps (``frame_steps: null``: one
frame, the whole window). Each frame gives every spike channel an intensity ``a`` in [0, 1], on
the rate code's scale (:mod:`.rate`: ``bipolar`` channels ``C3+`` / ``C3-`` for the positive and
negative excursions from the channel median over the ``scale_percentile``-th percentile of
``|x - median|``, or ``unipolar``):

- ``frame_value: mean`` (default): the mean of the sample intensities over the frame's samples, a
  rectified-average envelope (e.g. EMG's mean absolute value per frame), rescaled so that the
  ``frame_percentile``-th percentile of the fit split's frame means is full scale
  (:func:`fit_frame_gain`; the sample scale alone leaves frame means at ~0.1);
- ``frame_value: start``: the intensity at the frame's first step, read like the population
  code's latency frames (the frame must then satisfy Nyquist for the band; see :mod:`.timebase`).

A channel with ``a >= cutoff`` fires exactly once in the frame, at offset
``min(K_f - 1, floor(K_f * (1 - a) / (1 - cutoff)))`` with ``K_f`` the frame's length (the last
frame may be shorter): ``a = 1`` fires at the frame's first step, ``a`` just above ``cutoff`` at
its last; below ``cutoff`` it stays silent. A linear latency code (Rueckauer & Liu 2018 map
activation linearly to first-spike time) stretched so the range above the cutoff spans the whole
frame; snnTorch's ``spikegen.latency(linear=True, normalize=True)`` uses ``(K - 1)(1 - a)``
without that stretch. Deterministic.
"""

from __future__ import annotations

import numpy as np

from biospike.encode.rate import RateScale, intensity
from biospike.encode.timebase import TimeBase
from biospike.errors import BiospikeError

__all__ = ["FRAME_VALUES", "fit_frame_gain", "frame_bounds", "frame_intensity", "ttfs_encode", "ttfs_offsets"]

FRAME_VALUES = ("mean", "start")
_BLOCK = 256  # windows per chunk: bounds the float32 per-sample intensities held at once


def frame_bounds(n_steps: int, frame_steps: int | None) -> np.ndarray:
    """(F + 1,) first step of every frame and T at the end; ``frame_steps`` None or 0: one frame."""
    k = n_steps if not frame_steps else int(frame_steps)
    if k < 1:
        raise BiospikeError(f"frame_steps must be at least 1, got {frame_steps}")
    return np.append(np.arange(0, n_steps, k), n_steps).astype(np.int64)


def ttfs_offsets(a: np.ndarray, frame_len: np.ndarray, cutoff: float) -> np.ndarray:
    """First-spike offset within its frame for intensities ``a`` (..., F, C') and frame lengths
    ``frame_len`` (F,); -1 where ``a < cutoff`` (silent)."""
    if not 0 <= cutoff < 1:
        raise BiospikeError(f"encode.ttfs.cutoff must be in [0, 1), got {cutoff}")
    k = frame_len.astype(np.float64)[:, None]
    off = np.floor(k * (1.0 - a) / (1.0 - cutoff)).astype(np.int64)
    off = np.minimum(off, frame_len[:, None] - 1)
    return np.where(a >= cutoff, np.maximum(off, 0), -1)


def fit_frame_gain(fit_signals: np.ndarray, fit: RateScale, tb: TimeBase, bounds: np.ndarray, percentile: float,
                   setting: str = "encode.ttfs", max_windows: int = 2000) -> np.ndarray:
    """Per spike channel (C',), the gain that maps the ``percentile``-th percentile of the fit
    windows' frame means to full scale (1). A frame mean averages the rectified signal, so it sits
    far below the sample scale (a Gaussian channel's frame means are ~0.1 of it): without this gain
    a latency or delay code would use a tenth of its range. A channel whose frame means are all 0
    keeps gain 1."""
    if not 0 < percentile <= 100:
        raise BiospikeError(f"{setting}.frame_percentile must be in (0, 100], got {percentile}")
    pick = np.unique(np.linspace(0, len(fit_signals) - 1, num=min(len(fit_signals), max_windows)).round().astype(np.int64))
    a = frame_intensity(fit_signals[pick], fit, tb, bounds, "mean", setting)
    level = np.percentile(a.reshape(-1, a.shape[2]), percentile, axis=0)
    return np.where(level > 0, 1.0 / np.where(level > 0, level, 1.0), 1.0)


def frame_intensity(signals: np.ndarray, fit: RateScale, tb: TimeBase, bounds: np.ndarray,
                    frame_value: str, setting: str = "encode.ttfs", gain: np.ndarray | None = None) -> np.ndarray:
    """(N, C, L) windows -> (N, F, C') frame intensities in [0, 1] (float32); ``gain`` (C',)
    rescales the frame means (:func:`fit_frame_gain`) before clipping; ``setting`` names the config
    section in error messages."""
    if frame_value == "start":
        values = tb.step_values(signals, 1)[..., bounds[:-1]]
        return intensity(values, fit)
    if frame_value != "mean":
        raise BiospikeError(f"{setting}.frame_value must be one of {FRAME_VALUES}, got {frame_value!r}")
    step_of_sample = tb.sample_step()
    frame_of_sample = np.searchsorted(bounds, step_of_sample, side="right") - 1
    counts = np.bincount(frame_of_sample, minlength=len(bounds) - 1)
    if np.any(counts == 0):
        raise BiospikeError(f"{setting}: the frame's mean intensity needs at least one sample per frame: a frame "
                            f"of {int(np.diff(bounds).min())} step(s) of {tb.dt_s * 1e3:g} ms holds none at "
                            f"{tb.fs_hz:g} Hz (raise {setting}.frame_steps)")
    starts = np.searchsorted(frame_of_sample, np.arange(len(counts)))
    per_sample = intensity(signals, fit)  # (N, L, C')
    means = np.add.reduceat(per_sample, starts, axis=1, dtype=np.float64) / counts[None, :, None]
    if gain is not None:
        means = np.clip(means * np.asarray(gain, dtype=np.float64)[None, None, :], 0.0, 1.0)
    return means.astype(np.float32)


def ttfs_encode(signals: np.ndarray, fit: RateScale, tb: TimeBase, frame_steps: int | None, frame_value: str,
                cutoff: float, gain: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Spikes (N, T, C') uint8, at most one per channel and frame, and the code's statistics:
    frames per window, the fraction of silent (channel, frame) pairs and the mean first-spike
    offset of the firing ones, in steps."""
    bounds = frame_bounds(tb.n_steps, frame_steps)
    frame_len = np.diff(bounds)
    n_win = signals.shape[0]
    width = 2 * signals.shape[1] if fit.polarity == "bipolar" else signals.shape[1]
    out = np.zeros((n_win, tb.n_steps, width), dtype=np.uint8)
    fired = 0
    offset_sum = 0
    for w0 in range(0, n_win, _BLOCK):
        w1 = min(n_win, w0 + _BLOCK)
        a = frame_intensity(signals[w0:w1], fit, tb, bounds, frame_value, gain=gain)
        off = ttfs_offsets(a, frame_len, cutoff)  # (n, F, C')
        win, frame, ch = np.nonzero(off >= 0)
        out[w0 + win, bounds[frame] + off[win, frame, ch], ch] = 1
        fired += len(win)
        offset_sum += int(off[win, frame, ch].sum())
    pairs = n_win * len(frame_len) * width
    return out, {"ttfs_frames_per_window": len(frame_len), "ttfs_frame_steps": int(frame_len[0]),
                 "ttfs_silent_fraction": float(1 - fired / pairs) if pairs else 1.0,
                 "ttfs_mean_offset_steps": float(offset_sum / fired) if fired else None}
