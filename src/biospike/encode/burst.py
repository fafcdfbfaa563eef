"""Burst input dynamics: Poisson-Burst and Delayed-Burst spike trains from the same windows.

Both follow the two burst dynamics of Moshruba, Poursiami & Parsa (2025), "Izhikevich-inspired
temporal dynamics for enhancing privacy, efficiency, and transferability in spiking neural
networks" (arXiv:2505.04034), who compare them with rate coding for membership-inference
leakage; the burst as a short train of closely spaced spikes is Guo et al. (2021, Front.
Neurosci. 15:638474). Where the paper leaves a choice open (intensity scale, interval, burst
spacing, truncation), the choice here is stated; docs/training.md "Input dynamics" lists them.

Every spike channel gets an intensity ``a`` in [0, 1] per frame of ``frame_steps`` steps: the
rectified mean intensity over the frame's samples, on the rate code's scale (:mod:`.rate`,
:func:`biospike.encode.ttfs.frame_intensity`) times a per-channel gain that makes the
``frame_percentile``-th percentile of the fit split's frame means full scale. A burst is ``n = 1 + Poisson(burst_mean - 1)``
spikes (at least one, ``burst_mean`` on average) ``isi_steps`` steps apart, cut at the frame's end.

- ``poisson``: in every frame (the burst interval) a burst starts at the frame's first step with
  probability ``a``; bursts recur stochastically over the window, more often when stronger.
- ``delayed``: in every frame (default: one frame, the whole window) exactly one burst, after a
  random delay ``d ~ Geometric`` on {0, 1, ...} with mean ``(1 - a) (K - margin)``, capped at
  ``K - margin`` (``K`` the frame's length, ``margin`` steps kept free so that a burst of average
  size fits): stronger channels burst earlier, every channel bursts once.

Seeded; each block of windows has its own random stream, so the spikes do not depend on chunking.
"""

from __future__ import annotations

import math

import numpy as np

from biospike.encode.rate import RateScale
from biospike.encode.timebase import TimeBase
from biospike.encode.ttfs import frame_bounds, frame_intensity
from biospike.errors import BiospikeError

__all__ = ["DYNAMICS", "burst_encode", "burst_sizes", "delayed_onsets"]

DYNAMICS = ("poisson", "delayed")
_RNG_BLOCK = 256


def burst_sizes(rng: np.random.Generator, shape: tuple[int, ...], burst_mean: float) -> np.ndarray:
    """Spikes per burst, ``1 + Poisson(burst_mean - 1)``: at least one, mean ``burst_mean``."""
    return 1 + rng.poisson(burst_mean - 1.0, size=shape)


def delayed_onsets(rng: np.random.Generator, a: np.ndarray, frame_len: np.ndarray, margin_steps: int) -> np.ndarray:
    """Burst onsets within their frame (..., F, C'): Geometric on {0, 1, ...} with mean
    ``(1 - a) max(0, K - margin)``, capped at ``max(0, K - margin)`` (the burst's room)."""
    room = np.clip(frame_len - margin_steps, 0, frame_len - 1)[:, None]
    p = 1.0 / (1.0 + (1.0 - a.astype(np.float64)) * room)
    # inversion, one uniform per entry (numpy's geometric draws a p-dependent number of them, so
    # one window's intensities would shift the stream of every later draw)
    u = rng.random(a.shape)
    with np.errstate(divide="ignore"):
        d = np.floor(np.log1p(-u) / np.log1p(-p))
    return np.minimum(np.where(p >= 1.0, 0.0, d), room).astype(np.int64)


def burst_encode(signals: np.ndarray, fit: RateScale, tb: TimeBase, dynamics: str, frame_steps: int | None,
                 burst_mean: float, isi_steps: int, margin_steps: int | None, seed: int,
                 gain: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """Spikes (N, T, C') uint8 (0/1) of ``dynamics`` (``poisson`` | ``delayed``) and statistics:
    bursts per window and channel, spikes per burst, and spikes cut by a frame's end."""
    if dynamics not in DYNAMICS:
        raise BiospikeError(f"burst dynamics must be one of {DYNAMICS}, got {dynamics!r}")
    if not burst_mean >= 1:
        raise BiospikeError(f"burst_mean must be at least 1 (a burst holds one spike or more), got {burst_mean}")
    if int(isi_steps) < 1:
        raise BiospikeError(f"isi_steps must be at least 1, got {isi_steps}")
    margin = int(math.ceil(burst_mean * isi_steps)) if margin_steps is None else int(margin_steps)
    bounds = frame_bounds(tb.n_steps, frame_steps)
    frame_len = np.diff(bounds)
    n_win = signals.shape[0]
    width = 2 * signals.shape[1] if fit.polarity == "bipolar" else signals.shape[1]
    out = np.zeros((n_win, tb.n_steps, width), dtype=np.uint8)
    bursts = spikes_kept = spikes_cut = 0
    for w0 in range(0, n_win, _RNG_BLOCK):
        w1 = min(n_win, w0 + _RNG_BLOCK)
        rng = np.random.default_rng([seed, w0 // _RNG_BLOCK])
        a = frame_intensity(signals[w0:w1], fit, tb, bounds, "mean", f"encode.{dynamics}_burst", gain)  # (n, F, C')
        if dynamics == "poisson":
            onset = np.where(rng.random(a.shape, dtype=np.float32) < a, 0, -1)
        else:
            onset = delayed_onsets(rng, a, frame_len, margin)
        sizes = burst_sizes(rng, a.shape, burst_mean)
        win, frame, ch = np.nonzero(onset >= 0)
        n = sizes[win, frame, ch]
        bursts += len(win)
        # one row per spike of every burst: burst index repeated n times, j = 0 .. n - 1
        rep = np.repeat(np.arange(len(win)), n)
        j = np.arange(len(rep)) - np.repeat(np.cumsum(n) - n, n)
        t_in_frame = onset[win, frame, ch][rep] + j * int(isi_steps)
        keep = t_in_frame < frame_len[frame[rep]]
        spikes_cut += int(np.count_nonzero(~keep))
        spikes_kept += int(np.count_nonzero(keep))
        out[w0 + win[rep][keep], bounds[frame[rep][keep]] + t_in_frame[keep], ch[rep][keep]] = 1
    pairs = n_win * width
    return out, {"burst_dynamics": dynamics, "burst_frames_per_window": len(frame_len),
                 "bursts_per_window_per_channel": float(bursts / pairs) if pairs else 0.0,
                 "spikes_per_burst_mean": float(spikes_kept / bursts) if bursts else None,
                 "burst_spikes_cut": spikes_cut, "burst_margin_steps": margin}
