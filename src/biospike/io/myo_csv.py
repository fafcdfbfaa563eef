"""Myo armband readings (myo-readings-dataset): CSV without header, 9 integer columns per row:
8 EMG channels (signed bytes, raw ADC units) and the gesture label.

The armband streams at ~200 Hz with no time stamps, so the rate is the nominal one
(``expected_fs_hz``, default 200 Hz). Files sit in session folders (``<participant>-<session>/k.txt``);
the record id is the session folder, so all gestures of one session form one split unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import Recording, describe

__all__ = ["NOMINAL_FS_HZ", "N_EMG", "read"]

NOMINAL_FS_HZ = 200.0
N_EMG = 8


def read(path: Path, spec: dict[str, Any]) -> Recording:
    """One Myo CSV file as a :class:`Recording`: 8 EMG channels in raw int8 ADC units at the
    nominal rate (``spec["expected_fs_hz"]``, default 200 Hz), one label per sample; the record is
    the session folder."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise BiospikeError(f"malformed row: expected {N_EMG + 1} comma-separated integers ({describe(exc)})", path) from None
    if table.shape[0] == 0:
        raise BiospikeError("no data rows", path)
    if table.shape[1] != N_EMG + 1:
        raise BiospikeError(f"expected {N_EMG + 1} columns (8 EMG + label), got {table.shape[1]}", path)
    emg = table[:, :N_EMG]
    if emg.min() < -128 or emg.max() > 127:
        raise BiospikeError(f"EMG values outside the int8 range [-128, 127] (min {emg.min()}, max {emg.max()})", path)
    expected = spec.get("expected_fs_hz")
    fs_hz = float(expected[0] if isinstance(expected, list) else expected) if expected else NOMINAL_FS_HZ
    return Recording(
        signal=emg.T.astype(np.float64),
        fs_hz=fs_hz,
        channel_names=[f"emg{i + 1}" for i in range(N_EMG)],
        record=path.parent.name,
        path=path,
        unit="adu (int8)",
        sample_labels=table[:, N_EMG].copy(),
        meta={"rate": "nominal (no time stamps)"},
    )
