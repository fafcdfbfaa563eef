"""Send-on-delta encoder: properties of the closed form against its sample-by-sample definition."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from biospike.encode.delta import (
    _units,
    channel_baseline,
    delta_decode,
    delta_encode,
    delta_encode_naive,
    delta_levels,
    fit_thresholds,
    reconstruction_snr_db,
    robust_spread,
)
from biospike.errors import BiospikeError

# thresholds that are powers of two make x / thr exact, so "floor(h / thr)" is exact in float32
POW2 = st.sampled_from([0.125, 0.25, 0.5, 1.0, 2.0])


def _signals(max_n=3, max_c=3, max_len=40):
    """Small (N, C, L) float32 arrays; half of them on a coarse grid so that samples land exactly
    on threshold multiples (the hysteresis corner cases)."""
    shape = st.tuples(st.integers(1, max_n), st.integers(1, max_c), st.integers(1, max_len))
    grid = shape.flatmap(lambda s: hnp.arrays(np.int8, s, elements=st.integers(-12, 12)).map(
        lambda a: (a * 0.25).astype(np.float32)))
    noise = shape.flatmap(lambda s: hnp.arrays(np.float32, s, elements=st.floats(-20, 20, width=32)))
    return st.one_of(grid, noise)


@settings(max_examples=150, deadline=None)
@given(x=_signals(), thr=POW2 | st.floats(0.05, 5.0), base=st.floats(-3, 3), step=st.integers(1, 4))
def test_vectorised_equals_naive(x, thr, base, step):
    c = x.shape[1]
    thr_c = np.full(c, thr) * (1 + 0.1 * np.arange(c))
    base_c = np.full(c, base)
    length = x.shape[2]
    n_steps = -(-length // step)
    sample_step = np.minimum(np.arange(length) // step, n_steps - 1)
    fast = delta_encode(x, thr_c, base_c, sample_step, n_steps)
    ref = delta_encode_naive(x, thr_c, base_c, sample_step, n_steps)
    assert fast.saturated == int((ref > 255).sum())
    np.testing.assert_array_equal(fast.spikes, np.minimum(ref, 255))


def test_vectorised_equals_naive_across_time_blocks_and_uneven_steps():
    """Long windows are encoded in time blocks with the level carried over; steps of 1.6 samples."""
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.normal(size=(2, 70, 2300)), axis=2).astype(np.float32)
    x[0, 0, 500:900] = 2.0  # exact multiples of the threshold
    thr, base = rng.uniform(0.2, 1.0, 70), rng.normal(size=70)
    thr[0], base[0] = 0.5, 0.0
    np.testing.assert_array_equal(delta_encode(x, thr, base).spikes, delta_encode_naive(x, thr, base))
    sample_step = np.floor(np.arange(2300) / 1.6 + 1e-9).astype(np.int64)
    n_steps = int(sample_step[-1]) + 1
    np.testing.assert_array_equal(delta_encode(x[:, :5], thr[:5], base[:5], sample_step, n_steps).spikes,
                                  delta_encode_naive(x[:, :5], thr[:5], base[:5], sample_step, n_steps))


@settings(max_examples=100, deadline=None)
@given(x=_signals(), thr=POW2 | st.floats(0.05, 5.0), base=st.floats(-3, 3))
def test_decoding_is_within_one_threshold_everywhere(x, thr, base):
    c = x.shape[1]
    thr_c, base_c = np.full(c, thr), np.full(c, base)
    result = delta_encode(x, thr_c, base_c)  # one step per sample: the decoder sees every sample
    if result.saturated:
        return  # a clipped count cannot be decoded exactly (reported in the stats instead)
    ref = delta_decode(result.spikes, thr_c, base_c)
    # exact in threshold units: floor(u) <= q <= ceil(u), i.e. |u - q| < 1 without rounding
    u = _units(x, thr_c, base_c).reshape(x.shape)
    level = np.round((ref - base) / thr)
    assert np.all((np.floor(u) <= level) & (level <= np.ceil(u)))
    # and in signal units, up to float32 rounding of x
    tol = 1e-5 * (np.abs(x) + abs(base) + thr)
    assert np.all(np.abs(x - ref) < thr + tol)


@settings(max_examples=60, deadline=None)
@given(value=st.floats(-100, 100, width=32), n=st.integers(1, 3), length=st.integers(1, 60),
       thr=st.floats(0.01, 10))
def test_constant_input_gives_no_spikes(value, n, length, thr):
    x = np.full((n, 2, length), value, dtype=np.float32)
    baseline = channel_baseline(x)  # the median of a constant is the constant itself
    assert delta_encode(x, np.full(2, thr), baseline).spikes.sum() == 0
    # from any other starting reference, a constant only fires in the first sample
    spikes = delta_encode(x, np.full(2, thr), baseline + 7.3).spikes
    assert spikes[:, 1:].sum() == 0


@settings(max_examples=100, deadline=None)
@given(steps=hnp.arrays(np.float64, st.integers(1, 80), elements=st.floats(0, 3)), thr=POW2)
def test_monotone_ramp_gives_floor_h_over_threshold_up_spikes(steps, thr):
    ramp = np.cumsum(steps).astype(np.float32)  # non-decreasing from about 0
    ramp = np.concatenate([[np.float32(0)], ramp])
    height = float(ramp[-1] - ramp[0])
    spikes = delta_encode(ramp[None, None, :], np.array([thr]), np.array([0.0])).spikes
    assert spikes[..., 0].sum() == math.floor(height / thr)
    assert spikes[..., 1].sum() == 0
    # and the mirror image gives as many DOWN spikes and no UP
    mirror = delta_encode(-ramp[None, None, :], np.array([thr]), np.array([0.0])).spikes
    assert mirror[..., 1].sum() == math.floor(height / thr) and mirror[..., 0].sum() == 0


@settings(max_examples=50, deadline=None)
@given(per_sample=st.floats(0.001, 0.05), length=st.integers(200, 2000))
def test_slow_drift_fires(per_sample, length):
    """A drift far below one threshold per sample still fires, once per threshold travelled
    (a consecutive-sample difference would never reach the threshold)."""
    thr = 1.0
    x = (per_sample * np.arange(length)).astype(np.float32)[None, None, :]
    assert np.all(np.diff(x) < thr)
    spikes = delta_encode(x, np.array([thr]), np.array([0.0])).spikes
    expected = math.floor(float(x[0, 0, -1]) / thr)
    assert spikes[..., 0].sum() == expected and spikes[..., 1].sum() == 0
    if expected:
        assert spikes[..., 0].max() == 1  # one spike at a time, spread over the drift


def test_hysteresis_by_hand():
    # units: 0 -> 0.5 (no spike) -> 1.0 (UP) -> 0.5 (stays at 1) -> -0.5 (DOWN to 0) -> -1 (DOWN)
    # -> 0.2 (UP to 0) -> 2.7 (two UP) -> 1.5 (DOWN to 2)
    u = np.array([[0.0, 0.5, 1.0, 0.5, -0.5, -1.0, 0.2, 2.7, 1.5]], dtype=np.float32)
    np.testing.assert_array_equal(delta_levels(u), [[0, 0, 1, 1, 0, -1, 0, 2, 2]])
    spikes = delta_encode(u[None], np.array([1.0]), np.array([0.0])).spikes[0]
    np.testing.assert_array_equal(spikes[:, 0], [0, 0, 1, 0, 0, 0, 1, 2, 0])
    np.testing.assert_array_equal(spikes[:, 1], [0, 0, 0, 0, 1, 1, 0, 0, 0])


def test_counts_are_binned_and_saturate():
    x = np.zeros((1, 1, 6), dtype=np.float32)
    x[0, 0, 1:] = 300.0  # a jump of 300 thresholds in one sample
    result = delta_encode(x, np.array([1.0]), np.array([0.0]))
    assert result.spikes[0, 1, 0] == 255 and result.saturated == 1
    # two samples per step: UP and DOWN in the same step are both counted
    y = np.array([[[0, 3, 0, 0]]], dtype=np.float32)
    binned = delta_encode(y, np.array([1.0]), np.array([0.0]), np.array([0, 0, 1, 1]), 2).spikes[0]
    np.testing.assert_array_equal(binned, [[3, 0], [0, 3]])


def test_thresholds_from_the_spread():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=[[[2.0], [0.5]]], size=(400, 2, 100)).astype(np.float32)
    spread = robust_spread(x)
    np.testing.assert_allclose(spread, [2.0, 0.5], rtol=0.03)
    np.testing.assert_allclose(fit_thresholds(x, "spread_fraction", 0.5), 0.5 * spread)
    np.testing.assert_allclose(fit_thresholds(x, "absolute", 0.3), [0.3, 0.3])
    with pytest.raises(BiospikeError, match="flat"):
        fit_thresholds(np.zeros((3, 1, 10), np.float32), "spread_fraction", 0.5, ["C3"])
    with pytest.raises(BiospikeError, match="positive"):
        fit_thresholds(x, "absolute", 0.0)


def test_snr_improves_with_a_smaller_threshold():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.normal(size=(20, 3, 300)), axis=2).astype(np.float32)
    base = channel_baseline(x)
    sample_step = np.arange(300) // 3
    snrs = []
    for thr in (1.0, 0.25):
        thr_c = np.full(3, thr)
        spikes = delta_encode(x, thr_c, base, sample_step, 100).spikes
        decoded = delta_decode(spikes, thr_c, base)
        snr, per_channel = reconstruction_snr_db(x, decoded, sample_step, 100, base)
        assert len(per_channel) == 3 and np.isfinite(snr)
        snrs.append(snr)
    # the error is within one threshold, so it shrinks ~4x (12 dB) with a 4x smaller threshold
    assert snrs[1] > snrs[0] + 9
