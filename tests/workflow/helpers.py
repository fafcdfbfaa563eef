"""Run the workflow on the tiny config in a scratch directory and compare result trees."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from biospike.store import strip_volatile

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "tiny.yaml"

# Wall and CPU time of every workflow run of the session, printed by conftest's terminal summary
# (issue 9: CPU utilisation with --cores 2). CPU time is that of snakemake and the jobs it forks;
# jobs SLURM runs are not our children, so a cluster run shows its wall time only.
RUN_TIMES: list[dict] = []


def snakemake_cmd(workdir: Path, *extra: str, configfile: Path = TINY) -> list[str]:
    return [
        str(Path(sys.executable).with_name("snakemake")),
        "-s", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(configfile),
        "--replace-workflow-config",  # otherwise the file is merged into config/config.yaml
        *extra,
    ]


def run_snakemake(workdir: Path, *extra: str, timeout_s: float = 1800, check: bool = True,
                  configfile: Path = TINY) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_s = time.perf_counter()
    proc = subprocess.run(snakemake_cmd(workdir, *extra, configfile=configfile), capture_output=True,
                          text=True, timeout=timeout_s, env=env)
    wall_s = time.perf_counter() - start_s
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    RUN_TIMES.append({"config": configfile.name, "args": " ".join(extra), "wall_s": wall_s, "cpu_s": cpu_s,
                      "returncode": proc.returncode})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def _json_comparable(path: Path):
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        data.pop("provenance", None)
    return strip_volatile(data)


def _csv_comparable(path: Path) -> list[list[str]]:
    """Rows without wall-clock columns (any header naming 'wall' or 'time_s')."""
    import csv

    rows = list(csv.reader(path.read_text().splitlines()))
    if not rows:
        return rows
    keep = [i for i, name in enumerate(rows[0]) if "wall" not in name and not name.endswith("time_s")]
    return [[row[i] for i in keep if i < len(row)] for row in rows]


def _h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as fh:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                arrays[name] = obj[()]
        fh.visititems(visit)
    return arrays


def compare_result_trees(a: Path, b: Path, suffixes=(".json", ".h5", ".csv"), b_is_subset: bool = False) -> list[str]:
    """Differences between two results/ trees (timestamps, wall times and provenance aside).
    With ``b_is_subset`` only the files ``b`` has are compared (a partial second run)."""
    diffs = []
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.suffix in suffixes and "logs" not in p.parts and "bench" not in p.parts}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.suffix in suffixes and "logs" not in p.parts and "bench" not in p.parts}
    if b_is_subset:
        files_a &= files_b
    if files_a != files_b:
        diffs.append(f"file sets differ: only in A {sorted(map(str, files_a - files_b))[:5]}, only in B {sorted(map(str, files_b - files_a))[:5]}")
    for rel in sorted(files_a & files_b):
        pa, pb = a / rel, b / rel
        if rel.suffix == ".json":
            if _json_comparable(pa) != _json_comparable(pb):
                diffs.append(f"{rel}: JSON differs")
        elif rel.suffix == ".h5":
            xa, xb = _h5_arrays(pa), _h5_arrays(pb)
            if xa.keys() != xb.keys() or any(not np.array_equal(xa[k], xb[k]) for k in xa):
                diffs.append(f"{rel}: HDF5 datasets differ")
        elif rel.suffix == ".csv" and _csv_comparable(pa) != _csv_comparable(pb):
            diffs.append(f"{rel}: CSV differs")
    return diffs


def fresh_workdir(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp / "results", ignore_errors=True)
    return tmp
