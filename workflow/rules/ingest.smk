# Ingestion: real readers -> notch -> band-pass -> resample -> windows -> subject-wise splits.


def ingest_inputs(wildcards):
    """A dataset stored under demo.out_dir depends on the demo rule; others on nothing we make."""
    spec = dataset_spec(wildcards.dataset)
    demo_dir = Path(config["demo"]["out_dir"])
    path = Path(spec["path"])
    try:
        sub = path.relative_to(demo_dir)
    except ValueError:
        return []
    return [str(demo_dir / sub.parts[0])] if sub.parts else []


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
