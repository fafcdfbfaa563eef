"""Send-on-delta encoding with reference tracking, its decoder and the closed form behind its speed.

Semantics (per channel, one window at a time, at the signal rate). The reference starts at the
channel's baseline ``r = baseline``; at every sample ``x``::

    while x - r >= thr: emit UP,   r += thr
    while r - x >= thr: emit DOWN, r -= thr

so after every sample ``|x - r| < thr`` and a slow drift fires as soon as it has moved one
threshold from the last spike (unlike a consecutive-sample difference). Several spikes in one
sample or one SNN step are counted. Comparisons are made in threshold units
``u = (x - baseline) / thr`` (float32), where the reference is the integer level ``q`` with
``r = baseline + thr * q``: ``UP`` while ``u >= q + 1``, ``DOWN`` while ``u <= q - 1``.

Closed form. One sample maps the level to ``q_t = clamp(q_{t-1}, floor(u_t), ceil(u_t))`` (a
play operator on an integer grid). Since ``ceil - floor <= 1``, ``q_t = floor(u_t) + b_t`` with one
bit of state ``b_t = [q_{t-1} > floor(u_t)]``, and that bit is *forced* whenever ``floor(u)``
changes (down -> 1, up -> 0) or ``u_t`` is an integer (-> 0), and carried otherwise. A carried bit
is a forward fill, i.e. one running maximum of ``forced * (2 * t + 2 + bit)`` (the low bit of the
running maximum is the bit of the last forced sample). The whole encoder is then elementwise
array operations plus one cumulative max, vectorised over all channels and windows;
:func:`delta_encode_naive` is the sample-by-sample definition it is tested against.

Per-step counts are the sums over the samples of each SNN step (see :mod:`.timebase`), as
uint8; a count above 255 saturates (and is counted in the stats). Spike channel ``2c`` is UP
("C3+"), ``2c + 1`` is DOWN ("C3-").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["MAD_TO_SD", "DeltaResult", "channel_baseline", "delta_decode", "delta_encode", "delta_encode_naive",
           "delta_levels", "fit_thresholds", "reconstruction_snr_db", "robust_spread", "step_end_samples"]

# Rows x samples processed at once: keeps the ~15 temporaries in the CPU caches.
_CHUNK_ELEMENTS = 1 << 17
# Shortest time block of one pass over long windows (the level carries across blocks).
_MIN_TIME_BLOCK = 1024

MAD_TO_SD = 1.4826  # median absolute deviation -> standard deviation for Gaussian data


@dataclasses.dataclass
class DeltaResult:
    """What :func:`delta_encode` returns: UP/DOWN counts per step and how many saturated."""

    spikes: np.ndarray  # uint8 (N, T, 2C): UP/DOWN interleaved per input channel
    saturated: int  # (n, t, c) entries whose count exceeded 255 and was clipped


def robust_spread(signals: np.ndarray, max_values: int = 2_000_000) -> np.ndarray:
    """Per-channel robust standard deviation ``1.4826 * MAD`` of (N, C, L) signals.

    At most ``max_values`` values per channel are used (evenly strided, deterministic).
    """
    if signals.shape[0] == 0:
        raise BiospikeError("no windows to estimate the channel spread from (empty training split?)")
    per_channel = np.moveaxis(signals, 1, 0).reshape(signals.shape[1], -1)
    stride = max(1, per_channel.shape[1] // max_values)
    values = per_channel[:, ::stride].astype(np.float64)
    centre = np.median(values, axis=1, keepdims=True)
    return MAD_TO_SD * np.median(np.abs(values - centre), axis=1)


def channel_baseline(signals: np.ndarray, max_values: int = 2_000_000) -> np.ndarray:
    """Per-channel median of (N, C, L) signals (the initial reference)."""
    per_channel = np.moveaxis(signals, 1, 0).reshape(signals.shape[1], -1)
    stride = max(1, per_channel.shape[1] // max_values)
    return np.median(per_channel[:, ::stride].astype(np.float64), axis=1)


def fit_thresholds(train_signals: np.ndarray, mode: str, threshold: float | Sequence[float],
                   channel_names: Sequence[str] | None = None) -> np.ndarray:
    """Per-channel thresholds: ``absolute`` (signal units) or ``spread_fraction`` (fraction of
    the channel's 1.4826 * MAD over the training windows). A flat channel is an error."""
    n_channels = train_signals.shape[1]
    value = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n_channels,)).copy()
    if np.any(~np.isfinite(value)) or np.any(value <= 0):
        raise BiospikeError(f"encode.delta.threshold must be positive, got {threshold}")
    if mode == "absolute":
        return value
    if mode != "spread_fraction":
        raise BiospikeError(f"encode.delta.threshold_mode must be absolute or spread_fraction, got {mode!r}")
    spread = robust_spread(train_signals)
    flat = np.flatnonzero(~(spread > 0))
    if flat.size:
        fallback = np.std(train_signals[:, flat, :], axis=(0, 2))
        spread[flat] = fallback
        still = [int(c) for c, s in zip(flat, fallback, strict=True) if not s > 0]
        if still:
            names = [channel_names[c] if channel_names else str(c) for c in still]
            raise BiospikeError(f"channel(s) {names} are flat on the training split: no threshold can be set")
    return value * spread


