# Differentially private training (docs/privacy.md): DP-SGD retraining of the snn at each target
# epsilon (targets dpsnn_eps{E}, named by biospike.targets), the one-run canary audit of each
# recipe, and the privacy-utility table. What exists per dataset comes from the plan.
# Targets: {RESULTS}/{dataset}/{encoding}/dpsnn_eps{E}/{model.pt,metrics.json,curve.csv,privacy.json}
#          {RESULTS}/{dataset}/{encoding}/dpsnn_eps{E}/audit.json, .../privacy_audit_nonprivate.json
#          {RESULTS}/{dataset}/{encoding}/privacy_utility.{csv,json}
import re

_PRIVACY_CODE = code_version("biospike.privacy.cli")
_EPSILONS = sorted({T.parse(t).value_text for dp in PLAN.values() for t in dp.dp_targets})


wildcard_constraints:
    eps="|".join(re.escape(e) for e in _EPSILONS) or "__none__",


rule harden:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/metrics.json",
        curve=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/curve.csv",
        per_subject=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/per_subject.csv",
        privacy=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/privacy.json",
    params:
        cfg=privacy_params,
        outdir=lambda w, output: str(Path(output.metrics).parent),
        code=_PRIVACY_CODE,
    log:
        f"{RESULTS}/logs/privacy/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=lambda w: gpu_resources(w.dataset),
    shell:
        "biospike harden --params {params.cfg} --input {input.spikes} --epsilon {wildcards.eps} "
        "--outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule privacy_audit:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/audit.json",
    params:
        cfg=privacy_params,
        code=_PRIVACY_CODE,
    log:
        f"{RESULTS}/logs/privacy/{{dataset}}/{{encoding}}/audit_eps{{eps}}.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=lambda w: gpu_resources(w.dataset),
    shell:
        "biospike harden --params {params.cfg} --input {input.spikes} --epsilon {wildcards.eps} "
        "--audit {output} --threads {threads} > {log} 2>&1"


rule privacy_audit_nonprivate:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/privacy_audit_nonprivate.json",
    params:
        cfg=privacy_params,
        code=_PRIVACY_CODE,
    log:
        f"{RESULTS}/logs/privacy/{{dataset}}/{{encoding}}/audit_nonprivate.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=lambda w: gpu_resources(w.dataset),
    shell:
        "biospike harden --params {params.cfg} --input {input.spikes} --epsilon none "
        "--audit {output} --threads {threads} > {log} 2>&1"


rule privacy_table:
    input:
        unpack(privacy_table_inputs),
    output:
        csv=f"{RESULTS}/{{dataset}}/{{encoding}}/privacy_utility.csv",
        json=f"{RESULTS}/{{dataset}}/{{encoding}}/privacy_utility.json",
    params:
        cfg=lambda w: stage_params(("privacy",), w.dataset, encoding=w.encoding),
        targets=lambda w: " ".join(f"{RESULTS}/{w.dataset}/{w.encoding}/{t}" for t in dataset_plan(w.dataset).dp_targets),
        nonprivate=lambda w: f"{RESULTS}/{w.dataset}/{w.encoding}/snn",
        audit=lambda w, input: f"--nonprivate-audit {input.nonprivate_audit}" if "nonprivate_audit" in input.keys() else "",
        code=_PRIVACY_CODE,
    log:
        f"{RESULTS}/logs/privacy/{{dataset}}/{{encoding}}/privacy_table.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "biospike privacy-table --params {params.cfg} --targets {params.targets} --nonprivate {params.nonprivate} "
        "{params.audit} --output {output.csv} > {log} 2>&1"
