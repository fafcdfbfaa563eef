"""`biospike demo`: files in the real formats, their labels and content, determinism, atomicity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from biospike import demo
from biospike.cli import main
from biospike.errors import BiospikeError
from biospike.store import read_json, strip_volatile
from tests.conftest import envelope

# small but complete: 4 subjects, every class present
SMALL = {
    "seed": 7,
    "n_subjects": 4,
    "eeg": {"fs_hz": 160, "trials_per_class": 10, "trial_s": 4.0, "rest_s": 2.0},
    "ecg": {"fs_hz": 360, "duration_s": 60},
    "emg": {"fs_hz": 1000, "reps_per_gesture": 2, "gesture_s": 2.0, "rest_s": 1.5},
}
TINY = {**SMALL, "eeg": {"trials_per_class": 2}, "ecg": {"duration_s": 20}, "emg": {"reps_per_gesture": 1, "gesture_s": 1.0, "rest_s": 1.0}}
SUBJECTS = ["S01", "S02", "S03", "S04"]
MOTOR = ["FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4", "Pz"]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo"
    demo.generate(SMALL, path)
    return path


def _recording_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for m in demo.MODALITIES for p in sorted((root / m).iterdir())}


def _read_emg(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter="\t", skiprows=1)
    return table[:, 0].astype(int), table[:, 1:9], table[:, 9].astype(int)


# ---------------------------------------------------------------------------------------------
# layout and settings
# ---------------------------------------------------------------------------------------------


def test_subject_ids_are_zero_padded():
    assert demo.subject_ids(4) == SUBJECTS
    assert demo.subject_ids(12)[-1] == "S12"
    assert demo.subject_ids(100)[0] == "S001"


def test_files_have_the_agreed_names(out):
    assert sorted(p.name for p in (out / "eeg").iterdir()) == [f"{s}.edf" for s in SUBJECTS]
    assert sorted(p.name for p in (out / "ecg").iterdir()) == sorted(f"{s}.{e}" for s in SUBJECTS for e in ("hea", "dat", "atr"))
    assert sorted(p.name for p in (out / "emg").iterdir()) == [f"{s}.txt" for s in SUBJECTS]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_manifest_records_provenance_parameters_and_hashes(out):
    manifest = read_json(out / "manifest.json")
    assert manifest["provenance"]["seed"] == SMALL["seed"]
    assert manifest["provenance"]["config"]["demo"]["eeg"]["trials_per_class"] == 10
    assert set(manifest["generation"]) == set(demo.MODALITIES)
    assert set(manifest["generation"]["eeg"]) == set(SUBJECTS)
    assert 9.0 <= manifest["generation"]["eeg"]["S01"]["mu_hz"] <= 12.0
    assert 55.0 <= manifest["generation"]["ecg"]["S02"]["heart_rate_bpm"] <= 95.0
    assert len(manifest["files"]) == 4 * (1 + 3 + 1)
    assert manifest["files"]["eeg/S01.edf"]["bytes"] == (out / "eeg" / "S01.edf").stat().st_size


def test_settings_fill_defaults_and_reject_bad_values():
    full = demo.demo_settings({"seed": 1})
    assert full["n_subjects"] == 24 and full["eeg"]["fs_hz"] == 160 and full["ecg"]["fs_hz"] == 360
    assert demo.demo_settings({"seed": 1, "eeg": {"trial_s": 3.0}})["eeg"]["rest_s"] == 2.0
    with pytest.raises(BiospikeError, match="demo/eeg"):
        demo.demo_settings({"seed": 1, "eeg": {"fs_hz": 160, "channels": 3}})
    with pytest.raises(BiospikeError, match="n_subjects"):
        demo.demo_settings({"seed": 1, "n_subjects": 2})
    with pytest.raises(BiospikeError, match="whole number"):
        demo.demo_settings({"seed": 1, "eeg": {"fs_hz": 160.5}})
    with pytest.raises(BiospikeError, match="seed"):
        demo.demo_settings({"n_subjects": 4})


def test_cli_writes_and_reports_errors_on_one_line(tmp_path, capsys):
    seed, demo_settings = TINY["seed"], {k: v for k, v in TINY.items() if k != "seed"}
    assert main(["demo", "--params", envelope(seed=seed, demo=demo_settings), "--out-dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "ecg" / "S04.hea").is_file()
    assert "wrote 4 subjects" in capsys.readouterr().err
    bad = envelope(seed=seed, demo={**demo_settings, "emg": {"gestures": 5}})
    assert main(["demo", "--params", bad, "--out-dir", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "demo/emg" in err[0] and "gestures" in err[0]
    assert not (tmp_path / "e" / "emg").exists()


# ---------------------------------------------------------------------------------------------
# EEG: EDF+
# ---------------------------------------------------------------------------------------------


def test_edf_reads_back_with_channels_rate_and_eegmmidb_annotations(out):
    import mne

    raw = mne.io.read_raw_edf(out / "eeg" / "S02.edf", preload=True, verbose="error")
    assert raw.ch_names == list(demo.EEG_CHANNELS)
    assert set(MOTOR) <= set(raw.ch_names) and {"Fz", "O1"} <= set(raw.ch_names)
    assert raw.info["sfreq"] == 160
    desc = list(raw.annotations.description)
    assert desc.count("T1") == desc.count("T2") == 10
    assert desc.count("T0") == 21 and desc[0] == "T0"
    for d, dur in zip(desc, raw.annotations.duration, strict=True):
        assert dur == pytest.approx(4.0 if d in ("T1", "T2") else 2.0, abs=1e-3)
    # classes interleaved at random, not in blocks
    trials = [d for d in desc if d != "T0"]
    assert trials != sorted(trials)
    events, ids = mne.events_from_annotations(raw, verbose="error")
    assert set(ids) == {"T0", "T1", "T2"}
    # microvolt-scale EEG, stored in volts by MNE
    std_uv = raw.get_data(picks=MOTOR).std(axis=1) * 1e6
    assert np.all((std_uv > 3) & (std_uv < 100))


def test_edf_header_is_anonymous_with_fixed_date(out):
    header = (out / "eeg" / "S01.edf").read_bytes()[:256].decode("ascii")
    assert header[8:88].split() == ["X", "X", "X", "X"]  # EDF+ patient field: code sex birthdate name
    assert "Startdate 01-JAN-2000" in header[88:168]
    assert header[168:176] == "01.01.00"


def test_eeg_mu_laterality_follows_the_imagined_hand(out):
    """Left-hand imagery (T1) desynchronises mu over C4, right-hand (T2) over C3."""
    import mne
    from scipy import signal

    lat = {"T1": [], "T2": []}
    for s in SUBJECTS:
        raw = mne.io.read_raw_edf(out / "eeg" / f"{s}.edf", preload=True, verbose="error")
        fs = raw.info["sfreq"]
        x = raw.get_data(picks=["C3", "C4"])
        for onset, desc in zip(raw.annotations.onset, raw.annotations.description, strict=True):
            if desc in lat:
                seg = x[:, int(onset * fs):int((onset + 4.0) * fs)]
                f, psd = signal.welch(seg, fs, nperseg=int(fs))
                mu = psd[:, (f >= 8) & (f <= 13)].mean(axis=1)
                lat[desc].append(np.log(mu[0] / mu[1]))
    t1, t2 = np.array(lat["T1"]), np.array(lat["T2"])
    # C3/C4 mu ratio higher when C4 is desynchronised (T1) ...
    assert t1.mean() - t2.mean() > 0.3
    # ... but single trials overlap: not trivially separable
    threshold = 0.5 * (t1.mean() + t2.mean())
    accuracy = 0.5 * ((t1 > threshold).mean() + (t2 <= threshold).mean())
    assert 0.6 < accuracy < 0.97


# ---------------------------------------------------------------------------------------------
# ECG: WFDB
# ---------------------------------------------------------------------------------------------


def _ecg(out: Path, s: str):
    import wfdb

    return wfdb.rdrecord(str(out / "ecg" / s)), wfdb.rdann(str(out / "ecg" / s), "atr")


def test_wfdb_round_trips_with_mitbih_layout(out):
    rec, ann = _ecg(out, "S01")
    assert rec.sig_name == ["MLII", "V5"] and rec.units == ["mV", "mV"]
    assert rec.fs == 360 and rec.fmt == ["212", "212"] and rec.adc_gain == [200.0, 200.0]
    assert rec.p_signal.shape == (360 * 60, 2)
    assert 0.3 < np.ptp(np.percentile(rec.p_signal[:, 0], [1, 99])) < 6.0  # mV scale
    assert ann.symbol[0] == "+" and ann.sample[0] == 0 and ann.aux_note[0] == "(N"
    assert set(ann.symbol) <= {"N", "A", "V", "+", "~"}
    assert np.all(np.diff(ann.sample) >= 0)


def test_beat_classes_and_rates(out):
    counts = {"N": 0, "A": 0, "V": 0}
    for s in SUBJECTS:
        _, ann = _ecg(out, s)
        for sym in ann.symbol:
            if sym in counts:
                counts[sym] += 1
    total = sum(counts.values())
    assert 4 * 60 * 55 / 60 * 0.9 < total < 4 * 60 * 95 / 60 * 1.1
    assert 0.02 < counts["A"] / total < 0.16
    assert 0.01 < counts["V"] / total < 0.14


def _half_max_width_s(x: np.ndarray, peak: int, fs: float) -> float:
    """Full width at half maximum of the deflection at ``peak`` (wide for ventricular beats)."""
    above = x * np.sign(x[peak]) > 0.5 * abs(x[peak])
    left = right = peak
    while left > 0 and above[left - 1]:
        left -= 1
    while right < len(x) - 1 and above[right + 1]:
        right += 1
    return (right - left + 1) / fs


def test_beat_annotations_sit_on_r_peaks_and_ectopics_look_ectopic(out):
    from scipy import signal

    on_peak, n_beats = 0, 0
    width = {"N": [], "A": [], "V": []}
    prematurity = {"N": [], "A": [], "V": []}
    for s in SUBJECTS:
        rec, ann = _ecg(out, s)
        fs = rec.fs
        mlii = rec.p_signal[:, 0]
        # remove baseline wander only; the R peak stays where it is
        flat = signal.sosfiltfilt(signal.butter(2, 0.7, "highpass", fs=fs, output="sos"), mlii)
        w = int(round(0.03 * fs))
        beats = [(int(i), sym) for i, sym in zip(ann.sample, ann.symbol, strict=True) if sym in width]
        rr = np.diff([b[0] for b in beats]) / fs
        median_rr = np.median(rr)
        for k, (i, sym) in enumerate(beats):
            lo, hi = max(0, i - w), min(len(mlii), i + w + 1)
            n_beats += 1
            on_peak += abs(lo + int(np.argmax(np.abs(flat[lo:hi]))) - i) <= 1
            width[sym].append(_half_max_width_s(flat, i, fs))
            if k > 0:
                prematurity[sym].append(rr[k - 1] / median_rr)
    assert on_peak / n_beats > 0.97
    assert np.mean(width["V"]) > 1.5 * np.mean(width["N"])
    assert 0.02 < np.mean(width["N"]) < 0.05
    assert np.mean(prematurity["A"]) < 0.9 and np.mean(prematurity["V"]) < 0.85
    assert np.mean(prematurity["N"]) > 0.95


def test_ecg_peak_annotation_is_local_max_of_raw_signal_for_most_beats(out):
    """The brief's check on the raw lead: |MLII| peaks at the annotation within +-30 ms."""
    rec, ann = _ecg(out, "S03")
    mlii = np.abs(rec.p_signal[:, 0])
    w = int(round(0.03 * rec.fs))
    hits = [mlii[i] >= mlii[max(0, i - w):i + w + 1].max() - 0.011
            for i, sym in zip(ann.sample, ann.symbol, strict=True) if sym in "NAV"]
    assert np.mean(hits) > 0.95  # exceptions: baseline wander making S deeper than R


