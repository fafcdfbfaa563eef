"""Bad input -> exit 2, one error line naming the file and the problem, no output file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _synth import write_edf, write_myo, write_physionet2017, write_uci_text, write_wfdb

from biospike import cli
from tests.conftest import envelope

SPLITS = {"val_fraction": 0.15, "test_fraction": 0.2, "population_fraction": 0.2}


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    """Progress lines go to stderr too; these tests read the one error line."""
    monkeypatch.setenv("BIOSPIKE_PROGRESS", "off")


def eeg_spec(path: Path, **over) -> dict:
    return {"reader": "edf", "modality": "eeg", "path": str(path), "pattern": "*.edf", "subject_regex": r"^(S\d+)",
            "expected_fs_hz": 160, "channels": ["C3", "Cz", "C4"], "classes": ["left", "right"],
            "label_map": {"T1": "left", "T2": "right"}, "notch_hz": 50, "bandpass_hz": [8.0, 30.0],
            "resample_hz": 100, "window_s": 2.0, "stride_s": 1.0, **over}


def ingest_fails(spec: dict, tmp_path: Path, capsys, *needles: str) -> str:
    """Run `biospike ingest` in-process; check exit 2, one stderr line with every needle, no output."""
    out = tmp_path / "out" / "windows.h5"
    code = cli.main(["ingest", "--params", envelope(seed=1, dataset=spec, splits=SPLITS), "--dataset", "bad",
                     "--output", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1, err
    assert lines[0].startswith("biospike ingest: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temp file left either
    return lines[0]


@pytest.fixture
def eeg_dir(tmp_path) -> Path:
    root = tmp_path / "eeg"
    for i in range(6):
        write_edf(root / f"S{i:02d}.edf", n_trials=4, seed=i)
    return root


def test_truncated_edf(eeg_dir, tmp_path, capsys):
    victim = eeg_dir / "S03.edf"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) * 2 // 3])
    ingest_fails(eeg_spec(eeg_dir), tmp_path, capsys, str(victim), "truncated")


def test_corrupt_edf(eeg_dir, tmp_path, capsys):
    victim = eeg_dir / "S02.edf"
    victim.write_bytes(b"this is not an EDF file at all" * 20)
    ingest_fails(eeg_spec(eeg_dir), tmp_path, capsys, str(victim), "not an EDF/BDF file")


def test_wrong_sampling_rate_in_config(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, expected_fs_hz=256), tmp_path, capsys, str(eeg_dir / "S00.edf"), "160 Hz", "256")


def test_missing_channel_lists_available(eeg_dir, tmp_path, capsys):
    line = ingest_fails(eeg_spec(eeg_dir, channels=["C3", "Oz"]), tmp_path, capsys, str(eeg_dir / "S00.edf"), "'Oz' not found")
    assert "FC3, FC4, C3, Cz" in line


def test_no_files_match_pattern(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, pattern="*.bdf"), tmp_path, capsys, str(eeg_dir), "no files match pattern '*.bdf'")


def test_missing_dataset_folder(tmp_path, capsys):
    ingest_fails(eeg_spec(tmp_path / "nowhere"), tmp_path, capsys, str(tmp_path / "nowhere"), "not found")


def test_window_longer_than_every_segment(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, window_s=5.0), tmp_path, capsys, str(eeg_dir), "no window of 5.0 s fits", "4.00 s")


def test_class_without_windows(eeg_dir, tmp_path, capsys):
    spec = eeg_spec(eeg_dir, classes=["left", "right", "feet"], label_map={"T1": "left", "T2": "right", "T3": "feet"})
    ingest_fails(spec, tmp_path, capsys, str(eeg_dir), "['feet'] have no windows")


def test_no_source_label_mapped(eeg_dir, tmp_path, capsys):
    spec = eeg_spec(eeg_dir, label_map={"X1": "left", "X2": "right"})
    ingest_fails(spec, tmp_path, capsys, str(eeg_dir), "none of the source labels ['T0', 'T1', 'T2'] is in label_map")


def test_unknown_config_key(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, windw_s=2.0), tmp_path, capsys, "invalid config at 'dataset/windw_s': unknown key (did you mean 'window_s'?)")


def test_bandpass_above_nyquist(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, bandpass_hz=[8.0, 90.0], resample_hz=None), tmp_path, capsys,
                 str(eeg_dir / "S00.edf"), "not below Nyquist")
    ingest_fails(eeg_spec(eeg_dir, bandpass_hz=[8.0, 60.0]), tmp_path, capsys, str(eeg_dir), "after resampling")


@pytest.mark.parametrize("over", [
    {"expected_fs_hz": 256},  # rate, from the EDF header
    {"channels": ["C3", "Oz"]},  # channel names, from the EDF header
    {"pattern": "*.bdf"},  # no file matched
    {"classes": ["left"]},  # label_map maps to a class not in classes
    {"bandpass_hz": [8.0, 60.0]},  # above Nyquist after resampling
], ids=["rate", "channel", "pattern", "label_map", "nyquist"])
def test_preflight_fails_with_ingestions_message(eeg_dir, tmp_path, capsys, over):
    """What needs no samples is refused before a run starts, in ingestion's own words."""
    from biospike.config import section_settings
    from biospike.errors import BiospikeError
    from biospike.ingest import preflight

    line = ingest_fails(eeg_spec(eeg_dir, **over), tmp_path, capsys)
    with pytest.raises(BiospikeError) as exc:
        preflight(section_settings("dataset", eeg_spec(eeg_dir, **over)))
    assert line == f"biospike ingest: error: {exc.value}"


