"""``biospike predict``: a trained model applied to new recordings (external validation).

Any trained target (SNN, DP-SNN, ANN, classical, or a kind added later) stores how its training
windows were made: the preprocessing settings, window rate and length, input channels and, for
networks on spikes, the fitted encoder (``source`` and ``encoder`` in its checkpoint). New
recordings, in any supported format, go through the same readers and exactly that preprocessing
and encoding - nothing is refitted on them - and the model's logits become per-window and
per-recording predictions: ``predictions.csv`` (people), ``predictions.h5`` (programs),
``recordings.csv`` and, when the recordings carry labels the model's classes cover, ``metrics.json``
with the definitions of every ``metrics.json`` (:func:`biospike.metrics.evaluate`).

Refused with one clear error naming the file: channels whose names or count differ from training,
a rate that cannot be resampled to the model's (its Nyquist frequency below the model's band
edge), recordings shorter than one model window.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["RECORDING_KEYS", "Predictions", "TrainedModel", "cli", "load_trained", "predict_recordings", "predict_stage",
           "recording_spec", "recording_table"]

# settings of the new recordings (the rest comes from the model)
RECORDING_KEYS = ("reader", "path", "pattern", "subject_regex", "label_map", "expected_fs_hz")


@dataclasses.dataclass
class TrainedModel:
    """A model with everything needed to treat new recordings like its training data."""

    name: str
    kind: str  # network ("snn", "ann") or "classical"
    source: dict  # biospike.encode.stage.window_source of its training windows
    encoder: dict | None  # the spike encoder's fitted record (None: a model on raw windows)
    class_names: list[str]
    network: Any = None
    pipeline: Any = None  # the classical model's payload
    path: Path | None = None

    def logits(self, signals: np.ndarray, spikes: np.ndarray | None) -> np.ndarray:
        """Logits (N, n_classes): the network's on ``spikes`` (N, T, C'), or the classical
        pipeline's on features of the raw windows ``signals`` (N, C, L)."""
        if self.network is not None:
            from biospike.models import predict_logits

            return predict_logits(self.network, spikes)
        from biospike.classical import class_logits, features

        return class_logits(self.pipeline["pipeline"], features(signals, self.pipeline["fs_hz"], self.pipeline["n_bands"]),
                            len(self.class_names))


def load_trained(path: str | Path) -> TrainedModel:
    """A ``model.pt`` (networks) or ``model.joblib`` (classical) written by the workflow."""
    path = Path(path)
    if path.suffix == ".joblib":
        import joblib

        try:
            payload = joblib.load(path)
        except (OSError, EOFError, KeyError, ValueError) as exc:
            raise BiospikeError(f"not a readable classical model ({exc})", path) from None
        if "source" not in payload:
            raise BiospikeError("this model was trained before models recorded their preprocessing: retrain it", path)
        return TrainedModel(name=payload.get("model", "classical"), kind="classical", source=payload["source"],
                            encoder=None, class_names=list(payload["class_names"]), pipeline=payload, path=path)
    from biospike.defenses import load_defended

    # a model with a query-time defense answers through it, with secret randomness as deployed
    network, meta = load_defended(path, seed=None)
    if not meta.get("source") or not meta.get("encoder"):
        raise BiospikeError("this model was trained before models recorded their preprocessing and encoder: "
                            "retrain it", path)
    return TrainedModel(name=str(meta.get("model", network.arch.kind)), kind=str(network.arch.kind),
                        source=meta["source"], encoder=meta["encoder"], class_names=list(meta["class_names"]),
                        network=network, path=path)