def _units(signals: np.ndarray, threshold: np.ndarray, baseline: np.ndarray,
           out: np.ndarray | None = None) -> np.ndarray:
    """``u = (x - baseline) * (1 / thr)`` in float32, (N, C, L) -> (N*C, L). Shared by the fast
    and the reference encoder, so both compare the very same numbers."""
    n, c, length = signals.shape
    inv = (1.0 / np.asarray(threshold, dtype=np.float64)).astype(np.float32)
    base = np.asarray(baseline, dtype=np.float64).astype(np.float32)
    if out is None:
        out = np.empty((n * c, length), np.float32)
    view = out.reshape(n, c, length)
    np.subtract(signals, base[None, :, None], out=view, dtype=np.float32, casting="unsafe")
    view *= inv[None, :, None]
    return out


class _Workspace:
    """Preallocated temporaries for one chunk of rows (fresh large arrays cost page faults)."""

    def __init__(self, rows: int, length: int) -> None:
        import torch

        shape = (rows, length)
        self.u = np.empty(shape, np.float32)
        self.f = np.empty(shape, np.float32)
        self.df = np.empty(shape, np.float32)
        self.integer = np.empty(shape, bool)
        self.forced = np.empty(shape, bool)
        self.down = np.empty(shape, bool)
        self.key = np.empty(shape, np.int32)
        self.runmax = torch.empty(shape, dtype=torch.int32)
        self.runarg = torch.empty(shape, dtype=torch.int64)
        self.ramp = 2 * np.arange(length, dtype=np.int32) + 2


def _levels_block(u: np.ndarray, q_prev: np.ndarray, ws: _Workspace) -> np.ndarray:
    """Reference levels (float32 with integral values, a view into ``ws``) of a (R, L) block of
    units, given the levels (R,) just before it. See the module docstring for the closed form."""
    import torch

    rows, length = u.shape
    f, integer, df = ws.f[:rows, :length], ws.integer[:rows, :length], ws.df[:rows, :length]
    forced, down, key = ws.forced[:rows, :length], ws.down[:rows, :length], ws.key[:rows, :length]
    np.floor(u, out=f)
    np.equal(f, u, out=integer)
    has_integer = bool(integer.any())
    # sample 0 is always forced: bit = [q_prev > floor(u_0)], unless u_0 is an integer
    np.greater(q_prev, f[:, 0], out=down[:, 0])
    forced[:, 0] = True
    np.subtract(f[:, 1:], f[:, :-1], out=df[:, 1:])
    np.not_equal(df[:, 1:], 0, out=forced[:, 1:])
    np.less(df[:, 1:], 0, out=down[:, 1:])
    if has_integer:
        forced |= integer
        down &= ~integer
    # key = forced * (2t + 2) + down; its running max's low bit is the bit of the last forced sample
    np.multiply(ws.ramp[:length], forced.view(np.int8), out=key, casting="unsafe")
    np.add(key, down.view(np.int8), out=key, casting="unsafe")
    runmax, runarg = ws.runmax[:rows, :length], ws.runarg[:rows, :length]
    if runmax.is_contiguous():
        torch.cummax(torch.from_numpy(key), dim=1, out=(runmax, runarg))
        bits = runmax.numpy()
    else:
        bits = torch.cummax(torch.from_numpy(key), dim=1).values.numpy()
    np.bitwise_and(bits, 1, out=key)
    np.multiply(key, 0x3F800000, out=key)  # 0/1 -> the bit patterns of 0.0f/1.0f
    f += key.view(np.float32)
    return f


