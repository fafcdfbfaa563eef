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
from biospike.attacks.references import n_reference_models
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
_STAGE_OVERRIDES = ("train", "encode", "privacy", "attack", "defense", "external")


_PLAN_KEYS = P.plan_keys()


def section(name, dataset=None):
    """A config section as the stage sees it: the dataset's override merged in, the plan's keys
    left out (biospike.plan.plan_keys()); ``dataset`` is the dataset's own ingestion settings."""
    if name == "dataset":
        return {k: v for k, v in config["datasets"][dataset].items() if k not in _STAGE_OVERRIDES}
    if isinstance(config.get(name), dict):
        settings = stage_config(config, name, dataset)
        return {k: v for k, v in settings.items() if k not in _PLAN_KEYS.get(name, ())}
    return config.get(name)


# train sub-sections that only some kinds or levers read (biospike.kinds: train_keys): a job gets
# them only when its target (train_for) is one of those, so tuning them reruns no other job
_OWNED_TRAIN_KEYS = {k for kind in MODEL_KINDS for k in kind.train_keys} | {k for lv in LEVERS for k in lv.train_keys}


def stage_params(sections, dataset=None, only=None, train_for=None, **names):
    """The shell-quoted envelope of one job: ``sections`` (with ``only`` = {section: keys} keeping
    just the keys that change the job's result, so tuning another key reruns nothing), names, seed.
    The train section keeps the sub-sections owned by a kind or lever only for the target
    ``train_for`` that owns them."""
    settings = {s: section(s, dataset) for s in sections}
    if "train" in settings:
        own = set(T.parse(train_for).train_keys) if train_for else set()
        settings["train"] = {k: v for k, v in settings["train"].items() if k not in _OWNED_TRAIN_KEYS or k in own}
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


# --- ingest rules' inputs and parameters (ingest.smk) ---


def ingest_threads(wildcards):
    """Worker processes for reading: one per ~50 files (a pool costs more than it saves on a
    handful), at most 4; Snakemake caps it at --cores. Results do not depend on it."""
    return max(1, min(4, FILES_MATCHED.get(wildcards.dataset, 0) // 50))


# --- train rules' inputs and parameters (train.smk) ---


def train_inputs(w, kind):
    inputs = {"windows": f"{RESULTS}/{w.dataset}/windows.h5"}
    if kind.input == "spikes":
        inputs["spikes"] = f"{RESULTS}/{w.dataset}/{w.encoding}/spikes.h5"
    for base in kind.from_kinds:  # trained models it starts from (the converted SNN: the ANN)
        inputs[f"from_{base}"] = f"{RESULTS}/{w.dataset}/{w.encoding}/{base}/{MODEL_KINDS[base].checkpoint}"
    return inputs


def lever_train_inputs(w, lever):
    """A lever variant's inputs: its kind's, and the trained base model for a query-time defense."""
    inputs = train_inputs(w, MODEL_KINDS[w.kind])
    if lever.stage == "query":
        inputs[f"from_{w.kind}"] = f"{RESULTS}/{w.dataset}/{w.encoding}/{w.kind}/{MODEL_KINDS[w.kind].checkpoint}"
    return inputs


def train_io(input):
    """The command's input options: --input for spikes, --windows for windows, --from per trained
    model a kind starts from."""
    opts = f"--windows {input.windows}"
    opts += "".join(f" --from {key[len('from_'):]}={path}" for key, path in input.items() if key.startswith("from_"))
    return f"--input {input.spikes} {opts}" if "spikes" in input.keys() else opts


# --- privacy rules' inputs and parameters (privacy.smk) ---


def privacy_params(w):
    return stage_params(("privacy", "train"), w.dataset, encoding=w.encoding)


def privacy_table_inputs(w):
    dp = dataset_plan(w.dataset)
    base = f"{RESULTS}/{w.dataset}/{w.encoding}"
    inputs = {"nonprivate": f"{base}/snn/metrics.json"}
    for t in dp.dp_targets:
        inputs[f"metrics_{t}"] = f"{base}/{t}/metrics.json"
        inputs[f"privacy_{t}"] = f"{base}/{t}/privacy.json"
        if dp.audit:
            inputs[f"audit_{t}"] = f"{base}/{t}/audit.json"
    if dp.audit:
        inputs["nonprivate_audit"] = f"{base}/privacy_audit_nonprivate.json"
    return inputs


# --- attack rules' inputs and parameters (attack.smk) ---


def attack_roc_outputs(names):
    return [f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/attack/{n}_{lvl}_roc.csv"
            for n in names for lvl in ATTACK["levels"]]


def n_shards(dataset, group=None):
    """Shard files of a reference group (None: the T sweep's): ceil(K / attack.reference_shard_size)."""
    att = section("attack", dataset)
    n_models = att["t_sweep_reference_models"] if group is None else n_reference_models(att, group)
    return -(-int(n_models) // int(att["reference_shard_size"]))


def attack_ref_files(w, which=0):
    """The reference shards of the target's ``which``-th group: 0 = the threat model's (trained
    like the target), 1 = the comparison group (e.g. non-private references of a DP target)."""
    dp = dataset_plan(w.dataset)
    groups = dp.references[w.target]
    if which >= len(groups):
        return []
    return [f"{RESULTS}/{w.dataset}/{w.encoding}/refs/{groups[which]}/shard{s}.pt"
            for s in range(n_shards(w.dataset, groups[which]))]


def reference_code(group):
    """The attack CLI's code plus the code of the recipe that trains the group (its kind's or
    lever's registered fit function)."""
    target = T.parse(group)
    fit = target.lever.fit if target.lever else target.kind.fit
    return code_version("biospike.attacks.cli", fit.split(":")[0]) if fit else _ATTACK_CODE


def reference_sections(group):
    """The config sections a reference group's recipe reads (train, and its lever's)."""
    target = T.parse(group)
    return ("attack", "train", *(target.lever.sections if target.lever else ()))


def attack_inputs(w):
    target = T.parse(w.target)
    inputs = {
        "model": f"{RESULTS}/{w.dataset}/{w.encoding}/{w.target}/{target.checkpoint}",
        "spikes": f"{RESULTS}/{w.dataset}/{w.encoding}/spikes.h5",
        "refs": attack_ref_files(w),
        "compare_refs": attack_ref_files(w, 1),
    }
    if T.dp_epsilon(w.target) is not None:
        inputs["privacy"] = f"{RESULTS}/{w.dataset}/{w.encoding}/{w.target}/privacy.json"
    return inputs


# --- deploy rules' inputs and parameters (deploy.smk) ---


def simulate_inputs(w):
    """A neuromorphic profile simulates the NIR export of {target}; an MCU profile runs the
    checkpoint (the same-size ANN baseline)."""
    base = f"{RESULTS}/{w.dataset}/{w.encoding}"
    inputs = {
        "spikes": f"{base}/spikes.h5",
        "hardware": str(HARDWARE_DIR / f"{w.hardware}.yaml"),
        "model": f"{base}/{w.target}/{T.parse(w.target).checkpoint}",
    }
    if HARDWARE_KINDS[w.hardware] != "mcu" and not T.parse(w.target).nir_refusal(section("train", w.dataset)):
        inputs["nir"] = f"{base}/{w.target}/deploy/model.nir"
    return inputs


# --- predict rules' inputs and parameters (predict.smk) ---


def external_recordings(w):
    """The recording set's settings, shell-quoted JSON (everything but the target list)."""
    spec = config["datasets"][w.dataset]["external"][w.set]
    return shlex.quote(json.dumps({k: v for k, v in spec.items() if k != "targets"}, sort_keys=True))
