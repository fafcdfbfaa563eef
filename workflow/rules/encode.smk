# Spike encoding: windows.h5 -> spikes.h5 per encoding (delta | population | rate).
# Targets: {RESULTS}/{dataset}/{encoding}/spikes.h5 for encoding in the dataset's encode.encodings.


wildcard_constraints:
    encoding="delta|population|rate",


def encodings_of(dataset):
    """The encodings configured for a dataset (global encode.encodings, or its override)."""
    return stage_config(config, "encode", dataset).get("encodings", ["delta", "population"])


rule encode:
    input:
        f"{RESULTS}/{{dataset}}/windows.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    params:
        cfg=lambda w: rule_params("encode", w.dataset),
        code=code_version("encode"),
    log:
        f"{RESULTS}/logs/encode/{{dataset}}/{{encoding}}.log",
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    shell:
        "biospike encode --params {params.cfg} --input {input} --output {output} "
        "--encoding {wildcards.encoding} --threads {threads} > {log} 2>&1"