def recording_spec(model: TrainedModel, recordings: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset settings for the new recordings: where they are and how they are labelled from
    ``recordings``; everything that shapes a window from the model."""
    from biospike.config import section_settings

    ingest = dict(model.source["ingest"])
    unknown = sorted(set(recordings) - set(RECORDING_KEYS))
    if unknown:
        raise BiospikeError(f"recording settings {unknown} are fixed by the model; give only {list(RECORDING_KEYS)}")
    spec = {**ingest, **{k: v for k, v in recordings.items() if v is not None}}
    # the model's exact input channels (without the derived RR channel), at the model's rate
    spec["channels"] = [c for c in model.source["channel_names"] if not (ingest.get("rr_channel") and c == "RR")]
    spec["resample_hz"] = float(model.source["fs_hz"])
    spec["classes"] = list(model.class_names)
    spec["label_map"] = recordings.get("label_map") or ingest.get("label_map") or {}
    # another site's recorder may run at another rate: resampled to the model's, checked per file
    spec["expected_fs_hz"] = recordings.get("expected_fs_hz")
    return section_settings("dataset", spec, where="recordings")


def _check_recording(rec: Any, band_hz: float, n_samples: int, fs_out_hz: float) -> None:
    """Refuse what cannot become one of the model's windows (runs in the reader's process)."""
    if rec.fs_hz / 2 < band_hz * (1 - 1e-9):
        raise BiospikeError(f"sampled at {rec.fs_hz:g} Hz: its Nyquist frequency {rec.fs_hz / 2:g} Hz is below the "
                            f"model's band edge {band_hz:g} Hz, so it cannot be resampled to the model's "
                            f"{fs_out_hz:g} Hz without inventing the band the model listens to", rec.path)
    if rec.n_samples * fs_out_hz / rec.fs_hz < n_samples:
        raise BiospikeError(f"{rec.n_samples / rec.fs_hz:.2f} s long, shorter than the model's "
                            f"{n_samples / fs_out_hz:.2f} s window", rec.path)


@dataclasses.dataclass
class Predictions:
    """Per-window logits of new recordings with their labels, pseudonymous subject and record ids,
    start times (s) and file names."""

    logits: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,) class index, -1 unlabelled
    subject: np.ndarray
    record: np.ndarray
    start_s: np.ndarray
    files: np.ndarray
    class_names: list[str]

    @property
    def probabilities(self) -> np.ndarray:
        """Softmax of the logits, (N, K); each row sums to 1."""
        z = self.logits - self.logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask (N,) of the windows that carry a label."""
        return self.labels >= 0


def predict_recordings(model: TrainedModel, recordings: Mapping[str, Any], name: str = "external",
                       data_root: str | None = None, labelled: bool | None = None, threads: int = 1,
                       progress: bool = True) -> Predictions:
    """Read, preprocess, window, encode and classify new recordings with ``model``.

    ``recordings``: ``path``, ``pattern``, ``subject_regex``, optionally ``reader`` (default: the
    model's), ``label_map`` (default: the model's) and ``expected_fs_hz``. ``labelled`` None reads
    labels when the label map finds any and windows whole recordings otherwise. Subject and record
    ids are pseudonyms salted with ``name``, as ingestion makes them.
    """
    from biospike import ingest
    from biospike import signals as sig
    from biospike.encode.stage import apply_encoder

    spec = recording_spec(model, recordings)
    root = ingest.resolve_path(spec["path"], data_root)
    files = ingest.find_files(root, spec["pattern"])
    src = model.source
    check = functools.partial(_check_recording, band_hz=float(src["band_hz"]), n_samples=int(src["n_samples"]),
                              fs_out_hz=float(src["fs_hz"]))
    classes = list(model.class_names)
    lookup = {str(k): classes.index(v) for k, v in spec["label_map"].items() if v is not None and v in classes}
    if labelled is False:
        lookup = None
    try:
        parts = ingest.read_all(files, spec, root, lookup, None, threads=threads, progress=progress, check=check)[0]
    except BiospikeError as exc:
        if labelled is None and lookup is not None and "label" in exc.problem:
            parts = []
        else:
            raise
    if labelled is None and lookup is not None and sum(len(p.labels) for p in parts) == 0:
        parts = ingest.read_all(files, spec, root, None, None, threads=threads, progress=progress, check=check)[0]
    parts = [p for p in parts if len(p.labels)]
    if not parts:
        raise BiospikeError(f"no window of the model's {src['n_samples'] / src['fs_hz']:.2f} s fits in any recording", root)
    signals = np.concatenate([p.signals for p in parts])
    if signals.shape[1] != len(src["channel_names"]) or signals.shape[2] != int(src["n_samples"]):
        raise BiospikeError(f"windows of {signals.shape[1]} channels x {signals.shape[2]} samples, the model takes "
                            f"{len(src['channel_names'])} x {src['n_samples']}", root)
    salt = sig.dataset_salt(name)
    subject = np.concatenate([np.full(len(p.labels), sig.hash_subject(p.subject_raw, salt), dtype=object) for p in parts])
    record = np.concatenate([np.full(len(p.labels), sig.hash_id(p.record_key, salt, "rec"), dtype=object) for p in parts])
    files_col = np.concatenate([np.full(len(p.labels), p.file_key, dtype=object) for p in parts])
    start_s = np.concatenate([p.starts for p in parts]) / float(src["fs_hz"])
    labels = np.concatenate([p.labels for p in parts]).astype(np.int64)
    spikes = None if model.encoder is None else apply_encoder(signals, model.encoder)
    return Predictions(logits=model.logits(signals, spikes), labels=labels, subject=subject, record=record,
                       start_s=start_s, files=files_col, class_names=classes)


