"""Readers and ingestion on the public recordings in ../shared/data (counts from its README)."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from biospike.config import validate_config
from biospike.ingest import ingest_dataset
from biospike.io import read_recording
from biospike.io.physionet2017 import check_files
from biospike.signals import dataset_salt, hash_id, pick_channels
from biospike.store import read_windows, write_windows

pytestmark = pytest.mark.realdata

REPO = Path(__file__).resolve().parents[2]
REAL_CONFIG = REPO / "config" / "real.yaml"


def label_counts(labels) -> dict[str, int]:
    return dict(collections.Counter(str(v) for v in labels))


# ------------------------------------------------------------------------------- readers


@pytest.mark.parametrize("run", ["03", "04", "07", "08"])
def test_eegmmidb_s001_runs(shared_data, run):
    path = shared_data / "eeg" / "eegmmidb" / "S001" / f"S001R{run}.edf"
    rec = read_recording("edf", path, {"subject_regex": r"^(S\d+)"}, path.parent)
    assert rec.fs_hz == 160.0
    assert rec.signal.shape == (64, 20000)  # 125 s
    assert rec.channel_names[:2] == ["Fc5.", "Fc3."]
    assert rec.subject_raw == "S001" and rec.record == f"S001R{run}"
    counts = label_counts(rec.event_label)
    assert counts["T0"] == 15 and counts["T1"] + counts["T2"] == 15
    durations_s = rec.event_duration[rec.event_label != "T0"] / rec.fs_hz
    assert np.all(np.abs(durations_s - 4.1) < 0.05)
    assert np.abs(rec.signal).max() < 1e-3  # volts: EEG is microvolts
    motor = ["FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4"]
    assert [rec.channel_names[i] for i in pick_channels(rec.channel_names, motor)] == \
        ["Fc3.", "Fc4.", "C3..", "Cz..", "C4..", "Cp3.", "Cp4."]
    assert not {"subject_info", "meas_date"} & set(vars(rec)) and not any("1950" in str(v) for v in rec.meta.values())


def test_mitbih_100(shared_data):
    path = shared_data / "ecg" / "mitdb" / "100.hea"
    rec = read_recording("wfdb_beats", path, {}, path.parent)
    assert rec.fs_hz == 360.0 and rec.channel_names == ["MLII", "V5"] and rec.unit == "mV"
    assert rec.signal.shape == (2, 650000)
    assert label_counts(rec.event_label) == {"N": 2239, "A": 33, "V": 1}  # '+' rhythm mark dropped
    assert rec.meta["non_beat_annotations_dropped"] == 1
    assert (np.diff(rec.event_onset) > 0).all()
    assert {p.suffix for p in rec.inputs} == {".hea", ".dat", ".atr"}


def test_svdb_800(shared_data):
    path = shared_data / "ecg" / "svdb" / "800.hea"
    rec = read_recording("wfdb_beats", path, {}, path.parent)
    assert rec.fs_hz == 128.0 and rec.signal.shape == (2, 230400)
    assert label_counts(rec.event_label) == {"N": 1846, "S": 30, "V": 6, "F": 1}


def test_physionet2017(shared_data):
    folder = shared_data / "ecg" / "physionet2017"
    mats = sorted(folder.glob("*.mat"))
    assert len(mats) == 201
    check_files(mats, {})  # REFERENCE.csv and the .mat files agree
    labels, lengths_s = [], []
    for path in mats:
        rec = read_recording("physionet2017", path, {}, folder)
        assert rec.fs_hz == 300.0 and rec.signal.shape[0] == 1 and rec.unit == "mV"
        assert rec.subject_raw == rec.record == path.stem
        labels.append(rec.record_label)
        lengths_s.append(rec.n_samples / rec.fs_hz)
    assert label_counts(labels) == {"N": 100, "A": 34, "O": 47, "~": 20}
    assert 9 <= min(lengths_s) and max(lengths_s) <= 61
    first = read_recording("physionet2017", folder / "A00001.mat", {}, folder)
    assert first.n_samples == 9000 and 0.2 < np.ptp(first.signal) < 10  # mV, gain 1000 adu/mV


def test_uci_emg_subject_01(shared_data):
    folder = shared_data / "emg" / "uci_emg_gestures"
    files = sorted((folder / "01").glob("*.txt"))
    assert len(files) == 2
    for path in files:
        rec = read_recording("emg_text", path, {"expected_fs_hz": 1000, "subject_regex": r"^(\d+)/"}, folder)
        assert rec.subject_raw == "01"
        assert rec.fs_hz == 1000.0 and rec.channel_names == [f"channel{i}" for i in range(1, 9)]
        assert rec.meta["stamp_fs_hz"] == pytest.approx(1000, rel=0.01)
        present = set(np.unique(rec.sample_labels).tolist())
        assert {0, 1, 2, 3, 4, 5, 6} <= present
        assert np.abs(rec.signal).max() <= 0.00128 + 1e-9  # volts, Myo's 8-bit range
        # ~60 s at 1 ms grid; each gesture appears twice per series
        assert 55_000 < rec.n_samples < 70_000
        from biospike.signals import runs

        _, _, values = runs(rec.sample_labels)
        assert all(label_counts(values)[str(g)] == 2 for g in range(1, 7))


def test_myo_participant_12345(shared_data):
    folder = shared_data / "emg" / "myo_readings" / "_readings_right_hand"
    files = sorted(folder.glob("12345-*/*.txt"))
    assert len(files) == 24  # 3 sessions x gestures 0..7
    for path in files:
        rec = read_recording("myo_csv", path, {"expected_fs_hz": 200, "subject_regex": r"^(\d+)-"}, folder)
        assert rec.subject_raw == "12345" and rec.record == path.parent.name
        assert rec.signal.shape[0] == 8 and 11_000 < rec.n_samples < 12_500  # ~60 s at ~200 Hz
        gesture = int(path.stem)
        assert set(np.unique(rec.sample_labels).tolist()) == ({0} if gesture == 0 else {0, gesture})


# ----------------------------------------------------------------------- real.yaml ingest


def real_config(shared_data: Path) -> dict:
    config = validate_config(yaml.safe_load(REAL_CONFIG.read_text()), source=REAL_CONFIG)
    config["data_root"] = str(shared_data)
    return config


def ingest_real(shared_data: Path, name: str):
    config = real_config(shared_data)
    return ingest_dataset(config["datasets"][name], name, config["seed"], config["splits"], data_root=config["data_root"])


def test_real_config_top_level_matches_default(shared_data):
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    real = yaml.safe_load(REAL_CONFIG.read_text())
    assert {"seed", "results_dir", "splits", "datasets"} <= set(real)
    assert real.get("data_root") is None and real["results_dir"] == "results/real"  # data_root: the user's
    assert set(real) - {"data_root"} <= set(default) | {"demo"}
    real_config(shared_data)  # schema-valid


def assert_sane(win, n_classes: int) -> None:
    assert win.signals.ndim == 3 and win.signals.dtype == np.float32
    assert np.isfinite(win.signals).all()
    assert len(win.class_names) == n_classes
    assert (np.bincount(win.labels, minlength=n_classes) > 0).all()
    pools = [*win.splits.values(), win.mia["population"]]
    if not np.array_equal(win.mia["nonmembers"], win.splits["test"]):  # the holdout of a forced test split
        pools.append(win.mia["nonmembers"])
    assert sorted(np.concatenate(pools).tolist()) == list(range(len(win.labels)))
    assert all(len(p) > 0 for p in pools)


@pytest.mark.parametrize("name,runs", [("eeg_mi_imagery", ("04", "08")), ("eeg_mi_movement", ("03", "07"))])
def test_ingest_real_eeg(shared_data, name, runs, tmp_path):
    win = ingest_real(shared_data, name)
    expected = collections.Counter()
    for run in runs:
        path = shared_data / "eeg" / "eegmmidb" / "S001" / f"S001R{run}.edf"
        rec = read_recording("edf", path, {}, path.parent)
        expected.update(label_counts(rec.event_label))
    # 4.1 s trials at 100 Hz: (410 - 200) // 50 + 1 = 5 windows of 2 s every 0.5 s
    assert np.bincount(win.labels).tolist() == [5 * expected["T1"], 5 * expected["T2"]]
    assert win.signals.shape[1:] == (21, 200) and win.fs_hz == 100.0
    assert win.preprocessing["split"]["by"] == "segment"
    assert sum(win.preprocessing["split"]["units"].values()) == expected["T1"] + expected["T2"]
    out = tmp_path / "windows.h5"
    write_windows(out, win)
    assert read_windows(out).signals.shape == win.signals.shape
    assert_no_raw_ids(out, ["S001", "S001R04", "S001R03"])


def assert_no_raw_ids(path: Path, raw_ids: list[str]) -> None:
    texts = []

    def visit(name, obj):
        texts.append(name)
        texts.extend(str(v) for v in obj.attrs.values())
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "O":
            texts.extend(obj.asstr()[()].tolist())

    with h5py.File(path, "r") as fh:
        texts.extend(str(v) for v in fh.attrs.values())
        fh.visititems(visit)
    blob = "\n".join(texts)
    for raw in raw_ids:
        assert raw not in blob, raw


def test_ingest_real_af2017(shared_data, tmp_path):
    win = ingest_real(shared_data, "ecg_af2017")
    spec = real_config(shared_data)["datasets"]["ecg_af2017"]
    fs_hz = spec["resample_hz"]
    n_window, n_stride = round(spec["window_s"] * fs_hz), round(spec["stride_s"] * fs_hz)
    folder = shared_data / "ecg" / "physionet2017"
    refs = dict(line.split(",") for line in (folder / "REFERENCE.csv").read_text().split())
    expected = collections.Counter()
    for path in sorted(folder.glob("*.mat")):
        n_300 = int((folder / f"{path.stem}.hea").read_text().split()[3])
        n_resampled = n_300 * fs_hz // 300
        expected[refs[path.stem]] += max(0, (n_resampled - n_window) // n_stride + 1)  # crops every stride
    assert np.bincount(win.labels, minlength=4).tolist() == [expected[k] for k in "NAO~"]
    n_channels = 2 if spec.get("rr_channel") else 1  # the lead (+ the RR-interval channel)
    assert win.signals.shape[1:] == (n_channels, n_window) and win.fs_hz == fs_hz
    if spec.get("rr_channel"):
        rr = win.signals[:, 1]
        beating = rr[rr > 0]
        assert (rr > 0).mean() > 0.95  # beats found in nearly every window
        assert 0.25 < np.median(beating) < 1.5  # 40-240 bpm
    assert len(set(win.subject)) == 201  # one patient per record
    assert_sane(win, 4)
    owner = {}
    for pool, idx in {**win.splits, "population": win.mia["population"]}.items():
        for s in set(win.subject[idx]):
            assert owner.setdefault(s, pool) == pool
    out = tmp_path / "windows.h5"
    write_windows(out, win)
    assert_no_raw_ids(out, ["A00001", "A00002", "A08528"])


def test_ingest_real_af_vs_normal(shared_data):
    win = ingest_real(shared_data, "ecg_af_vs_normal")
    assert_sane(win, 2)
    assert len(set(win.subject)) == 134  # the 100 N and 34 A records


def test_ingest_real_beats(shared_data):
    win = ingest_real(shared_data, "ecg_beats")
    before_s, after_s = real_config(shared_data)["datasets"]["ecg_beats"]["beat_window_s"]
    assert_sane(win, 3)
    n_channels = 2 if real_config(shared_data)["datasets"]["ecg_beats"].get("rr_channel") else 1
    assert win.fs_hz == 128.0 and win.signals.shape[1:] == (n_channels, round((before_s + after_s) * 128))
    counts = np.bincount(win.labels, minlength=3)
    dropped = win.preprocessing["split"]["windows_dropped_at_block_edges"]
    assert counts.sum() + dropped <= 2239 + 1846 + 33 + 30 + 1 + 6
    assert counts.sum() + dropped >= 2239 + 1846 + 33 + 30 + 1 + 6 - 4  # only beats at record edges lost
    assert counts[1] <= 63 and counts[2] <= 7 and counts[2] >= 5
    assert set(win.preprocessing["source_fs_hz"]) == {128.0, 360.0}
    assert len(set(win.record)) == 2


def test_ingest_real_uci(shared_data):
    win = ingest_real(shared_data, "emg_uci")
    window_s = real_config(shared_data)["datasets"]["emg_uci"]["window_s"]
    assert_sane(win, 6)
    assert win.fs_hz == 200.0 and win.signals.shape[1:] == (8, round(window_s * 200))
    # 4 holds per gesture, one in each pool
    assert win.preprocessing["split"]["units"] == {"population": 6, "test": 6, "val": 6, "train": 6}
    for idx in [*win.splits.values(), win.mia["population"]]:
        assert (np.bincount(win.labels[idx], minlength=6) > 0).all()


def test_ingest_real_myo(shared_data, tmp_path):
    win = ingest_real(shared_data, "emg_myo")
    assert_sane(win, 7)
    session3 = hash_id("12345/12345-3", dataset_salt("emg_myo"), "rec")
    assert set(win.record[win.splits["test"]]) == {session3}
    assert session3 not in set(win.record[win.splits["train"]]) | set(win.record[win.mia["population"]])
    assert (win.record == session3).sum() == len(win.splits["test"])
    out = tmp_path / "windows.h5"
    write_windows(out, win)
    assert_no_raw_ids(out, ["12345"])
    assert json.loads(json.dumps(win.preprocessing))["split"]["test_records_regex"] == "-3$"
