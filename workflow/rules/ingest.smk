# Ingestion: real readers -> notch -> band-pass -> resample -> windows -> subject-wise splits.


rule ingest:
    input:
        ingest_inputs,
    output:
        f"{RESULTS}/{{dataset}}/windows.h5",
    params:
        cfg=lambda w: shlex.quote(json.dumps({**dataset_spec(w.dataset), "splits": config["splits"], "seed": config["seed"], "dataset": w.dataset, "data_root": config["data_root"]}, sort_keys=True)),
        code=code_version("ingest.py", "io", "signals.py"),
    log:
        f"{RESULTS}/logs/ingest/{{dataset}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike ingest --params {params.cfg} --output {output} > {log} 2>&1"
