"""Ingestion on synthetic recordings in the real formats: windows, labels, splits, de-identification."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from _synth import (
    write_edf,
    write_myo,
    write_ninapro,
    write_physionet2017,
    write_uci_text,
    write_wfdb,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike import cli
from biospike.config import section_settings
from biospike.errors import BiospikeError
from biospike.ingest import ingest_dataset, make_splits
from biospike.signals import dataset_salt, hash_id, hash_subject
from biospike.store import read_windows
from tests.conftest import envelope

SPLITS = {"val_fraction": 0.15, "test_fraction": 0.2, "population_fraction": 0.2}
AAMI = {"N": "N", "L": "N", "R": "N", "e": "N", "j": "N", "A": "S", "a": "S", "J": "S", "S": "S", "V": "V", "E": "V"}


def run(spec: dict, dataset: str = "t", seed: int = 7, splits: dict | None = None):
    """Validate like the CLI does (schema defaults filled), then ingest."""
    spec_full = section_settings("dataset", spec)
    return ingest_dataset(spec_full, dataset, seed, section_settings("splits", splits or SPLITS),
                          data_root=section_settings("data_root"))


def assert_pools_disjoint(win, unit: np.ndarray) -> None:
    pools = {**win.splits, "population": win.mia["population"]}
    seen: dict[str, str] = {}
    for name, idx in pools.items():
        for u in np.unique(unit[idx]):
            assert u not in seen, f"unit {u} in {seen.get(u)} and {name}"
            seen[u] = name
    all_idx = np.concatenate(list(pools.values()))
    assert len(all_idx) == len(np.unique(all_idx)) == len(win.labels)
    np.testing.assert_array_equal(win.mia["members"], win.splits["train"])
    np.testing.assert_array_equal(win.mia["nonmembers"], win.splits["test"])


def all_strings_in_h5(path: Path) -> list[str]:
    """Every attribute value and every string dataset entry, plus object names."""
    out: list[str] = []

    def visit(name, obj):
        out.append(name)
        out.extend(str(v) for v in obj.attrs.values())
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in ("O", "S", "U"):
            out.extend(obj.asstr()[()].tolist())

    with h5py.File(path, "r") as fh:
        out.extend(str(v) for v in fh.attrs.values())
        fh.visititems(visit)
    return out


# ------------------------------------------------------------------------------ EEG / EDF


@pytest.fixture(scope="module")
def eeg_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eeg")
    for i in range(6):
        write_edf(root / f"PTX{i:04d}R01.edf", n_trials=6, seed=i, patient=f"NAMEPATIENT{i}", dotted_names=True)
    return root


def eeg_spec(path: Path, **over) -> dict:
    spec = {
        "reader": "edf", "modality": "eeg", "path": str(path), "pattern": "*.edf", "subject_regex": r"^(PTX\d+)",
        "expected_fs_hz": 160, "channels": ["FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4"],
        "classes": ["left", "right"], "label_map": {"T1": "left", "T2": "right"},
        "notch_hz": 50, "bandpass_hz": [8.0, 30.0], "resample_hz": 100, "window_s": 2.0, "stride_s": 1.0,
    }
    return {**spec, **over}


def test_edf_windows_labels_and_subject_splits(eeg_dir):
    win = run(eeg_spec(eeg_dir))
    # 6 subjects x 3 T1 + 3 T2 trials of 4 s; 2 s windows every 1 s -> 3 per trial
    assert win.signals.shape == (6 * 6 * 3, 7, 200)
    assert win.signals.dtype == np.float32
    assert win.fs_hz == 100.0
    assert win.channel_names == ["FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4"]
    assert win.class_names == ["left", "right"]
    assert np.bincount(win.labels).tolist() == [54, 54]
    assert len(set(win.subject)) == 6
    assert all(re.fullmatch(r"sub-[0-9a-f]{8}", s) for s in win.subject)
    assert all(re.fullmatch(r"rec-[0-9a-f]{8}", r) for r in win.record)
    assert_pools_disjoint(win, win.subject)
    units = win.preprocessing["split"]["units"]
    assert units == {"population": 1, "test": 1, "val": 1, "train": 3}
    pre = win.preprocessing
    assert pre["notch"]["freq_hz"] == 50 and pre["notch"]["applied_at_fs_hz"] == [160.0]
    assert pre["bandpass"]["band_hz"] == [8.0, 30.0]
    assert pre["resample"]["factors_up_down"] == {"160.0": [5, 8]}
    assert pre["window"]["length_samples"] == 200
    assert len(win.provenance["inputs"]) == 6


def test_edf_filtered_in_band(eeg_dir):
    """The 10 Hz component survives, the broadband noise outside 8-30 Hz does not."""
    win = run(eeg_spec(eeg_dir))
    spectrum = np.abs(np.fft.rfft(win.signals[:, 0], axis=-1)).mean(axis=0)
    freqs = np.fft.rfftfreq(200, 1 / 100)
    assert freqs[spectrum.argmax()] == pytest.approx(10, abs=0.6)
    assert spectrum[freqs > 40].mean() < 0.05 * spectrum[(freqs > 9) & (freqs < 11)].mean()


def test_no_raw_subject_or_patient_field_in_output(eeg_dir, tmp_path):
    out = tmp_path / "windows.h5"
    params = envelope(seed=7, dataset=eeg_spec(eeg_dir), splits=SPLITS)
    assert cli.main(["ingest", "--params", params, "--dataset", "t", "--output", str(out)]) == 0
    strings = all_strings_in_h5(out)
    text = "\n".join(strings)
    raw_bytes = out.read_bytes()
    for raw in ["PTX0003", "PTX0003R01", "NAMEPATIENT3", "Jane", "01-JAN-1950", "1950-01-01"]:
        assert raw not in text, raw
        assert raw.encode() not in raw_bytes, raw
    # the pseudonym is there instead, and the same raw id always maps to it
    assert hash_subject("PTX0003", dataset_salt("t")) in text
    assert hash_id("PTX0003/PTX0003R01", dataset_salt("t"), "rec") in text


def test_pseudonyms_differ_between_datasets(eeg_dir):
    a = run(eeg_spec(eeg_dir), dataset="one")
    b = run(eeg_spec(eeg_dir), dataset="two")
    assert not set(a.subject) & set(b.subject)


def test_ingest_is_deterministic_and_seed_drives_splits(eeg_dir):
    a, b = run(eeg_spec(eeg_dir), seed=3), run(eeg_spec(eeg_dir), seed=3)
    np.testing.assert_array_equal(a.signals, b.signals)
    for k in a.splits:
        np.testing.assert_array_equal(a.splits[k], b.splits[k])
    others = [run(eeg_spec(eeg_dir), seed=s).splits["test"] for s in (4, 5, 6)]
    assert any(not np.array_equal(a.splits["test"], o) for o in others)


def test_segment_split_keeps_trials_whole(eeg_dir):
    win = run(eeg_spec(eeg_dir, pattern="PTX0000*.edf", split_by="segment", stride_s=0.5))
    # one subject, 6 trials -> units are trials; each trial's 5 windows stay in one pool
    assert len(set(win.subject)) == 1
    assert win.preprocessing["split"]["units"] == {"population": 1, "test": 1, "val": 1, "train": 3}
    for idx in [*win.splits.values(), win.mia["population"]]:
        assert len(idx) % 5 == 0
    assert win.preprocessing["split"]["privacy_unit"].startswith("segment")


def test_cap_per_class_per_subject(eeg_dir):
    win = run(eeg_spec(eeg_dir, max_windows_per_class_per_subject=4))
    for s in np.unique(win.subject):
        assert np.bincount(win.labels[win.subject == s], minlength=2).tolist() == [4, 4]


def test_max_subjects_reads_a_seeded_subset_of_subjects(eeg_dir):
    win = run(eeg_spec(eeg_dir, max_subjects=5))
    assert len(np.unique(win.subject)) == 5
    assert win.preprocessing["subject_subsample"] == {"available": 6, "kept": 5}
    again = run(eeg_spec(eeg_dir, max_subjects=5))
    assert sorted(np.unique(again.subject)) == sorted(np.unique(win.subject))  # the seed decides, not chance
    assert run(eeg_spec(eeg_dir)).preprocessing["subject_subsample"] is None


# ------------------------------------------------------------------------------ ECG / WFDB


@pytest.fixture(scope="module")
def ecg_dir(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("ecg")
    counts = {}
    for i, fs in enumerate([360, 360, 128, 128]):
        counts[f"R{i}"] = write_wfdb(root, f"R{i}", fs_hz=fs, duration_s=40, seed=i)
    return root, counts


def ecg_spec(path: Path, **over) -> dict:
    spec = {
        "reader": "wfdb_beats", "modality": "ecg", "path": str(path), "pattern": "*.hea", "subject_regex": r"^(R\d)",
        "expected_fs_hz": [360, 128], "channels": [0], "classes": ["N", "S", "V"], "label_map": AAMI,
        "notch_hz": 60, "bandpass_hz": [0.5, 40.0], "resample_hz": 128, "beat_window_s": [0.25, 0.45],
        "split_fractions": {"population_fraction": 0.25, "test_fraction": 0.25, "val_fraction": 0.25},
    }
    return {**spec, **over}


def test_wfdb_beat_windows_two_rates_resampled(ecg_dir):
    root, counts = ecg_dir
    win = run(ecg_spec(root))
    assert win.fs_hz == 128.0
    assert win.signals.shape[1:] == (1, 32 + 58)
    assert win.channel_names == ["MLII"]
    n_beats = sum(sum(c.values()) for c in counts.values())
    assert len(win.labels) == n_beats  # every beat is >= 0.5 s from the edges; '+' marks dropped
    expected = {"N": 0, "S": 0, "V": 0}
    for c in counts.values():
        for sym, n in c.items():
            expected[AAMI[sym]] += n
    assert np.bincount(win.labels, minlength=3).tolist() == [expected["N"], expected["S"], expected["V"]]
    # beat-centred: the R peak (largest deflection) sits at the 'pre' offset
    peak_at = np.abs(win.signals[:, 0]).argmax(axis=-1)
    assert np.median(np.abs(peak_at - 32)) <= 1
    assert win.preprocessing["resample"]["factors_up_down"] == {"128.0": [1, 1], "360.0": [16, 45]}
    assert_pools_disjoint(win, win.subject)


def test_wfdb_block_split(ecg_dir):
    root, _ = ecg_dir
    win = run(ecg_spec(root, pattern="R[01].hea", split_by="block", split_block_s=8.0,
                       split_fractions={}))
    split = win.preprocessing["split"]
    assert split["by"] == "block"
    assert split["windows_dropped_at_block_edges"] > 0
    # both records have blocks in train and in test: blocks, not records, are the unit
    assert len(set(win.record[win.splits["train"]])) == 2
    assert sum(split["units"].values()) == 10  # 40 s records in 8 s blocks


def test_block_split_units_share_no_samples():
    """Direct check of the block rule on starts: a kept window never crosses a block edge."""
    from biospike.signals import beat_windows

    starts, _ = beat_windows(np.arange(50, 5000, 97), 5000, 32, 58)
    block = 1000
    whole = starts // block == (starts + 90 - 1) // block
    assert (starts[whole] % block <= block - 90).all()


# ---------------------------------------------------------------------------- EMG text (UCI)


def test_uci_text_irregular_stamps_per_sample_labels(tmp_path):
    for i in range(5):
        write_uci_text(tmp_path / f"S{i:02d}.txt", seed=i, reps=2, gesture_s=1.5)
    spec = {
        "reader": "emg_text", "modality": "emg", "path": str(tmp_path), "pattern": "*.txt", "subject_regex": r"^(S\d+)",
        "expected_fs_hz": 1000, "classes": ["rest", "fist", "flexion", "extension"],
        "label_map": {"1": "rest", "2": "fist", "3": "flexion", "4": "extension"},
        "notch_hz": 50, "bandpass_hz": [20.0, 200.0], "resample_hz": 500, "window_s": 0.25, "stride_s": 0.25,
    }
    win = run(spec)
    assert win.fs_hz == 500.0 and win.signals.shape[1:] == (8, 125)
    counts = np.bincount(win.labels, minlength=4)
    assert (counts > 0).all()
    # stamps jitter (10% of steps are 2 ms), so a 1.5 s hold spans ~1.65 s: 5-6 windows per rep
    assert ((counts >= 5 * 2 * 5) & (counts <= 5 * 2 * 7)).all()
    # the synthetic amplitude grows with the class: labels and samples are aligned
    rms = [np.sqrt((win.signals[win.labels == c] ** 2).mean()) for c in range(4)]
    assert all(np.diff(rms) > 0)
    assert_pools_disjoint(win, win.subject)


# -------------------------------------------------------------------------------- Myo CSV


def test_myo_sessions_split_by_segment_with_test_session(tmp_path):
    for session in (1, 2, 3):
        write_myo(tmp_path / f"55555-{session}", gestures=(1, 2, 3), seed=session, blocks=4)
    spec = {
        "reader": "myo_csv", "modality": "emg", "path": str(tmp_path), "pattern": "*-[0-9]/*.txt",
        "subject_regex": r"^(\d+)-", "expected_fs_hz": 200, "classes": ["flexion", "extension", "radial"],
        "label_map": {"1": "flexion", "2": "extension", "3": "radial"}, "notch_hz": 50, "bandpass_hz": [10.0, 90.0],
        "window_s": 0.5, "stride_s": 0.25, "split_by": "segment", "test_records_regex": "-3$",
    }
    win = run(spec)
    # 4 gesture blocks of 2 s per file, 7 windows each; 3 gestures x 3 sessions
    assert np.bincount(win.labels).tolist() == [3 * 4 * 7] * 3
    test_records = set(win.record[win.splits["test"]])
    assert test_records == {hash_id("55555/55555-3", dataset_salt("t"), "rec")}
    assert not test_records & set(win.record[win.splits["train"]])
    assert len(win.splits["test"]) == 3 * 4 * 7
    assert win.preprocessing["split"]["units"]["test"] == 12  # 3 files x 4 gesture blocks
    assert len(set(win.subject)) == 1
    assert "55555" not in json.dumps(win.provenance) + json.dumps(win.preprocessing)


# -------------------------------------------------------------------------- PhysioNet 2017


def test_physionet2017_record_crops_subject_is_record(tmp_path):
    labels = {f"A{i:05d}": "NAO~"[i % 4] for i in range(12)}
    write_physionet2017(tmp_path, labels, duration_s=12.0)
    spec = {
        "reader": "physionet2017", "modality": "ecg", "path": str(tmp_path), "pattern": "*.mat",
        "expected_fs_hz": 300, "classes": ["normal", "af", "other", "noisy"],
        "label_map": {"N": "normal", "A": "af", "O": "other", "~": "noisy"},
        "bandpass_hz": [0.5, 40.0], "resample_hz": 150, "window_s": 5.0, "stride_s": 2.5,
    }
    win = run(spec)
    assert win.signals.shape == (12 * 3, 1, 750)  # (12 - 5) // 2.5 + 1 = 3 crops per record
    assert np.bincount(win.labels).tolist() == [9, 9, 9, 9]
    assert len(set(win.subject)) == 12
    for rec in np.unique(win.record):  # every crop carries its record's label
        assert len(set(win.labels[win.record == rec])) == 1
    assert_pools_disjoint(win, win.subject)
    assert "REFERENCE.csv" in win.provenance["inputs"]
    assert not any("A000" in k for k in win.provenance["inputs"])
    # physical units: val / 1000 adu per mV
    assert 0.1 < np.abs(win.signals).max() < 5


def test_physionet2017_rr_channel_from_detected_beats(tmp_path):
    import neurokit2 as nk
    import scipy.io

    labels = {f"A{i:05d}": "NA"[i % 2] for i in range(6)}
    write_physionet2017(tmp_path, labels, duration_s=12.0)
    for i, rec in enumerate(labels):  # real-looking beats at 60-85 bpm instead of noise
        ecg = nk.ecg_simulate(duration=12, sampling_rate=300, heart_rate=60 + 5 * i, random_state=i, method="simple")
        scipy.io.savemat(tmp_path / f"{rec}.mat", {"val": (ecg[None] * 1000).astype(np.int16)}, format="4")
    spec = {
        "reader": "physionet2017", "modality": "ecg", "path": str(tmp_path), "pattern": "*.mat",
        "expected_fs_hz": 300, "classes": ["normal", "af"], "label_map": {"N": "normal", "A": "af"},
        "bandpass_hz": [0.5, 40.0], "resample_hz": 100, "window_s": 6.0, "stride_s": 6.0, "rr_channel": True,
        "split_fractions": {"population_fraction": 0.0, "test_fraction": 0.2, "val_fraction": 0.0},
    }
    win = run(spec)
    assert win.channel_names == ["ECG", "RR"] and win.signals.shape[1:] == (2, 600)
    assert win.preprocessing["rr_channel"]["unit"] == "s"
    for rec in np.unique(win.record):
        rr = win.signals[win.record == rec][:, 1]
        hr_bpm = 60.0 / np.median(rr)
        assert 55 < hr_bpm < 90, hr_bpm  # the simulated rate, read back from the detected beats
    eeg = {**spec, "modality": "eeg"}
    with pytest.raises(BiospikeError, match="rr_channel needs ECG"):
        run(eeg)


# -------------------------------------------------------------------------------- NinaPro


def test_ninapro_mat_subject_from_file_and_rate_from_config(tmp_path):
    for subject in (11, 12, 13, 14, 15):
        write_ninapro(tmp_path / f"S{subject}_E1_A1.mat", subject=subject, seed=subject)
    spec = {
        "reader": "ninapro_mat", "modality": "emg", "path": str(tmp_path), "pattern": "*.mat",
        "expected_fs_hz": 2000, "classes": ["m1", "m2", "m3"], "label_map": {"1": "m1", "2": "m2", "3": "m3"},
        "notch_hz": 50, "bandpass_hz": [20.0, 450.0], "resample_hz": 1000, "window_s": 0.2, "stride_s": 0.1,
    }
    win = run(spec)
    assert win.fs_hz == 1000.0 and win.signals.shape[1:] == (12, 200)
    assert np.bincount(win.labels).tolist() == [5 * 3 * 9] * 3  # 1 s holds: (1 - 0.2) / 0.1 + 1 = 9
    assert set(win.subject) == {hash_subject(str(s), dataset_salt("t")) for s in (11, 12, 13, 14, 15)}


# ---------------------------------------------------------------------------------- splits


def test_make_splits_fractions_and_minimum_one():
    subjects = np.repeat([f"s{i}" for i in range(10)], 4)
    labels = np.tile([0, 1, 0, 1], 10)
    splits, mia = make_splits(subjects, labels, SPLITS, 1, dataset="d")
    n_units = {k: len(set(subjects[v])) for k, v in {**splits, "population": mia["population"]}.items()}
    assert n_units == {"train": 4, "val": 2, "test": 2, "population": 2}
    tiny = {"val_fraction": 0.01, "test_fraction": 0.01, "population_fraction": 0.01}
    splits, mia = make_splits(subjects, labels, tiny, 1)
    assert {k: len(set(subjects[v])) for k, v in splits.items()} == {"train": 7, "val": 1, "test": 1}
    assert len(set(subjects[mia["population"]])) == 1
    no_pop = {"val_fraction": 0.0, "test_fraction": 0.2, "population_fraction": 0.0}
    splits, mia = make_splits(subjects, labels, no_pop, 1)
    assert len(mia["population"]) == 0 and len(splits["val"]) == 0


def test_make_splits_too_few_units_is_an_error():
    with pytest.raises(BiospikeError, match="cannot give population/test/val"):
        make_splits(["a", "b", "c"], [0, 1, 0], SPLITS, 1)


def test_make_splits_seeded_by_dataset():
    subjects = np.repeat([f"s{i}" for i in range(20)], 2)
    labels = np.zeros(40, dtype=int)
    a = make_splits(subjects, labels, SPLITS, 5, dataset="x")[0]["test"]
    b = make_splits(subjects, labels, SPLITS, 5, dataset="x")[0]["test"]
    others = [make_splits(subjects, labels, SPLITS, 5, dataset=d)[0]["test"] for d in ("y", "z", "w")]
    np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, o) for o in others)


def test_make_splits_spreads_a_rare_class_over_every_pool():
    # 4 units hold the rare class 2; 26 units hold only 0/1
    subjects = np.repeat([f"u{i}" for i in range(30)], 3)
    labels = np.tile([0, 1, 0], 30)
    for i in range(4):
        labels[3 * (7 * i + 1)] = 2
    for seed in range(10):
        splits, mia = make_splits(subjects, labels, SPLITS, seed)
        for idx in [*splits.values(), mia["population"]]:
            assert (labels[idx] == 2).sum() == 1


def test_make_splits_forced_test_units():
    subjects = np.repeat([f"u{i}" for i in range(12)], 2)
    forced = np.isin(subjects, ["u3", "u7"])
    splits, mia = make_splits(subjects, np.zeros(24, int), SPLITS, 0, forced_test=forced)
    assert set(subjects[splits["test"]]) == {"u3", "u7"}
    assert not forced[splits["train"]].any() and not forced[mia["population"]].any()
    # non-members come from the free units (same distribution as the members), not the forced test
    assert len(mia["nonmembers"]) > 0 and not forced[mia["nonmembers"]].any()
    pools = [splits["train"], splits["val"], splits["test"], mia["population"], mia["nonmembers"]]
    assert sorted(np.concatenate(pools).tolist()) == list(range(24))
    assert len({s for p in pools for s in set(subjects[p])}) == 12  # every unit in exactly one pool
    assert sum(len(set(subjects[p])) for p in pools) == 12


def test_make_splits_nonmembers_are_the_test_split_without_forced_test():
    subjects = np.repeat([f"u{i}" for i in range(12)], 2)
    splits, mia = make_splits(subjects, np.zeros(24, int), SPLITS, 0)
    np.testing.assert_array_equal(mia["nonmembers"], splits["test"])


@settings(max_examples=40, deadline=None)
@given(
    n_units=st.integers(4, 40),
    per_unit=st.integers(1, 5),
    n_classes=st.integers(2, 4),
    fractions=st.tuples(st.floats(0, 0.25), st.floats(0.01, 0.25), st.floats(0, 0.25)),
    seed=st.integers(0, 2**31 - 1),
)
def test_make_splits_partition_property(n_units, per_unit, n_classes, fractions, seed):
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i}" for i in range(n_units)], per_unit)
    labels = rng.integers(0, n_classes, len(subjects))
    cfg = {"val_fraction": fractions[0], "test_fraction": fractions[1], "population_fraction": fractions[2]}
    try:
        splits, mia = make_splits(subjects, labels, cfg, seed)
    except BiospikeError:
        n_min = sum(1 for f in fractions if f > 0)
        assert n_units - n_min < 1 or n_units - sum(max(1, int(np.floor(f * n_units + 0.5))) for f in fractions if f > 0) < 1
        return
    pools = {**splits, "population": mia["population"]}
    owner: dict[str, str] = {}
    for name, idx in pools.items():
        for s in set(subjects[idx]):
            assert owner.setdefault(s, name) == name
    assert sorted(np.concatenate(list(pools.values())).tolist()) == list(range(len(subjects)))
    assert len(splits["train"]) > 0 and len(splits["test"]) > 0


# ----------------------------------------------------------------------------------- CLI


def test_cli_writes_windows_h5(eeg_dir, tmp_path, capsys):
    out = tmp_path / "res" / "windows.h5"
    params = envelope(seed=1, dataset=eeg_spec(eeg_dir), splits=SPLITS)
    assert cli.main(["ingest", "--params", params, "--dataset", "demo_eeg", "--output", str(out)]) == 0
    win = read_windows(out)
    assert win.signals.shape == (108, 7, 200) and win.modality == "eeg"
    assert win.provenance["seed"] == 1 and win.provenance["config"]["dataset"] == "demo_eeg"
    assert "demo_eeg: 108 windows" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["windows.h5"]  # no temp files left


def test_bdf_is_read_and_a_truncated_bdf_is_caught(tmp_path):
    import mne

    from biospike.io import read_recording

    info = mne.create_info(["C3", "C4"], 256.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).normal(0, 1e-5, (2, 2560)), info, verbose="error")
    raw.set_annotations(mne.Annotations([1.0, 5.0], [2.0, 2.0], ["T1", "T2"]))
    path = tmp_path / "S01.bdf"
    mne.export.export_raw(path, raw, fmt="bdf", overwrite=True, verbose="error")
    rec = read_recording("edf", path, {}, tmp_path)
    assert rec.fs_hz == 256.0 and rec.signal.shape == (2, 2560)
    assert rec.event_label.tolist() == ["T1", "T2"]
    assert rec.event_onset.tolist() == [256, 1280] and rec.event_duration.tolist() == [512, 512]
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(BiospikeError, match="truncated"):
        read_recording("edf", path, {}, tmp_path)
