"""HDF5/JSON data contracts, provenance and atomic writes.

Every output is written to a temporary file in the destination directory and renamed into
place, so a killed job never leaves a half-written file that Snakemake would take as done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from biospike.errors import BiospikeError

__all__ = ["MIA_POOLS", "SCHEMA_VERSION", "SPLIT_NAMES", "VOLATILE_KEYS", "Spikes", "Windows", "atomic_h5",
           "atomic_path", "get_json_attr", "open_h5", "package_versions", "provenance", "read_json", "read_spikes",
           "read_windows", "set_json_attr", "sha256_file", "strip_volatile", "write_json", "write_spikes",
           "write_windows"]

# The version of the output schema (the files, fields and units in docs/outputs.md), written into
# every JSON object (``schema_version``), every HDF5 file (attribute ``schema_version``) and the NIR
# graph's metadata. "MAJOR.MINOR": MINOR grows when fields are added; MAJOR when a field is removed,
# renamed, or changes its meaning or unit, so a reader that knows 1.x can read any 1.y.
SCHEMA_VERSION = "1.0"

_VERSIONED_PACKAGES = ("biospike", "numpy", "scipy", "torch", "norse", "opacus", "mne", "wfdb", "nir", "h5py",
                       "neurokit2")


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of Python, the running biospike and the packages results depend on
    (``"not installed"`` for absent ones)."""
    from importlib.metadata import PackageNotFoundError, version

    from biospike import __version__

    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    # the running code's version, not the installed metadata (stale in an editable install until reinstalled)
    versions["biospike"] = __version__
    return versions


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance(config: Mapping[str, Any], inputs: Sequence[str | Path] = (), seed: int | None = None) -> dict:
    """What produced an output: config subset, seed, versions, input hashes, commit, time.

    ``created_utc`` is the only field that differs between two identical runs; comparisons of
    outputs across runs drop it (see :func:`strip_volatile`).
    """
    return {
        "config": json.loads(json.dumps(config, default=str)),
        "seed": seed,
        "versions": package_versions(),
        "inputs": {str(p): sha256_file(p) for p in inputs if Path(p).is_file()},
        "git_commit": _git_commit(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


VOLATILE_KEYS = ("created_utc", "wall_time_s", "epoch_time_s", "git_commit")  # wall-clock, not results


def strip_volatile(obj: Any) -> Any:
    """Drop timestamps and wall times recursively, for comparing outputs across runs."""
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items() if k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the body succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the result the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as sorted, indented JSON, atomically. A dict gets ``schema_version``
    (:data:`SCHEMA_VERSION`) at its top level unless it already has one; ``obj`` is not changed."""
    if isinstance(obj, Mapping) and "schema_version" not in obj:
        obj = {**obj, "schema_version": SCHEMA_VERSION}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; a missing or malformed file is a BiospikeError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BiospikeError("file not found", path) from None
    except json.JSONDecodeError as exc:
        raise BiospikeError(f"not valid JSON ({exc.msg} at line {exc.lineno})", path) from None


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only when complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as fh:
        yield fh


def set_json_attr(obj: h5py.HLObject, key: str, value: Any) -> None:
    """Store ``value`` as a JSON string in the HDF5 attribute ``key``."""
    obj.attrs[key] = json.dumps(value, default=_json_default, sort_keys=True)


def get_json_attr(obj: h5py.HLObject, key: str, default: Any = None) -> Any:
    """The JSON attribute ``key`` decoded, or ``default`` when absent."""
    if key not in obj.attrs:
        return default
    return json.loads(obj.attrs[key])


def open_h5(path: str | Path, required: Sequence[str] = ()) -> h5py.File:
    """Open an HDF5 input read-only; a missing file or dataset is a clear BiospikeError."""
    path = Path(path)
    if not path.is_file():
        raise BiospikeError("file not found", path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise BiospikeError(f"not a readable HDF5 file ({exc})", path) from None
    missing = [name for name in required if name not in fh]
    if missing:
        fh.close()
        raise BiospikeError(f"missing dataset(s) {missing}: not written by this version of biospike?", path)
    return fh


# --------------------------------------------------------------------------------------------
# windows.h5: the ingestion contract
# --------------------------------------------------------------------------------------------

SPLIT_NAMES = ("train", "val", "test")
MIA_POOLS = ("members", "nonmembers", "population")


@dataclasses.dataclass
class Windows:
    """Preprocessed, labelled windows of one dataset (``results/{dataset}/windows.h5``)."""

    signals: np.ndarray  # float32 (N, C, L)
    labels: np.ndarray  # int64 (N,)
    subject: np.ndarray  # str (N,) de-identified subject ids
    record: np.ndarray  # str (N,) recording ids (file stem or run)
    fs_hz: float
    channel_names: list[str]
    class_names: list[str]
    modality: str
    preprocessing: dict
    splits: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # train/val/test indices
    mia: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # members/nonmembers/population
    provenance: dict = dataclasses.field(default_factory=dict)
    dataset: str = ""  # the config's dataset name (later stages record it and derive seeds from it)
    start: np.ndarray | None = None  # int64 (N,) first sample of each window in its record, at fs_hz
    spec: dict = dataclasses.field(default_factory=dict)  # the preprocessing settings (ingest.ingest_spec)

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.signals.ndim != 3 or self.signals.shape[0] != n:
            raise ValueError(f"signals must be (N, C, L) with N={n}, got {self.signals.shape}")
        if len(self.subject) != n or len(self.record) != n:
            raise ValueError("subject and record must have one entry per window")
        if self.signals.shape[1] != len(self.channel_names):
            raise ValueError("one channel name per signal channel")


def _str_array(values: Sequence[str]) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object)


def write_windows(path: str | Path, win: Windows) -> None:
    """Write ``win`` as windows.h5, atomically (signals gzip-compressed; ``schema_version``)."""
    with atomic_h5(path) as fh:
        fh.create_dataset("signals", data=win.signals.astype(np.float32), compression="gzip", compression_opts=4, shuffle=True)
        fh.create_dataset("labels", data=win.labels.astype(np.int64))
        str_dtype = h5py.string_dtype()
        fh.create_dataset("subject", data=_str_array(win.subject), dtype=str_dtype)
        fh.create_dataset("record", data=_str_array(win.record), dtype=str_dtype)
        fh.attrs["fs_hz"] = float(win.fs_hz)
        fh.attrs["modality"] = win.modality
        set_json_attr(fh, "channel_names", list(win.channel_names))
        set_json_attr(fh, "class_names", list(win.class_names))
        set_json_attr(fh, "preprocessing", win.preprocessing)
        set_json_attr(fh, "provenance", win.provenance)
        set_json_attr(fh, "spec", win.spec)
        fh.attrs["dataset"] = win.dataset
        if win.start is not None:
            fh.create_dataset("start", data=np.asarray(win.start, dtype=np.int64))
        fh.attrs["schema_version"] = SCHEMA_VERSION
        for group_name, members in (("splits", win.splits), ("mia", win.mia)):
            grp = fh.create_group(group_name)
            for key, idx in members.items():
                grp.create_dataset(key, data=np.asarray(idx, dtype=np.int64))


def read_windows(path: str | Path) -> Windows:
    """windows.h5 as :class:`Windows`; a missing file or dataset is a BiospikeError naming it."""
    with open_h5(path, required=("signals", "labels", "subject", "record")) as fh:
        return Windows(
            signals=fh["signals"][()],
            labels=fh["labels"][()],
            subject=fh["subject"].asstr()[()],
            record=fh["record"].asstr()[()],
            fs_hz=float(fh.attrs["fs_hz"]),
            channel_names=get_json_attr(fh, "channel_names"),
            class_names=get_json_attr(fh, "class_names"),
            modality=str(fh.attrs["modality"]),
            preprocessing=get_json_attr(fh, "preprocessing", {}),
            splits={k: fh["splits"][k][()] for k in fh.get("splits", {})},
            mia={k: fh["mia"][k][()] for k in fh.get("mia", {})},
            provenance=get_json_attr(fh, "provenance", {}),
            dataset=str(fh.attrs.get("dataset", "")),
            start=fh["start"][()] if "start" in fh else None,
            spec=get_json_attr(fh, "spec", {}),
        )


# --------------------------------------------------------------------------------------------
# spikes.h5: the encoding contract
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Spikes:
    """Spike trains of one dataset and encoding (``results/{dataset}/{encoding}/spikes.h5``).

    ``spikes[n, t, c]`` is the number of spikes (usually 0/1) of input neuron ``c`` in time step
    ``t`` of window ``n``; one step lasts ``dt_s`` seconds. Labels, subjects, splits and MIA pools
    are copied from windows.h5 so downstream stages need one file.
    """

    spikes: np.ndarray  # uint8 (N, T, C')
    labels: np.ndarray
    subject: np.ndarray
    dt_s: float
    channel_names: list[str]  # one per spike channel, e.g. "C3+", "C3-", "C3/p04"
    class_names: list[str]
    encoder: dict  # name + parameters
    stats: dict  # spikes/s per channel, sparsity, SNR ...
    splits: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    mia: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    provenance: dict = dataclasses.field(default_factory=dict)
    dataset: str = ""  # the names the encode stage was given (recorded so later stages need not guess)
    encoding: str = ""
    # where the windows came from: preprocessing settings (ingest.ingest_spec), window rate, length
    # and input channels; every model stores it so new recordings are treated alike (biospike.predict)
    source: dict = dataclasses.field(default_factory=dict)


def write_spikes(path: str | Path, sp: Spikes) -> None:
    """Write ``sp`` as spikes.h5, atomically (one compressed chunk per window; ``schema_version``)."""
    with atomic_h5(path) as fh:
        fh.create_dataset("spikes", data=sp.spikes.astype(np.uint8), compression="gzip", compression_opts=4,
                          shuffle=True, chunks=(1, *sp.spikes.shape[1:]) if sp.spikes.shape[0] else None)
        fh.create_dataset("labels", data=sp.labels.astype(np.int64))
        fh.create_dataset("subject", data=_str_array(sp.subject), dtype=h5py.string_dtype())
        fh.attrs["dt_s"] = float(sp.dt_s)
        set_json_attr(fh, "channel_names", list(sp.channel_names))
        set_json_attr(fh, "class_names", list(sp.class_names))
        set_json_attr(fh, "encoder", sp.encoder)
        set_json_attr(fh, "stats", sp.stats)
        set_json_attr(fh, "provenance", sp.provenance)
        fh.attrs["dataset"] = sp.dataset
        fh.attrs["encoding"] = sp.encoding
        set_json_attr(fh, "source", sp.source)
        fh.attrs["schema_version"] = SCHEMA_VERSION
        for group_name, members in (("splits", sp.splits), ("mia", sp.mia)):
            grp = fh.create_group(group_name)
            for key, idx in members.items():
                grp.create_dataset(key, data=np.asarray(idx, dtype=np.int64))


def read_spikes(path: str | Path) -> Spikes:
    """spikes.h5 as :class:`Spikes`; a missing file or dataset is a BiospikeError naming it."""
    with open_h5(path, required=("spikes", "labels", "subject")) as fh:
        return Spikes(
            spikes=fh["spikes"][()],
            labels=fh["labels"][()],
            subject=fh["subject"].asstr()[()],
            dt_s=float(fh.attrs["dt_s"]),
            channel_names=get_json_attr(fh, "channel_names"),
            class_names=get_json_attr(fh, "class_names"),
            encoder=get_json_attr(fh, "encoder", {}),
            stats=get_json_attr(fh, "stats", {}),
            splits={k: fh["splits"][k][()] for k in fh.get("splits", {})},
            mia={k: fh["mia"][k][()] for k in fh.get("mia", {})},
            provenance=get_json_attr(fh, "provenance", {}),
            dataset=str(fh.attrs.get("dataset", "")),
            encoding=str(fh.attrs.get("encoding", "")),
            source=get_json_attr(fh, "source", {}),
        )
