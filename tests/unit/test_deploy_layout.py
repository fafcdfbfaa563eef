"""Where deploy results land: workflow/rules/deploy_common.smk (deploy_targets, simulate_inputs)
and the report's plan agree, and every deploy JSON sits under the model it costs (an MCU
profile's under ann/deploy/). The .smk helpers are plain Python, run here with the names
Snakemake and common.smk would provide."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from biospike import report
from biospike.config import deep_merge, stage_config
from biospike.deploy.hardware import load_profile

REPO = Path(__file__).resolve().parents[2]
CONFIG = {
    "seed": 1,
    "datasets": {"a": {"encode": {"encodings": ["delta"]}}, "b": {}},
    "encode": {"encodings": ["delta", "population"]},
    "privacy": {"epsilons": [8]},
    "deploy": {"targets": ["loihi", "xylo_audio2", "cortex_m4"], "models": ["snn", "dpsnn_eps8"]},
}


def _deploy_helpers(config: dict) -> dict:
    ns = {"workflow": SimpleNamespace(basedir=str(REPO)), "config": config, "RESULTS": "R", "Path": Path,
          "json": json, "shlex": shlex, "deep_merge": deep_merge,
          "encodings_of": lambda ds: stage_config(config, "encode", ds)["encodings"]}
    path = REPO / "workflow" / "rules" / "deploy_common.smk"
    exec(compile(path.read_text(), str(path), "exec"), ns)
    return ns


def test_mcu_json_sits_under_the_ann():
    smk = _deploy_helpers(CONFIG)
    targets = smk["deploy_targets"](["a", "b"])
    assert "R/a/delta/ann/deploy/cortex_m4.json" in targets
    assert "R/b/population/ann/deploy/cortex_m4.json" in targets
    assert not [t for t in targets if t.endswith("cortex_m4.json") and "/ann/" not in t]  # never under an SNN
    assert {t for t in targets if "/a/delta/" in t} == {
        "R/a/delta/snn/deploy/loihi.json", "R/a/delta/snn/deploy/xylo_audio2.json",
        "R/a/delta/dpsnn_eps8/deploy/loihi.json", "R/a/delta/dpsnn_eps8/deploy/xylo_audio2.json",
        "R/a/delta/ann/deploy/cortex_m4.json"}
    assert len(targets) == len(set(targets)) == 3 * 5
    assert smk["deploy_targets"](["a"], encodings=[]) == []
    assert _deploy_helpers({**CONFIG, "deploy": {**CONFIG["deploy"], "models": []}})["deploy_targets"](["a"]) == []


def test_simulate_inputs_per_hardware_kind():
    smk = _deploy_helpers(CONFIG)
    w = SimpleNamespace(dataset="a", encoding="delta", target="ann", hardware="cortex_m4")
    inputs = smk["simulate_inputs"](w)
    assert inputs["model"] == "R/a/delta/ann/model.pt" and "nir" not in inputs
    assert inputs["hardware"] == str(REPO / "config" / "hardware" / "cortex_m4.yaml")
    inputs = smk["simulate_inputs"](SimpleNamespace(dataset="a", encoding="delta", target="dpsnn_eps8", hardware="loihi"))
    assert inputs["model"] == "R/a/delta/dpsnn_eps8/model.pt" and inputs["nir"] == "R/a/delta/dpsnn_eps8/deploy/model.nir"
    with pytest.raises(ValueError, match="ann/deploy/cortex_m4.json"):  # the old place, under the SNN
        smk["simulate_inputs"](SimpleNamespace(dataset="a", encoding="delta", target="snn", hardware="cortex_m4"))


def test_report_plan_reads_exactly_the_deploy_outputs():
    smk = _deploy_helpers(CONFIG)
    kinds = {h: load_profile(REPO / "config" / "hardware" / f"{h}.yaml").kind for h in CONFIG["deploy"]["targets"]}
    assert {h: smk["hardware_kind"](h) for h in kinds} == kinds
    plan = report.plan_from_params(report.plan_from_config(CONFIG, kinds))
    read = {str(p) for p in report.summary_inputs(plan, "R") if p.parent.name == "deploy"}
    assert read == set(smk["deploy_targets"](["a", "b"]))
    figure = {str(p) for ds in plan for p in report.figure_inputs(plan, "R", "energy", ds)}
    assert figure == read
