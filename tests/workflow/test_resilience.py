"""A run killed during training and restarted with --rerun-incomplete ends with correct outputs;
no half-written file is ever left where a finished output belongs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.workflow.helpers import compare_result_trees, run_snakemake, snakemake_cmd

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

TARGET = "results/demo_emg/delta/snn/metrics.json"


def test_sigterm_during_training_then_rerun_incomplete(tiny_run, tmp_path):
    local_dir, _ = tiny_run
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(snakemake_cmd(tmp_path, "--cores", "2", TARGET), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    train_log = tmp_path / "results/logs/train/demo_emg/delta/snn.log"
    deadline = time.monotonic() + 900
    while not train_log.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "snakemake ended before training started:\n" + proc.stdout.read()[-3000:]
    time.sleep(1.5)  # inside the training job
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    out_dir = tmp_path / "results/demo_emg/delta/snn"
    # Whatever was killed, no output may exist in a half-written state: metrics.json is either
    # absent or complete JSON, and no temporary file masquerades as an output.
    assert not (out_dir / "metrics.json").exists() or (out_dir / "metrics.json").read_text().strip().endswith("}")
    run_snakemake(tmp_path, "--cores", "2", "--rerun-incomplete", TARGET)
    assert (out_dir / "metrics.json").is_file() and (out_dir / "model.pt").is_file()
    leftovers = [p for p in (tmp_path / "results").rglob(".*.tmp")]
    assert leftovers == []
    assert compare_result_trees(local_dir / "results", tmp_path / "results", b_is_subset=True) == []


def test_failing_job_names_rule_input_and_cause(tmp_path, repo):
    """A corrupt input makes the ingest job fail with the rule, the file and the problem."""
    run_snakemake(tmp_path, "--cores", "1", "data/demo/eeg")
    edf = sorted((tmp_path / "data/demo/eeg").glob("*.edf"))[0]
    edf.write_bytes(edf.read_bytes()[:1000])  # truncated EDF
    proc = run_snakemake(tmp_path, "--cores", "1", "results/demo_eeg/windows.h5", check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "rule ingest" in log.lower() or "error in rule ingest" in log.lower()
    ingest_log = (tmp_path / "results/logs/ingest/demo_eeg.log").read_text()
    assert edf.name in ingest_log and "error" in ingest_log.lower()
    assert not (tmp_path / "results/demo_eeg/windows.h5").exists()
