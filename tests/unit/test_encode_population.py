"""Gaussian population code: fields from the training split, spike emission, determinism."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from biospike.encode.population import (
    Fields,
    activation,
    fit_fields,
    latency_offsets,
    population_encode,
)
from biospike.errors import BiospikeError


def _fields(n=8, overlap=0.5, c=2):
    return Fields(low=np.linspace(-1, 0, c), high=np.linspace(1, 3, c), n_neurons=n, overlap=overlap)


def _reference_latency(values, fields, cutoff, k, n_steps):
    """Spikes from the definition: activation -> offset in its frame, via exponentials."""
    act = activation(values, fields)  # (N, F, C, n)
    offset = latency_offsets(act, cutoff, k)
    n_win, n_frames, n_ch, n = act.shape
    out = np.zeros((n_win, n_frames * k, n_ch * n), dtype=np.uint8)
    w, f, c, j = np.nonzero(offset >= 0)
    out[w, f * k + offset[w, f, c, j], c * n + j] = 1
    return out[:, :n_steps]


def _far_from_boundaries(values, fields, cutoff, k):
    """True where no activation lies within 1e-9 of a latency boundary (float ties are arbitrary)."""
    act = activation(values, fields)
    levels = 1 - np.arange(1, k + 1) * (1 - cutoff) / k
    levels[-1] = cutoff
    return np.all(np.abs(act[..., None] - levels) > 1e-9)


@settings(max_examples=150, deadline=None)
@given(values=hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.just(2), st.integers(1, 12)),
                         elements=st.floats(-3, 5, width=32)),
       n=st.integers(2, 64), overlap=st.floats(0.2, 2.0), cutoff=st.floats(0.05, 0.95), k=st.integers(1, 5))
def test_latency_fast_path_equals_the_definition(values, n, overlap, cutoff, k):
    fields = _fields(n, overlap)
    n_steps = values.shape[2] * k - (1 if k > 1 else 0)  # a last frame cut short
    if not _far_from_boundaries(values, fields, cutoff, k):
        return
    fast = population_encode(values, fields, "latency", n_steps, cutoff=cutoff, latency_steps=k)
    np.testing.assert_array_equal(fast, _reference_latency(values, fields, cutoff, k, n_steps))


def test_each_neuron_fires_once_per_frame_earlier_when_closer():
    fields = _fields(n=6, overlap=0.8, c=1)
    k = 4
    values = np.linspace(-1.2, 1.2, 50, dtype=np.float32)[None, None, :]
    spikes = population_encode(values, fields, "latency", 50 * k, cutoff=0.3, latency_steps=k)
    per_frame = spikes.reshape(1, 50, k, 6).sum(axis=2)
    assert per_frame.max() == 1
    # at each neuron's own centre it fires first (offset 0); its neighbours later or not at all
    centres = fields.centres[0].astype(np.float32)[None, None, :]
    at_centre = population_encode(centres, fields, "latency", 6 * k, cutoff=0.3, latency_steps=k)
    frames = at_centre.reshape(6, k, 6)  # (frame = centre j, offset, neuron)
    for j in range(6):
        assert frames[j, 0, j] == 1
        first = np.argmax(frames[j], axis=0)
        fired = frames[j].any(axis=0)
        assert np.all(first[fired & (np.arange(6) != j)] >= 1)


def test_each_neuron_responds_most_near_its_centre_rate_emission():
    fields = _fields(n=5, overlap=0.5, c=1)
    sweep = np.linspace(-1.5, 1.5, 61)
    values = np.repeat(sweep.astype(np.float32)[:, None, None], 400, axis=2)  # 400 steps per value
    spikes = population_encode(values, fields, "rate", 400, max_rate_hz=500, dt_s=0.002, seed=3)
    rate = spikes.mean(axis=1)  # (61 values, 5 neurons)
    best = sweep[np.argmax(rate, axis=0)]
    np.testing.assert_allclose(best, fields.centres[0], atol=0.16)
    # and the mean matches the activation (p = a * max_rate * dt)
    expect = activation(values[:, :, :1], fields)[:, 0, 0, :]
    assert np.abs(rate - expect).max() < 5 * np.sqrt(0.25 / 400)


def test_spikes_are_deterministic_by_seed():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 2, 40)).astype(np.float32)  # > one random block of windows
    fields = _fields()
    a = population_encode(values, fields, "rate", 40, max_rate_hz=100, dt_s=0.005, seed=11)
    b = population_encode(values, fields, "rate", 40, max_rate_hz=100, dt_s=0.005, seed=11)
    c = population_encode(values, fields, "rate", 40, max_rate_hz=100, dt_s=0.005, seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.uint8 and a.shape == (300, 40, 16) and a.max() == 1
    # the first windows do not depend on how many follow
    np.testing.assert_array_equal(
        population_encode(values[:10], fields, "rate", 40, max_rate_hz=100, dt_s=0.005, seed=11), a[:10])
    lat = population_encode(values, fields, "latency", 40)
    np.testing.assert_array_equal(lat, population_encode(values, fields, "latency", 40))


def test_fields_span_the_training_range():
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 6, size=(50, 1, 200)).astype(np.float32)
    fields = fit_fields(x, 8, 0.5, (1, 99))
    np.testing.assert_allclose(fields.centres[0, [0, -1]], np.percentile(x, [1, 99]), rtol=1e-6)
    np.testing.assert_allclose(fields.sigma, 0.5 * (fields.high - fields.low) / 7)
    with pytest.raises(BiospikeError, match="no spread"):
        fit_fields(np.ones((3, 1, 10), np.float32), 8, 0.5)
    with pytest.raises(BiospikeError, match="n_neurons"):
        fit_fields(x, 1, 0.5)


def test_rate_emission_refuses_more_than_one_spike_per_step():
    with pytest.raises(BiospikeError, match="at most one spike"):
        population_encode(np.zeros((1, 2, 5), np.float32), _fields(), "rate", 5, max_rate_hz=500, dt_s=0.01)
