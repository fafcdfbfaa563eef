"""Rate baseline: the empirical rate follows the intensity; polarity; seeds; limits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.encode.rate import RateScale, fit_scale, intensity, rate_encode
from biospike.errors import BiospikeError


@settings(max_examples=30, deadline=None)
@given(level=st.floats(-1.5, 1.5), max_rate_hz=st.floats(10, 400), emission=st.sampled_from(["bernoulli", "poisson"]))
def test_mean_rate_matches_intensity(level, max_rate_hz, emission):
    fit = RateScale(polarity="bipolar", offset=np.zeros(1), scale=np.ones(1))
    dt_s = 0.002
    n_win, n_steps = 20, 500
    values = np.full((n_win, 1, n_steps), level, dtype=np.float32)
    spikes, capped = rate_encode(values, fit, emission, max_rate_hz, dt_s, seed=5)
    lam = np.clip([level, -level], 0, 1) * max_rate_hz * dt_s  # expected count per step, + and -
    mean = spikes.reshape(-1, 2).mean(axis=0)
    n = n_win * n_steps
    assert np.all(np.abs(mean - lam) <= 5 * np.sqrt(np.maximum(lam, 1e-3) / n) + 1e-9)
    assert capped == 0
    # the measured rate in Hz is the intensity times max_rate_hz
    np.testing.assert_allclose(mean / dt_s, np.clip([level, -level], 0, 1) * max_rate_hz,
                               atol=5 * np.sqrt(max_rate_hz / (n * dt_s)) + 1e-9)


def test_bipolar_and_unipolar_intensity():
    x = np.array([[[-2.0, -0.5, 0.0, 0.5, 2.0]]], dtype=np.float32)
    bip = intensity(x, RateScale("bipolar", np.zeros(1), np.ones(1)))[0]
    np.testing.assert_allclose(bip[:, 0], [0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(bip[:, 1], [1, 0.5, 0, 0, 0])
    uni = intensity(x, RateScale("unipolar", np.full(1, -1.0), np.full(1, 2.0)))[0]
    np.testing.assert_allclose(uni[:, 0], [0, 0.25, 0.5, 0.75, 1])


def test_fit_scale_on_training_windows():
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, size=(100, 2, 100)).astype(np.float32)
    fit = fit_scale(x, "bipolar", 99)
    np.testing.assert_allclose(fit.offset, 1.0, atol=0.05)
    np.testing.assert_allclose(fit.scale, 2.0 * 2.576, rtol=0.05)  # 99th percentile of |N(0, 2)|
    with pytest.raises(BiospikeError, match="flat"):
        fit_scale(np.zeros((2, 1, 5), np.float32), "unipolar")


def test_seeded_and_limited():
    fit = RateScale("unipolar", np.zeros(2), np.ones(2))
    x = np.random.default_rng(0).uniform(size=(30, 2, 50)).astype(np.float32)
    a, _ = rate_encode(x, fit, "bernoulli", 100, 0.005, seed=1)
    b, _ = rate_encode(x, fit, "bernoulli", 100, 0.005, seed=1)
    c, _ = rate_encode(x, fit, "bernoulli", 100, 0.005, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    with pytest.raises(BiospikeError, match="at most"):
        rate_encode(x, fit, "bernoulli", 300, 0.005, seed=1)
    counts, capped = rate_encode(np.ones((1, 2, 10), np.float32), fit, "poisson", 1e6, 0.001, seed=1)
    assert counts.max() == 255 and capped == 20
