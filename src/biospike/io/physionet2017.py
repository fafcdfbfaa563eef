"""PhysioNet/CinC Challenge 2017: ``.mat`` (key ``val``, int16 1 x N) + ``.hea`` + ``REFERENCE.csv``.

``wfdb.rdrecord`` rejects the headers' date field, so the rate, gain and baseline are parsed
from the header by hand. Each record is one patient: subject = record. The record label comes
from ``REFERENCE.csv`` (``record,label``) in the same folder; a label without a ``.mat`` file or
a ``.mat`` file without a label is an error (see :func:`check_files`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import Recording, describe

__all__ = ["DEFAULT_GAIN_ADU_PER_MV", "REFERENCE_NAME", "check_files", "parse_header", "read", "reference_labels"]

REFERENCE_NAME = "REFERENCE.csv"
DEFAULT_GAIN_ADU_PER_MV = 1000.0
_GAIN_RE = re.compile(r"^(?P<gain>[-+0-9.eE]+)(?:\((?P<baseline>[-+0-9]+)\))?(?:/(?P<unit>\S+))?$")


@functools.lru_cache(maxsize=8)
def _reference(folder: Path, mtime_ns: int) -> dict[str, str]:  # noqa: ARG001 (cache key)
    path = folder / REFERENCE_NAME
    labels: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise BiospikeError(f"line {lineno}: expected 'record,label', got {line!r}", path)
        if parts[0] in labels:
            raise BiospikeError(f"line {lineno}: record {parts[0]!r} listed twice", path)
        labels[parts[0]] = parts[1]
    if not labels:
        raise BiospikeError("no labels", path)
    return labels


def reference_labels(folder: Path) -> dict[str, str]:
    """``record -> label`` from the ``REFERENCE.csv`` beside the records in ``folder`` (read once
    per change of the file)."""
    path = folder / REFERENCE_NAME
    if not path.is_file():
        raise BiospikeError(f"label file {REFERENCE_NAME} not found beside the records", path)
    return _reference(folder, path.stat().st_mtime_ns)


def check_files(paths: Sequence[Path], spec: dict[str, Any]) -> None:  # noqa: ARG001
    """Every REFERENCE.csv record has a ``.mat`` on disk, every selected ``.mat`` has a label."""
    for folder in sorted({p.parent for p in paths}):
        labels = reference_labels(folder)
        on_disk = {p.stem for p in folder.glob("*.mat")}
        missing = sorted(set(labels) - on_disk)
        if missing:
            raise BiospikeError(
                f"lists {len(missing)} record(s) without a .mat file (first: {missing[0]!r}): label file mismatched with records",
                folder / REFERENCE_NAME,
            )
    for path in paths:
        if path.stem not in reference_labels(path.parent):
            raise BiospikeError(f"record has no label in {REFERENCE_NAME}: label file mismatched with records", path)


def parse_header(path: Path) -> tuple[float, float, int, str]:
    """(fs_hz, gain adu/unit, baseline adu, unit) of a single-signal header."""
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        record_line = lines[0].split()
        fs_hz = float(re.split(r"[/(]", record_line[2])[0])
        fields = lines[1].split()
    except FileNotFoundError:
        raise BiospikeError("header file not found beside the .mat file", path) from None
    except (IndexError, ValueError):
        raise BiospikeError("malformed header: expected a record line with the rate and one signal line", path) from None
    gain, baseline, unit = DEFAULT_GAIN_ADU_PER_MV, 0, "mV"
    if len(fields) > 2:
        match = _GAIN_RE.match(fields[2])
        if not match:
            raise BiospikeError(f"malformed gain field {fields[2]!r}", path)
        gain = float(match["gain"]) or DEFAULT_GAIN_ADU_PER_MV  # WFDB: gain 0 means default
        unit = match["unit"] or "mV"
        if match["baseline"] is not None:
            baseline = int(match["baseline"])
        elif len(fields) > 4:
            baseline = int(fields[4])  # ADC zero, the WFDB default baseline
    return fs_hz, gain, baseline, unit


def read(path: Path, spec: dict[str, Any]) -> Recording:  # noqa: ARG001
    """One PhysioNet 2017 record (``.mat`` + ``.hea``) as a :class:`Recording` in the header's
    physical unit (mV by default), labelled as a whole from ``REFERENCE.csv``; subject = record."""
    import scipy.io

    header_path = path.with_suffix(".hea")
    fs_hz, gain, baseline, unit = parse_header(header_path)
    try:
        val = scipy.io.loadmat(path)["val"]
    except KeyError:
        raise BiospikeError("no variable 'val' in the .mat file", path) from None
    except Exception as exc:
        raise BiospikeError(f"not a readable .mat file ({describe(exc)})", path) from None
    val = np.atleast_2d(np.asarray(val, dtype=np.float64))
    labels = reference_labels(path.parent)
    if path.stem not in labels:
        raise BiospikeError(f"record has no label in {REFERENCE_NAME}: label file mismatched with records", path)
    return Recording(
        signal=(val - baseline) / gain,
        fs_hz=fs_hz,
        channel_names=[f"ECG{i}" if val.shape[0] > 1 else "ECG" for i in range(val.shape[0])],
        record=path.stem,
        path=path,
        unit=unit,
        subject_raw=path.stem,  # one patient per record
        record_label=labels[path.stem],
        inputs=[path, header_path, path.parent / REFERENCE_NAME],
    )
