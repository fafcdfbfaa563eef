"""Population coding with Gaussian receptive fields that emits spikes (not rates).

Each input channel gets ``n_neurons`` neurons with centres ``mu_j`` evenly spaced over the
channel's range on the training split (``range_percentiles``, e.g. the 1st..99th percentile) and
one width ``sigma = overlap * spacing``; neuron ``j`` has activation
``a_j(x) = exp(-(x - mu_j)^2 / (2 sigma^2))`` in (0, 1].

Emission over the T steps of a window (the signal value driving a step is the value at the step's
start time, see :mod:`.timebase`):

- ``latency``: time is cut into frames of ``latency_steps`` steps (K), each driven by the signal
  at the frame's start. In every frame each neuron with ``a >= cutoff`` fires exactly once, at
  offset ``min(K - 1, floor(K * (1 - a) / (1 - cutoff)))``: the stronger the activation, the
  earlier; below ``cutoff`` it stays silent. With K = 1 this is a place code (the neurons whose
  field holds the current value fire). Deterministic.
- ``rate``: a Bernoulli draw per neuron and step with ``p = a * max_rate_hz * dt_s`` (seeded).

Speed: latency spikes are decided without evaluating a single exponential. ``a >= level`` is
``|x - mu_j| <= sigma * sqrt(2 ln(1 / level))``, and with evenly spaced centres the neurons within
a radius of ``x`` are an index interval ``[ceil(t - rho), floor(t + rho)]`` (``t`` = position of
``x`` in units of the spacing): one bit mask per input sample, unpacked into n spike bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["EMISSIONS", "MAX_NEURONS", "Fields", "activation", "fit_fields", "latency_offsets", "latency_radii",
           "population_encode"]

EMISSIONS = ("latency", "rate")
MAX_NEURONS = 64  # one uint64 bit mask per input sample
_RNG_BLOCK = 256  # windows per random stream: spikes do not depend on how the work is chunked
_CHUNK_OUTPUT = 1 << 20  # output entries per chunk


@dataclasses.dataclass
class Fields:
    """Receptive fields of all channels: centres (C, n) evenly spaced from ``low`` to ``high``."""

    low: np.ndarray  # (C,)
    high: np.ndarray  # (C,)
    n_neurons: int
    overlap: float

    @property
    def spacing(self) -> np.ndarray:
        """(C,) distance between neighbouring centres, in signal units."""
        return (self.high - self.low) / (self.n_neurons - 1)

    @property
    def sigma(self) -> np.ndarray:
        """(C,) field width: ``overlap`` times the spacing."""
        return self.overlap * self.spacing

    @property
    def centres(self) -> np.ndarray:
        """(C, n) receptive-field centres."""
        return self.low[:, None] + self.spacing[:, None] * np.arange(self.n_neurons)[None, :]

    def describe(self) -> dict:
        """The fields as a JSON-able dict (the encoder's fitted parameters)."""
        return {"low": self.low.tolist(), "high": self.high.tolist(), "sigma": self.sigma.tolist(),
                "centres": self.centres.tolist(), "n_neurons": self.n_neurons, "overlap": self.overlap}


def fit_fields(train_signals: np.ndarray, n_neurons: int, overlap: float,
               range_percentiles: Sequence[float] = (1.0, 99.0), channel_names: Sequence[str] | None = None,
               max_values: int = 2_000_000) -> Fields:
    """Centres spanning each channel's percentile range on the training windows (N, C, L)."""
    if not 2 <= n_neurons <= MAX_NEURONS:
        raise BiospikeError(f"encode.population.n_neurons must be in [2, {MAX_NEURONS}], got {n_neurons}")
    if not overlap > 0:
        raise BiospikeError(f"encode.population.overlap must be positive, got {overlap}")
    p_lo, p_hi = (float(p) for p in range_percentiles)
    if not 0 <= p_lo < p_hi <= 100:
        raise BiospikeError(f"encode.population.range_percentiles must satisfy 0 <= low < high <= 100, got {range_percentiles}")
    if train_signals.shape[0] == 0:
        raise BiospikeError("no training windows to place the receptive fields on")
    per_channel = np.moveaxis(train_signals, 1, 0).reshape(train_signals.shape[1], -1)
    stride = max(1, per_channel.shape[1] // max_values)
    low, high = np.percentile(per_channel[:, ::stride].astype(np.float64), [p_lo, p_hi], axis=1)
    flat = np.flatnonzero(~(high > low))
    if flat.size:
        names = [channel_names[c] if channel_names else str(c) for c in flat]
        raise BiospikeError(f"channel(s) {names} have no spread between the {p_lo:g}th and {p_hi:g}th "
                            "percentiles on the training split: no receptive fields can be placed")
    return Fields(low=low, high=high, n_neurons=int(n_neurons), overlap=float(overlap))


def activation(values: np.ndarray, fields: Fields) -> np.ndarray:
    """Gaussian activations: (N, C, F) values -> (N, F, C, n) float64 (reference, for tests)."""
    x = np.moveaxis(np.asarray(values, dtype=np.float64), 1, 2)[..., None]
    z = (x - fields.centres) / fields.sigma[:, None]
    return np.exp(-0.5 * z * z)


def latency_offsets(act: np.ndarray, cutoff: float, latency_steps: int) -> np.ndarray:
    """Reference rule: offset in the frame of each activation, -1 where silent (for tests)."""
    k = latency_steps
    offset = np.minimum(k - 1, np.floor(k * (1 - act) / (1 - cutoff))).astype(np.int64)
    return np.where(act >= cutoff, offset, -1)


def latency_radii(cutoff: float, latency_steps: int, overlap: float) -> np.ndarray:
    """Radii (in units of the centre spacing) within which a neuron fires at offset <= k, k < K.

    Offset <= k  <=>  a > 1 - (k + 1)(1 - cutoff) / K  (last one: a >= cutoff)
                 <=>  |x - mu| / spacing < overlap * sqrt(-2 ln(level_k)).
    """
    k = np.arange(1, latency_steps + 1)
    level = 1 - k * (1 - cutoff) / latency_steps
    level[-1] = cutoff
    return overlap * np.sqrt(-2 * np.log(level))


def _mask_dtype(n: int) -> np.dtype:
    for dtype in ("<u1", "<u2", "<u4", "<u8"):
        if n <= 8 * np.dtype(dtype).itemsize:
            return np.dtype(dtype)
    raise ValueError(f"at most {MAX_NEURONS} neurons per channel")


def _interval_masks(pos: np.ndarray, radius: float, n: int, dtype: np.dtype) -> np.ndarray:
    """Bit j set iff neuron j lies within ``radius`` (in spacings) of position ``pos``:
    ``((1 << count) - 1) << first`` (numpy defines a shift by the full width as 0)."""
    first = np.subtract(pos, np.float32(radius))
    np.ceil(first, out=first)
    np.maximum(first, 0, out=first)
    count = np.add(pos, np.float32(radius))
    np.floor(count, out=count)
    np.minimum(count, n - 1, out=count)  # last neuron in range
    count -= first
    count += 1
    np.maximum(count, 0, out=count)
    np.minimum(first, n - 1, out=first)  # empty there (count 0); keeps the shift below n bits
    masks = np.left_shift(np.ones(1, dtype), count.astype(dtype))
    masks -= np.ones(1, dtype)
    masks <<= first.astype(dtype)
    return masks


def _unpack(masks: np.ndarray, n: int) -> np.ndarray:
    """(...,) bit masks -> (..., n) uint8 spikes (bit j -> neuron j)."""
    bits = np.unpackbits(np.ascontiguousarray(masks).view(np.uint8).reshape(-1), bitorder="little")
    bits = bits.reshape(*masks.shape, 8 * masks.dtype.itemsize)
    return bits if bits.shape[-1] == n else bits[..., :n]


def population_encode(values: np.ndarray, fields: Fields, emission: str, n_steps: int, *,
                      cutoff: float = 0.5, latency_steps: int = 1, max_rate_hz: float = 100.0,
                      dt_s: float = 0.001, seed: int = 0) -> np.ndarray:
    """Spikes (N, T, C * n) uint8 from the frame values (N, C, F).

    ``latency``: F = ceil(T / latency_steps) values, one per frame. ``rate``: F = T, one per step.
    Spike channel ``c * n + j`` is neuron ``j`` of input channel ``c``.
    """
    n_win, n_ch, n_val = values.shape
    n = fields.n_neurons
    out = np.zeros((n_win, n_steps, n_ch * n), dtype=np.uint8)
    if emission == "latency":
        if not 0 < cutoff < 1:
            raise BiospikeError(f"encode.population.cutoff must be in (0, 1), got {cutoff}")
        k = int(latency_steps)
        if n_val != -(-n_steps // k):
            raise ValueError(f"latency emission needs ceil(T / K) = {-(-n_steps // k)} values, got {n_val}")
        _latency(values, fields, cutoff, k, out)
    elif emission == "rate":
        if n_val != n_steps:
            raise ValueError(f"rate emission needs one value per step ({n_steps}), got {n_val}")
        p_max = max_rate_hz * dt_s
        if not 0 < p_max <= 1:
            raise BiospikeError(f"encode.population.max_rate_hz x dt_s = {p_max:g} must be in (0, 1] "
                                "(at most one spike per step)")
        _rate(values, fields, p_max, seed, out)
    else:
        raise BiospikeError(f"encode.population.emission must be one of {EMISSIONS}, got {emission!r}")
    return out


def _positions(values: np.ndarray, fields: Fields) -> np.ndarray:
    """(N, C, F) values -> (N, C, F) float32 positions in units of the centre spacing."""
    low = fields.low.astype(np.float32)[None, :, None]
    inv = (1.0 / fields.spacing).astype(np.float32)[None, :, None]
    pos = np.subtract(values, low, dtype=np.float32)
    pos *= inv
    return pos


def _latency(values: np.ndarray, fields: Fields, cutoff: float, k: int, out: np.ndarray) -> None:
    n_win, n_ch, n_frames = values.shape
    n = fields.n_neurons
    n_steps = out.shape[1]
    radii = latency_radii(cutoff, k, fields.overlap)
    dtype = _mask_dtype(n)
    chunk = max(1, _CHUNK_OUTPUT // max(1, n_frames * k * n_ch * n))
    for w0 in range(0, n_win, chunk):
        w1 = min(n_win, w0 + chunk)
        pos = _positions(values[w0:w1], fields)  # (w, C, F)
        if k == 1:
            # masks are small: transpose them to (w, F, C), not the float positions
            masks = _interval_masks(pos, radii[0], n, dtype).transpose(0, 2, 1)
            out[w0:w1] = _unpack(masks, n).reshape(w1 - w0, n_frames, n_ch * n)[:, :n_steps]
            continue
        frames = np.empty((w1 - w0, n_frames, k, n_ch * n), dtype=np.uint8)
        inner = np.zeros(pos.shape, dtype=dtype)
        for step in range(k):
            # fires at this offset: within this radius and not within the previous (smaller) one
            masks = _interval_masks(pos, radii[step], n, dtype)
            ring = (masks & ~inner).transpose(0, 2, 1)
            frames[:, :, step] = _unpack(ring, n).reshape(w1 - w0, n_frames, n_ch * n)
            inner = masks
        out[w0:w1] = frames.reshape(w1 - w0, n_frames * k, n_ch * n)[:, :n_steps]


def _rate(values: np.ndarray, fields: Fields, p_max: float, seed: int, out: np.ndarray) -> None:
    n_win, n_ch, n_steps = values.shape
    n = fields.n_neurons
    inv_sigma = 1.0 / fields.sigma
    for w0 in range(0, n_win, _RNG_BLOCK):
        w1 = min(n_win, w0 + _RNG_BLOCK)
        rng = np.random.default_rng([seed, w0 // _RNG_BLOCK])
        x = np.ascontiguousarray(values[w0:w1].transpose(0, 2, 1), dtype=np.float32)[..., None]  # (w, T, C, 1)
        z = (x - fields.centres.astype(np.float32)) * inv_sigma.astype(np.float32)[:, None]
        np.multiply(z, z, out=z)
        np.multiply(z, np.float32(-0.5), out=z)
        np.exp(z, out=z)
        z *= np.float32(p_max)
        draw = rng.random(z.shape, dtype=np.float32)
        out[w0:w1] = (draw < z).reshape(w1 - w0, n_steps, n_ch * n)