# ---------------------------------------------------------------------------------------------
# EMG: UCI text
# ---------------------------------------------------------------------------------------------


def test_emg_text_layout_matches_uci(out):
    raw = (out / "emg" / "S01.txt").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[0] == b"time\tchannel1\tchannel2\tchannel3\tchannel4\tchannel5\tchannel6\tchannel7\tchannel8\tclass"
    assert lines[-1] == b"" and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line.split(b"\t")) == 10 for line in lines[1:-1])
    assert b"e-05" in raw  # the UCI files print 1e-05, not 0.00001
    time_ms, values, classes = _read_emg(out / "emg" / "S01.txt")
    assert time_ms[0] == 1 and np.all(np.diff(time_ms) >= 1) and np.diff(time_ms).max() <= 6
    assert np.mean(np.diff(time_ms) == 1) > 0.9
    assert set(np.unique(classes)) == {0, 1, 2, 3, 4}
    counts = np.round(values / 1e-5)
    assert np.allclose(values, counts * 1e-5, atol=1e-9) and np.abs(counts).max() <= 128
    # each gesture held gesture_s per repetition, preceded by rest_s of rest
    assert np.sum(classes == 2) == pytest.approx(2 * 2.0 * 1000, rel=0.06)
    assert np.sum(classes == 1) == pytest.approx(3 * 2 * 1.5 * 1000, rel=0.06)
    starts = np.flatnonzero(np.diff(classes) != 0) + 1
    assert sum(classes[i] == 2 for i in starts) == 2


