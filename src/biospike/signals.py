"""Pure signal functions used by ingestion: filters, resampling, windowing, labels, ids.

Arrays are ``(channels, samples)`` float64 unless stated; sample positions are int64.
Nothing here reads files or knows about configs, so each function is tested on its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from biospike.errors import BiospikeError

__all__ = ["PROJECT_SALT", "bad_channels", "bandpass", "beat_windows", "dataset_salt", "fixed_windows", "hash_id",
           "hash_subject", "hold_labels", "interp_uniform", "map_labels", "normalise_channel_name", "notch",
           "notch_applies", "pick_channels", "r_peaks", "resample", "resample_factors", "rescale_events",
           "rr_trace", "runs", "subsample_groups", "take_windows"]

# Constant project salt for de-identification; ingestion appends the dataset name so the same
# raw id maps to different pseudonyms in different datasets.
PROJECT_SALT = "biospike/v1/subject-pseudonym"


# ------------------------------------------------------------------------------ filters


def notch(x: np.ndarray, fs_hz: float, freq_hz: float | None, quality: float = 30.0) -> np.ndarray:
    """Zero-phase IIR notch at ``freq_hz`` (mains); returned unchanged when ``freq_hz`` is None
    or at/above Nyquist (the mains frequency is then not representable)."""
    if not notch_applies(fs_hz, freq_hz):
        return x
    b, a = sps.iirnotch(freq_hz, quality, fs=fs_hz)
    return sps.filtfilt(b, a, x, axis=-1)


def notch_applies(fs_hz: float, freq_hz: float | None) -> bool:
    """Whether :func:`notch` filters at all: ``freq_hz`` set and strictly between 0 and Nyquist."""
    return freq_hz is not None and 0 < freq_hz < fs_hz / 2


def bandpass(x: np.ndarray, fs_hz: float, band_hz: Sequence[float] | None, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections, ``sosfiltfilt``).

    A lower edge of 0 makes it a low-pass. The upper edge must be below Nyquist.
    """
    if band_hz is None:
        return x
    low_hz, high_hz = float(band_hz[0]), float(band_hz[1])
    nyquist_hz = fs_hz / 2
    if not 0 <= low_hz < high_hz:
        raise BiospikeError(f"band-pass edges must satisfy 0 <= low < high, got [{low_hz}, {high_hz}] Hz")
    if high_hz >= nyquist_hz:
        raise BiospikeError(
            f"band-pass upper edge {high_hz:g} Hz is not below Nyquist ({nyquist_hz:g} Hz at {fs_hz:g} Hz)"
        )
    if low_hz == 0:
        sos = sps.butter(order, high_hz, btype="lowpass", fs=fs_hz, output="sos")
    else:
        sos = sps.butter(order, [low_hz, high_hz], btype="bandpass", fs=fs_hz, output="sos")
    try:
        return sps.sosfiltfilt(sos, x, axis=-1)
    except ValueError as exc:  # too short for the filter's padding
        raise BiospikeError(f"signal of {x.shape[-1]} samples is too short to band-pass ({exc})") from None


# ---------------------------------------------------------------------------- resampling


def resample_factors(fs_in_hz: float, fs_out_hz: float, max_denominator: int = 1000) -> tuple[int, int]:
    """Smallest ``(up, down)`` with ``fs_in * up / down == fs_out`` (rates rational to 1/1000)."""
    ratio = Fraction(fs_out_hz / fs_in_hz).limit_denominator(max_denominator)
    if ratio <= 0:
        raise BiospikeError(f"cannot resample {fs_in_hz} Hz -> {fs_out_hz} Hz")
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, fs_in_hz: float, fs_out_hz: float | None) -> tuple[np.ndarray, float]:
    """Anti-aliased polyphase resampling (``resample_poly``, Kaiser FIR); returns the signal and
    the rate actually reached (equal to ``fs_out_hz`` when the ratio is rational)."""
    if fs_out_hz is None or np.isclose(fs_in_hz, fs_out_hz):
        return x, float(fs_in_hz)
    up, down = resample_factors(fs_in_hz, fs_out_hz)
    return sps.resample_poly(x, up, down, axis=-1), fs_in_hz * up / down


