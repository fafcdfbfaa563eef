# Spike encoding: windows.h5 -> spikes.h5 per encoding (delta | population | rate).
# Targets: {RESULTS}/{dataset}/{encoding}/spikes.h5 for every encoding in
# stage_config(config, "encode", dataset)["encodings"] (the global list or the dataset's override).


wildcard_constraints:
    encoding="delta|population|rate",


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
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike encode --params {params.cfg} --input {input} --output {output} "
        "--encoding {wildcards.encoding} --threads {threads} > {log} 2>&1"