def test_emg_gestures_have_distinct_spatial_patterns(out):
    patterns = []
    for s in SUBJECTS:
        _, values, classes = _read_emg(out / "emg" / f"{s}.txt")
        rms = {c: np.sqrt(np.mean(values[classes == c] ** 2, axis=0)) for c in (1, 2, 3, 4)}
        # rest: noise floor of a few 1e-5 V; gestures: ~1e-4 V as in the UCI recordings
        assert rms[1].mean() < 6e-5 and all(5e-5 < rms[c].max() < 1e-3 for c in (2, 3, 4))
        assert all(rms[c].mean() > 2 * rms[1].mean() for c in (2, 3, 4))
        unit = {c: rms[c] / np.linalg.norm(rms[c]) for c in (2, 3, 4)}
        assert unit[3] @ unit[4] < 0.95  # flexion and extension load opposite sides
        assert np.argmax(rms[3]) != np.argmax(rms[4])
        patterns.append(unit)
    # subjects differ (armband rotation, gains): the same gesture's pattern is not identical
    assert patterns[0][3] @ patterns[1][3] < 0.999


# ---------------------------------------------------------------------------------------------
# determinism and atomicity
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    demo.generate(TINY, tmp_path / "a")
    demo.generate(TINY, tmp_path / "b")
    a, b = _recording_bytes(tmp_path / "a"), _recording_bytes(tmp_path / "b")
    assert a == b
    assert strip_volatile(read_json(tmp_path / "a" / "manifest.json")) == strip_volatile(read_json(tmp_path / "b" / "manifest.json"))
    demo.generate({**TINY, "seed": 8}, tmp_path / "c")
    c = _recording_bytes(tmp_path / "c")
    assert a.keys() == c.keys()
    for name in a:
        if not name.endswith(".hea"):  # headers hold only layout, which the seed does not change
            assert a[name] != c[name], name


def test_more_subjects_leave_existing_subjects_unchanged(tmp_path):
    demo.generate(TINY, tmp_path / "four")
    demo.generate({**TINY, "n_subjects": 5}, tmp_path / "five")
    four, five = _recording_bytes(tmp_path / "four"), _recording_bytes(tmp_path / "five")
    assert {k: five[k] for k in four} == four
    assert "emg/S05.txt" in five


def test_failure_leaves_no_partial_output_and_keeps_the_previous_one(tmp_path, monkeypatch):
    def broken(path, rec):
        Path(path).write_text("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(demo, "write_emg_text", broken)
    with pytest.raises(BiospikeError, match="emg recording S01"):
        demo.generate(TINY, tmp_path / "fresh")
    assert list((tmp_path / "fresh").iterdir()) == []

    monkeypatch.undo()
    demo.generate(TINY, tmp_path / "old")
    before = _recording_bytes(tmp_path / "old")
    monkeypatch.setattr(demo, "write_emg_text", broken)
    with pytest.raises(BiospikeError):
        demo.generate({**TINY, "seed": 99}, tmp_path / "old")
    assert _recording_bytes(tmp_path / "old") == before
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == ["ecg", "eeg", "emg", "manifest.json"]
