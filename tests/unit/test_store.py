import json

import numpy as np
import pytest

from biospike.errors import BiospikeError
from biospike.store import (
    SCHEMA_VERSION,
    Spikes,
    Windows,
    atomic_path,
    provenance,
    read_json,
    read_spikes,
    read_windows,
    strip_volatile,
    write_json,
    write_spikes,
    write_windows,
)


def _windows(n=6, c=2, length=5):
    rng = np.random.default_rng(0)
    return Windows(
        signals=rng.normal(size=(n, c, length)).astype(np.float32),
        labels=np.arange(n) % 2,
        subject=np.array([f"sub-{i // 2}" for i in range(n)]),
        record=np.array([f"rec{i}" for i in range(n)]),
        fs_hz=100.0,
        channel_names=["C3", "C4"][:c],
        class_names=["left", "right"],
        modality="eeg",
        preprocessing={"notch_hz": 50},
        splits={"train": np.array([0, 1]), "val": np.array([2, 3]), "test": np.array([4, 5])},
        mia={"members": np.array([0, 1]), "nonmembers": np.array([4, 5]), "population": np.array([], dtype=int)},
        provenance={"seed": 1},
    )


def test_windows_round_trip(tmp_path):
    win = _windows()
    write_windows(tmp_path / "w.h5", win)
    back = read_windows(tmp_path / "w.h5")
    np.testing.assert_array_equal(back.signals, win.signals)
    np.testing.assert_array_equal(back.labels, win.labels)
    assert list(back.subject) == list(win.subject)
    assert back.channel_names == ["C3", "C4"] and back.class_names == ["left", "right"]
    assert back.fs_hz == 100.0 and back.modality == "eeg"
    np.testing.assert_array_equal(back.splits["test"], [4, 5])
    assert back.mia["population"].size == 0
    assert back.provenance == {"seed": 1}


def test_windows_shape_checked():
    with pytest.raises(ValueError, match="one entry per window"):
        Windows(**{**_windows().__dict__, "subject": np.array(["a"])})


def test_spikes_round_trip(tmp_path):
    spikes = (np.random.default_rng(1).random((4, 7, 3)) < 0.3).astype(np.uint8)
    sp = Spikes(spikes=spikes, labels=np.array([0, 1, 0, 1]), subject=np.array(list("aabb")), dt_s=0.004,
                channel_names=["a+", "a-", "b+"], class_names=["x", "y"], encoder={"name": "delta"},
                stats={"sparsity": 0.7}, splits={"train": np.array([0, 1])})
    write_spikes(tmp_path / "s.h5", sp)
    back = read_spikes(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.spikes, spikes)
    assert back.dt_s == 0.004 and back.encoder == {"name": "delta"}
    np.testing.assert_array_equal(back.splits["train"], [0, 1])


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_json_round_trip_numpy(tmp_path):
    write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(3)})
    assert read_json(tmp_path / "a.json") == {"x": 1.5, "y": [0, 1, 2], "schema_version": SCHEMA_VERSION}


def test_read_json_errors_name_file(tmp_path):
    with pytest.raises(BiospikeError, match="file not found"):
        read_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(BiospikeError, match=r"bad\.json: not valid JSON"):
        read_json(bad)


def test_read_windows_rejects_non_hdf5(tmp_path):
    bad = tmp_path / "w.h5"
    bad.write_text("not hdf5")
    with pytest.raises(BiospikeError, match="not a readable HDF5"):
        read_windows(bad)


def test_provenance_hashes_inputs_and_strip_volatile(tmp_path):
    f = tmp_path / "in.bin"
    f.write_bytes(b"abc")
    prov = provenance({"k": 1}, [f], seed=3)
    assert prov["inputs"][str(f)] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert prov["seed"] == 3 and prov["versions"]["torch"]
    stripped = strip_volatile({"a": [prov]})
    assert "created_utc" not in json.dumps(stripped)


def test_atomic_outputs_get_umask_permissions(tmp_path):
    import os
    import stat

    write_json(tmp_path / "p.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "p.json").stat().st_mode) == 0o666 & ~umask
