"""Ingestion stage: recordings -> preprocessed, labelled windows + splits -> ``windows.h5``.

Per dataset: find files -> read (``biospike.io``) -> check the rate -> pick channels -> reject
NaN/flat channels -> notch -> band-pass -> anti-aliased resample -> windows (fixed windows inside
labelled segments, beat-centred windows, or fixed crops of whole labelled records) -> label map
-> optional per-subject/class cap -> pseudonymous subject and record ids -> splits.

Splits partition *units* (subjects by default; records, labelled segments or time blocks when a
dataset has too few subjects), never windows, so no unit is in two of train/val/test/population.
Raw subject and record ids never leave this module: only salted hashes are stored.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from biospike import signals as sig
from biospike.config import derive_seed
from biospike.errors import BiospikeError
from biospike.io import NO_LABEL, Recording, read_header, read_recording, reader_module
from biospike.store import Windows

__all__ = ["BANDPASS_ORDER", "NOTCH_QUALITY", "POOL_ORDER", "PREPROCESSING_KEYS", "SPLIT_UNITS", "UNLABELLED", "cli",
           "find_files", "ingest_dataset", "ingest_spec", "make_splits", "preflight", "preflight_config",
           "preprocess", "read_all", "read_file", "resolve_path", "subsample_subjects", "windows_of"]

SPLIT_UNITS = ("subject", "record", "segment", "block")
POOL_ORDER = ("population", "holdout", "test", "val", "train")
NOTCH_QUALITY = 30.0
BANDPASS_ORDER = 4


# --------------------------------------------------------------------------------- splits


def _pool_size(fraction: float, n_units: int) -> int:
    """At least one unit for any positive fraction, otherwise round half up."""
    if fraction <= 0:
        return 0
    return max(1, int(np.floor(fraction * n_units + 0.5)))


def _assign_pools(unit_key: np.ndarray, sizes: Mapping[str, int], rng: np.random.Generator) -> np.ndarray:
    """Pool name per unit; pools get exactly ``sizes`` units and every stratum (``unit_key``)
    is shared out in proportion to the pool sizes (controlled rounding: floors first, then the
    leftover units go first to pools that would otherwise get none of the stratum, then by
    largest remainder; ties random). Within a stratum, units are shuffled."""
    pools = [p for p in POOL_ORDER if sizes.get(p, 0) > 0]
    size = np.array([sizes[p] for p in pools], dtype=np.int64)
    keys, inverse = np.unique(unit_key, return_inverse=True)
    n_stratum = np.bincount(inverse.reshape(-1), minlength=len(keys))
    target = n_stratum[:, None] * size[None, :] / size.sum()
    quota = np.floor(target + 1e-9).astype(np.int64)
    row_left = n_stratum - quota.sum(axis=1)
    col_left = size - quota.sum(axis=0)
    residual = target - quota
    # cells ordered: empty cells first, then largest remainder, random ties
    order = np.lexsort((rng.random(quota.size), -residual.ravel(), (quota > 0).ravel()))
    for cell in order:
        s_idx, p_idx = divmod(int(cell), len(pools))
        if row_left[s_idx] > 0 and col_left[p_idx] > 0 and residual[s_idx, p_idx] > 1e-9:
            quota[s_idx, p_idx] += 1
            row_left[s_idx] -= 1
            col_left[p_idx] -= 1
    for s_idx in np.flatnonzero(row_left > 0):  # leftovers where no remainder was free
        while row_left[s_idx] > 0:
            p_idx = int(np.argmax(col_left))
            quota[s_idx, p_idx] += 1
            row_left[s_idx] -= 1
            col_left[p_idx] -= 1
    out = np.empty(len(unit_key), dtype=object)
    for s_idx in range(len(keys)):
        members = rng.permutation(np.flatnonzero(inverse.reshape(-1) == s_idx))
        out[members] = np.repeat(np.array(pools, dtype=object), quota[s_idx])
    return out


def make_splits(
    subjects: Sequence[str] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    cfg: Mapping[str, Any],
    seed: int,
    *,
    dataset: str = "",
    forced_test: np.ndarray | None = None,
    unit_name: str = "subject",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Partition the units named in ``subjects`` (one entry per window) into population / test /
    val / train and return window indices: ``splits`` (train, val, test) and ``mia`` (members =
    train, nonmembers = test, population = the attacker's reference units).

    Units are shuffled with ``derive_seed(seed, "split", dataset)`` and stratified by the rarest
    class each unit contains, so rare classes spread over the pools (:func:`_assign_pools`). Fractions come from ``cfg``
    (``population_fraction``, ``test_fraction``, ``val_fraction``); every positive fraction gets
    at least one unit and train gets the rest (at least one). Units with any window in
    ``forced_test`` form the test pool (``test_records_regex``) and the other fractions apply to
    the remaining units.

    A forced test pool (another session or site) differs in distribution from the training
    pool, so it cannot serve as the attack's non-members: an attack would then score the shift,
    not membership. With ``forced_test`` the non-members are a separate ``holdout`` pool of the
    free units (``test_fraction`` of them), never trained on, not in the population.
    """
    units = np.asarray(subjects).astype(str)
    labels = np.asarray(labels, dtype=np.int64)
    if len(units) != len(labels):
        raise ValueError("one unit and one label per window")
    uniq, inverse = np.unique(units, return_inverse=True)
    inverse = inverse.reshape(-1)
    rng = np.random.default_rng(derive_seed(seed, "split", dataset))

    # stratum of a unit = its rarest class overall (ties: lower class index)
    freq = np.bincount(labels, minlength=1) if len(labels) else np.zeros(1, np.int64)
    score = freq[labels] * (labels.max(initial=0) + 1) + labels
    unit_score = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(unit_score, inverse, score)

    forced = np.zeros(len(uniq), dtype=bool)
    if forced_test is not None:
        np.logical_or.at(forced, inverse, np.asarray(forced_test, dtype=bool))
    free = np.flatnonzero(~forced)
    n_free = len(free)
    has_forced = bool(forced.any())
    # test_fraction of the free units: the test pool, or with a forced test pool the holdout
    n_test = _pool_size(float(cfg.get("test_fraction", 0.2)), n_free)
    sizes = {
        "population": _pool_size(float(cfg.get("population_fraction", 0.2)), n_free),
        "test": 0 if has_forced else n_test,
        "holdout": n_test if has_forced else 0,
        "val": _pool_size(float(cfg.get("val_fraction", 0.15)), n_free),
    }
    sizes["train"] = n_free - sum(sizes.values())
    if sizes["train"] < 1:
        raise BiospikeError(
            f"{len(uniq)} {unit_name} unit(s) ({int(forced.sum())} forced into test) cannot give "
            f"population/test/val {sizes['population']}/{n_test}/{sizes['val']} and keep one for "
            f"training: lower the split fractions or split by a finer unit (split_by)"
        )
    pool_of_unit = np.empty(len(uniq), dtype=object)
    pool_of_unit[forced] = "test"
    pool_of_unit[free] = _assign_pools(unit_score[free], sizes, rng)
    window_pool = pool_of_unit[inverse]
    idx = {pool: np.flatnonzero(window_pool == pool).astype(np.int64) for pool in POOL_ORDER}
    splits = {"train": idx["train"], "val": idx["val"], "test": idx["test"]}
    nonmembers = idx["holdout"] if has_forced else idx["test"]
    mia = {"members": idx["train"], "nonmembers": nonmembers, "population": idx["population"]}
    return splits, mia


