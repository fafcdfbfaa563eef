"""Readers for the on-disk formats of EEG, ECG and EMG recordings.

Every reader turns one file into a :class:`Recording`: the signal in physical units as float64
``(channels, samples)``, its rate, channel names, a raw subject id (hashed by ingestion before
anything is stored), a record id, and labels in one of three shapes:

- ``sample_labels``: one source label per sample (EMG text/CSV, NinaPro ``.mat``);
- events: ``event_onset`` / ``event_duration`` (samples) / ``event_label`` (EDF+ annotations with
  durations; WFDB beats with duration 0, i.e. the annotated R peak);
- ``record_label``: one label for the whole record (PhysioNet 2017).

One module per format; :func:`read_recording` dispatches on the config's ``reader`` name.
Readers never copy header fields that identify a patient (EDF patient/recording fields,
WFDB comment lines): only signal, rate, channel names and labels leave them.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["NO_LABEL", "READERS", "Header", "Recording", "describe", "read_header", "read_recording",
           "reader_module", "subject_from_path"]

# config "reader" -> module in this package; each module has read(path, spec) -> Recording
READERS: dict[str, str] = {
    "edf": "biospike.io.edf",
    "wfdb_beats": "biospike.io.wfdb_beats",
    "physionet2017": "biospike.io.physionet2017",
    "emg_text": "biospike.io.emg_text",
    "myo_csv": "biospike.io.myo_csv",
    "ninapro_mat": "biospike.io.ninapro_mat",
}

# sentinel for "no label at this sample" (e.g. a gap in irregular time stamps)
NO_LABEL = np.iinfo(np.int64).min


@dataclasses.dataclass
class Recording:
    """One recording as read from disk, before any preprocessing."""

    signal: np.ndarray  # float64 (C, S), physical units (see ``unit``)
    fs_hz: float
    channel_names: list[str]
    record: str  # file stem, WFDB record name or session folder
    path: Path  # the file the reader was given
    unit: str = "unknown"
    subject_raw: str | None = None  # None: ingestion takes it from subject_regex on the path
    sample_labels: np.ndarray | None = None  # int64 (S,), NO_LABEL where unlabelled
    event_onset: np.ndarray | None = None  # int64 (E,) sample of onset (or R peak)
    event_duration: np.ndarray | None = None  # int64 (E,) samples; 0 for point events (beats)
    event_label: np.ndarray | None = None  # str (E,)
    record_label: str | None = None
    inputs: list[Path] = dataclasses.field(default_factory=list)  # every file read
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)  # non-identifying facts

    def __post_init__(self) -> None:
        self.signal = np.asarray(self.signal, dtype=np.float64)
        if self.signal.ndim != 2:
            raise BiospikeError(f"reader returned a signal of shape {self.signal.shape}, expected (channels, samples)", self.path)
        if len(self.channel_names) != self.signal.shape[0]:
            raise BiospikeError("one channel name per channel expected", self.path)
        if not self.inputs:
            self.inputs = [Path(self.path)]
        if self.event_onset is not None:
            self.event_onset = np.asarray(self.event_onset, dtype=np.int64)
            self.event_duration = np.asarray(self.event_duration, dtype=np.int64)
            self.event_label = np.array([str(v) for v in self.event_label], dtype=str).reshape(-1)

    @property
    def n_samples(self) -> int:
        """Samples per channel (S)."""
        return int(self.signal.shape[1])

    @property
    def label_kind(self) -> str:
        """``samples`` | ``events`` | ``beats`` | ``record``."""
        if self.sample_labels is not None:
            return "samples"
        if self.event_onset is not None:
            return "beats" if self.meta.get("point_events") else "events"
        if self.record_label is not None:
            return "record"
        raise BiospikeError("the recording carries no labels", self.path)


@dataclasses.dataclass(frozen=True)
class Header:
    """What a file's header says without reading its samples (checks before a run starts)."""

    channel_names: list[str]
    fs_hz: float


def read_header(reader: str, path: str | Path, spec: Mapping[str, Any]) -> Header | None:
    """The channel names and rate of ``path`` from its header alone, or None for formats whose
    header is not cheap to read apart from the samples (text, CSV, .mat)."""
    path = Path(path)
    module = reader_module(reader)
    if not hasattr(module, "read_header"):
        return None
    if not path.is_file():
        raise BiospikeError("file not found", path)
    return module.read_header(path, spec)


def describe(exc: BaseException, limit: int = 300) -> str:
    """A library exception as one short line (the CLI prints errors on a single line)."""
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def subject_from_path(relative: str, subject_regex: str, path: Path) -> str:
    """Group 1 (or the whole match) of ``subject_regex`` searched in the path relative to the
    dataset folder (posix separators), e.g. ``S001/S001R04.edf`` or ``12345-1/3.txt``."""
    match = re.search(subject_regex, relative)
    if not match:
        raise BiospikeError(f"subject_regex {subject_regex!r} does not match {relative!r}", path)
    return match.group(1) if match.groups() else match.group(0)


def reader_module(reader: str):
    """The module of the reader named ``reader`` (a key of :data:`READERS`); an unknown name is
    an error listing them."""
    try:
        return importlib.import_module(READERS[reader])
    except KeyError:
        raise BiospikeError(f"unknown reader {reader!r}; known: {sorted(READERS)}") from None


def read_recording(reader: str, path: str | Path, spec: Mapping[str, Any], root: str | Path | None = None) -> Recording:
    """Read ``path`` with the reader named in the config; fill the raw subject id from
    ``spec["subject_regex"]`` on the path relative to ``root`` unless the format defines it."""
    path = Path(path)
    if not path.is_file():
        raise BiospikeError("file not found", path)
    rec = reader_module(reader).read(path, spec)
    if rec.subject_raw is None:
        try:
            relative = path.relative_to(root).as_posix() if root is not None else path.name
        except ValueError:
            relative = path.name
        rec.subject_raw = subject_from_path(relative, spec.get("subject_regex", r"^([^._-]+)"), path)
    return rec
