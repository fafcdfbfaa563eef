"""NinaPro-style ``.mat`` files (scipy.io): ``emg`` (samples x channels), per-sample labels in
``restimulus`` (preferred: relabelled movement boundaries) or ``stimulus``, and ``subject``.

The files do not reliably store the rate, so it comes from the config (``expected_fs_hz``:
2000 Hz for DB2, 100 Hz for the RMS-smoothed DB1); a ``frequency`` key, when present, is checked
against it by ingestion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.io import Recording, describe

__all__ = ["LABEL_KEYS", "read"]

LABEL_KEYS = ("restimulus", "stimulus")


def read(path: Path, spec: dict[str, Any]) -> Recording:
    """One NinaPro ``.mat`` file as a :class:`Recording`: ``emg`` as stored, per-sample labels from
    ``restimulus`` (else ``stimulus``), the rate from the file's ``frequency`` or
    ``spec["expected_fs_hz"]``, the subject from ``subject`` when the file has it."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as exc:
        raise BiospikeError(f"not a readable .mat file ({describe(exc)})", path) from None
    if "emg" not in mat:
        raise BiospikeError(f"no 'emg' variable (found: {sorted(k for k in mat if not k.startswith('__'))})", path)
    emg = np.asarray(mat["emg"], dtype=np.float64)
    if emg.ndim != 2:
        raise BiospikeError(f"'emg' must be samples x channels, got shape {emg.shape}", path)
    label_key = next((k for k in LABEL_KEYS if k in mat), None)
    if label_key is None:
        raise BiospikeError("no per-sample labels ('restimulus' or 'stimulus')", path)
    labels = np.asarray(mat[label_key]).reshape(-1)
    if labels.shape[0] != emg.shape[0]:
        raise BiospikeError(f"'{label_key}' has {labels.shape[0]} samples, 'emg' has {emg.shape[0]}", path)
    if "frequency" in mat:
        fs_hz = float(np.asarray(mat["frequency"]).reshape(-1)[0])
    else:
        expected = spec.get("expected_fs_hz")
        if not expected:
            raise BiospikeError("the file stores no rate: set expected_fs_hz in the dataset config", path)
        fs_hz = float(expected[0] if isinstance(expected, list) else expected)
    subject = None
    if "subject" in mat:
        subject = str(np.asarray(mat["subject"]).reshape(-1)[0]).strip()
    return Recording(
        signal=emg.T,
        fs_hz=fs_hz,
        channel_names=[f"emg{i + 1}" for i in range(emg.shape[1])],
        record=path.stem,
        path=path,
        unit="as stored (V for DB2 Delsys; a.u. for DB1 Otto Bock RMS)",
        subject_raw=subject or None,
        sample_labels=np.round(labels.astype(np.float64)).astype(np.int64),
        meta={"label_key": label_key},
    )
