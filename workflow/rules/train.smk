# Training: SNN (norse dynamics, fused kernels) and its same-size ANN on spikes.h5; the classical
# baseline (logistic regression on RMS + band power of the raw windows) beside them.
# Targets: {RESULTS}/{dataset}/{encoding}/{snn,ann,classical}/metrics.json (+ model.pt | model.joblib, curve.csv)


rule train_model:
    input:
        spikes=f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
        windows=f"{RESULTS}/{{dataset}}/windows.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/{{model}}/model.pt",
        metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/{{model}}/metrics.json",
        curve=f"{RESULTS}/{{dataset}}/{{encoding}}/{{model}}/curve.csv",
    wildcard_constraints:
        model="snn|ann",
        encoding="[^/]+",
    params:
        cfg=lambda w: rule_params("train", w.dataset, model=w.model, encoding=w.encoding),
        outdir=lambda w, output: str(Path(output.metrics).parent),
        code=code_version("train.py", "models", "classical.py", "progress.py"),
    log:
        f"{RESULTS}/logs/train/{{dataset}}/{{encoding}}/{{model}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=lambda w: gpu_resources(w.dataset),
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike train --params {params.cfg} --input {input.spikes} --windows {input.windows} "
        "--model {wildcards.model} --outdir {params.outdir} --threads {threads} > {log} 2>&1"


rule train_classical:
    input:
        windows=f"{RESULTS}/{{dataset}}/windows.h5",
    output:
        model=f"{RESULTS}/{{dataset}}/{{encoding}}/classical/model.joblib",
        metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/classical/metrics.json",
        curve=f"{RESULTS}/{{dataset}}/{{encoding}}/classical/curve.csv",
    wildcard_constraints:
        encoding="[^/]+",
    params:
        cfg=lambda w: rule_params("train", w.dataset, model="classical", encoding=w.encoding),
        outdir=lambda w, output: str(Path(output.metrics).parent),
        code=code_version("train.py", "classical.py"),
    log:
        f"{RESULTS}/logs/train/{{dataset}}/{{encoding}}/classical.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike train --params {params.cfg} --windows {input.windows} "
        "--model classical --outdir {params.outdir} --threads {threads} > {log} 2>&1"
