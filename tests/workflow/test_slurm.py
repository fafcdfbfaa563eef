"""The tiny workflow on a real one-node SLURM cluster gives the same outputs as a local run."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tests.workflow.helpers import REPO, compare_result_trees, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slurm, pytest.mark.slow]

START_SCRIPT = REPO.parent / "shared" / "slurm" / "start-local-slurm.sh"


@pytest.fixture(scope="session")
def slurm_cluster():
    """Start (or reuse) the local cluster; CI runs as root, so there it must come up."""
    if shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        return
    if os.geteuid() != 0 or not START_SCRIPT.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must be able to start the local SLURM cluster (root + ../shared/slurm)")
        pytest.skip("needs root and ../shared/slurm to start a local SLURM cluster")
    proc = subprocess.run(["bash", str(START_SCRIPT)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0:
        # A cluster started afresh restores its saved state, jobs of a previous life included (their
        # processes are gone); they hold the node ("alloc"), so the script never sees it idle.
        subprocess.run(["scancel", "--state=RUNNING"], capture_output=True)
        subprocess.run(["scancel", "--state=PENDING"], capture_output=True)
        for _ in range(60):
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True).stdout
            if "idle" in state:
                return
            time.sleep(1)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_slurm_run_equals_local_run(slurm_cluster, tiny_run, tmp_path):
    local_dir, _ = tiny_run
    proc = run_snakemake(tmp_path, "--workflow-profile", str(REPO / "profiles" / "slurm"))
    log = proc.stdout + proc.stderr
    assert "sbatch" in log.lower() or "slurm" in log.lower(), "jobs did not go through SLURM"
    diffs = compare_result_trees(local_dir / "results", tmp_path / "results")
    assert diffs == []
