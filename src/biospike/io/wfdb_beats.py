"""WFDB records (``.hea`` + signal files) with beat annotations (``.atr``) via the wfdb package.

Each beat annotation becomes a point event at its R peak; non-beat annotations (rhythm ``+``,
noise ``~``, ``|`` artefacts, comments ...) are dropped here. Beat symbols become classes
through the dataset's ``label_map`` (e.g. AAMI N/S/V/F/Q) in ingestion. Header comment lines
(age, sex, medication in MIT-BIH) are never copied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import Header, Recording, describe

# PhysioNet beat annotation codes (https://archive.physionet.org/physiobank/annotations.shtml)
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
ANNOTATION_EXT = "atr"

__all__ = ["ANNOTATION_EXT", "BEAT_SYMBOLS", "read", "read_header"]


def _header(path: Path):
    import wfdb

    try:
        return wfdb.rdheader(str(path.with_suffix("")))
    except Exception as exc:
        raise BiospikeError(f"not a readable WFDB header ({describe(exc)})", path) from None


def read_header(path: Path, spec: dict[str, Any]) -> Header:  # noqa: ARG001
    """Channel names and rate from the ``.hea`` file alone."""
    header = _header(path)
    return Header(channel_names=list(header.sig_name or []), fs_hz=float(header.fs))


def read(path: Path, spec: dict[str, Any]) -> Recording:  # noqa: ARG001
    """One WFDB record (``.hea`` + signal files + ``.atr``) as a :class:`Recording` in physical
    units, each beat annotation a point event at its R peak (non-beat annotations dropped)."""
    import wfdb

    record_path = path.with_suffix("")
    header = _header(path)
    for file_name in sorted(set(header.file_name or [])):
        if not (path.parent / file_name).is_file():
            raise BiospikeError(f"WFDB header points at signal file {file_name!r}, which does not exist", path)
    ann_path = record_path.with_suffix(f".{ANNOTATION_EXT}")
    if not ann_path.is_file():
        raise BiospikeError(f"no beat annotation file {ann_path.name!r} beside the header", path)
    try:
        rec = wfdb.rdrecord(str(record_path), physical=True)
    except Exception as exc:
        raise BiospikeError(f"cannot read WFDB signals ({describe(exc)})", path) from None
    try:
        ann = wfdb.rdann(str(record_path), ANNOTATION_EXT)
    except Exception as exc:
        raise BiospikeError(f"cannot read annotations ({describe(exc)})", ann_path) from None
    symbols = np.asarray(ann.symbol, dtype=str)
    samples = np.asarray(ann.sample, dtype=np.int64)
    is_beat = np.isin(symbols, list(BEAT_SYMBOLS))
    signal = np.asarray(rec.p_signal, dtype=np.float64).T
    inputs = [path, *(path.parent / f for f in sorted(set(header.file_name or []))), ann_path]
    return Recording(
        signal=signal,
        fs_hz=float(rec.fs),
        channel_names=list(rec.sig_name),
        record=rec.record_name,
        path=path,
        unit="/".join(sorted(set(rec.units or ["unknown"]))),
        event_onset=samples[is_beat],
        event_duration=np.zeros(int(is_beat.sum()), dtype=np.int64),
        event_label=symbols[is_beat],
        inputs=inputs,
        meta={"point_events": True, "non_beat_annotations_dropped": int((~is_beat).sum())},
    )