# ------------------------------------------------------------------------------ datasets


def resolve_path(path: str, data_root: str | None) -> Path:
    """A dataset path with ``{data_root}`` replaced; an error naming the key when it is not set."""
    if "{data_root}" in path:
        if not data_root:
            from biospike.config import data_root_error

            raise BiospikeError(data_root_error([path]))
        path = path.replace("{data_root}", data_root)
    return Path(path)


def find_files(root: Path, pattern: str | Sequence[str]) -> list[Path]:
    """The files matching ``pattern`` (a glob or a list of globs) under ``root``, sorted."""
    if not root.is_dir():
        raise BiospikeError("dataset folder not found", root)
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    files = sorted({p for pat in patterns for p in root.glob(pat) if p.is_file()})
    if not files:
        raise BiospikeError(f"no files match pattern {pattern!r}", root)
    return files


def _expected_rates(spec: Mapping[str, Any]) -> list[float] | None:
    value = spec.get("expected_fs_hz")
    if value is None:
        return None
    return [float(v) for v in (value if isinstance(value, list) else [value])]


@dataclasses.dataclass
class _Part:
    """Windows cut from one recording (before label mapping across the dataset)."""

    signals: np.ndarray  # float32 (n, C, L)
    labels: np.ndarray  # int64 (n,) class indices (-1: unlabelled, prediction only)
    starts: np.ndarray  # int64 (n,) first sample of each window, at the output rate
    unit_local: np.ndarray  # str (n,) segment/block id within the record ("" otherwise)
    subject_raw: str
    record_raw: str  # as the reader names it (file stem, WFDB record, session folder)
    record_key: str  # subject_raw/record_raw: unique across subjects
    file_key: str  # path relative to the dataset folder: segment/block ids are per file
    inputs: list[Path]


def _label_segments(rec: Recording) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelled segments ``(onset, duration, label str)`` at the recording's own rate."""
    kind = rec.label_kind
    if kind == "samples":
        onset, duration, value = sig.runs(rec.sample_labels)
        keep = value != NO_LABEL
        return onset[keep], duration[keep], value[keep].astype(str)
    if kind == "record":
        return np.array([0]), np.array([rec.n_samples]), np.array([str(rec.record_label)])
    return rec.event_onset, rec.event_duration, rec.event_label  # events or beats


