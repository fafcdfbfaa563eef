# Helpers shared by all rules: paths, per-dataset settings, rule parameters, code versions.
import hashlib
import json
import shlex
from pathlib import Path

from biospike.config import deep_merge, privacy_params, stage_config

RESULTS = config["results_dir"]
DATASETS = list(config["datasets"])
SRC = Path(workflow.basedir) / "src" / "biospike"



def code_version(*modules):
    """Hash of the package source files a rule runs, so editing them reruns the rule
    (Snakemake does not see edits inside an imported package)."""
    digest = hashlib.sha256()
    for module in sorted(set(("store.py", "config.py", "cliutil.py", "errors.py") + modules)):
        for path in sorted((SRC / module).rglob("*.py")) if (SRC / module).is_dir() else [SRC / module]:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def rule_params(stage, dataset=None, **extra):
    """The JSON handed to `biospike <stage> --params` by each rule: the stage's effective settings for
    the dataset, the root seed, and anything extra; shell-quoted."""
    params = stage_config(config, stage, dataset) if stage else {}
    params = deep_merge(params, {"seed": config["seed"], **extra})
    return shlex.quote(json.dumps(params, sort_keys=True))


def train_device(dataset):
    """The torch device of the dataset's training, DP and attack jobs: train.device, the dataset's
    override included."""
    return stage_config(config, "train", dataset)["device"]


def gpu_resources(dataset):
    """GPUs one torch job of the dataset asks for (`resources: gpu=lambda w: gpu_resources(w.dataset)`):
    1 when its train.device is cuda, else 0. The SLURM executor turns gpu=N into `--gpus=N` (none
    for 0); locally an undeclared resource does not limit scheduling (`--resources gpu=1` would run
    one such job at a time). Resources are no rerun trigger: cpu runs keep their outputs."""
    return 1 if train_device(dataset) == "cuda" else 0


def dataset_spec(dataset):
    return config["datasets"][dataset]


def encodings_of(dataset):
    """The encodings configured for a dataset (encode.encodings, or the dataset's override)."""
    return stage_config(config, "encode", dataset)["encodings"]


def ingest_inputs(wildcards):
    """A dataset stored under demo.out_dir depends on the demo rule; others on nothing we make."""
    spec = dataset_spec(wildcards.dataset)
    demo_dir = Path(config["demo"]["out_dir"])
    path = Path(spec["path"])
    try:
        sub = path.relative_to(demo_dir)
    except ValueError:
        return []
    return [str(demo_dir / sub.parts[0])] if sub.parts else []


def all_targets():
    targets = []
    for ds in DATASETS:
        targets.append(f"{RESULTS}/{ds}/windows.h5")
        for enc in encodings_of(ds):
            targets.append(f"{RESULTS}/{ds}/{enc}/spikes.h5")
            for model in ("snn", "ann", "classical"):
                targets.append(f"{RESULTS}/{ds}/{enc}/{model}/metrics.json")
    targets += privacy_all_targets()
    targets += attack_all_targets()
    targets += deploy_targets(DATASETS)
    targets += REPORT_TARGETS
    return targets
