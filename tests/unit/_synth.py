"""Small synthetic recordings written in the real on-disk formats, for the ingestion tests.

Each writer returns what it wrote so tests can check counts. Signals are noise plus a
class-dependent sinusoid: enough for the readers and the windowing, not for learning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EEG_CHANNELS = ["FC3", "FC4", "C3", "Cz", "C4", "CP3", "CP4", "Pz"]


def write_edf(path: Path, fs_hz: float = 160.0, n_trials: int = 6, trial_s: float = 4.0, rest_s: float = 2.0,
              channels: list[str] | None = None, seed: int = 0, patient: str = "PATIENTX42",
              dotted_names: bool = False) -> dict[str, int]:
    """EDF+ via mne.export with T0/T1/T2 annotations (with durations) and identifying header fields."""
    import datetime

    import mne

    rng = np.random.default_rng(seed)
    channels = list(channels or EEG_CHANNELS)
    names = [f"{c}." if dotted_names else c for c in channels]
    n = int(round((n_trials * (trial_s + rest_s) + rest_s) * fs_hz))
    t = np.arange(n) / fs_hz
    data = rng.normal(0, 10e-6, (len(names), n)) + 5e-6 * np.sin(2 * np.pi * 10 * t)
    onsets, durations, desc = [], [], []
    counts: dict[str, int] = {}
    for k in range(n_trials):
        start = rest_s + k * (trial_s + rest_s)
        onsets += [start - rest_s, start]
        durations += [rest_s, trial_s]
        label = "T1" if k % 2 == 0 else "T2"
        desc += ["T0", label]
        counts[label] = counts.get(label, 0) + 1
    info = mne.create_info(names, fs_hz, ch_types="eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_meas_date(datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC))
    raw.info["subject_info"] = {"his_id": patient, "last_name": patient, "first_name": "Jane",
                                "birthday": datetime.date(1950, 1, 1), "sex": 2}
    raw.set_annotations(mne.Annotations(onsets, durations, desc))
    path.parent.mkdir(parents=True, exist_ok=True)
    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")
    return counts


def write_wfdb(folder: Path, name: str, fs_hz: float = 360.0, duration_s: float = 60.0, seed: int = 0,
               symbols: str = "NNNNANNNVN", rr_s: float = 0.8) -> dict[str, int]:
    """A 2-lead WFDB record with beat annotations (cycling ``symbols``) and non-beat '+' marks."""
    import wfdb

    rng = np.random.default_rng(seed)
    n = int(duration_s * fs_hz)
    peaks = np.arange(int(0.5 * fs_hz), n - int(0.5 * fs_hz), int(rr_s * fs_hz))
    sig = rng.normal(0, 0.02, (n, 2))
    for p in peaks:
        sig[max(0, p - 3):p + 3] += 1.0
    labels = np.array([symbols[i % len(symbols)] for i in range(len(peaks))])
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs_hz, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=sig,
                fmt=["212", "212"], write_dir=str(folder))
    ann_samples = np.concatenate([peaks, [peaks[0] + 10, peaks[5] + 10]])
    ann_symbols = list(labels) + ["+", "+"]
    order = np.argsort(ann_samples, kind="stable")
    wfdb.wrann(name, "atr", ann_samples[order], symbol=[ann_symbols[i] for i in order], write_dir=str(folder))
    sym, cnt = np.unique(labels, return_counts=True)
    return dict(zip(sym.tolist(), cnt.tolist(), strict=True))


def write_uci_text(path: Path, fs_hz: float = 1000.0, classes: tuple[int, ...] = (1, 2, 3, 4), reps: int = 2,
                   gesture_s: float = 1.5, rest_s: float = 1.0, seed: int = 0, jitter: bool = True) -> dict[int, float]:
    """UCI gestures layout: tab-separated, CRLF, ms stamps (irregular), class 0 between gestures."""
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(reps):
        for c in classes:
            labels += [0] * int(rest_s * fs_hz) + [c] * int(gesture_s * fs_hz)
    labels += [0] * int(rest_s * fs_hz)
    labels = np.array(labels)
    n = len(labels)
    step_ms = 1000.0 / fs_hz
    t = np.cumsum(np.where(rng.random(n) < 0.1, 2, 1) if jitter else np.ones(n)) * step_ms
    amp = 1e-5 * (1 + labels)
    x = rng.normal(0, 1, (n, 8)) * amp[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        fh.write("time\t" + "\t".join(f"channel{i}" for i in range(1, 9)) + "\tclass\r\n")
        for k in range(n):
            fh.write(f"{t[k]:g}\t" + "\t".join(f"{v:.5g}" for v in x[k]) + f"\t{labels[k]}\r\n")
    return {c: float((labels == c).sum()) for c in classes}


def write_myo(folder: Path, gestures: tuple[int, ...] = (1, 2, 3), fs_hz: float = 200.0, block_s: float = 2.0,
              blocks: int = 4, seed: int = 0) -> None:
    """Myo readings session folder: ``k.txt`` with 8 int8 columns + label alternating 0 / k."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    per = int(block_s * fs_hz)
    for k in gestures:
        lab = np.concatenate([np.full(per, 0 if b % 2 == 0 else k) for b in range(2 * blocks)])
        emg = np.clip(rng.normal(0, 5 + 3 * k, (len(lab), 8)), -128, 127).astype(int)
        rows = np.column_stack([emg, lab])
        np.savetxt(folder / f"{k}.txt", rows, fmt="%d", delimiter=",")


def write_physionet2017(folder: Path, labels: dict[str, str], fs_hz: float = 300.0, duration_s: float = 12.0,
                        seed: int = 0, reference: bool = True) -> None:
    """``.mat`` (val int16 1xN) + ``.hea`` with the date field wfdb rejects + REFERENCE.csv."""
    import scipy.io

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n = int(duration_s * fs_hz)
    for rec in labels:
        val = (rng.normal(0, 100, (1, n)) + 300 * np.sin(np.arange(n) / fs_hz * 2 * np.pi * 1.2)).astype(np.int16)
        scipy.io.savemat(folder / f"{rec}.mat", {"val": val}, format="4")
        (folder / f"{rec}.hea").write_text(
            f"{rec} 1 {fs_hz:g} {n} 2014-05-08 05:05:15 \n{rec}.mat 16+24 1000/mV 16 0 -127 0 0 ECG \n")
    if reference:
        (folder / "REFERENCE.csv").write_text("".join(f"{r},{lab}\n" for r, lab in labels.items()))


def write_ninapro(path: Path, fs_hz: float = 2000.0, n_channels: int = 12, reps: int = 3,
                  movements: tuple[int, ...] = (1, 2, 3), move_s: float = 1.0, rest_s: float = 1.0,
                  subject: int = 7, seed: int = 0) -> None:
    import scipy.io

    rng = np.random.default_rng(seed)
    lab = []
    for _ in range(reps):
        for m in movements:
            lab += [0] * int(rest_s * fs_hz) + [m] * int(move_s * fs_hz)
    lab = np.array(lab)
    emg = rng.normal(0, 1e-5, (len(lab), n_channels)) * (1 + lab[:, None])
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"emg": emg, "restimulus": lab[:, None].astype(np.uint8),
                            "stimulus": lab[:, None].astype(np.uint8), "subject": np.array([[subject]])})
