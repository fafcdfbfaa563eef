"""Time-to-first-spike code: at most one spike per channel and frame, earlier when stronger, silent
below the cutoff; frames of the whole window or of K steps; statistics in spikes.h5's stats."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.encode.rate import RateScale
from biospike.encode.stage import encode_signals
from biospike.encode.timebase import make_timebase
from biospike.encode.ttfs import frame_bounds, ttfs_encode, ttfs_offsets
from biospike.errors import BiospikeError

UNIT = RateScale(polarity="unipolar", offset=np.zeros(1), scale=np.ones(1))


def _tb(n_samples: int, samples_per_step: int = 1, fs_hz: float = 100.0):
    return make_timebase(fs_hz, n_samples, fs_hz / 2, dt_s=samples_per_step / fs_hz)


@settings(max_examples=40, deadline=None)
@given(n_steps=st.integers(1, 60), frame_steps=st.one_of(st.none(), st.integers(1, 70)),
       cutoff=st.floats(0, 0.9), seed=st.integers(0, 2**16), frame_value=st.sampled_from(["mean", "start"]))
def test_at_most_one_spike_per_frame_exactly_when_above_cutoff(n_steps, frame_steps, cutoff, seed, frame_value):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.2, 1.2, size=(3, 2, n_steps)).astype(np.float32)
    fit = RateScale(polarity="unipolar", offset=np.zeros(2), scale=np.ones(2))
    spikes, stats = ttfs_encode(x, fit, _tb(n_steps), frame_steps, frame_value, cutoff)
    bounds = frame_bounds(n_steps, frame_steps)
    assert spikes.shape == (3, n_steps, 2) and set(np.unique(spikes)) <= {0, 1}
    a = np.clip(x, 0, 1)
    for f in range(len(bounds) - 1):
        lo, hi = bounds[f], bounds[f + 1]
        counts = spikes[:, lo:hi].sum(axis=1)
        value = a[:, :, lo:hi].mean(axis=2) if frame_value == "mean" else a[:, :, lo]
        np.testing.assert_array_equal(counts, (value >= np.float32(cutoff)).astype(counts.dtype))
    assert stats["ttfs_frames_per_window"] == len(bounds) - 1
    assert 0 <= stats["ttfs_silent_fraction"] <= 1


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 50), cutoff=st.floats(0, 0.95), a=st.lists(st.floats(0, 1), min_size=2, max_size=20))
def test_offsets_earlier_for_larger_values(k, cutoff, a):
    values = np.sort(np.asarray(a, dtype=np.float64))[::-1][None, :]  # descending intensity
    off = ttfs_offsets(values, np.array([k]), cutoff)[0]
    firing = off[off >= 0]
    assert np.all(np.diff(firing) >= 0)  # weaker never fires earlier
    assert np.all((firing >= 0) & (firing < k))
    if values[0, 0] == 1.0:
        assert off[0] == 0  # full scale fires at the frame's first step
    np.testing.assert_array_equal(off >= 0, values[0] >= cutoff)


def test_linear_latency_values():
    """The map of the module doc: offset floor(K (1 - a) / (1 - cutoff)), capped at K - 1."""
    off = ttfs_offsets(np.array([[1.0, 0.75, 0.5, 0.25, 0.2, 0.1]]), np.array([8]), cutoff=0.2)
    np.testing.assert_array_equal(off[0], [0, 2, 5, 7, 7, -1])


def test_whole_window_frame_and_mean_value():
    """frame_steps null: one spike per channel per window, timed by the window's mean intensity."""
    x = np.zeros((2, 1, 100), np.float32)
    x[0, 0, :] = 0.9  # strong window
    x[1, 0, :50] = 0.4  # weaker on average (0.2)
    spikes, stats = ttfs_encode(x, UNIT, _tb(100), None, "mean", 0.05)
    assert spikes.sum(axis=(1, 2)).tolist() == [1, 1]
    t_strong, t_weak = np.argmax(spikes[0, :, 0]), np.argmax(spikes[1, :, 0])
    assert t_strong == int(100 * 0.1 / 0.95) and t_weak == int(100 * 0.8 / 0.95)
    assert stats["ttfs_frames_per_window"] == 1 and stats["ttfs_silent_fraction"] == 0.0


