"""Rate (Bernoulli / Poisson) baseline: spike probability proportional to the normalised signal.

``bipolar`` (default): two spike channels per input channel, "C3+" driven by the positive and
"C3-" by the negative excursion from the channel median, intensity
``clip(+-(x - median) / scale, 0, 1)`` with ``scale`` the ``scale_percentile``-th percentile of
``|x - median|`` on the training split. ``unipolar``: one channel, intensity
``clip((x - low) / (high - low), 0, 1)`` between the ``100 - p`` and ``p`` percentiles.

Per step the expected count is ``intensity * max_rate_hz * dt_s``: ``bernoulli`` draws one spike
with that probability (so it must be <= 1), ``poisson`` draws a count (capped at 255). Seeded;
each block of windows has its own stream, so the spikes do not depend on chunking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["EMISSIONS", "POLARITIES", "RateScale", "fit_scale", "intensity", "rate_encode"]

POLARITIES = ("bipolar", "unipolar")
EMISSIONS = ("bernoulli", "poisson")
_RNG_BLOCK = 256


@dataclasses.dataclass
class RateScale:
    """Fitted per-channel scaling of the rate code (see the module doc), in signal units."""

    polarity: str
    offset: np.ndarray  # (C,) median (bipolar) or low percentile (unipolar)
    scale: np.ndarray  # (C,) full-scale excursion

    def describe(self) -> dict:
        """The scale as a JSON-able dict (the encoder's fitted parameters)."""
        return {"polarity": self.polarity, "offset": self.offset.tolist(), "scale": self.scale.tolist()}


def fit_scale(train_signals: np.ndarray, polarity: str, scale_percentile: float = 99.0,
              channel_names: Sequence[str] | None = None, max_values: int = 2_000_000) -> RateScale:
    """Per-channel offset and full scale from the training windows (N, C, L): median and the
    ``scale_percentile``-th percentile of ``|x - median|`` (bipolar), or the ``100 - p`` and ``p``
    percentiles (unipolar); a flat channel is an error."""
    if polarity not in POLARITIES:
        raise BiospikeError(f"encode.rate.polarity must be one of {POLARITIES}, got {polarity!r}")
    if not 50 < scale_percentile <= 100:
        raise BiospikeError(f"encode.rate.scale_percentile must be in (50, 100], got {scale_percentile}")
    if train_signals.shape[0] == 0:
        raise BiospikeError("no training windows to scale the rate encoder on")
    per_channel = np.moveaxis(train_signals, 1, 0).reshape(train_signals.shape[1], -1)
    values = per_channel[:, :: max(1, per_channel.shape[1] // max_values)].astype(np.float64)
    if polarity == "bipolar":
        offset = np.median(values, axis=1)
        scale = np.percentile(np.abs(values - offset[:, None]), scale_percentile, axis=1)
    else:
        offset, high = np.percentile(values, [100 - scale_percentile, scale_percentile], axis=1)
        scale = high - offset
    flat = np.flatnonzero(~(scale > 0))
    if flat.size:
        names = [channel_names[c] if channel_names else str(c) for c in flat]
        raise BiospikeError(f"channel(s) {names} are flat on the training split: no rate scale can be set")
    return RateScale(polarity=polarity, offset=offset, scale=scale)


def intensity(values: np.ndarray, fit: RateScale) -> np.ndarray:
    """(N, C, T) values -> (N, T, C') intensities in [0, 1] (float32)."""
    z = (np.asarray(values, dtype=np.float32) - fit.offset.astype(np.float32)[None, :, None]) \
        / fit.scale.astype(np.float32)[None, :, None]
    z = z.transpose(0, 2, 1)
    if fit.polarity == "unipolar":
        return np.clip(z, 0, 1)
    return np.clip(np.stack([z, -z], axis=-1), 0, 1).reshape(z.shape[0], z.shape[1], -1)


def rate_encode(values: np.ndarray, fit: RateScale, emission: str, max_rate_hz: float, dt_s: float,
                seed: int) -> tuple[np.ndarray, int]:
    """Spikes (N, T, C') uint8 and the number of Poisson counts capped at 255."""
    if emission not in EMISSIONS:
        raise BiospikeError(f"encode.rate.emission must be one of {EMISSIONS}, got {emission!r}")
    expected = max_rate_hz * dt_s
    if not expected > 0:
        raise BiospikeError(f"encode.rate.max_rate_hz must be positive, got {max_rate_hz}")
    if emission == "bernoulli" and expected > 1:
        raise BiospikeError(f"encode.rate.max_rate_hz x dt_s = {expected:g} > 1: a Bernoulli step holds at most "
                            "one spike (lower max_rate_hz or use emission: poisson)")
    n_win, _, n_steps = values.shape
    width = 2 * values.shape[1] if fit.polarity == "bipolar" else values.shape[1]
    out = np.empty((n_win, n_steps, width), dtype=np.uint8)
    capped = 0
    for w0 in range(0, n_win, _RNG_BLOCK):
        w1 = min(n_win, w0 + _RNG_BLOCK)
        rng = np.random.default_rng([seed, w0 // _RNG_BLOCK])
        lam = intensity(values[w0:w1], fit) * np.float32(expected)
        if emission == "bernoulli":
            out[w0:w1] = rng.random(lam.shape, dtype=np.float32) < lam
        else:
            counts = rng.poisson(lam)
            capped += int(np.count_nonzero(counts > 255))
            out[w0:w1] = np.minimum(counts, 255)
    return out, capped
