"""train.device: GPU resources of the torch rules (helper, dry run, SLURM mapping) and a clear
error from every torch CLI when CUDA is asked for but absent."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from biospike.cli import main
from biospike.config import load_yaml, validate_config
from biospike.store import Spikes, write_spikes
from tests.conftest import envelope

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "config" / "tiny.yaml"
# the rules that train or query torch models, and so ask for a GPU with train.device: cuda
TORCH_RULES = {"train_snn", "train_ann", "harden", "privacy_audit", "privacy_audit_nonprivate", "reference_shard", "attack",
               "t_sweep_target", "t_sweep_reference", "t_sweep_point"}
NO_CUDA = not torch.cuda.is_available()


def _tiny(device: str, **dataset_devices: str) -> dict:
    config = load_yaml(TINY)
    config["train"]["device"] = device
    for ds, dev in dataset_devices.items():
        config["datasets"][ds]["train"] = {**config["datasets"][ds].get("train", {}), "device": dev}
    return config


def _rule_helpers(config: dict) -> dict:
    """The helpers of common.smk, loaded as the Snakefile loads them (plain Python: no rules),
    against a validated config."""
    ns: dict = {"config": validate_config(config, TINY), "workflow": SimpleNamespace(basedir=str(REPO))}
    path = REPO / "workflow" / "rules" / "common.smk"
    exec(compile(path.read_text(), str(path), "exec"), ns)  # noqa: S102 -- our own workflow file
    return ns


def test_gpu_resources_follow_the_datasets_effective_device():
    ns = _rule_helpers(_tiny("cpu", demo_eeg="cuda"))
    assert ns["gpu_resources"]("demo_eeg") == 1  # the dataset's override wins
    assert ns["gpu_resources"]("demo_ecg") == 0
    env = json.loads(ns["stage_params"](("attack", "train"), "demo_eeg").strip("'"))
    assert env["settings"]["train"]["device"] == "cuda"  # the attack queries run on the dataset's device
    ns = _rule_helpers(_tiny("cuda", demo_ecg="cpu"))
    assert [ns["gpu_resources"](d) for d in ("demo_eeg", "demo_ecg", "demo_emg")] == [1, 0, 1]


def _dry_run_jobs(workdir: Path, config: dict) -> list[dict]:
    """(rule, dataset, gpu resource, shell command) of every job of a dry run."""
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--replace-workflow-config", "--dry-run", "--printshellcmds",
           "--cores", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=\[\w{3} )", proc.stdout):
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        if rule is None:
            continue
        resources = re.search(r"^    resources: (.*)$", block, re.M)
        gpu = re.search(r"\bgpu=(\d+)", resources.group(1)) if resources else None
        dataset = re.search(r"^    wildcards: .*\bdataset=([^,\s]+)", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        jobs.append({"rule": rule.group(1), "dataset": dataset.group(1) if dataset else None,
                     "gpu": int(gpu.group(1)) if gpu else None, "shell": shell.group(1) if shell else ""})
    return jobs


def test_dry_run_asks_for_a_gpu_on_the_torch_rules_of_cuda_datasets(tmp_path):
    jobs = _dry_run_jobs(tmp_path, _tiny("cuda", demo_ecg="cpu"))
    torch_jobs = [j for j in jobs if j["rule"] in TORCH_RULES]
    assert {j["rule"] for j in torch_jobs} >= {"train_snn", "train_ann", "harden", "reference_shard", "attack"}
    for job in torch_jobs:
        assert job["gpu"] == (0 if job["dataset"] == "demo_ecg" else 1), job
    others = [j for j in jobs if j["rule"] not in TORCH_RULES]
    assert {j["rule"] for j in others} >= {"ingest", "encode", "train_classical", "simulate"}
    assert all(not j["gpu"] for j in others), [j for j in others if j["gpu"]]
    # the model queries of the attack rule run on the dataset's device too
    for job in (j for j in torch_jobs if j["rule"] == "attack"):
        cuda = '"device": "cuda"' in job["shell"]
        assert cuda == (job["dataset"] != "demo_ecg"), job["shell"][:300]


def _slurm_utils():
    """The executor's utils.py on its own: importing the package queries SLURM for defaults
    (seconds against the local test cluster)."""
    import importlib.util

    spec = importlib.util.find_spec("snakemake_executor_plugin_slurm")
    if spec is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "utils.py"
    module_spec = importlib.util.spec_from_file_location("_slurm_executor_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_slurm_executor_submits_the_gpu_resource_as_gpus():
    slurm = _slurm_utils()

    class Resources(dict):
        __getattr__ = dict.__getitem__

    assert slurm.set_gres_string(SimpleNamespace(resources=Resources(gpu=1))).strip() == "--gpus=1"
    assert slurm.set_gres_string(SimpleNamespace(resources=Resources(gpu=0))).strip() == ""
    model = SimpleNamespace(resources=Resources(gpu=1, gpu_model="a100"))
    assert slurm.set_gres_string(model).strip() == "--gpus=a100:1"


# --------------------------------------------------------------------------------------------
# device cuda without CUDA: every torch CLI stops with one line naming the setting


@pytest.fixture(scope="module")
def spikes_path(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    n, steps, channels = 96, 10, 4
    y = rng.integers(0, 2, n)
    x = (rng.random((n, steps, channels)) < np.where(y[:, None, None] == 0, 0.3, 0.1)).astype(np.uint8)
    sid = np.arange(n) % 12
    splits = {"train": np.flatnonzero(sid < 6), "val": np.flatnonzero((sid >= 6) & (sid < 8)),
              "test": np.flatnonzero((sid >= 8) & (sid < 10))}
    mia = {"members": splits["train"], "nonmembers": splits["test"], "population": np.flatnonzero(sid >= 10)}
    path = tmp_path_factory.mktemp("device") / "ds" / "delta" / "spikes.h5"
    path.parent.mkdir(parents=True)
    write_spikes(path, Spikes(spikes=x, labels=y, subject=np.array([f"s{i:02d}" for i in sid]), dt_s=0.005,
                              channel_names=["a", "b", "c", "d"], class_names=["k0", "k1"],
                              encoder={"name": "delta", "fitted_on": "train"}, stats={}, splits=splits, mia=mia))
    return path


TRAIN = {"epochs": 1, "hidden": [4], "tau_mem_s": 0.01, "tau_syn_s": 0.01, "readout_tau_mem_s": 0.01,
         "readout_tau_syn_s": 0.01, "device": "cuda"}


def _argv(command: str, spikes: Path, out: Path) -> list[str]:
    names = {"seed": 1, "dataset": "ds", "encoding": "delta"}
    if command == "train":
        return ["train", "--params", envelope(**names, train=TRAIN), "--input", str(spikes), "--model", "snn",
                "--outdir", str(out / "snn"), "--no-progress"]
    if command == "harden":
        return ["harden", "--params", envelope(**names, train=TRAIN, privacy={"epochs": 1}), "--input", str(spikes),
                "--epsilon", "3", "--outdir", str(out / "dpsnn_eps3"), "--no-progress"]
    if command == "attack-train":
        return ["attack-train", "--params", envelope(**names, train=TRAIN, attack={"n_reference_models": 2}),
                "--spikes", str(spikes), "--kind", "snn", "--shard", "0", "--output", str(out / "shard0.pt")]
    return ["attack", "--params", envelope(**names, target="snn", train={"device": "cuda"}), "--target-model",
            str(out / "snn" / "model.pt"), "--spikes", str(spikes), "--refs", str(out / "shard0.pt"),
            "--outdir", str(out / "attack")]


@pytest.mark.skipif(not NO_CUDA, reason="CUDA is available here: the error path cannot be reached")
@pytest.mark.parametrize("command", ["train", "harden", "attack-train", "attack"])
def test_cuda_without_cuda_is_one_line_naming_the_setting(command, spikes_path, tmp_path, capsys):
    assert main(_argv(command, spikes_path, tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"biospike {command}: error:") and "train.device is 'cuda'" in err, err
    assert "CUDA is not available" in err and "set train.device: cpu" in err
    assert not any(tmp_path.rglob("model.pt")), "no output may be written"
