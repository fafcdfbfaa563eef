# Report: summary tables (JSON with a source for every number, Markdown, HTML) and one figure
# per kind and dataset, all marked for `snakemake --report results/report.html`.
# Targets: REPORT_TARGETS = {RESULTS}/summary.{json,md,html} + {RESULTS}/figures/{dataset}/{kind}.{png,svg}
#
# What the report must find is the *plan* (per dataset: encodings, trained targets, attacked
# targets, deployed target -> hardware, encodings with a T sweep), derived from the config of
# every stage by biospike.report.plan_from_config; a disabled stage has no rows or figures.
import biospike.report as _report

# the kind of each hardware profile (deploy_common.smk): an MCU profile's result sits under ann/deploy/
REPORT_PLAN_RAW = _report.plan_from_config(config, {h: hardware_kind(h) for h in config["deploy"]["targets"]})
REPORT_PLAN = _report.plan_from_params(REPORT_PLAN_RAW)
REPORT_FIG_DIR = f"{RESULTS}/figures"
REPORT_TARGETS = [str(p) for p in _report.report_outputs(REPORT_PLAN, RESULTS, REPORT_FIG_DIR)] if REPORT_PLAN else []
REPORT_PARAMS = rule_params("report", plan=REPORT_PLAN_RAW)
# figure kind -> (report category, numbered so the report lists stages in pipeline order; label)
REPORT_FIGURES = {
    "signals": ("2 Encoding", "signal and spike rasters"),
    "training": ("3 Training", "training curves"),
    "confusion": ("3 Training", "confusion matrices"),
    "privacy_utility": ("4 Privacy", "privacy-utility curve"),
    "roc": ("5 Membership inference", "attack ROC (log-log) with DP ceilings"),
    "attack_vs_T": ("5 Membership inference", "attack TPR and AUC vs time steps T"),
    "energy": ("6 Edge deployment", "energy per inference per target"),
    "latency_accuracy": ("6 Edge deployment", "latency-accuracy trade-off"),
}


rule report:
    input:
        [str(p) for p in _report.summary_inputs(REPORT_PLAN, RESULTS)],
    output:
        json=f"{RESULTS}/summary.json",
        md=report(f"{RESULTS}/summary.md", caption="../report/summary.rst", category="1 Summary",
                  labels={"table": "summary (Markdown)"}),
        html=report(f"{RESULTS}/summary.html", caption="../report/summary.rst", category="1 Summary",
                    labels={"table": "summary"}),
    params:
        cfg=REPORT_PARAMS,
        results=lambda w, output: str(Path(output.json).parent),
        code=code_version("report.py"),
    log:
        f"{RESULTS}/logs/report/summary.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "biospike report --params {params.cfg} --results {params.results} --output-json {output.json} "
        "--output-md {output.md} --output-html {output.html} > {log} 2>&1"


# One rule per figure kind (same shape), so each figure reruns only when its own inputs change.
for _kind, (_category, _label) in REPORT_FIGURES.items():

    rule:
        name:
            f"report_{_kind}"
        input:
            lambda w, kind=_kind: [str(p) for p in _report.figure_inputs(REPORT_PLAN, RESULTS, kind, w.dataset)],
        output:
            png=report(f"{REPORT_FIG_DIR}/{{dataset}}/{_kind}.png", caption=f"../report/{_kind}.rst",
                       category=_category, subcategory="{dataset}",
                       labels={"figure": _label}),
            svg=f"{REPORT_FIG_DIR}/{{dataset}}/{_kind}.svg",
        params:
            cfg=REPORT_PARAMS,
            kind=_kind,
            results=lambda w, output: str(Path(output.png).parents[2]),  # R/figures/{dataset}/x.png
            figdir=lambda w, output: str(Path(output.png).parents[1]),
            code=code_version("report.py", "figures.py"),
        log:
            f"{RESULTS}/logs/report/{{dataset}}/{_kind}.log",
        conda:
            "../envs/biospike.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        shell:
            "biospike report --params {params.cfg} --results {params.results} --figures {params.figdir} "
            "--only {params.kind} --dataset {wildcards.dataset} > {log} 2>&1"