def preprocess(rec: Recording, spec: Mapping[str, Any], channel_idx: list[int]) -> tuple[np.ndarray, float]:
    """One recording's preprocessed signal ``(x, fs_out_hz)``: ``x`` (C, S') holds the channels
    ``channel_idx`` of ``rec.signal`` after a NaN/flat check, ``notch_hz`` notch, ``bandpass_hz``
    band-pass and resampling to ``resample_hz`` (each skipped when its ``spec`` key is None), at
    ``fs_out_hz`` Hz. Errors name ``rec.path``.

    With ``rr_channel`` (ECG) an RR-interval channel (s) is appended, from R peaks found on the
    first picked lead at the recording's own rate (detectors need more than the output rate).
    From arrays: ``Recording(signal=x, fs_hz=..., channel_names=[...], record="r", path=Path("r"))``
    and ``channel_idx=list(range(len(x)))`` (or :func:`biospike.signals.pick_channels`)."""
    x = rec.signal[channel_idx]
    nonfinite, flat = sig.bad_channels(x)
    names = [rec.channel_names[i] for i in channel_idx]
    if nonfinite:
        raise BiospikeError(f"channel(s) {[names[i] for i in nonfinite]} contain NaN or infinite samples", rec.path)
    if flat:
        raise BiospikeError(f"channel(s) {[names[i] for i in flat]} are flat (constant signal)", rec.path)
    raw_lead = x[0]
    try:
        x = sig.notch(x, rec.fs_hz, spec.get("notch_hz"), NOTCH_QUALITY)
        x = sig.bandpass(x, rec.fs_hz, spec.get("bandpass_hz"), BANDPASS_ORDER)
        x, fs_out_hz = sig.resample(x, rec.fs_hz, spec.get("resample_hz"))
    except BiospikeError as exc:
        raise BiospikeError(exc.problem, rec.path) from None
    if spec.get("rr_channel"):
        peaks = sig.r_peaks(raw_lead, rec.fs_hz)
        x = np.vstack([x, sig.rr_trace(peaks, rec.fs_hz, x.shape[1], fs_out_hz)[None].astype(x.dtype)])
    return x, fs_out_hz


UNLABELLED = -1  # class index of a window cut without a label (prediction on unlabelled recordings)


