# Helpers shared by all rules: the plan, the stage envelope, code versions, devices.
#
# What gets built is the plan (biospike.plan.build_plan): the default target, every input function
# and the report read it. Every rule hands its command one envelope {settings, names, seed}
# (biospike.cliutil) with the config sections the stage reads; a rule's code version is the hash
# of the modules its command actually imports (biospike.codeversion).
import json
import shlex
from pathlib import Path

from biospike import plan as P
from biospike import targets as T
from biospike.cliutil import envelope
from biospike.codeversion import code_version
from biospike.config import stage_config
from biospike.kinds import LEVERS, MODEL_KINDS

RESULTS = config["results_dir"]
DATASETS = list(config["datasets"])
HARDWARE_DIR = Path(workflow.basedir) / "config" / "hardware"
HARDWARE_KINDS = P.hardware_kinds(config["deploy"]["targets"], HARDWARE_DIR)
PLAN = P.build_plan(config, kinds=HARDWARE_KINDS)
# the dataset keys that override stage sections (not ingestion settings)
_STAGE_OVERRIDES = ("train", "encode", "privacy", "attack", "external")


def section(name, dataset=None):
    """A config section as the stage sees it: the dataset's override merged in, the plan's keys
    left out (biospike.plan.PLAN_KEYS); ``dataset`` is the dataset's own ingestion settings."""
    if name == "dataset":
        return {k: v for k, v in config["datasets"][dataset].items() if k not in _STAGE_OVERRIDES}
    if isinstance(config.get(name), dict):
        settings = stage_config(config, name, dataset)
        return {k: v for k, v in settings.items() if k not in P.PLAN_KEYS.get(name, ())}
    return config.get(name)


def stage_params(sections, dataset=None, only=None, **names):
    """The shell-quoted envelope of one job: ``sections`` (with ``only`` = {section: keys} keeping
    just the keys that change the job's result, so tuning another key reruns nothing), names, seed."""
    settings = {s: section(s, dataset) for s in sections}
    for s, keys in (only or {}).items():
        settings[s] = {k: settings[s][k] for k in keys}
    return shlex.quote(json.dumps(envelope(settings, {"dataset": dataset, **names}, config["seed"]), sort_keys=True))


def train_device(dataset):
    """The torch device of the dataset's training, DP and attack jobs (train.device, with overrides)."""
    return stage_config(config, "train", dataset)["device"]


def gpu_resources(dataset):
    """GPUs one torch job of the dataset asks for (`resources: gpu=lambda w: gpu_resources(w.dataset)`):
    1 when its train.device is cuda, else 0. The SLURM executor turns gpu=N into `--gpus=N` (none
    for 0); locally an undeclared resource does not limit scheduling (`--resources gpu=1` would run
    one such job at a time). Resources are no rerun trigger: cpu runs keep their outputs."""
    return 1 if train_device(dataset) == "cuda" else 0


def ingest_inputs(wildcards):
    """A dataset stored under demo.out_dir depends on the demo rule; others on nothing we make."""
    demo_dir = Path(config["demo"]["out_dir"])
    path = Path(config["datasets"][wildcards.dataset]["path"])
    try:
        sub = path.relative_to(demo_dir)
    except ValueError:
        return []
    return [str(demo_dir / sub.parts[0])] if sub.parts else []


def dataset_plan(dataset):
    return PLAN[dataset]


def all_targets():
    return P.outputs(PLAN, RESULTS) + REPORT_TARGETS