def test_mean_over_samples_of_each_frame():
    """With several samples per step the frame value averages every sample, not the step starts."""
    x = np.zeros((1, 1, 40), np.float32)
    x[0, 0, 1::2] = 1.0  # every step's first sample is 0, its second 1: mean 0.5, start 0
    tb = _tb(40, samples_per_step=2)
    mean, _ = ttfs_encode(x, UNIT, tb, 5, "mean", 0.1)
    start, _ = ttfs_encode(x, UNIT, tb, 5, "start", 0.1)
    assert mean.sum() == 4 and start.sum() == 0


def test_bipolar_channels_and_stage_registry():
    """Through the encode stage: bipolar C+/C- channels, stats recorded, the record re-applies."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2, 200)).astype(np.float32)
    spikes, enc = encode_signals(x, 200.0, "ttfs", {"dt_s": 0.025, "ttfs": {"frame_steps": 10}}, channel_names=["a", "b"],
                                 band_hz=20.0)
    assert enc["channel_names"] == ["a+", "a-", "b+", "b-"]
    assert spikes.shape == (6, 40, 4) and spikes.max() == 1
    assert spikes.reshape(6, 4, 10, 4).sum(axis=2).max() == 1  # one spike per frame at most
    assert enc["stats"]["ttfs_frames_per_window"] == 4 and enc["stats"]["ttfs_mean_offset_steps"] is not None


def test_bad_settings_are_clear_errors():
    x = np.zeros((1, 1, 10), np.float32)
    with pytest.raises(BiospikeError, match="frame_value"):
        ttfs_encode(x, UNIT, _tb(10), 2, "peak", 0.1)
    with pytest.raises(BiospikeError, match="cutoff"):
        ttfs_encode(x, UNIT, _tb(10), 2, "mean", 1.5)
    # 4 steps per sample: a frame of one step holds no sample to average
    fine = make_timebase(100.0, 10, 12.5, dt_s=0.0025)
    with pytest.raises(BiospikeError, match="at least one sample per frame"):
        ttfs_encode(x, UNIT, fine, 1, "mean", 0.1)
    # the start value of a whole-window frame samples the signal once: Nyquist refuses it
    with pytest.raises(BiospikeError, match="aliases"):
        encode_signals(np.random.default_rng(1).normal(size=(2, 1, 200)).astype(np.float32), 200.0, "ttfs",
                       {"dt_s": 0.005, "ttfs": {"frame_value": "start"}})


def test_frame_gain_puts_the_fit_splits_frame_means_on_full_scale():
    """Frame means sit far below the sample scale; the fitted gain makes the fit split's
    frame_percentile-th frame mean full scale, so the latency code uses its whole frame."""
    from biospike.encode.ttfs import fit_frame_gain, frame_intensity

    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 2, 400)).astype(np.float32)
    fit = RateScale(polarity="bipolar", offset=np.zeros(2), scale=np.full(2, 2.576))  # 99th pct of |N(0, 1)|
    tb = _tb(400, fs_hz=200.0)
    bounds = frame_bounds(tb.n_steps, 20)
    raw = frame_intensity(x, fit, tb, bounds, "mean")
    assert np.percentile(raw, 99) < 0.4  # the problem: a tenth to a third of the range
    gain = fit_frame_gain(x, fit, tb, bounds, 90.0)
    scaled = frame_intensity(x, fit, tb, bounds, "mean", gain=gain)
    np.testing.assert_allclose(np.percentile(scaled.reshape(-1, 4), 90, axis=0), 1.0, atol=0.02)
    assert 0.05 < float((scaled >= 1).mean()) < 0.15  # the top 10% saturate
    _, enc = encode_signals(x, 200.0, "ttfs", {"dt_s": 0.005, "ttfs": {"frame_steps": 20}})
    assert len(enc["fitted"]["frame_gain"]) == 4 and min(enc["fitted"]["frame_gain"]) > 2
    assert 5 < enc["stats"]["ttfs_mean_offset_steps"] < 15  # mid-frame on average: the range is used
    with pytest.raises(BiospikeError, match="frame_percentile"):
        fit_frame_gain(x, fit, tb, bounds, 0.0)
