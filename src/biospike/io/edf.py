"""EDF/EDF+/BDF via MNE; annotations (with durations) become labelled events.

Only signals, rate, channel names and annotations are taken. The EDF header's patient and
recording fields (name, id, birth date, hospital code, start date) are never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import Header, Recording, describe

__all__ = ["check_size", "read", "read_header"]


def check_size(path: Path) -> None:
    """Compare the file size with what the header promises: MNE reads a truncated file without
    complaint in some versions (zeros or a short last record), so check it by hand."""
    bytes_per_sample = 3 if path.suffix.lower() == ".bdf" else 2
    try:
        with open(path, "rb") as fh:
            fixed = fh.read(256)
            if len(fixed) < 256:
                raise BiospikeError(f"not an EDF/BDF file: header is {len(fixed)} bytes, expected at least 256", path)
            header_bytes = int(fixed[184:192].decode("ascii").strip())
            n_records = int(fixed[236:244].decode("ascii").strip())
            n_signals = int(fixed[252:256].decode("ascii").strip())
            if path.stat().st_size < header_bytes:
                raise BiospikeError(
                    f"truncated EDF/BDF: header declares {header_bytes} bytes, file has {path.stat().st_size}", path)
            fh.seek(256 + n_signals * 216)
            raw = fh.read(n_signals * 8)
            samples_per_record = [int(raw[i * 8:(i + 1) * 8].decode("ascii").strip()) for i in range(n_signals)]
    except (ValueError, UnicodeDecodeError):
        raise BiospikeError("not an EDF/BDF file: unreadable header fields", path) from None
    if n_records < 0:  # -1: unknown (recording in progress); nothing to compare against
        return
    expected = header_bytes + n_records * sum(samples_per_record) * bytes_per_sample
    actual = path.stat().st_size
    if actual < expected:
        raise BiospikeError(
            f"truncated EDF/BDF: header promises {n_records} data records ({expected} bytes), file has {actual} bytes", path
        )


def _open(path: Path, preload: bool):
    import mne

    check_size(path)
    reader = mne.io.read_raw_bdf if path.suffix.lower() == ".bdf" else mne.io.read_raw_edf
    try:
        return reader(path, preload=preload, verbose="error")
    except Exception as exc:  # MNE raises ValueError, RuntimeError, struct errors...
        raise BiospikeError(f"not a readable EDF/BDF file ({describe(exc)})", path) from None


def read_header(path: Path, spec: dict[str, Any]) -> Header:  # noqa: ARG001
    """Channel names and rate from the header (MNE without preloading: no samples read)."""
    raw = _open(path, preload=False)
    return Header(channel_names=list(raw.ch_names), fs_hz=float(raw.info["sfreq"]))


def read(path: Path, spec: dict[str, Any]) -> Recording:  # noqa: ARG001 (uniform reader signature)
    """One EDF/EDF+/BDF file as a :class:`Recording`: signals in volts (MNE's SI units) and the
    annotations as labelled events (onset and duration in samples)."""
    import mne

    raw = _open(path, preload=True)
    fs_hz = float(raw.info["sfreq"])
    ann = raw.annotations
    onset = np.round(np.asarray(ann.onset, dtype=float) * fs_hz).astype(np.int64) - int(raw.first_samp)
    duration = np.round(np.asarray(ann.duration, dtype=float) * fs_hz).astype(np.int64)
    units = {ch["unit"] for ch in raw.info["chs"]}
    return Recording(
        signal=raw.get_data(),  # volts (MNE converts from the header's physical dimension)
        fs_hz=fs_hz,
        channel_names=list(raw.ch_names),
        record=path.name.split(".")[0],
        path=path,
        unit="V" if units == {mne.io.constants.FIFF.FIFF_UNIT_V} else "mixed (MNE SI units)",
        event_onset=onset,
        event_duration=duration,
        event_label=np.array([str(d) for d in ann.description]),  # numpy 2 StringDType -> str
    )
