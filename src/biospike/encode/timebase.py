"""The SNN time grid of an encoding: T steps of ``dt_s`` covering one window, and the rules that
refuse grids which alias or do not fit in memory.

A window holds ``L`` samples at ``fs_hz``; step ``k`` covers ``[k * dt_s, (k + 1) * dt_s)``.

- Sample ``i`` (time ``i / fs_hz``) belongs to step ``floor(i / (fs_hz * dt_s))``; samples past
  the last step are counted in it. The delta encoder runs at the signal rate and sums its spike
  counts over the samples of each step (no sample is dropped).
- The population and rate encoders are driven by the signal value *at* the start of each step,
  ``t_k = k * dt_s``, linearly interpolated between samples (an exact sample whenever ``dt_s``
  is a multiple of ``1 / fs_hz``).

Anti-aliasing rule (all encodings): reading the signal once per ``period_s`` (the step, or the
latency frame of the population code) must satisfy Nyquist for the preprocessed band,
``1 / period_s >= 2 * band_high_hz``, where ``band_high_hz`` is the band-pass upper edge recorded
by ingestion (or ``fs_hz / 2`` if the windows were not band-passed). For delta the same rule is
applied to its binned counts: their net per step is the tracked reference sampled once per step.
``dt_s: null`` picks the coarsest grid that satisfies the rule with a whole number of samples per
step: ``dt_s = max(1, floor(fs_hz / (2 * band_high_hz))) / fs_hz``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["TimeBase", "band_high_hz", "check_memory", "check_nyquist", "make_timebase"]

_TOL = 1e-9


@dataclasses.dataclass(frozen=True)
class TimeBase:
    """The SNN time grid of one window: ``n_steps`` steps of ``dt_s`` seconds over ``n_samples``
    samples at ``fs_hz``, checked against the band edge ``band_high_hz``."""

    fs_hz: float
    n_samples: int  # L, samples per window
    dt_s: float
    n_steps: int  # T
    band_high_hz: float

    @property
    def samples_per_step(self) -> float:
        """Samples per step, ``fs_hz * dt_s`` (not always a whole number)."""
        return self.fs_hz * self.dt_s

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.n_samples / self.fs_hz

    def sample_step(self) -> np.ndarray:
        """(L,) int64: the step each sample's spikes are counted in."""
        i = np.arange(self.n_samples)
        step = np.floor(i / self.samples_per_step + _TOL).astype(np.int64)
        return np.minimum(step, self.n_steps - 1)

    def uniform_bins(self) -> int | None:
        """Samples per step if every step holds the same whole number of samples, else None."""
        s = round(self.samples_per_step)
        if s >= 1 and abs(self.samples_per_step - s) < 1e-6 and s * self.n_steps == self.n_samples:
            return s
        return None

    def step_values(self, signals: np.ndarray, steps_per_value: int = 1) -> np.ndarray:
        """Signal value at the start of every ``steps_per_value``-th step, (N, C, L) -> (N, C, F)
        float32 with ``F = ceil(T / steps_per_value)``; linear interpolation between samples."""
        n_values = -(-self.n_steps // steps_per_value)
        pos = np.arange(n_values) * steps_per_value * self.samples_per_step
        pos = np.minimum(pos, self.n_samples - 1)
        i0 = np.floor(pos + _TOL).astype(np.int64)
        i0 = np.minimum(i0, self.n_samples - 1)
        w = np.clip(pos - i0, 0.0, 1.0)
        if not np.any(w > _TOL):
            return np.ascontiguousarray(signals[..., i0], dtype=np.float32)
        i1 = np.minimum(i0 + 1, self.n_samples - 1)
        w32 = w.astype(np.float32)
        x0 = signals[..., i0].astype(np.float32)
        return x0 + (signals[..., i1].astype(np.float32) - x0) * w32

    def describe(self) -> dict[str, Any]:
        """The grid as a JSON-able dict (the encoder record's ``timebase``)."""
        return {"dt_s": self.dt_s, "n_steps": self.n_steps, "fs_hz": self.fs_hz, "n_samples": self.n_samples,
                "samples_per_step": self.samples_per_step, "band_high_hz": self.band_high_hz}


def band_high_hz(preprocessing: Mapping[str, Any], fs_hz: float) -> float:
    """Upper edge of the preprocessed band from windows.h5's ``preprocessing`` attribute."""
    bandpass = preprocessing.get("bandpass")
    edges = bandpass.get("band_hz") if isinstance(bandpass, Mapping) else preprocessing.get("bandpass_hz")
    if edges is not None and len(edges) == 2 and 0 < float(edges[1]) < fs_hz / 2:
        return float(edges[1])
    return fs_hz / 2


def make_timebase(fs_hz: float, n_samples: int, band_hz: float, dt_s: float | None = None,
                  n_steps: int | None = None) -> TimeBase:
    """The grid from config: ``dt_s`` and/or ``n_steps`` (either may be null, see module doc).

    With both given they must cover the window: ``|n_steps * dt_s - window_s| < dt_s``.
    """
    window_s = n_samples / fs_hz
    if dt_s is not None and dt_s <= 0:
        raise BiospikeError(f"encode.dt_s must be positive, got {dt_s}")
    if n_steps is not None and n_steps < 1:
        raise BiospikeError(f"encode.n_steps must be at least 1, got {n_steps}")
    if dt_s is None and n_steps is None:
        samples = max(1, math.floor(fs_hz / (2 * band_hz) + _TOL))
        dt_s = samples / fs_hz
    elif dt_s is None:
        dt_s = window_s / n_steps
    if n_steps is None:
        n_steps = max(1, round(window_s / dt_s))
    elif abs(n_steps * dt_s - window_s) >= dt_s * (1 - _TOL):
        raise BiospikeError(
            f"encode.n_steps={n_steps} x dt_s={dt_s:g} s = {n_steps * dt_s:g} s does not cover the "
            f"{window_s:g} s window (set one of them to null to derive it)")
    return TimeBase(fs_hz=float(fs_hz), n_samples=int(n_samples), dt_s=float(dt_s), n_steps=int(n_steps),
                    band_high_hz=float(band_hz))


def check_nyquist(tb: TimeBase, period_s: float, what: str, path: str | None = None) -> None:
    """Refuse reading the signal once per ``period_s`` when that aliases the preprocessed band."""
    rate_hz = 1.0 / period_s
    if rate_hz < 2 * tb.band_high_hz * (1 - 1e-6):
        limit_s = 1 / (2 * tb.band_high_hz)
        raise BiospikeError(
            f"{what} of {period_s * 1e3:g} ms ({rate_hz:g} Hz) aliases the preprocessed band up to "
            f"{tb.band_high_hz:g} Hz: Nyquist needs a period <= {limit_s * 1e3:g} ms "
            f"(lower encode.dt_s, or set it to null to pick the coarsest safe step)", path)


def check_memory(n_windows: int, n_channels: int, n_samples: int, n_steps: int, n_spike_channels: int,
                 max_memory_gb: float, path: str | None = None) -> float:
    """Estimated peak bytes (float32 input + uint8 output); refuse above ``max_memory_gb``."""
    need = n_windows * n_channels * n_samples * 4 + n_windows * n_steps * n_spike_channels
    if need > max_memory_gb * 1e9:
        raise BiospikeError(
            f"encoding needs about {need / 1e9:.2f} GB (N={n_windows} windows x T={n_steps} steps x "
            f"C'={n_spike_channels} spike channels, plus the float32 input), above "
            f"encode.max_memory_gb={max_memory_gb:g}: raise it, use a larger dt_s or fewer neurons", path)
    return float(need)