def recording_table(pred: Predictions) -> list[dict[str, Any]]:
    """Per recording: windows, mean class probabilities, predicted class, its most frequent label
    and the fraction of labelled windows carrying it (1 for record-label data such as AF)."""
    probs = pred.probabilities
    rows = []
    for rec in dict.fromkeys(pred.record):
        sel = pred.record == rec
        mean = probs[sel].mean(axis=0)
        lab = pred.labels[sel]
        lab = lab[lab >= 0]
        counts = np.bincount(lab) if len(lab) else np.zeros(1, dtype=int)
        true = pred.class_names[int(counts.argmax())] if len(lab) else ""
        rows.append({"record": rec, "subject": pred.subject[sel][0], "n_windows": int(sel.sum()),
                     "predicted": pred.class_names[int(mean.argmax())], "label": true,
                     "label_agreement": float(counts.max() / len(lab)) if len(lab) else float("nan"),
                     **{f"p_{c}": float(m) for c, m in zip(pred.class_names, mean, strict=True)}})
    return rows


def predict_stage(model_path: str | Path, recordings: Mapping[str, Any], outdir: str | Path, name: str,
                  data_root: str | None = None, keep_file_names: bool = False, threads: int = 1,
                  progress: bool = True) -> dict[str, Any]:
    """Predict and write ``predictions.csv``, ``predictions.h5``, ``recordings.csv`` and, with
    labels, ``metrics.json`` into ``outdir``. File names (which may carry patient ids) are written
    only with ``keep_file_names``."""
    import csv

    import h5py

    from biospike.metrics import evaluate, finite
    from biospike.store import SCHEMA_VERSION, atomic_path, provenance, write_json

    start = time.perf_counter()
    outdir = Path(outdir)
    model = load_trained(model_path)
    pred = predict_recordings(model, recordings, name=name, data_root=data_root, threads=threads, progress=progress)
    probs = pred.probabilities
    outdir.mkdir(parents=True, exist_ok=True)
    with atomic_path(outdir / "predictions.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["window", "record", "subject", *(["file"] if keep_file_names else []), "start_s", "predicted", "label",
                    *[f"p_{c}" for c in pred.class_names]])
        for i in range(len(pred.labels)):
            w.writerow([i, pred.record[i], pred.subject[i], *([pred.files[i]] if keep_file_names else []),
                        f"{pred.start_s[i]:.4f}", pred.class_names[int(probs[i].argmax())],
                        pred.class_names[pred.labels[i]] if pred.labels[i] >= 0 else "",
                        *[f"{p:.6g}" for p in probs[i]]])
    rows = recording_table(pred)
    with atomic_path(outdir / "recordings.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
    with atomic_path(outdir / "predictions.h5") as tmp, h5py.File(tmp, "w") as fh:
        fh.create_dataset("logits", data=pred.logits.astype(np.float32))
        fh.create_dataset("probabilities", data=probs.astype(np.float32))
        fh.create_dataset("labels", data=pred.labels)
        fh.create_dataset("start_s", data=pred.start_s)
        for key in ("record", "subject"):
            fh.create_dataset(key, data=np.asarray(getattr(pred, key), dtype=object), dtype=h5py.string_dtype())
        fh.attrs["class_names"] = list(pred.class_names)
        fh.attrs["model"] = model.name
        fh.attrs["schema_version"] = SCHEMA_VERSION
    out: dict[str, Any] = {"model": model.name, "model_file": str(model_path), "name": name,
                           "class_names": pred.class_names, "n_windows": int(len(pred.labels)),
                           "n_recordings": len(rows), "n_subjects": int(len(set(pred.subject)))}
    labelled = pred.labelled
    if labelled.any():
        out["windows"] = evaluate(pred.logits[labelled], pred.labels[labelled], pred.subject[labelled], pred.class_names)
        rec_rows = [r for r in rows if r["label"]]
        # a recording-level score only where a recording has one label (e.g. an AF record); a
        # recording of several gestures has no single truth to score its mean prediction against
        if all(r["label_agreement"] == 1.0 for r in rec_rows):
            out["recordings"] = evaluate(np.array([pred.class_names.index(r["predicted"]) for r in rec_rows]),
                                         np.array([pred.class_names.index(r["label"]) for r in rec_rows]),
                                         np.array([r["subject"] for r in rec_rows]), pred.class_names)
        out["labelled_windows"] = int(labelled.sum())
    out["source"] = model.source  # the training run's preprocessing, channels and rate, applied here
    out["provenance"] = provenance({"recordings": dict(recordings), "name": name}, inputs=[model_path], seed=None)
    out["wall_time_s"] = time.perf_counter() - start
    write_json(outdir / "metrics.json", finite(out))
    return out


def cli(argv: list[str], prog: str = "biospike predict") -> int:
    """``biospike predict``: parse ``argv``, run :func:`predict_stage` and print a one-line summary;
    returns the exit code."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description="Apply a trained model to new recordings (external validation).")
    parser.add_argument("--model", required=True, help="model.pt or model.joblib of a trained target")
    parser.add_argument("--recordings", required=True,
                        help="where the new recordings are: a folder, or JSON/YAML settings "
                             f"({', '.join(RECORDING_KEYS)}); '@file.yaml' reads them from a file")
    parser.add_argument("--pattern", help="file pattern inside the folder (default: the model's dataset pattern or *)")
    parser.add_argument("--subject-regex", help="regex whose group 1 is the subject id (default ^([^._-]+))")
    parser.add_argument("--reader", help="file format reader (default: the model's)")
    parser.add_argument("--name", default="external", help="name of this recording set (salts the pseudonyms)")
    parser.add_argument("--data-root", help="replaces {data_root} in the path")
    parser.add_argument("--outdir", required=True, help="folder for predictions.csv/.h5, recordings.csv, metrics.json")
    parser.add_argument("--keep-file-names", action="store_true", help="also write each window's file name")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    text = args.recordings
    if text.startswith("@") or text.lstrip().startswith("{"):
        from biospike.cliutil import load_params

        recordings = load_params(text)
    else:
        recordings = {"path": text}
    for key, value in (("pattern", args.pattern), ("subject_regex", args.subject_regex), ("reader", args.reader)):
        if value:
            recordings[key] = value
    out = predict_stage(args.model, recordings, args.outdir, args.name, data_root=args.data_root,
                        keep_file_names=args.keep_file_names, threads=args.threads)
    summary = (f"; balanced accuracy {out['windows']['balanced_accuracy']:.3f} over {out['labelled_windows']} labelled windows"
               if "windows" in out else "; no labels")
    print(f"{prog}: {out['n_windows']} windows of {out['n_recordings']} recordings{summary} -> {args.outdir}")
    return 0