def r_peaks(lead: np.ndarray, fs_hz: float) -> np.ndarray:
    """Sample indices of the R peaks of one ECG lead (neurokit2's default detector on its own
    cleaning of the raw lead). Empty when the lead is too short or no beat is found."""
    import warnings

    import neurokit2 as nk

    lead = np.asarray(lead, dtype=np.float64)
    if lead.size < 2 * fs_hz:
        return np.zeros(0, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # neurokit2 warns on short or noisy records; an empty result says it
        try:
            _, info = nk.ecg_peaks(nk.ecg_clean(lead, sampling_rate=fs_hz), sampling_rate=fs_hz)
        except (ValueError, IndexError, ZeroDivisionError):
            return np.zeros(0, dtype=np.int64)
    return np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def rr_trace(peaks: np.ndarray, fs_in_hz: float, n_out: int, fs_out_hz: float) -> np.ndarray:
    """RR interval (s) of the latest beat at each of ``n_out`` samples at ``fs_out_hz``: a step
    signal that changes at every beat by the change of the beat-to-beat interval, which is what
    atrial fibrillation (irregular RR) and premature beats (a short RR) are read from. Before the
    second beat it holds the first interval; with fewer than two beats it is 0 (no information,
    and a send-on-delta encoder then emits nothing)."""
    peaks = np.sort(np.asarray(peaks, dtype=np.float64)) / fs_in_hz
    out = np.zeros(n_out, dtype=np.float64)
    if peaks.size < 2:
        return out
    rr = np.diff(peaks)  # rr[i] ends at beat i + 1
    t_out = np.arange(n_out) / fs_out_hz
    latest = np.searchsorted(peaks, t_out, side="right") - 1  # index of the latest beat at or before t
    out[:] = rr[np.clip(latest - 1, 0, rr.size - 1)]
    return out


def rescale_events(onset: np.ndarray, duration: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Map events to a new rate (``ratio`` = fs_out / fs_in). Segments shrink to the samples
    fully inside them; point events (duration 0) round to the nearest sample."""
    onset = np.asarray(onset, dtype=np.int64)
    duration = np.asarray(duration, dtype=np.int64)
    if ratio == 1:
        return onset, duration
    point = duration == 0
    start = np.where(point, np.round(onset * ratio), np.ceil(onset * ratio - 1e-9))
    end = np.where(point, start, np.floor((onset + duration) * ratio + 1e-9))
    return start.astype(np.int64), np.maximum(end - start, 0).astype(np.int64)


def interp_uniform(time_s: np.ndarray, x: np.ndarray, fs_hz: float, max_gap_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation of irregularly stamped samples ``x`` (C, S) onto a uniform grid.

    Returns ``(grid_time_s, x_grid (C, G), valid (G,))``; grid points farther than ``max_gap_s``
    from the nearest stamp are marked invalid (interpolation there would invent signal).
    Stamps must be strictly increasing.
    """
    n_grid = int(np.floor((time_s[-1] - time_s[0]) * fs_hz + 1e-9)) + 1
    grid = time_s[0] + np.arange(n_grid) / fs_hz
    out = np.empty((x.shape[0], n_grid))
    for c in range(x.shape[0]):
        out[c] = np.interp(grid, time_s, x[c])
    nxt = np.clip(np.searchsorted(time_s, grid), 0, len(time_s) - 1)
    prv = np.clip(nxt - 1, 0, len(time_s) - 1)
    nearest_s = np.minimum(np.abs(time_s[nxt] - grid), np.abs(grid - time_s[prv]))
    return grid, out, nearest_s <= max_gap_s


def hold_labels(time_s: np.ndarray, labels: np.ndarray, grid_s: np.ndarray) -> np.ndarray:
    """Zero-order hold of per-stamp labels onto ``grid_s`` (a label holds until the next stamp)."""
    idx = np.clip(np.searchsorted(time_s, grid_s, side="right") - 1, 0, len(time_s) - 1)
    return labels[idx]


# ----------------------------------------------------------------------------- labels


def runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-length encoding: ``(onset, duration, value)`` of each constant run."""
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), values[:0]
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    onset = np.concatenate([[0], change]).astype(np.int64)
    duration = np.diff(np.concatenate([onset, [values.size]])).astype(np.int64)
    return onset, duration, values[onset]


def map_labels(source: Sequence[str], label_map: Mapping[str, str | None], classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Source labels -> class indices (position in ``classes``). Labels absent from the map, or
    mapped to None, are dropped: returns ``(index int64 with -1 for dropped, keep bool)``."""
    classes = list(classes)
    unknown = sorted({v for v in label_map.values() if v is not None} - set(classes))
    if unknown:
        raise BiospikeError(f"label_map targets {unknown} are not in classes {classes}")
    lookup = {str(k): classes.index(v) for k, v in label_map.items() if v is not None}
    source = np.asarray(source, dtype=str)
    uniq, inverse = np.unique(source, return_inverse=True)
    index = np.array([lookup.get(u, -1) for u in uniq], dtype=np.int64)[inverse.reshape(-1)]
    return index, index >= 0


# ---------------------------------------------------------------------------- windows


def fixed_windows(onset: np.ndarray, duration: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Start samples of fixed windows (``window`` samples, every ``stride``) lying fully inside
    each segment; returns ``(starts, segment_index)``."""
    if window < 1 or stride < 1:
        raise BiospikeError(f"window ({window}) and stride ({stride}) must be at least one sample")
    onset = np.asarray(onset, dtype=np.int64)
    duration = np.asarray(duration, dtype=np.int64)
    count = np.where(duration >= window, (duration - window) // stride + 1, 0)
    seg = np.repeat(np.arange(len(onset)), count)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]) if len(count) else np.zeros(0, np.int64)
    k = np.arange(int(count.sum())) - np.repeat(first, count)
    return onset[seg] + k * stride, seg


def beat_windows(peaks: np.ndarray, n_samples: int, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``[peak - pre, peak + post)`` around each R peak; beats too close to an edge are
    dropped. Returns ``(starts, beat_index)``."""
    peaks = np.asarray(peaks, dtype=np.int64)
    keep = (peaks - pre >= 0) & (peaks + post <= n_samples)
    index = np.flatnonzero(keep)
    return peaks[index] - pre, index


def take_windows(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """Gather ``(N, C, length)`` float32 windows from ``x`` (C, S) without a Python loop."""
    if len(starts) == 0:
        return np.zeros((0, x.shape[0], length), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=-1)  # (C, S-L+1, L), no copy
    return np.ascontiguousarray(view[:, np.asarray(starts)].transpose(1, 0, 2), dtype=np.float32)


def subsample_groups(groups: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices keeping at most ``cap`` random members of each group (sorted, original order)."""
    groups = np.asarray(groups)
    if cap is None:
        return np.arange(len(groups))
    order = rng.permutation(len(groups))
    _, inverse = np.unique(groups[order], return_inverse=True)
    inverse = inverse.reshape(-1)
    # rank of each shuffled element within its group
    sort = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    rank = np.empty(len(groups), dtype=np.int64)
    rank[sort] = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.sort(order[rank < cap])


# ---------------------------------------------------------------------------- channels


def normalise_channel_name(name: str) -> str:
    """Case-insensitive name without dots/spaces: eegmmidb's ``Fc5.`` and ``Cz..`` -> ``fc5``, ``cz``."""
    return re.sub(r"[.\s]+", "", str(name)).lower()


def pick_channels(available: Sequence[str], wanted: Sequence[str | int] | None) -> list[int]:
    """Indices of ``wanted`` channels (names matched after normalisation, or integer indices)."""
    if wanted is None:
        return list(range(len(available)))
    norm = [normalise_channel_name(n) for n in available]
    picked = []
    for want in wanted:
        if isinstance(want, int) and not isinstance(want, bool):
            if not -len(available) <= want < len(available):
                raise BiospikeError(f"channel index {want} out of range; the file has {len(available)} channels: {list(available)}")
            picked.append(want % len(available))
            continue
        key = normalise_channel_name(want)
        hits = [i for i, n in enumerate(norm) if n == key]
        if not hits:
            raise BiospikeError(f"channel {want!r} not found; available: {', '.join(map(str, available))}")
        if len(hits) > 1:
            raise BiospikeError(f"channel {want!r} is ambiguous (matches {[available[i] for i in hits]}); pick by index")
        picked.append(hits[0])
    return picked


def bad_channels(x: np.ndarray) -> tuple[list[int], list[int]]:
    """``(channels containing NaN/inf, flat channels)``; flat = no variation at all."""
    if x.shape[-1] == 0:
        return [], list(range(x.shape[0]))
    nonfinite = ~np.isfinite(x).all(axis=-1)
    with np.errstate(invalid="ignore"):
        flat = np.ptp(x, axis=-1) == 0  # NaN rows compare False: reported as non-finite only
    return np.flatnonzero(nonfinite).tolist(), np.flatnonzero(flat & ~nonfinite).tolist()


# ------------------------------------------------------------------------ de-identification


def hash_id(raw_id: str, salt: str, prefix: str = "sub", n_hex: int = 8) -> str:
    """Salted SHA-256 pseudonym, e.g. ``sub-3f2a9c1d``: stable for one (salt, raw id), and the
    raw id is not stored. A pseudonym, not anonymisation: small id spaces can be enumerated by
    anyone who knows the salt, so the salt keeps the mapping per dataset, not secret."""
    digest = hashlib.sha256(f"{salt}\x00{raw_id}".encode()).hexdigest()
    return f"{prefix}-{digest[:n_hex]}"


def hash_subject(raw_id: str, salt: str) -> str:
    """The pseudonym ``sub-<8 hex digits>`` of a raw subject id (:func:`hash_id`)."""
    return hash_id(raw_id, salt, "sub")


def dataset_salt(dataset: str) -> str:
    """The salt of one dataset's pseudonyms: :data:`PROJECT_SALT` and the dataset name, so one raw
    id gets different pseudonyms in different datasets."""
    return f"{PROJECT_SALT}/{dataset}"