def test_preflight_passes_a_good_dataset_and_counts_its_files(eeg_dir):
    from biospike.config import section_settings
    from biospike.ingest import preflight

    root, files = preflight(section_settings("dataset", eeg_spec(eeg_dir)))
    assert root == eeg_dir and len(files) == 6


def test_too_few_subjects_for_the_split(eeg_dir, tmp_path, capsys):
    ingest_fails(eeg_spec(eeg_dir, pattern="S0[0-2].edf"), tmp_path, capsys, str(eeg_dir), "cannot give population/test/val")


def test_wfdb_header_points_at_missing_dat(tmp_path, capsys):
    root = tmp_path / "ecg"
    for i in range(6):
        write_wfdb(root, f"R{i}", duration_s=20, seed=i)
    (root / "R4.dat").unlink()
    spec = {"reader": "wfdb_beats", "modality": "ecg", "path": str(root), "pattern": "*.hea", "expected_fs_hz": 360,
            "classes": ["N", "S", "V"], "label_map": {"N": "N", "A": "S", "V": "V"}, "bandpass_hz": [0.5, 40.0]}
    ingest_fails(spec, tmp_path, capsys, str(root / "R4.hea"), "'R4.dat', which does not exist")


def test_wfdb_missing_annotations(tmp_path, capsys):
    root = tmp_path / "ecg"
    for i in range(6):
        write_wfdb(root, f"R{i}", duration_s=20, seed=i)
    (root / "R1.atr").unlink()
    spec = {"reader": "wfdb_beats", "modality": "ecg", "path": str(root), "pattern": "*.hea",
            "classes": ["N", "S", "V"], "label_map": {"N": "N", "A": "S", "V": "V"}}
    ingest_fails(spec, tmp_path, capsys, str(root / "R1.hea"), "no beat annotation file 'R1.atr'")


def uci_spec(path: Path) -> dict:
    return {"reader": "emg_text", "modality": "emg", "path": str(path), "pattern": "*.txt", "subject_regex": r"^(S\d+)",
            "expected_fs_hz": 1000, "classes": ["rest", "fist"], "label_map": {"1": "rest", "2": "fist"},
            "bandpass_hz": [20.0, 200.0], "window_s": 0.25, "stride_s": 0.25}


def test_nan_channel(tmp_path, capsys):
    root = tmp_path / "emg"
    for i in range(6):
        write_uci_text(root / f"S{i}.txt", classes=(1, 2), reps=1, seed=i)
    victim = root / "S4.txt"
    lines = victim.read_text().split("\n")
    fields = lines[100].split("\t")
    fields[3] = "nan"
    lines[100] = "\t".join(fields)
    victim.write_text("\n".join(lines))
    ingest_fails(uci_spec(root), tmp_path, capsys, str(victim), "['channel3'] contain NaN")


def test_wrong_rate_of_time_stamps(tmp_path, capsys):
    root = tmp_path / "emg"
    for i in range(6):
        write_uci_text(root / f"S{i}.txt", classes=(1, 2), reps=1, seed=i, fs_hz=500, jitter=False)
    ingest_fails(uci_spec(root), tmp_path, capsys, str(root / "S0.txt"), "500.0 Hz", "expected_fs_hz=1000")