def delta_levels(u: np.ndarray) -> np.ndarray:
    """Integer reference levels ``q`` (R, L) (float32) of units ``u`` (R, L), starting from 0."""
    rows, length = u.shape
    return _levels_block(np.ascontiguousarray(u, dtype=np.float32), np.zeros(rows, np.float32),
                         _Workspace(rows, length)).copy()


def _bin_counts(per_sample: np.ndarray, sample_step: np.ndarray, n_steps: int, uniform: int | None) -> np.ndarray:
    """Sum (R, L) per-sample counts over each step's samples -> (R, T)."""
    rows, length = per_sample.shape
    if uniform == 1:
        return per_sample
    if uniform is not None:
        return per_sample.reshape(rows, n_steps, uniform).sum(axis=2)
    csum = np.zeros((rows, length + 1), dtype=np.float64)
    np.cumsum(per_sample, axis=1, out=csum[:, 1:])
    edges = np.searchsorted(sample_step, np.arange(n_steps + 1), side="left")
    return (csum[:, edges[1:]] - csum[:, edges[:-1]]).astype(np.float32)


def delta_encode(signals: np.ndarray, threshold: np.ndarray, baseline: np.ndarray,
                 sample_step: np.ndarray | None = None, n_steps: int | None = None) -> DeltaResult:
    """Encode (N, C, L) windows into (N, T, 2C) uint8 UP/DOWN counts per SNN step.

    ``sample_step`` (L,) maps samples to steps (non-decreasing, from
    :meth:`TimeBase.sample_step`); by default one step per sample. Work proceeds in chunks of
    windows and, for long windows, blocks of time (the level carries across blocks), so memory
    stays bounded and the temporaries stay in cache.
    """
    n, c, length = signals.shape
    if sample_step is None:
        sample_step, n_steps = np.arange(length), length
    sample_step = np.asarray(sample_step, dtype=np.int64)
    n_steps = int(n_steps if n_steps is not None else sample_step[-1] + 1)
    per_step = np.bincount(sample_step, minlength=n_steps)
    uniform = int(per_step[0]) if per_step.size == n_steps and np.all(per_step == per_step[0]) else None
    # UP and DOWN of one channel and step are adjacent bytes: fill them as one little-endian uint16
    out = np.empty((n, n_steps, c, 2), dtype=np.uint8)
    out16 = out.view("<u2").reshape(n, n_steps, c)
    threshold = np.asarray(threshold, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if uniform is None:
        block = length  # uneven steps: one block per window
    else:
        per_block = max(1, max(_MIN_TIME_BLOCK, _CHUNK_ELEMENTS // max(1, c)) // uniform)
        block = min(length, per_block * uniform)
    windows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, c * block))
    workspaces: dict[int, _Workspace] = {}
    saturated = 0
    for w0 in range(0, n, windows_per_chunk):
        w1 = min(n, w0 + windows_per_chunk)
        rows = (w1 - w0) * c
        q_prev = np.zeros(rows, np.float32)
        for t0 in range(0, length, block):
            t1 = min(length, t0 + block)
            ws = workspaces.get(t1 - t0) or workspaces.setdefault(t1 - t0, _Workspace(windows_per_chunk * c, t1 - t0))
            u = _units(signals[w0:w1, :, t0:t1], threshold, baseline, out=ws.u[:rows])
            q = _levels_block(u, q_prev, ws)
            d = u  # u is no longer needed: reuse its memory for the level steps
            np.subtract(q[:, 0], q_prev, out=d[:, 0])
            np.subtract(q[:, 1:], q[:, :-1], out=d[:, 1:])
            q_prev = q[:, -1].copy()
            if uniform == 1:
                s0, s1 = t0, t1
                code = np.abs(d, out=ws.f[:rows, : t1 - t0])  # q is consumed: reuse its memory
                if float(code.max()) > 255:
                    saturated += int(np.count_nonzero(code > 255))
                    np.clip(d, -255, 255, out=d)
                    np.abs(d, out=code)
                # UP + 256 * DOWN = max(d, 0) + 256 max(-d, 0) = 128.5 |d| - 127.5 d (exact in float32)
                code *= np.float32(128.5)
                d *= np.float32(127.5)
                code -= d
            else:
                if uniform is None:
                    s0, s1, steps, k = 0, n_steps, sample_step, None
                else:
                    s0, s1, steps, k = t0 // uniform, t1 // uniform, None, uniform
                up = _bin_counts(np.maximum(d, 0), steps, s1 - s0, k)
                down = _bin_counts(np.maximum(-d, 0), steps, s1 - s0, k)
                saturated += int(np.count_nonzero(up > 255) + np.count_nonzero(down > 255))
                code = np.minimum(up, 255)
                code += 256 * np.minimum(down, 255)
            np.copyto(out16[w0:w1, s0:s1], code.reshape(w1 - w0, c, s1 - s0).transpose(0, 2, 1), casting="unsafe")
    return DeltaResult(spikes=out.reshape(n, n_steps, 2 * c), saturated=saturated)


def delta_encode_naive(signals: np.ndarray, threshold: np.ndarray, baseline: np.ndarray,
                       sample_step: np.ndarray | None = None, n_steps: int | None = None) -> np.ndarray:
    """Reference implementation, one sample and one spike at a time (for tests): (N, T, 2C)
    int64 counts without saturation."""
    n, c, length = signals.shape
    if sample_step is None:
        sample_step, n_steps = np.arange(length), length
    n_steps = int(n_steps if n_steps is not None else sample_step[-1] + 1)
    u = _units(signals, np.asarray(threshold, dtype=np.float64), np.asarray(baseline, dtype=np.float64))
    out = np.zeros((n, n_steps, c, 2), dtype=np.int64)
    for row in range(n * c):
        w, ch = divmod(row, c)
        q = 0.0
        for i in range(length):
            x = float(u[row, i])
            while x >= q + 1:
                q += 1
                out[w, sample_step[i], ch, 0] += 1
            while x <= q - 1:
                q -= 1
                out[w, sample_step[i], ch, 1] += 1
    return out.reshape(n, n_steps, 2 * c)


def delta_decode(spikes: np.ndarray, threshold: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The tracked reference at the end of every step: (N, T, 2C) counts -> (N, C, T) float64."""
    n, t, c2 = spikes.shape
    counts = spikes.reshape(n, t, c2 // 2, 2).astype(np.int64)
    level = np.cumsum(counts[..., 0] - counts[..., 1], axis=1)  # (N, T, C)
    ref = np.asarray(baseline, dtype=np.float64) + np.asarray(threshold, dtype=np.float64) * level
    return ref.transpose(0, 2, 1)


def step_end_samples(sample_step: np.ndarray, n_steps: int) -> np.ndarray:
    """(T,) index of the last sample counted in each step (-1 for a step without samples)."""
    ends = np.searchsorted(sample_step, np.arange(n_steps), side="right") - 1
    has = np.isin(np.arange(n_steps), sample_step)
    return np.where(has, ends, -1)


def reconstruction_snr_db(signals: np.ndarray, decoded: np.ndarray, sample_step: np.ndarray,
                          n_steps: int, baseline: np.ndarray) -> tuple[float, list[float]]:
    """SNR of the decoded reference against the signal at the last sample of every step:
    ``10 log10(sum (x - baseline)^2 / sum (x - r)^2)``, pooled and per input channel (dB)."""
    ends = step_end_samples(sample_step, n_steps)
    keep = ends >= 0
    x = signals[..., ends[keep]].astype(np.float64)
    r = decoded[..., keep]
    power = ((x - np.asarray(baseline, dtype=np.float64)[None, :, None]) ** 2).sum(axis=(0, 2))
    noise = ((x - r) ** 2).sum(axis=(0, 2))

    def db(p: float, e: float) -> float:
        if e == 0:
            return float("inf")
        return float(10 * np.log10(p / e)) if p > 0 else float("-inf")

    return db(float(power.sum()), float(noise.sum())), [db(p, e) for p, e in zip(power, noise, strict=True)]
