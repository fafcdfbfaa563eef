# Spike encoding: windows.h5 -> spikes.h5 per registered encoding (biospike.encode.stage.ENCODINGS).
# Targets: {RESULTS}/{dataset}/{encoding}/spikes.h5 for every encoding the plan lists for the dataset.
from biospike.encode.stage import ENCODINGS as _ENCODINGS


wildcard_constraints:
    encoding="|".join(_ENCODINGS.names()),


rule encode:
    input:
        f"{RESULTS}/{{dataset}}/windows.h5",
    output:
        f"{RESULTS}/{{dataset}}/{{encoding}}/spikes.h5",
    params:
        cfg=lambda w: stage_params(("encode",), w.dataset),
        code=code_version("biospike.encode.cli"),
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