def windows_of(rec: Recording, x: np.ndarray, fs_out_hz: float, spec: Mapping[str, Any],
               reader: str, lookup: Mapping[str, int] | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Where the windows of one preprocessed recording lie: ``(starts, classes, unit_local, info)``.

    ``x`` (C, S) at ``fs_out_hz`` is :func:`preprocess`'s output for ``rec`` (whose labels, at
    ``rec.fs_hz``, are rescaled to ``fs_out_hz``). ``starts`` (int, samples at ``fs_out_hz``) are
    the first samples of the windows, ``classes`` their class indices via ``lookup`` (label string
    -> class index; labels outside it are dropped before any window is cut), ``unit_local`` their
    within-record split unit (``"s<segment>"``, ``"b<block>"`` or ``""``, per ``split_by``) and
    ``info["length"]`` the window length in samples: ``reader == "wfdb_beats"`` cuts
    ``beat_window_s`` around each beat, any other reader ``window_s`` windows every ``stride_s``
    inside labelled segments. With ``lookup`` None the recording is unlabelled: windows cover the
    whole record (beats: R peaks detected on the first channel) with class :data:`UNLABELLED`.
    The windows themselves are ``biospike.signals.take_windows(x, starts, info["length"])``."""
    if lookup is None:
        if reader == "wfdb_beats":
            beats = sig.r_peaks(x[0], fs_out_hz)
            onset, duration, label = beats, np.zeros(len(beats), np.int64), np.full(len(beats), "", dtype=object)
        else:
            onset, duration, label = np.array([0]), np.array([x.shape[1]]), np.array([""], dtype=object)
        rec_fs = fs_out_hz
    else:
        onset, duration, label = _label_segments(rec)
        rec_fs = rec.fs_hz
    onset, duration = sig.rescale_events(onset, duration, fs_out_hz / rec_fs)
    cls = (np.full(len(label), UNLABELLED, dtype=np.int64) if lookup is None
           else np.array([lookup.get(str(v), -2) for v in label], dtype=np.int64))
    mapped = cls >= UNLABELLED
    onset, duration, cls = onset[mapped], duration[mapped], cls[mapped]
    seg_index = np.flatnonzero(mapped)
    info = {"mapped_segments": int(mapped.sum()), "longest_mapped_segment_s": float(duration.max(initial=0) / fs_out_hz)}
    if reader == "wfdb_beats":
        pre, post = (round(float(s) * fs_out_hz) for s in spec["beat_window_s"])
        starts, keep = sig.beat_windows(onset, x.shape[1], pre, post)
        length, cls_w, seg_w = pre + post, cls[keep], seg_index[keep]
    else:
        length = round(float(spec["window_s"]) * fs_out_hz)
        stride = max(1, round(float(spec["stride_s"]) * fs_out_hz))
        starts, seg = sig.fixed_windows(onset, duration, length, stride)
        inside = starts + length <= x.shape[1]  # annotations may run past the end of the signal
        starts, seg = starts[inside], seg[inside]
        cls_w, seg_w = cls[seg], seg_index[seg]
    unit_local = np.full(len(starts), "", dtype=object)
    split_by = spec.get("split_by", "subject")
    if split_by == "segment":
        unit_local = np.char.add("s", seg_w.astype(str)).astype(object)
    elif split_by == "block":
        block = max(1, round(float(spec["split_block_s"]) * fs_out_hz))
        first, last = starts // block, (starts + length - 1) // block
        whole = first == last  # a window straddling two blocks would share samples across units
        starts, cls_w, first = starts[whole], cls_w[whole], first[whole]
        info["windows_dropped_at_block_edges"] = int((~whole).sum())
        unit_local = np.char.add("b", first.astype(str)).astype(object)
    info["length"] = length
    return starts, cls_w, unit_local, info


def _check_spec(spec: Mapping[str, Any], root: Path) -> None:
    split_by = spec.get("split_by", "subject")
    if split_by not in SPLIT_UNITS:
        raise BiospikeError(f"split_by must be one of {SPLIT_UNITS}, got {split_by!r}", root)
    if split_by == "segment" and spec["reader"] == "wfdb_beats":
        raise BiospikeError("split_by: segment needs labelled segments; beat datasets split by subject, record or block", root)
    try:
        sig.map_labels([], spec["label_map"], spec["classes"])
    except BiospikeError as exc:
        raise BiospikeError(exc.problem, root) from None
    band, fs_out = spec.get("bandpass_hz"), spec.get("resample_hz")
    if band is not None and fs_out is not None and float(band[1]) >= float(fs_out) / 2:
        raise BiospikeError(
            f"band-pass upper edge {band[1]:g} Hz is not below the Nyquist rate after resampling "
            f"({float(fs_out) / 2:g} Hz at resample_hz={fs_out:g})", root)
    if spec.get("rr_channel") and spec.get("modality") != "ecg":
        raise BiospikeError(f"rr_channel needs ECG (modality: ecg), this dataset is {spec.get('modality')!r}", root)
    if len(set(spec["classes"])) != len(spec["classes"]):
        raise BiospikeError(f"classes contain duplicates: {spec['classes']}", root)
    if spec.get("test_records_regex"):
        try:
            re.compile(spec["test_records_regex"])
        except re.error as exc:
            raise BiospikeError(f"test_records_regex is not a valid regex ({exc})", root) from None


def _output_channel_names(spec: Mapping[str, Any], picked: list[list[str]]) -> list[str]:
    return _signal_channel_names(spec, picked) + (["RR"] if spec.get("rr_channel") else [])


def _signal_channel_names(spec: Mapping[str, Any], picked: list[list[str]]) -> list[str]:
    wanted = spec.get("channels")
    if wanted is not None and all(isinstance(w, str) for w in wanted):
        return list(wanted)
    first = picked[0]
    if all([sig.normalise_channel_name(n) for n in p] == [sig.normalise_channel_name(n) for n in first] for p in picked):
        return list(first)
    return [f"ch{w}" for w in wanted] if wanted is not None else [f"ch{i}" for i in range(len(first))]


def _deidentified_inputs(parts: Sequence[_Part], salt: str, digests: Mapping[str, str]) -> dict[str, str]:
    """Input file hashes keyed by pseudonymous names: file names carry subject/record ids."""
    owners: dict[str, set[str]] = {}
    for part in parts:
        for f in part.inputs:
            owners.setdefault(str(f), set()).add(part.record_key)
    out: dict[str, str] = {}
    for part in parts:
        rec_id = sig.hash_id(part.record_key, salt, "rec")
        for f in part.inputs:
            if str(f) not in digests:
                continue
            name = Path(f).name
            if len(owners[str(f)]) > 1 and part.record_raw not in name and part.subject_raw not in name:
                out[name] = digests[str(f)]  # shared by many records, e.g. REFERENCE.csv
                continue
            for raw in sorted({part.record_raw, part.subject_raw}, key=len, reverse=True):
                name = name.replace(raw, "") if raw else name
            out[f"{rec_id}/{name or '_'}"] = digests[str(f)]
    return out


def _check_rate(fs_hz: float, rates: list[float] | None, spec: Mapping[str, Any], path: Path) -> None:
    if rates is not None and not any(np.isclose(fs_hz, r) for r in rates):
        raise BiospikeError(f"sampled at {fs_hz:g} Hz but the config expects expected_fs_hz={spec['expected_fs_hz']} Hz", path)


def _pick(channel_names: Sequence[str], spec: Mapping[str, Any], path: Path) -> list[int]:
    try:
        return sig.pick_channels(channel_names, spec.get("channels"))
    except BiospikeError as exc:
        raise BiospikeError(exc.problem, path) from None


def preflight(spec: Mapping[str, Any], data_root: str | None = None, max_headers: int = 64) -> tuple[Path, list[Path]]:
    """Every check that needs no samples, with the messages ingestion gives: the settings
    (classes vs label_map, Nyquist, split unit), the folder and its matched files, the format's
    own file checks, and -- where the format has a cheap header (EDF/BDF, WFDB) -- rate and
    channel names of up to ``max_headers`` files spread over the list. Returns (folder, files).
    The workflow runs it when the Snakefile is read, so ``snakemake -n`` fails as ingest would."""
    root = resolve_path(spec["path"], data_root)
    _check_spec(spec, root)
    files = find_files(root, spec.get("pattern", "*"))
    check_files = getattr(reader_module(spec["reader"]), "check_files", None)
    if check_files is not None:
        check_files(files, spec)
    rates = _expected_rates(spec)
    step = max(1, len(files) // max(1, max_headers))
    for path in files[::step][:max_headers]:
        header = read_header(spec["reader"], path, spec)
        if header is None:
            break
        _check_rate(header.fs_hz, rates, spec, path)
        _pick(header.channel_names, spec, path)
    return root, files


def subsample_subjects(files: Sequence[Path], root: Path, spec: Mapping[str, Any], seed: int,
                       dataset: str) -> tuple[list[Path], dict[str, int] | None]:
    """The files of ``max_subjects`` subjects drawn at random (seeded by the run's seed and the
    dataset name, independent of the recordings' content) when the dataset names a limit, e.g. a
    few thousand of the 8429 PhysioNet 2017 patients on 2 cores; all files otherwise. Subjects are
    the ``subject_regex`` match of each file's path (one per record for per-record formats).
    Returns (files, {"available", "kept"} or None)."""
    limit = spec.get("max_subjects")
    if limit is None:
        return list(files), None
    from biospike.io import subject_from_path

    regex = spec.get("subject_regex", r"^([^._-]+)")
    subject = [subject_from_path(p.relative_to(root).as_posix(), regex, p) for p in files]
    available = sorted(set(subject))
    if len(available) <= limit:
        return list(files), {"available": len(available), "kept": len(available)}
    rng = np.random.default_rng(derive_seed(seed, "subjects", dataset))
    kept = set(rng.choice(available, size=int(limit), replace=False).tolist())
    return [p for p, s in zip(files, subject, strict=True) if s in kept], {"available": len(available), "kept": len(kept)}


def preflight_config(config: Mapping[str, Any], made_under: str | Path | None = None,
                     max_headers: int = 64) -> dict[str, int]:
    """:func:`preflight` for every dataset of a validated config (and the folders and patterns of
    its external recording sets); datasets whose path lies under ``made_under`` (written by the
    workflow itself, e.g. the demo recordings) are skipped. Returns dataset -> files matched."""
    made = Path(made_under).resolve() if made_under is not None else None
    matched = {}
    for name, spec in config["datasets"].items():
        if made is not None and "{data_root}" not in spec["path"] and Path(spec["path"]).resolve().is_relative_to(made):
            continue
        matched[name] = len(preflight(spec, config.get("data_root"), max_headers=max_headers)[1])
        for ext in (spec.get("external") or {}).values():
            find_files(resolve_path(ext["path"], config.get("data_root")), ext.get("pattern", spec.get("pattern", "*")))
    return matched


def read_file(path: Path, spec: Mapping[str, Any], root: Path, lookup: Mapping[str, int] | None,
              rates: list[float] | None, check=None) -> tuple[_Part, dict]:
    """One recording -> its windows (a :class:`_Part`) and what the dataset-level checks need
    (picked channel names, rates, source label counts, window geometry). Errors name the file.
    ``lookup`` None: unlabelled windows (:func:`windows_of`); ``check(rec)`` may refuse a
    recording before it is processed (biospike.predict checks rates and channels)."""
    reader = spec["reader"]
    rec = read_recording(reader, path, spec, root)
    if check is not None:
        check(rec)
    _check_rate(rec.fs_hz, rates, spec, path)
    channel_idx = _pick(rec.channel_names, spec, path)
    picked = [rec.channel_names[i] for i in channel_idx]
    x, fs_out_hz = preprocess(rec, spec, channel_idx)
    source_labels: dict[str, int] = {}
    for value, n in zip(*np.unique(_label_segments(rec)[2], return_counts=True), strict=True):
        source_labels[str(value)] = source_labels.get(str(value), 0) + int(n)
    starts, cls, unit_local, info = windows_of(rec, x, fs_out_hz, spec, reader, lookup)
    part = _Part(
        signals=sig.take_windows(x, starts, info["length"]),
        labels=cls,
        starts=np.asarray(starts, dtype=np.int64),
        unit_local=unit_local,
        subject_raw=str(rec.subject_raw),
        record_raw=str(rec.record),
        record_key=f"{rec.subject_raw}/{rec.record}",
        file_key=path.relative_to(root).as_posix(),
        inputs=list(dict.fromkeys(Path(p) for p in rec.inputs)),
    )
    return part, {"picked": picked, "fs_hz": rec.fs_hz, "fs_out_hz": fs_out_hz, "source_labels": source_labels,
                  "info": info, "unit": rec.unit, "path": path}


def _read_job(args: tuple) -> tuple[_Part, dict]:
    return read_file(*args)


def read_all(files: Sequence[Path], spec: Mapping[str, Any], root: Path, lookup: Mapping[str, int] | None,
              rates: list[float] | None, threads: int = 1, progress: bool = True, check=None) -> tuple:
    """Read every file (in ``threads`` worker processes when > 1, in file order either way), with
    a progress display, and check that channels and output rates agree across files."""
    import concurrent.futures

    from biospike.progress import progress as progress_bar

    jobs = [(path, dict(spec), root, None if lookup is None else dict(lookup), rates, check) for path in files]
    bar = progress_bar(total=len(jobs), desc=f"ingest {len(jobs)} files") if progress else None
    results = []
    if threads > 1 and len(jobs) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=threads) as pool:
            for result in pool.map(_read_job, jobs, chunksize=max(1, min(64, len(jobs) // (8 * threads)))):
                results.append(result)
                if bar is not None:
                    bar.update(1)
    else:
        for job in jobs:
            results.append(_read_job(job))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    parts, picked_names, source_rates, signal_units = [], [], set(), set()
    fs_out_hz, source_labels, longest_s, mapped_segments, dropped_at_edges = None, {}, 0.0, 0, 0
    for part, meta in results:
        path = meta["path"]
        if picked_names and len(meta["picked"]) != len(picked_names[0]):
            raise BiospikeError(f"has {len(meta['picked'])} channels, earlier files {len(picked_names[0])}: set 'channels'", path)
        if fs_out_hz is not None and not np.isclose(meta["fs_out_hz"], fs_out_hz):
            raise BiospikeError(f"ends at {meta['fs_out_hz']:g} Hz after resampling, earlier files at {fs_out_hz:g} Hz: "
                                "set resample_hz", path)
        picked_names.append(meta["picked"])
        fs_out_hz = meta["fs_out_hz"]
        source_rates.add(meta["fs_hz"])
        for value, n in meta["source_labels"].items():
            source_labels[value] = source_labels.get(value, 0) + n
        info = meta["info"]
        longest_s = max(longest_s, info["longest_mapped_segment_s"])
        mapped_segments += info["mapped_segments"]
        dropped_at_edges += info.get("windows_dropped_at_block_edges", 0)
        signal_units.add(meta["unit"])
        parts.append(part)
    return (parts, picked_names, source_rates, fs_out_hz, source_labels, longest_s, mapped_segments, dropped_at_edges,
            signal_units)


def _gather_signals(parts: list, keep: np.ndarray) -> np.ndarray:
    """The windows of every part where the boolean ``keep`` (over all parts' windows) is true, in one (N, C, L) array, allocated once and filled part by
    part, each part's own copy released as soon as it is in: the dataset is never held twice
    (peak = the array plus one record's windows), which is what lets a cohort of thousands of
    records ingest in bounded memory."""
    first = next(p.signals for p in parts if p.signals is not None and len(p.signals))
    out = np.empty((int(keep.sum()), *first.shape[1:]), dtype=first.dtype)
    pos = src = 0
    for p in parts:
        n = len(p.labels)
        if n:
            chosen = keep[src:src + n]
            k = int(chosen.sum())
            out[pos:pos + k] = p.signals[chosen] if k < n else p.signals
            pos += k
        src += n
        p.signals = None
    return out


def ingest_dataset(spec: Mapping[str, Any], dataset: str, seed: int, split_cfg: Mapping[str, Any],
                   data_root: str | None = None, threads: int = 1, progress: bool = True) -> Windows:
    """Read, preprocess, window, label, de-identify and split one dataset (see module doc).

    ``spec`` is the dataset's config entry with schema defaults filled
    (``config.section_settings("dataset", ...)``); files are read in ``threads`` processes.
    """
    from biospike.store import provenance

    t0 = time.perf_counter()
    spec = dict(spec)
    root, files = preflight(spec, data_root, max_headers=0)  # ingestion reads every file anyway
    files, subsample = subsample_subjects(files, root, spec, seed, dataset)
    reader = spec["reader"]
    classes = list(spec["classes"])
    lookup = {str(k): classes.index(v) for k, v in spec["label_map"].items() if v is not None}
    rates = _expected_rates(spec)
    test_regex = re.compile(spec["test_records_regex"]) if spec.get("test_records_regex") else None

    parts, picked_names, source_rates, fs_out_hz, source_labels, longest_s, mapped_segments, dropped_at_edges, \
        signal_units = read_all(files, spec, root, lookup, rates, threads=threads, progress=progress)
    length = parts[0].signals.shape[2] if parts else None

    n_total = sum(len(p.labels) for p in parts)
    if n_total == 0:
        if mapped_segments == 0:
            raise BiospikeError(f"none of the source labels {sorted(source_labels)} is in label_map {sorted(lookup)}", root)
        what = "beat window" if reader == "wfdb_beats" else f"window of {spec['window_s']} s"
        raise BiospikeError(f"no {what} fits inside any labelled segment (longest: {longest_s:.2f} s)", root)

    labels = np.concatenate([p.labels for p in parts]).astype(np.int64)
    starts_all = np.concatenate([p.starts for p in parts]).astype(np.int64)
    subj_raw = np.concatenate([np.full(len(p.labels), p.subject_raw, dtype=object) for p in parts])
    rec_key = np.concatenate([np.full(len(p.labels), p.record_key, dtype=object) for p in parts])
    rec_raw = np.concatenate([np.full(len(p.labels), p.record_raw, dtype=object) for p in parts])
    unit_local = np.concatenate([np.char.add(f"{p.file_key}#", p.unit_local.astype(str)).astype(object)
                                 if len(p.labels) else p.unit_local for p in parts])
    # optional cap per (subject, class), seeded; decided on the labels before the signals are gathered
    cap = spec.get("max_windows_per_class_per_subject")
    rng = np.random.default_rng(derive_seed(seed, "subsample", dataset))
    keep = sig.subsample_groups(np.char.add(subj_raw.astype(str), np.char.add("\x00", labels.astype(str))), cap, rng)
    kept = np.zeros(len(labels), dtype=bool)
    kept[keep] = True  # sorted indices -> mask, same order
    signals_all = _gather_signals(parts, kept)
    labels, subj_raw, rec_key, rec_raw, unit_local, starts_all = (
        a[keep] for a in (labels, subj_raw, rec_key, rec_raw, unit_local, starts_all)
    )
    counts = np.bincount(labels, minlength=len(classes))
    if (counts == 0).any():
        empty = [c for c, n in zip(classes, counts, strict=True) if n == 0]
        raise BiospikeError(
            f"class(es) {empty} have no windows (windows per class: {dict(zip(classes, counts.tolist(), strict=True))}; "
            f"source labels seen: {source_labels})", root)

    # pseudonyms: raw ids stay in this function
    salt = sig.dataset_salt(dataset)
    subj_map = {s: sig.hash_subject(s, salt) for s in np.unique(subj_raw.astype(str))}
    rec_map = {r: sig.hash_id(r, salt, "rec") for r in np.unique(rec_key.astype(str))}
    if len(set(subj_map.values())) != len(subj_map) or len(set(rec_map.values())) != len(rec_map):
        raise BiospikeError("pseudonym collision between two subject/record ids; report this", root)
    subject = np.array([subj_map[s] for s in subj_raw], dtype=object)
    record = np.array([rec_map[r] for r in rec_key], dtype=object)

    split_by = spec.get("split_by", "subject")
    unit = {"subject": subj_raw, "record": rec_key}.get(split_by)
    if unit is None:
        unit = unit_local  # "<file>#s<segment>" or "<file>#b<block>"
    forced = None
    if test_regex is not None:
        forced = np.array([bool(test_regex.search(r)) for r in rec_raw.astype(str)])
        if not forced.any():
            raise BiospikeError(f"test_records_regex {spec['test_records_regex']!r} matches no record", root)
        if forced.all():
            raise BiospikeError(f"test_records_regex {spec['test_records_regex']!r} matches every record", root)
    fractions = {**dict(split_cfg), **(spec.get("split_fractions") or {})}
    try:
        splits, mia = make_splits(unit, labels, fractions, seed, dataset=dataset, forced_test=forced, unit_name=split_by)
    except BiospikeError as exc:
        raise BiospikeError(exc.problem, root) from None
    unit_s = np.asarray(unit).astype(str)
    pools = {**splits, "population": mia["population"]}
    if forced is not None:
        pools["mia_holdout"] = mia["nonmembers"]
    split_info = {
        "by": split_by,
        "fractions": fractions,
        "test_records_regex": spec.get("test_records_regex"),
        "split_block_s": spec.get("split_block_s") if split_by == "block" else None,
        "units": {pool: int(len(np.unique(unit_s[idx]))) for pool, idx in pools.items()},
        "windows": {pool: int(len(idx)) for pool, idx in pools.items()},
        "mia_nonmembers": "test split" if forced is None else
                          "holdout pool of the non-test records (the forced test split is another distribution)",
        "windows_dropped_at_block_edges": dropped_at_edges,
        "privacy_unit": "subject" if split_by == "subject" else f"{split_by} (single-subject data: "
                        "membership is per unit, not per person)",
    }

    preprocessing = {
        "signal_unit": sorted(signal_units),
        "source_fs_hz": sorted(source_rates),
        "channels_selected": _output_channel_names(spec, picked_names),
        "notch": {"freq_hz": spec.get("notch_hz"), "quality": NOTCH_QUALITY, "method": "iirnotch + filtfilt (zero phase)",
                  "applied_at_fs_hz": [r for r in sorted(source_rates) if sig.notch_applies(r, spec.get("notch_hz"))],
                  "skipped_at_fs_hz": [r for r in sorted(source_rates) if spec.get("notch_hz") is not None
                                       and not sig.notch_applies(r, spec.get("notch_hz"))]},
        "bandpass": None if spec.get("bandpass_hz") is None else {
            "band_hz": list(spec["bandpass_hz"]), "order": BANDPASS_ORDER,
            "method": "Butterworth SOS + sosfiltfilt (zero phase)"},
        "resample": {"from_hz": sorted(source_rates), "to_hz": fs_out_hz,
                     "factors_up_down": {str(r): list(sig.resample_factors(r, fs_out_hz)) for r in sorted(source_rates)},
                     "method": "scipy.signal.resample_poly (Kaiser-window FIR anti-aliasing)"},
        "window": ({"kind": "beat", "beat_window_s": list(spec["beat_window_s"]), "length_samples": length}
                   if reader == "wfdb_beats" else
                   {"kind": "record_crops" if reader == "physionet2017" else "fixed_in_segment",
                    "window_s": spec["window_s"], "stride_s": spec["stride_s"], "length_samples": length}),
        "rr_channel": None if not spec.get("rr_channel") else {
            "channel": "RR", "unit": "s", "detector": "neurokit2 ecg_clean + ecg_peaks (default method) on the "
            "unfiltered first picked lead at its own rate (its version: provenance.versions)",
            "trace": "interval ending at the latest beat, held until the next (0 with fewer than two beats)"},
        "label_map": dict(spec["label_map"]),
        "source_label_counts": source_labels,
        "windows_per_class": dict(zip(classes, np.bincount(labels, minlength=len(classes)).tolist(), strict=True)),
        "max_windows_per_class_per_subject": cap,
        "subject_subsample": subsample,
        "split": split_info,
        "pseudonyms": "sha256(project salt + dataset + raw id)[:8]; subject 'sub-', record 'rec-'",
        "n_subjects": len(subj_map),
        "n_records": len(rec_map),
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    config = {**copy.deepcopy(dict(spec)), "splits": dict(split_cfg), "seed": seed, "dataset": dataset}
    if data_root is not None:
        config["data_root"] = data_root
    all_inputs = list(dict.fromkeys(f for p in parts for f in p.inputs))
    prov = provenance(config=config, inputs=all_inputs, seed=seed)
    prov["inputs"] = _deidentified_inputs(parts, salt, prov["inputs"])
    return Windows(
        signals=signals_all,
        labels=labels,
        subject=subject,
        record=record,
        fs_hz=float(fs_out_hz),
        channel_names=preprocessing["channels_selected"],
        class_names=classes,
        modality=spec["modality"],
        preprocessing=preprocessing,
        splits=splits,
        mia=mia,
        provenance=prov,
        dataset=dataset,
        start=starts_all,
        spec=ingest_spec(spec),
    )


# the dataset settings that say how a recording becomes windows (stored with every model, so new
# recordings are preprocessed exactly like the training data: biospike.predict)
PREPROCESSING_KEYS = ("modality", "channels", "notch_hz", "bandpass_hz", "resample_hz", "window_s", "stride_s",
                      "beat_window_s", "rr_channel", "classes", "label_map", "reader", "expected_fs_hz")


def ingest_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The preprocessing part of a dataset's settings (no paths, no split settings)."""
    return {k: copy.deepcopy(spec.get(k)) for k in PREPROCESSING_KEYS}


# ------------------------------------------------------------------------------------ CLI


def cli(argv: list[str], prog: str = "biospike ingest") -> int:
    """``biospike ingest``: parse ``argv``, ingest one dataset into windows.h5; returns the exit code."""
    from biospike.cliutil import load_context, stage_parser
    from biospike.store import write_windows

    parser = stage_parser(prog, "read recordings, preprocess, window and split by subject -> windows.h5",
                          sections=("dataset", "splits", "data_root"))
    parser.add_argument("--output", required=True, help="results/{dataset}/windows.h5")
    args = parser.parse_args(argv)
    ctx = load_context(args)
    dataset = ctx.name("dataset")
    win = ingest_dataset(ctx["dataset"], dataset, ctx.root_seed(), ctx["splits"], data_root=ctx["data_root"],
                         threads=args.threads)
    write_windows(args.output, win)
    counts = win.preprocessing["windows_per_class"]
    sizes = {k: len(v) for k, v in win.splits.items()} | {"population": len(win.mia["population"])}
    print(f"{dataset}: {len(win.labels)} windows {tuple(win.signals.shape[1:])} at {win.fs_hz:g} Hz; "
          f"per class {counts}; split windows {sizes}; {win.preprocessing['wall_time_s']:.1f} s")
    return 0
