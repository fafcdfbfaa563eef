# NIR export of trained spiking models and their simulation on edge-target profiles.
# Targets: {RESULTS}/{dataset}/{encoding}/{target}/deploy/model.nir
#          {RESULTS}/{dataset}/{encoding}/{target}/deploy/{hardware}.json  for hardware in deploy.targets
# An "mcu" profile (cortex_m4) simulates the same-size ANN ({encoding}/ann/model.pt) beside the SNN.
include: "deploy_common.smk"


rule export_nir:
    input:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/model.pt",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/deploy/model.nir",
    wildcard_constraints:
        encoding="[^/]+",
        target="[^/]+",
    params:
        cfg=deploy_params,
        code=code_version("deploy"),
    log:
        f"{RESULTS}/logs/deploy/{{dataset}}/{{encoding}}/{{target}}/export.log",
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike export --params {params.cfg} --model {input.model} --output {output} > {log} 2>&1"


rule simulate:
    input:
        unpack(simulate_inputs),
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/deploy/{{hardware}}.json",
    wildcard_constraints:
        encoding="[^/]+",
        target="[^/]+",
        hardware="|".join(config["deploy"]["targets"]) if config["deploy"]["targets"] else "__none__",
    params:
        cfg=deploy_params,
        nir=lambda w, input: f"--nir {input.nir}" if "nir" in input.keys() else "",
        code=code_version("deploy", "models"),
    log:
        f"{RESULTS}/logs/deploy/{{dataset}}/{{encoding}}/{{target}}/{{hardware}}.log",
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike simulate --params {params.cfg} --model {input.model} {params.nir} --spikes {input.spikes} "
        "--hardware {input.hardware} --output {output} --threads {threads} > {log} 2>&1"
