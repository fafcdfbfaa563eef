"""biospike.signals: filters, resampling, windows, labels, channels, pseudonyms."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike import signals as sig
from biospike.errors import BiospikeError


def tone(freq_hz: float, fs_hz: float, seconds: float = 4.0, channels: int = 2) -> np.ndarray:
    t = np.arange(int(seconds * fs_hz)) / fs_hz
    return np.tile(np.sin(2 * np.pi * freq_hz * t), (channels, 1))


def rms_mid(x: np.ndarray) -> float:
    """RMS away from the edges (filter transients)."""
    n = x.shape[-1]
    return float(np.sqrt(np.mean(x[..., n // 4: 3 * n // 4] ** 2)))


# ------------------------------------------------------------------------------ filters


def test_notch_removes_mains_and_keeps_signal():
    fs = 500.0
    mains = sig.notch(tone(50, fs), fs, 50)
    alpha = sig.notch(tone(10, fs), fs, 50)
    assert rms_mid(mains) < 0.01 * rms_mid(tone(50, fs))  # > 40 dB down
    assert rms_mid(alpha) == pytest.approx(rms_mid(tone(10, fs)), rel=0.01)


def test_notch_skipped_at_or_above_nyquist():
    x = tone(10, 100.0)
    assert sig.notch(x, 100.0, 50) is x  # 50 Hz == Nyquist: not representable, nothing to remove
    assert sig.notch(x, 100.0, None) is x
    assert not sig.notch_applies(100.0, 60)
    assert sig.notch_applies(160.0, 60)


def test_bandpass_passes_band_and_stops_outside():
    fs = 160.0
    inside = sig.bandpass(tone(15, fs), fs, [8, 30])
    below = sig.bandpass(tone(1, fs), fs, [8, 30])
    above = sig.bandpass(tone(60, fs), fs, [8, 30])
    assert rms_mid(inside) == pytest.approx(rms_mid(tone(15, fs)), rel=0.02)
    assert rms_mid(below) < 0.01 * rms_mid(tone(1, fs))
    assert rms_mid(above) < 0.01 * rms_mid(tone(60, fs))


def test_bandpass_lowpass_when_lower_edge_zero():
    fs = 360.0
    kept = sig.bandpass(tone(0.3, fs, seconds=20), fs, [0, 40])
    assert rms_mid(kept) == pytest.approx(rms_mid(tone(0.3, fs, seconds=20)), rel=0.02)


@pytest.mark.parametrize("band", [[20, 100], [20, 450], [30, 10]])
def test_bandpass_rejects_edges_at_or_above_nyquist_or_inverted(band):
    with pytest.raises(BiospikeError, match="Nyquist|low < high"):
        sig.bandpass(tone(10, 200.0), 200.0, band)


def test_bandpass_too_short_signal_is_a_clear_error():
    with pytest.raises(BiospikeError, match="too short"):
        sig.bandpass(np.random.default_rng(0).normal(size=(1, 10)), 100.0, [1, 20])


# --------------------------------------------------------------------------- resampling


def test_resample_factors_are_rational_and_minimal():
    assert sig.resample_factors(360, 128) == (16, 45)
    assert sig.resample_factors(160, 100) == (5, 8)
    assert sig.resample_factors(128, 180) == (45, 32)


def test_resample_keeps_in_band_tone_and_rate():
    x = tone(10, 360.0, seconds=10)
    y, fs = sig.resample(x, 360.0, 128.0)
    assert fs == 128.0
    assert y.shape[-1] == 1280
    assert rms_mid(y) == pytest.approx(rms_mid(x), rel=0.01)
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert np.fft.rfftfreq(y.shape[-1], 1 / fs)[spectrum.argmax()] == pytest.approx(10, abs=0.2)


def test_resample_is_anti_aliased():
    # 100 Hz at 360 Hz would alias to 28 Hz at 128 Hz without the low-pass
    y, _ = sig.resample(tone(100, 360.0, seconds=10), 360.0, 128.0)
    assert rms_mid(y) < 0.01


def test_resample_noop_when_rates_equal():
    x = tone(10, 200.0)
    y, fs = sig.resample(x, 200.0, 200.0)
    assert y is x and fs == 200.0
    assert sig.resample(x, 200.0, None)[0] is x


def test_rescale_events_keeps_segments_inside_and_rounds_peaks():
    onset, duration = sig.rescale_events(np.array([3, 100, 50]), np.array([10, 0, 7]), 0.5)
    # [3, 13) -> [1.5, 6.5) at half rate -> [2, 6); [50, 57) -> [25, 28.5) -> [25, 28)
    assert onset.tolist() == [2, 50, 25]
    assert duration.tolist() == [4, 0, 3]
    same = sig.rescale_events(np.array([1]), np.array([2]), 1)
    assert same[0].tolist() == [1] and same[1].tolist() == [2]


def test_interp_uniform_and_gaps():
    t = np.array([0.0, 0.001, 0.003, 0.004, 0.2, 0.201])
    x = np.vstack([t * 1000, -t * 1000])
    grid, y, valid = sig.interp_uniform(t, x, 1000.0, max_gap_s=0.05)
    assert grid.shape == (202,)
    np.testing.assert_allclose(y[0], grid * 1000, atol=1e-9)
    assert valid[:5].all() and not valid[60:150].any() and valid[-2:].all()


def test_hold_labels_zero_order():
    t = np.array([0.0, 1.0, 2.0])
    labels = np.array([5, 6, 7])
    assert sig.hold_labels(t, labels, np.array([0.0, 0.5, 1.0, 1.9, 2.5])).tolist() == [5, 5, 6, 6, 7]


# -------------------------------------------------------------------------------- labels


def test_runs_round_trip():
    values = np.array([0, 0, 1, 1, 1, 0, 2])
    onset, duration, value = sig.runs(values)
    assert onset.tolist() == [0, 2, 5, 6]
    assert duration.tolist() == [2, 3, 1, 1]
    assert value.tolist() == [0, 1, 0, 2]
    assert np.array_equal(np.repeat(value, duration), values)
    assert sig.runs(np.array([]))[0].size == 0


def test_map_labels_drops_unmapped_and_null():
    idx, keep = sig.map_labels(["T1", "T0", "T2", "T9", "T1"], {"T1": "left", "T2": "right", "T0": None}, ["left", "right"])
    assert idx.tolist() == [0, -1, 1, -1, 0]
    assert keep.tolist() == [True, False, True, False, True]


def test_map_labels_rejects_targets_outside_classes():
    with pytest.raises(BiospikeError, match="not in classes"):
        sig.map_labels(["A"], {"A": "af"}, ["normal"])


# ------------------------------------------------------------------------------- windows


@settings(max_examples=60, deadline=None)
@given(
    segments=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 120)), min_size=0, max_size=8),
    window=st.integers(1, 60),
    stride=st.integers(1, 40),
)
def test_fixed_windows_lie_fully_inside_their_segment(segments, window, stride):
    onset = np.array([s[0] for s in segments], dtype=np.int64)
    duration = np.array([s[1] for s in segments], dtype=np.int64)
    starts, seg = sig.fixed_windows(onset, duration, window, stride)
    assert len(starts) == len(seg)
    assert (starts >= onset[seg]).all() if len(seg) else True
    assert (starts + window <= onset[seg] + duration[seg]).all() if len(seg) else True
    expected = sum((d - window) // stride + 1 for d in duration if d >= window)
    assert len(starts) == expected
    for k in range(len(segments)):  # consecutive windows of a segment are one stride apart
        assert (np.diff(starts[seg == k]) == stride).all()


def test_fixed_windows_reject_empty_window():
    with pytest.raises(BiospikeError):
        sig.fixed_windows(np.array([0]), np.array([10]), 0, 1)


def test_beat_windows_centre_and_edges():
    starts, kept = sig.beat_windows(np.array([5, 50, 100, 197]), 200, pre=10, post=20)
    assert kept.tolist() == [1, 2]
    assert starts.tolist() == [40, 90]


def test_take_windows_matches_loop():
    x = np.arange(2 * 50, dtype=float).reshape(2, 50)
    starts = np.array([0, 7, 40])
    w = sig.take_windows(x, starts, 10)
    assert w.dtype == np.float32 and w.shape == (3, 2, 10)
    for k, s in enumerate(starts):
        np.testing.assert_array_equal(w[k], x[:, s:s + 10])
    assert sig.take_windows(x, np.array([], dtype=int), 10).shape == (0, 2, 10)


def test_subsample_groups_caps_each_group_deterministically():
    groups = np.array(["a"] * 10 + ["b"] * 3 + ["c"] * 7)
    keep1 = sig.subsample_groups(groups, 4, np.random.default_rng(1))
    keep2 = sig.subsample_groups(groups, 4, np.random.default_rng(1))
    keep3 = sig.subsample_groups(groups, 4, np.random.default_rng(2))
    np.testing.assert_array_equal(keep1, keep2)
    assert not np.array_equal(keep1, keep3)
    _, counts = np.unique(groups[keep1], return_counts=True)
    assert counts.tolist() == [4, 3, 4]
    assert (np.diff(keep1) > 0).all()
    assert sig.subsample_groups(groups, None, np.random.default_rng(0)).tolist() == list(range(20))


# ------------------------------------------------------------------------------ channels


def test_pick_channels_normalises_edf_names():
    available = ["Fc5.", "Fc3.", "Cz..", "C3..", "T10."]
    assert sig.pick_channels(available, ["FC3", "cz", "C3", "T10"]) == [1, 2, 3, 4]
    assert sig.pick_channels(available, None) == [0, 1, 2, 3, 4]
    assert sig.pick_channels(["ECG", "ECG"], [0]) == [0]
    assert sig.pick_channels(["ECG", "ECG"], [-1]) == [1]


def test_pick_channels_missing_lists_available():
    with pytest.raises(BiospikeError, match=r"'Oz' not found; available: Fc5\., Cz\.\."):
        sig.pick_channels(["Fc5.", "Cz.."], ["Oz"])
    with pytest.raises(BiospikeError, match="ambiguous"):
        sig.pick_channels(["ECG", "ECG"], ["ECG"])
    with pytest.raises(BiospikeError, match="out of range"):
        sig.pick_channels(["ECG"], [3])


def test_bad_channels():
    x = np.random.default_rng(0).normal(size=(4, 100))
    x[1, 5] = np.nan
    x[2] = 3.0
    x[3, 7] = np.inf
    nonfinite, flat = sig.bad_channels(x)
    assert nonfinite == [1, 3]
    assert flat == [2]
    assert sig.bad_channels(np.random.default_rng(0).normal(size=(2, 10))) == ([], [])


# ------------------------------------------------------------------------ pseudonyms


def test_hash_subject_is_stable_salted_and_hides_raw_id():
    salt = sig.dataset_salt("demo_eeg")
    a = sig.hash_subject("S001", salt)
    assert re.fullmatch(r"sub-[0-9a-f]{8}", a)
    assert a == sig.hash_subject("S001", salt)
    assert a != sig.hash_subject("S002", salt)
    assert a != sig.hash_subject("S001", sig.dataset_salt("other"))
    assert "S001" not in a and "001" not in a
    assert sig.hash_id("S001/R04", salt, "rec").startswith("rec-")


def test_rr_trace_holds_the_latest_interval_in_seconds():
    peaks = np.array([100, 400, 600, 1000])  # at 200 Hz: beats at 0.5, 2.0, 3.0, 5.0 s
    out = sig.rr_trace(peaks, 200.0, 60, 10.0)  # 6 s at 10 Hz
    t = np.arange(60) / 10.0
    expected = np.where(t < 3.0, 1.5, np.where(t < 5.0, 1.0, 2.0))  # first interval held before beat 2
    np.testing.assert_allclose(out, expected)
    assert (sig.rr_trace(np.array([50]), 200.0, 10, 10.0) == 0).all()  # one beat: no interval


def test_r_peaks_find_the_beats_of_a_simulated_ecg():
    import neurokit2 as nk

    fs = 300
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=75, random_state=1)
    peaks = sig.r_peaks(ecg, fs)
    assert 22 <= len(peaks) <= 27  # 75 bpm over 20 s
    np.testing.assert_allclose(np.median(np.diff(peaks)) / fs, 0.8, atol=0.05)
    assert len(sig.r_peaks(ecg[:fs], fs)) == 0  # shorter than 2 s: no detection
