# Ingestion: real readers -> notch -> band-pass -> resample -> windows -> subject-wise splits.


rule ingest:
    input:
        ingest_inputs,
    output:
        f"{RESULTS}/{{dataset}}/windows.h5",
    params:
        cfg=lambda w: stage_params(("dataset", "splits", "data_root"), w.dataset),
        code=code_version("biospike.ingest"),
    log:
        f"{RESULTS}/logs/ingest/{{dataset}}.log",
    threads: ingest_threads
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike ingest --params {params.cfg} --output {output} --threads {threads} > {log} 2>&1"
