# External validation: every trained target of a dataset applied to other recording sets
# (datasets.<name>.external) with its own preprocessing and encoder (biospike predict).
# Targets: {RESULTS}/{dataset}/{encoding}/{target}/external/{set}/{metrics.json, predictions.csv,
#          predictions.h5, recordings.csv}


rule predict:
    input:
        model=lambda w: f"{RESULTS}/{w.dataset}/{w.encoding}/{w.target}/{T.parse(w.target).checkpoint}",
    output:
        metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/external/{{set}}/metrics.json",
        csv=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/external/{{set}}/predictions.csv",
        h5=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/external/{{set}}/predictions.h5",
        recordings=f"{RESULTS}/{{dataset}}/{{encoding}}/{{target}}/external/{{set}}/recordings.csv",
    wildcard_constraints:
        target="[^/]+",
        set="[^/]+",
    params:
        recordings=external_recordings,
        outdir=lambda w, output: str(Path(output.metrics).parent),
        data_root=f"--data-root {config['data_root']}" if config["data_root"] else "",
        code=code_version("biospike.predict", "biospike.classical"),
    log:
        f"{RESULTS}/logs/predict/{{dataset}}/{{encoding}}/{{target}}/{{set}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike predict --model {input.model} --recordings {params.recordings} --name {wildcards.set} "
        "{params.data_root} --outdir {params.outdir} --threads {threads} > {log} 2>&1"
