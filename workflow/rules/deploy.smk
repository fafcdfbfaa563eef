# NIR export of trained spiking models and their simulation on edge-target profiles. Which model
# runs on which profile is the plan's (a kind's registered runs_on against a profile's kind).
# Targets: {RESULTS}/{dataset}/{encoding}/{target}/deploy/model.nir       (spiking targets)
#          {RESULTS}/{dataset}/{encoding}/{target}/deploy/{hardware}.json (plan: deployed)


rule export_nir:
    input:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/model.pt",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/deploy/model.nir",
    wildcard_constraints:
        target="[^/]+",
    params:
        cfg=lambda w: stage_params((), w.dataset, encoding=w.encoding, target=w.target),
        code=code_version("biospike.deploy.nir_export"),
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
        target="[^/]+",
        hardware="|".join(HARDWARE_KINDS) or "__none__",
    params:
        cfg=lambda w: stage_params(("deploy",), w.dataset, encoding=w.encoding, target=w.target),
        nir=lambda w, input: f"--nir {input.nir}" if "nir" in input.keys() else "",
        code=code_version("biospike.deploy.cli"),
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
