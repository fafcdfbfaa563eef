# Training: one rule per registered model kind (biospike.kinds), generated here, so a new kind
# needs no rule of its own. A kind reads spikes.h5 (+ windows.h5 to check them) or, like the
# classical baseline, the raw windows of windows.h5.
# Targets: {RESULTS}/{dataset}/{encoding}/{kind}/{checkpoint, metrics.json, curve.csv}


for _kind in MODEL_KINDS:

    rule:
        name:
            f"train_{_kind.name}"
        input:
            unpack(lambda w, kind=_kind: train_inputs(w, kind)),
        output:
            model=f"{RESULTS}/{{dataset}}/{{encoding}}/{_kind.name}/{_kind.checkpoint}",
            metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/{_kind.name}/metrics.json",
            curve=f"{RESULTS}/{{dataset}}/{{encoding}}/{_kind.name}/curve.csv",
            per_subject=f"{RESULTS}/{{dataset}}/{{encoding}}/{_kind.name}/per_subject.csv",
        params:
            cfg=lambda w, kind=_kind.name: stage_params(("train",), w.dataset, train_for=kind, encoding=w.encoding,
                                                        model=kind),
            io=lambda w, input: train_io(input),
            outdir=lambda w, output: str(Path(output.metrics).parent),
            kind=_kind.name,
            code=code_version("biospike.train", _kind.trainer.split(":")[0]),
        log:
            f"{RESULTS}/logs/train/{{dataset}}/{{encoding}}/{_kind.name}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
            gpu=lambda w, kind=_kind: gpu_resources(w.dataset) if kind.torch else 0,
        conda:
            "../envs/biospike.yaml"
        shell:
            "biospike train --params {params.cfg} {params.io} --model {params.kind} --outdir {params.outdir} "
            "--threads {threads} > {log} 2>&1"


# Variants of a kind made by a lever with its own train stage (biospike.kinds: e.g. "converged",
# conv{kind}_ep{N}; the query-time defenses, qdrop{kind}_p{p}, which start from the trained base
# kind): one rule per such lever, generated like the kinds' rules. (DP's variants have
# a rule of their own, harden in privacy.smk: it also writes privacy.json.)
for _lever in (lv for lv in LEVERS if lv.trainer):
    _kinds = [MODEL_KINDS[k] for k in _lever.applies_to]

    rule:
        name:
            f"train_{_lever.name}"
        input:
            unpack(lambda w, lever=_lever: lever_train_inputs(w, lever)),
        output:
            model=f"{RESULTS}/{{dataset}}/{{encoding}}/{_lever.prefix}{{kind}}_{_lever.key}{{value}}/{_kinds[0].checkpoint}",
            metrics=f"{RESULTS}/{{dataset}}/{{encoding}}/{_lever.prefix}{{kind}}_{_lever.key}{{value}}/metrics.json",
            curve=f"{RESULTS}/{{dataset}}/{{encoding}}/{_lever.prefix}{{kind}}_{_lever.key}{{value}}/curve.csv",
            per_subject=f"{RESULTS}/{{dataset}}/{{encoding}}/{_lever.prefix}{{kind}}_{_lever.key}{{value}}/per_subject.csv",
        wildcard_constraints:
            kind="|".join(_lever.applies_to),
            value=r"[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?",
        params:
            cfg=lambda w, lever=_lever: stage_params(("train", *lever.sections), w.dataset,
                                                     train_for=f"{lever.prefix}{w.kind}_{lever.key}{w.value}",
                                                     encoding=w.encoding, model=w.kind,
                                                     target=f"{lever.prefix}{w.kind}_{lever.key}{w.value}"),
            io=lambda w, input: train_io(input),
            outdir=lambda w, output: str(Path(output.metrics).parent),
            target=lambda w, lever=_lever: f"{lever.prefix}{w.kind}_{lever.key}{w.value}",
            code=code_version("biospike.train", _lever.trainer.split(":")[0]),
        log:
            f"{RESULTS}/logs/train/{{dataset}}/{{encoding}}/{_lever.prefix}{{kind}}_{_lever.key}{{value}}.log",
        threads: 1
        resources:
            mem_mb=2000,
            runtime=60,
            gpu=lambda w: gpu_resources(w.dataset),
        conda:
            "../envs/biospike.yaml"
        shell:
            "biospike train --params {params.cfg} {params.io} --model {params.target} --outdir {params.outdir} "
            "--threads {threads} > {log} 2>&1"
