# Membership-inference attacks (docs/attacks.md): K reference models per dataset, encoding and
# reference group (one job each; a group is the target whose recipe trains them, biospike.targets),
# then LOSS / LiRA / RMIA (+ input-dropout queries) on every attacked target of the plan; the
# time-step sweep retrains and attacks the non-private SNN at each T of attack.t_sweep.
# Targets: {RESULTS}/{dataset}/{encoding}/{target}/attack/summary.json  (plan: attacked targets)
#          {RESULTS}/{dataset}/{encoding}/t_sweep.json                   (plan: t_sweep encodings)
import re

from biospike.attacks.mia import attack_names as _attack_names

ATTACK = config["attack"]
_ATTACK_CODE = code_version("biospike.attacks.cli")
_SWEEP_CODE = code_version("biospike.attacks.cli", "biospike.train")  # the sweep retrains the snn
# reference_shard_size is: any sharding gives the same K models, but shard{s}.pt holds other members
_REF_KEYS = ("n_reference_models", "reference_models_by_group", "reference_early_stopping", "reference_unit",
             "reference_shard_size")
_SWEEP_KEYS = ("t_sweep_reference_models", "reference_early_stopping", "reference_unit", "reference_shard_size")
_SWEEP_CFG = {**ATTACK, "input_dropout": {**ATTACK["input_dropout"], "enabled": False}}
_SWEEP_NAMES = _attack_names(_SWEEP_CFG, ATTACK["t_sweep_attacks"])
_GROUPS = sorted({g for dp in PLAN.values() for g in dp.reference_groups}) or ["__none__"]
_ATTACKED = sorted({t for dp in PLAN.values() for t in dp.attacked}) or ["__none__"]


rule reference_shard:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/refs/{{group}}/shard{{s}}.pt",
    wildcard_constraints:
        group="|".join(re.escape(g) for g in _GROUPS),
        s=r"\d+",
    params:
        cfg=lambda w: stage_params(reference_sections(w.group), w.dataset, only={"attack": _REF_KEYS}, train_for=w.group,
                                   encoding=w.encoding),
        code=lambda w: reference_code(w.group),
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/ref_{{group}}_shard{{s}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-train --params {params.cfg} --spikes {input.spikes} --kind {wildcards.group} "
        "--role reference --shard {wildcards.s} --output {output} --threads {threads} > {log} 2>&1"


rule attack:
    input:
        unpack(attack_inputs),
    output:
        summary=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/attack/summary.json",
        roc=attack_roc_outputs(_attack_names(ATTACK)),
    wildcard_constraints:
        target="|".join(_ATTACKED),
    params:
        cfg=lambda w: stage_params(("attack", "train"), w.dataset, encoding=w.encoding, target=w.target),
        refs=lambda w: " ".join(attack_ref_files(w)),
        compare=lambda w: f"--compare-refs {' '.join(attack_ref_files(w, 1))}" if attack_ref_files(w, 1) else "",
        privacy=lambda w, input: f"--privacy {input.privacy}" if "privacy" in input.keys() else "",
        outdir=lambda w, output: str(Path(output.summary).parent),
        code=_ATTACK_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/{{target}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack --params {params.cfg} --target-model {input.model} --spikes {input.spikes} "
        "--refs {params.refs} {params.compare} {params.privacy} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


# --- time-step sweep (non-private SNN) -------------------------------------------------------


rule t_sweep_target:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/model.pt",
    wildcard_constraints:
        T=r"\d+",
    params:
        cfg=lambda w: stage_params(("attack", "train"), w.dataset, only={"attack": _SWEEP_KEYS}, encoding=w.encoding),
        outdir=lambda w, output: str(Path(output.model).parent),
        code=_SWEEP_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/t_sweep_T{{T}}_target.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-train --params {params.cfg} --spikes {input.spikes} --kind snn --role target "
        "--time-steps {wildcards.T} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule t_sweep_reference:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/refs/snn/shard{{s}}.pt",
    wildcard_constraints:
        T=r"\d+",
        s=r"\d+",
    params:
        cfg=lambda w: stage_params(("attack", "train"), w.dataset, only={"attack": _SWEEP_KEYS}, encoding=w.encoding),
        code=_SWEEP_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/t_sweep_T{{T}}_ref_shard{{s}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-train --params {params.cfg} --spikes {input.spikes} --kind snn --role reference "
        "--shard {wildcards.s} --time-steps {wildcards.T} --output {output} --threads {threads} > {log} 2>&1"


rule t_sweep_point:
    input:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/model.pt",
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
        refs=lambda w: [f"{RESULTS}/{w.dataset}/{w.encoding}/t_sweep/T{w.T}/refs/snn/shard{s}.pt"
                        for s in range(n_shards(w.dataset))],
    output:
        summary=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/attack/summary.json",
        roc=[f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/attack/{n}_{lvl}_roc.csv"
             for n in _SWEEP_NAMES for lvl in ATTACK["levels"]],
    wildcard_constraints:
        T=r"\d+",
    params:
        cfg=lambda w: stage_params(("attack", "train"), w.dataset, encoding=w.encoding, target=f"snn_T{w.T}"),
        refs=lambda w, input: " ".join(input.refs),
        outdir=lambda w, output: str(Path(output.summary).parent),
        families=" ".join(ATTACK["t_sweep_attacks"]),
        code=_ATTACK_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/t_sweep_T{{T}}_attack.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack --params {params.cfg} --target-model {input.model} --spikes {input.spikes} "
        "--refs {params.refs} --time-steps {wildcards.T} --families {params.families} --no-input-dropout "
        "--outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule t_sweep:
    input:
        lambda w: [f"{RESULTS}/{w.dataset}/{w.encoding}/t_sweep/T{T}/snn/attack/summary.json"
                   for T in stage_config(config, "attack", w.dataset)["t_sweep"]],
    output:
        json=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep.json",
        csv=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep.csv",
    params:
        code=_ATTACK_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/t_sweep.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-sweep --summaries {input} --output {output.json} --csv {output.csv} > {log} 2>&1"