def test_malformed_text_header(tmp_path, capsys):
    root = tmp_path / "emg"
    for i in range(6):
        write_uci_text(root / f"S{i}.txt", classes=(1, 2), reps=1, seed=i)
    victim = root / "S1.txt"
    victim.write_text("t,a,b\n1,2,3\n")
    ingest_fails(uci_spec(root), tmp_path, capsys, str(victim), "expected a header")


def test_flat_channel(tmp_path, capsys):
    root = tmp_path / "myo"
    for s in range(1, 7):
        write_myo(root / f"77777-{s}", gestures=(1, 2), seed=s)
    victim = root / "77777-5" / "2.txt"
    rows = np.loadtxt(victim, delimiter=",", dtype=int)
    rows[:, 6] = 3
    np.savetxt(victim, rows, fmt="%d", delimiter=",")
    spec = {"reader": "myo_csv", "modality": "emg", "path": str(root), "pattern": "*/*.txt", "subject_regex": r"^(\d+-\d)",
            "classes": ["a", "b"], "label_map": {"1": "a", "2": "b"}, "window_s": 0.5, "stride_s": 0.5}
    ingest_fails(spec, tmp_path, capsys, str(victim), "['emg7'] are flat")


def af_spec(path: Path) -> dict:
    return {"reader": "physionet2017", "modality": "ecg", "path": str(path), "pattern": "*.mat", "expected_fs_hz": 300,
            "classes": ["normal", "af"], "label_map": {"N": "normal", "A": "af"}, "window_s": 5.0, "stride_s": 5.0}


def test_reference_lists_record_without_mat(tmp_path, capsys):
    root = tmp_path / "af"
    write_physionet2017(root, {f"A{i:05d}": "NA"[i % 2] for i in range(10)})
    (root / "A00007.mat").unlink()
    ingest_fails(af_spec(root), tmp_path, capsys, str(root / "REFERENCE.csv"), "'A00007'", "mismatched")


def test_mat_without_reference_label(tmp_path, capsys):
    root = tmp_path / "af"
    write_physionet2017(root, {f"A{i:05d}": "NA"[i % 2] for i in range(10)})
    ref = root / "REFERENCE.csv"
    ref.write_text("".join(ln + "\n" for ln in ref.read_text().splitlines() if not ln.startswith("A00003")))
    ingest_fails(af_spec(root), tmp_path, capsys, str(root / "A00003.mat"), "no label in REFERENCE.csv")


def test_missing_reference_file(tmp_path, capsys):
    root = tmp_path / "af"
    write_physionet2017(root, {f"A{i:05d}": "NA"[i % 2] for i in range(10)}, reference=False)
    ingest_fails(af_spec(root), tmp_path, capsys, str(root / "REFERENCE.csv"), "not found")


def test_test_records_regex_matching_nothing(tmp_path, capsys):
    root = tmp_path / "myo"
    for s in range(1, 4):
        write_myo(root / f"77777-{s}", gestures=(1, 2), seed=s)
    spec = {"reader": "myo_csv", "modality": "emg", "path": str(root), "pattern": "*/*.txt", "subject_regex": r"^(\d+)-",
            "classes": ["a", "b"], "label_map": {"1": "a", "2": "b"}, "window_s": 0.5, "stride_s": 0.5,
            "split_by": "segment", "test_records_regex": "-9$"}
    ingest_fails(spec, tmp_path, capsys, str(root), "matches no record")


def test_real_process_exit_code_and_single_stderr_line(eeg_dir, tmp_path):
    """The installed `biospike` executable, not only cli.main: exit status 2, one line."""
    victim = eeg_dir / "S01.edf"
    victim.write_bytes(victim.read_bytes()[:1000])
    out = tmp_path / "o" / "windows.h5"
    params = envelope(seed=1, dataset=eeg_spec(eeg_dir), splits=SPLITS)
    exe = Path(sys.executable).with_name("biospike")
    env = {**os.environ, "PATH": f"{exe.parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run([str(exe), "ingest", "--params", params, "--dataset", "bad", "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and str(victim) in proc.stderr and "truncated" in proc.stderr
    assert not out.exists()
