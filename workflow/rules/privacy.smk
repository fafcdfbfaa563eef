# Differential-privacy hardening (docs/privacy.md): DP-SGD retraining of the snn at each target
# epsilon, the one-run canary audit of each recipe, and the privacy-utility table.
# Targets: privacy_all_targets() below, i.e. per dataset and encoding
#   {RESULTS}/{dataset}/{encoding}/dpsnn_eps{E}/{model.pt,metrics.json,curve.csv,privacy.json}
#   {RESULTS}/{dataset}/{encoding}/dpsnn_eps{E}/audit.json            (privacy.audit.enabled)
#   {RESULTS}/{dataset}/{encoding}/privacy_audit_nonprivate.json       (privacy.audit.enabled)
#   {RESULTS}/{dataset}/{encoding}/privacy_utility.{csv,json}
import re

_PRIVACY_CODE = code_version("privacy", "train.py", "models", "progress.py")


include: "privacy_common.smk"


rule harden:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/metrics.json",
        curve=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/curve.csv",
        privacy=f"{RESULTS}/{{dataset}}/{{encoding}}/dpsnn_eps{{eps}}/privacy.json",
    wildcard_constraints:
        encoding="[^/]+",
        eps="|".join(re.escape(e) for e in _ALL_EPSILONS) or "__none__",
    params:
        cfg=lambda w: privacy_json(w),
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
    wildcard_constraints:
        encoding="[^/]+",
        eps="|".join(re.escape(e) for e in _ALL_EPSILONS) or "__none__",
    params:
        cfg=lambda w: privacy_json(w),
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
    wildcard_constraints:
        encoding="[^/]+",
    params:
        cfg=lambda w: privacy_json(w),
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
    wildcard_constraints:
        encoding="[^/]+",
    params:
        cfg=lambda w: privacy_json(w),
        targets=lambda w: " ".join(f"{RESULTS}/{w.dataset}/{w.encoding}/dpsnn_eps{e}" for e in privacy_epsilons(w.dataset)),
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
