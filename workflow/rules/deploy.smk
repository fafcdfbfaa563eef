# NIR export of trained spiking models and their simulation on edge-target profiles.
# Targets: {RESULTS}/{dataset}/{encoding}/{target}/deploy/model.nir      for target in deploy.models
#          {RESULTS}/{dataset}/{encoding}/{target}/deploy/{hardware}.json  for spiking hardware in deploy.targets
#          {RESULTS}/{dataset}/{encoding}/ann/deploy/{hardware}.json       for an "mcu" profile (cortex_m4): the
#          same-size ANN baseline beside the deployed SNNs. Every JSON sits under the model it costs.
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
