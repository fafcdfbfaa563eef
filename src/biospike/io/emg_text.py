"""EMG text in the UCI "EMG data for gestures" layout (Lobov et al. 2018).

Tab-separated, header ``time channel1 .. channel8 class``, CRLF or LF line ends, time in
milliseconds with irregular stamps, one class label per row. The rows are interpolated onto a
uniform grid at ``expected_fs_hz`` (labels held until the next stamp); grid points farther than
``MAX_GAP_S`` from any stamp get no label, so no window spans a gap in the recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import NO_LABEL, Recording, describe
from biospike.signals import hold_labels, interp_uniform

__all__ = ["MAX_GAP_S", "RATE_TOLERANCE", "TIME_UNIT_S", "read"]

TIME_UNIT_S = 1e-3  # stamps are milliseconds
MAX_GAP_S = 0.05
RATE_TOLERANCE = 0.10  # stamp rate vs expected_fs_hz, relative


def read(path: Path, spec: dict[str, Any]) -> Recording:
    """One UCI EMG text file as a :class:`Recording` in volts on a uniform grid at
    ``spec["expected_fs_hz"]`` (else the rounded rate of the stamps), one label per sample
    (:data:`~biospike.io.NO_LABEL` farther than ``MAX_GAP_S`` from any stamp)."""
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:  # universal newlines: CRLF ok
        header = fh.readline().split()
        if len(header) < 3 or header[0].lower() != "time" or header[-1].lower() != "class":
            raise BiospikeError(f"expected a header 'time channel1 .. channelN class', got {' '.join(header)!r}", path)
        try:
            table = np.loadtxt(fh, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise BiospikeError(f"malformed row ({describe(exc)})", path) from None
    if table.shape[0] < 2:
        raise BiospikeError("fewer than two data rows", path)
    if table.shape[1] != len(header):
        raise BiospikeError(f"rows have {table.shape[1]} columns, header names {len(header)}", path)
    if not np.isfinite(table[:, 0]).all():
        raise BiospikeError("non-numeric or missing time stamps", path)
    # sort by time and keep the first row of any repeated stamp
    time_s, first = np.unique(table[:, 0] * TIME_UNIT_S, return_index=True)
    table = table[first]
    labels_f = table[:, -1]
    if not (np.isfinite(labels_f).all() and np.array_equal(labels_f, np.round(labels_f))):
        raise BiospikeError("class column holds non-integer values", path)
    stamp_fs_hz = 1.0 / float(np.median(np.diff(time_s)))
    expected = spec.get("expected_fs_hz")
    expected = float(expected[0] if isinstance(expected, list) else expected) if expected else None
    if expected is not None and abs(stamp_fs_hz - expected) > RATE_TOLERANCE * expected:
        raise BiospikeError(
            f"time stamps give {stamp_fs_hz:.1f} Hz but the config expects expected_fs_hz={expected:g} Hz", path
        )
    fs_hz = expected if expected is not None else float(np.round(stamp_fs_hz))
    grid_s, signal, valid = interp_uniform(time_s, table[:, 1:-1].T, fs_hz, MAX_GAP_S)
    labels = hold_labels(time_s, labels_f.astype(np.int64), grid_s)
    labels[~valid] = NO_LABEL
    return Recording(
        signal=signal,
        fs_hz=fs_hz,
        channel_names=header[1:-1],
        record=path.stem,
        path=path,
        unit="V",
        sample_labels=labels,
        meta={"stamp_fs_hz": stamp_fs_hz, "rows": int(table.shape[0]), "grid_points_in_gaps": int((~valid).sum())},
    )
