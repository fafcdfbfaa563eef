"""Burst input dynamics: the spike statistics of Poisson-Burst and Delayed-Burst match their
definitions (biospike.encode.burst's module doc), seeded, independent of chunking."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.encode.burst import burst_encode
from biospike.encode.rate import RateScale
from biospike.encode.stage import encode_signals
from biospike.encode.timebase import make_timebase
from biospike.errors import BiospikeError

UNIT = RateScale(polarity="unipolar", offset=np.zeros(1), scale=np.ones(1))


def _tb(n_steps: int):
    return make_timebase(100.0, n_steps, 50.0, dt_s=0.01)


def _bursts(train: np.ndarray, isi: int) -> list[list[int]]:
    """Split one channel's spike times into bursts: runs of spikes exactly ``isi`` apart."""
    times = np.flatnonzero(train)
    out: list[list[int]] = []
    for t in times:
        if out and t - out[-1][-1] == isi:
            out[-1].append(int(t))
        else:
            out.append([int(t)])
    return out


@settings(max_examples=20, deadline=None)
@given(level=st.floats(0, 1), burst_mean=st.floats(1, 4), isi=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_poisson_burst_rate_size_and_shape(level, burst_mean, isi, seed):
    """Each interval bursts with probability = its intensity; bursts start at the interval's first
    step, hold 1 + Poisson(burst_mean - 1) spikes isi steps apart (cut at the interval end)."""
    k = 20  # interval long enough that no burst is cut when isi * n < 20
    x = np.full((200, 1, 400), level, dtype=np.float32)
    spikes, stats = burst_encode(x, UNIT, _tb(400), "poisson", k, burst_mean, isi, None, seed)
    assert spikes.max() <= 1
    per_frame = spikes[:, :, 0].reshape(200, 400 // k, k)
    fired = per_frame.any(axis=2)
    n = fired.size
    assert abs(fired.mean() - level) <= 5 * np.sqrt(max(level * (1 - level), 1e-4) / n) + 1e-9
    assert np.all(per_frame[fired][:, 0] == 1)  # every burst starts at the interval's first step
    if fired.any():
        sizes = per_frame[fired].sum(axis=1)
        assert sizes.min() >= 1
        full = sizes[sizes * isi <= k - isi]  # bursts not touching the interval end
        lam = burst_mean - 1
        if len(full) > 50 and stats["burst_spikes_cut"] == 0:
            assert abs(full.mean() - burst_mean) <= 5 * np.sqrt(max(lam, 0.05) / len(full)) + 1e-9
        for row in per_frame[fired][:20]:
            assert len(_bursts(row, isi)) == 1  # one burst per interval, spikes isi apart
    assert stats["bursts_per_window_per_channel"] == pytest.approx(fired.sum() / 200)


@settings(max_examples=20, deadline=None)
@given(level=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_delayed_burst_one_burst_mean_delay(level, seed):
    """One burst per channel and window; onset ~ Geometric with mean (1 - a)(K - margin), capped."""
    n_steps, burst_mean, isi = 200, 2.0, 2
    x = np.full((400, 1, n_steps), level, dtype=np.float32)
    spikes, stats = burst_encode(x, UNIT, _tb(n_steps), "delayed", None, burst_mean, isi, None, seed)
    margin = stats["burst_margin_steps"]
    assert margin == 4
    onsets = []
    for w in range(400):
        b = _bursts(spikes[w, :, 0], isi)
        assert len(b) == 1  # exactly one burst
        onsets.append(b[0][0])
    onsets = np.asarray(onsets)
    room = n_steps - margin
    assert onsets.max() <= room
    mu = (1 - np.float32(level)) * room
    p = 1 / (1 + mu)
    # mean of min(Geometric, room): sum_{d=1..room} P(D >= d) = sum (1 - p)^d
    expected = float(np.sum((1 - p) ** np.arange(1, room + 1)))
    sd = np.sqrt(mu * (1 + mu)) + 1e-3
    assert abs(onsets.mean() - expected) <= 5 * sd / np.sqrt(400) + 1e-9
    assert stats["bursts_per_window_per_channel"] == 1.0


def test_stronger_channels_burst_earlier_and_more_often():
    x = np.zeros((300, 2, 200), np.float32)
    x[:, 0] = 0.9
    x[:, 1] = 0.2
    fit = RateScale(polarity="unipolar", offset=np.zeros(2), scale=np.ones(2))
    delayed, _ = burst_encode(x, fit, _tb(200), "delayed", None, 3.0, 1, None, seed=1)
    first = delayed.argmax(axis=1)  # (300, 2) first spike step
    assert first[:, 0].mean() < first[:, 1].mean() / 3
    poisson, _ = burst_encode(x, fit, _tb(200), "poisson", 10, 3.0, 1, None, seed=1)
    assert poisson[:, :, 0].sum() > 3 * poisson[:, :, 1].sum()


@pytest.mark.parametrize("dynamics", ["poisson", "delayed"])
def test_seeded_and_independent_of_chunking(dynamics):
    x = np.random.default_rng(0).uniform(size=(300, 1, 50)).astype(np.float32)
    a, _ = burst_encode(x, UNIT, _tb(50), dynamics, 10, 2.5, 1, None, seed=4)
    b, _ = burst_encode(x[:256], UNIT, _tb(50), dynamics, 10, 2.5, 1, None, seed=4)
    c, _ = burst_encode(x, UNIT, _tb(50), dynamics, 10, 2.5, 1, None, seed=5)
    np.testing.assert_array_equal(a[:256], b)
    assert not np.array_equal(a, c)


def test_through_the_encode_stage_and_bad_settings():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 2, 400)).astype(np.float32)
    for name in ("poisson_burst", "delayed_burst"):
        spikes, enc = encode_signals(x, 200.0, name, {"dt_s": 0.005}, channel_names=["a", "b"])
        assert spikes.shape == (8, 400, 4) and enc["channel_names"] == ["a+", "a-", "b+", "b-"]
        assert enc["stats"]["burst_dynamics"] == name.split("_")[0] and spikes.max() == 1
    with pytest.raises(BiospikeError, match="burst_mean"):
        burst_encode(x, UNIT, _tb(400), "delayed", None, 0.5, 1, None, 0)
    with pytest.raises(BiospikeError, match="dynamics"):
        burst_encode(x, UNIT, _tb(400), "periodic", None, 2, 1, None, 0)
