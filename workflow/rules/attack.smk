# Membership-inference attacks (docs/attacks.md): K reference models per dataset/encoding/kind
# (one job each), then LOSS / LiRA / RMIA (+ input-dropout queries) on every attacked target; the
# time-step sweep retrains and attacks the non-private SNN at each T of attack.t_sweep.
# Targets: attack_all_targets() (attack_common.smk), i.e.
#   {RESULTS}/{dataset}/{encoding}/{target}/attack/summary.json  for target in attack_target_names(dataset)
#   {RESULTS}/{dataset}/{encoding}/t_sweep.json                   when attack.t_sweep is not empty
# Helper functions live in attack_common.smk (Snakemake's lint: no functions beside rules).
from biospike.attacks.mia import attack_names as _attack_names

ATTACK = config["attack"]
_ATTACK_CODE = code_version("attacks", "train.py", "models", "progress.py")
_REF_CODE = code_version("attacks/references.py", "attacks/mia.py", "attacks/settings.py", "train.py", "models", "progress.py")


include: "attack_common.smk"


_SWEEP_CFG = {**ATTACK, "input_dropout": {**ATTACK["input_dropout"], "enabled": False}}
_SWEEP_NAMES = _attack_names(_SWEEP_CFG, ATTACK["t_sweep_attacks"])


rule reference_model:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/refs/{{kind}}/{{k}}/model.pt",
        keep=f"{RESULTS}/{{dataset}}/{{encoding}}/refs/{{kind}}/{{k}}/keep.npy",
    wildcard_constraints:
        encoding="[^/]+",
        kind="snn|ann",
        k=r"\d+",
    params:
        cfg=lambda w: attack_ref_params(w),
        outdir=lambda w, output: str(Path(output.model).parent),
        code=_REF_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/ref_{{kind}}_{{k}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-train --params {params.cfg} --spikes {input.spikes} --kind {wildcards.kind} "
        "--role reference --index {wildcards.k} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule attack:
    input:
        unpack(attack_inputs),
    output:
        summary=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/attack/summary.json",
        roc=attack_roc_outputs(_attack_names(ATTACK)),
    wildcard_constraints:
        encoding="[^/]+",
        target=r"snn|ann|dpsnn_eps[0-9.]+",
    params:
        cfg=lambda w: attack_json(ATTACK, dataset=w.dataset, encoding=w.encoding, target=w.target,
                                  **attack_device(w.dataset)),
        refs=lambda w, input: " ".join(str(Path(p).parent) for p in input.refs),
        privacy=lambda w: f"--privacy {RESULTS}/{w.dataset}/{w.encoding}/{w.target}/privacy.json"
        if w.target.startswith("dpsnn") else "",
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
        "--refs {params.refs} {params.privacy} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


# --- time-step sweep (non-private SNN) -------------------------------------------------------


rule t_sweep_target:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/model.pt",
    wildcard_constraints:
        encoding="[^/]+",
        T=r"\d+",
    params:
        cfg=lambda w: attack_ref_params(w, sweep=True),
        outdir=lambda w, output: str(Path(output.model).parent),
        code=_REF_CODE,
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
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/refs/snn/{{k}}/model.pt",
        keep=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/refs/snn/{{k}}/keep.npy",
    wildcard_constraints:
        encoding="[^/]+",
        T=r"\d+",
        k=r"\d+",
    params:
        cfg=lambda w: attack_ref_params(w, sweep=True),
        outdir=lambda w, output: str(Path(output.model).parent),
        code=_REF_CODE,
    log:
        f"{RESULTS}/logs/attack/{{dataset}}/{{encoding}}/t_sweep_T{{T}}_ref{{k}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike attack-train --params {params.cfg} --spikes {input.spikes} --kind snn --role reference "
        "--index {wildcards.k} --time-steps {wildcards.T} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule t_sweep_point:
    input:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/model.pt",
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
        refs=lambda w: [f"{RESULTS}/{w.dataset}/{w.encoding}/t_sweep/T{w.T}/refs/snn/{k}/model.pt"
                        for k in range(ATTACK["t_sweep_reference_models"])],
    output:
        summary=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/attack/summary.json",
        roc=[f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep/T{{T}}/snn/attack/{n}_{lvl}_roc.csv"
             for n in _SWEEP_NAMES for lvl in ATTACK["levels"]],
    wildcard_constraints:
        encoding="[^/]+",
        T=r"\d+",
    params:
        cfg=lambda w: attack_json({**_SWEEP_CFG, "attacks": ATTACK["t_sweep_attacks"]},
                                  dataset=w.dataset, encoding=w.encoding, target=f"snn_T{w.T}",
                                  **attack_device(w.dataset)),
        refs=lambda w, input: " ".join(str(Path(p).parent) for p in input.refs),
        outdir=lambda w, output: str(Path(output.summary).parent),
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
        "--refs {params.refs} --time-steps {wildcards.T} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule t_sweep:
    input:
        lambda w: [f"{RESULTS}/{w.dataset}/{w.encoding}/t_sweep/T{T}/snn/attack/summary.json" for T in ATTACK["t_sweep"]],
    output:
        json=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep.json",
        csv=f"{RESULTS}/{{dataset}}/{{encoding}}/t_sweep.csv",
    wildcard_constraints:
        encoding="[^/]+",
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
