# Report: summary tables (JSON with a source for every number, Markdown, HTML) and one figure
# per registered figure kind and dataset (biospike.report.FIGURES), all marked for
# `snakemake --report results/report.html`. What the report must find is the plan.
# Targets: REPORT_TARGETS = {RESULTS}/summary.{json,md,html} + {RESULTS}/figures/{dataset}/{kind}.{png,svg}
import biospike.report as _report

REPORT_FIG_DIR = f"{RESULTS}/figures"
REPORT_TARGETS = [str(p) for p in _report.report_outputs(PLAN, RESULTS, REPORT_FIG_DIR)] if PLAN else []
REPORT_PLAN = shlex.quote(json.dumps(P.plan_to_json(PLAN), sort_keys=True))
_REPORT_CODE = code_version("biospike.report", "biospike.figures")


rule report:
    input:
        [str(p) for p in _report.summary_inputs(PLAN, RESULTS)],
    output:
        json=f"{RESULTS}/summary.json",
        md=report(f"{RESULTS}/summary.md", caption="../report/summary.rst", category="1 Summary",
                  labels={"table": "summary (Markdown)"}),
        html=report(f"{RESULTS}/summary.html", caption="../report/summary.rst", category="1 Summary",
                    labels={"table": "summary"}),
    params:
        cfg=stage_params(("report",)),
        plan=REPORT_PLAN,
        results=lambda w, output: str(Path(output.json).parent),
        code=_REPORT_CODE,
    log:
        f"{RESULTS}/logs/report/summary.log",
    conda:
        "../envs/biospike.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "biospike report --params {params.cfg} --plan {params.plan} --results {params.results} "
        "--output-json {output.json} --output-md {output.md} --output-html {output.html} > {log} 2>&1"


# One rule per figure kind (same shape), so each figure reruns only when its own inputs change.
for _fig in _report.FIGURES:

    rule:
        name:
            f"report_{_fig.name}"
        input:
            lambda w, kind=_fig.name: [str(p) for p in _report.figure_inputs(PLAN, RESULTS, kind, w.dataset)],
        output:
            png=report(f"{REPORT_FIG_DIR}/{{dataset}}/{_fig.name}.png", caption=f"../report/{_fig.name}.rst",
                       category=_fig.category, subcategory="{dataset}", labels={"figure": _fig.label}),
            svg=f"{REPORT_FIG_DIR}/{{dataset}}/{_fig.name}.svg",
        params:
            cfg=stage_params(("report",)),
            plan=REPORT_PLAN,
            kind=_fig.name,
            results=lambda w, output: str(Path(output.png).parents[2]),  # R/figures/{dataset}/x.png
            figdir=lambda w, output: str(Path(output.png).parents[1]),
            code=_REPORT_CODE,
        log:
            f"{RESULTS}/logs/report/{{dataset}}/{_fig.name}.log",
        conda:
            "../envs/biospike.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        shell:
            "biospike report --params {params.cfg} --plan {params.plan} --results {params.results} "
            "--figures {params.figdir} --only {params.kind} --dataset {wildcards.dataset} > {log} 2>&1"
