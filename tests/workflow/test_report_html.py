"""The report of the tiny workflow: `snakemake --report` embeds every figure the config implies,
and every number of summary.json equals the per-stage file it names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.workflow.helpers import TINY, run_snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _embedded_results(html: str) -> dict:
    """The report's `var results = {path: {mime_type, data_uri, caption, ...}}` object."""
    marker = "var results = {"
    start = html.index(marker) + len(marker) - 1
    results, _ = json.JSONDecoder().raw_decode(html, start)
    return results


def _tiny_config() -> dict:
    from biospike.config import load_yaml, validate_config

    return validate_config(load_yaml(TINY))


def _expected_plan():
    from biospike.plan import build_plan
    from tests.workflow.helpers import REPO

    return build_plan(_tiny_config(), REPO / "config" / "hardware")


@pytest.fixture(scope="module")
def report_html(tiny_run) -> tuple[Path, dict]:
    workdir, _ = tiny_run
    run_snakemake(workdir, "--report", "results/report.html")
    html = (workdir / "results" / "report.html").read_text(encoding="utf-8")
    return workdir, _embedded_results(html)


def test_report_embeds_every_figure_and_the_summary(report_html):
    from biospike.report import figure_kinds, report_outputs

    workdir, embedded = report_html
    plan = _expected_plan()
    assert plan, "the tiny config implies no report (no encodings?)"
    # each stage the tiny config switches on has its figures
    cfg = _tiny_config()
    wanted = {"signals", "training", "confusion"}
    wanted |= {"privacy_utility"} if cfg["privacy"]["enabled"] and cfg["privacy"]["epsilons"] else set()
    wanted |= {"roc"} if cfg["attack"]["targets"] else set()
    wanted |= {"attack_vs_T"} if cfg["attack"]["t_sweep"] else set()
    wanted |= {"energy", "latency_accuracy"} if cfg["deploy"]["targets"] and cfg["deploy"]["models"] else set()
    for ds, dp in plan.items():
        # leakage against utility needs two attacked models to compare
        expect = wanted | ({"leakage_utility"} if len(dp.attacked) >= 2 else set())
        assert set(figure_kinds(dp)) == expect, (ds, figure_kinds(dp))
    assert any("leakage_utility" in figure_kinds(dp) for dp in plan.values()), "the tiny config draws no leakage_utility"
    expected = [p for p in report_outputs(plan, "results") if p.suffix == ".png"] + [Path("results/summary.html")]
    for rel in expected:
        entry = embedded.get(rel.as_posix())
        assert entry is not None, f"{rel} missing from report.html"
        assert entry["caption"].strip(), f"{rel} has no caption"
        header, _, payload = entry["data_uri"].partition(",")
        assert header.endswith(";base64")
        assert base64.b64decode(payload) == (workdir / rel).read_bytes(), f"{rel}: embedded copy differs"


def test_summary_numbers_equal_the_stage_files(report_html):
    from biospike.report import resolve_source

    workdir, _ = report_html
    summary = json.loads((workdir / "results" / "summary.json").read_text())
    plan = _expected_plan()
    assert len(summary["rows"]) == sum(len(dp.encodings) * len(dp.targets) for dp in plan.values())
    checked = 0
    for row, src in zip(summary["rows"], summary["sources"], strict=True):
        for col, source in src.items():
            if col == "deploy":
                for hw, cells in source.items():
                    for key, s in cells.items():
                        assert resolve_source(s, workdir) == row["deploy"][hw][key], (row["model"], hw, key)
                        checked += 1
            elif col != "attack":
                assert resolve_source(source, workdir) == row[col], (row["dataset"], row["model"], col)
                checked += 1
        assert row["balanced_accuracy"] is not None and "balanced_accuracy" in src
    assert checked >= 5 * len(summary["rows"])
