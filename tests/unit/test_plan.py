"""One plan for the workflow, the report and the results table; registries; target names; code
versions derived from imports; no import cycles."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from biospike import plan as P
from biospike import report
from biospike import targets as T
from biospike.codeversion import PACKAGE_DIR, code_version, direct_imports, module_closure
from biospike.config import load_yaml, validate_config
from biospike.errors import BiospikeError
from biospike.kinds import MODEL_KINDS
from biospike.registry import ModelKind, register_model_kind

REPO = Path(__file__).resolve().parents[2]
KINDS = {"loihi": "neuromorphic", "xylo_audio2": "neuromorphic", "cortex_m4": "mcu"}
DATASET = {"reader": "edf", "modality": "eeg", "path": "x", "classes": ["a", "b"], "label_map": {}}


def _config(**sections) -> dict:
    base = {"seed": 1, "datasets": {"a": {**DATASET, "encode": {"encodings": ["delta"]}}, "b": dict(DATASET)},
            "encode": {"encodings": ["delta", "population"]}, "privacy": {"epsilons": [1, 8]},
            "attack": {"targets": ["snn", "dpsnn_eps*"], "t_sweep": [25, 50]},
            "deploy": {"targets": list(KINDS), "models": ["snn", "dpsnn_eps8"]}}
    return validate_config({**base, **sections})


def test_plan_follows_each_stage_switch():
    plan = P.build_plan(_config(), kinds=KINDS)
    assert plan["a"].encodings == ["delta"] and plan["b"].encodings == ["delta", "population"]
    assert plan["b"].targets == ["snn", "dpsnn_eps1", "dpsnn_eps8", "ann", "classical"]
    assert plan["b"].attacked == ["snn", "dpsnn_eps1", "dpsnn_eps8"]
    assert plan["b"].t_sweep == ["delta", "population"]
    # every deploy JSON under the model it costs: the MCU runs the ANN baseline
    assert plan["b"].deployed == {"snn": ["loihi", "xylo_audio2"], "dpsnn_eps8": ["loihi", "xylo_audio2"],
                                  "ann": ["cortex_m4"]}
    assert P.build_plan(_config(deploy={"targets": list(KINDS), "models": []}), kinds=KINDS)["b"].deployed == {}
    off = P.build_plan(_config(privacy={"enabled": False}, attack={"targets": []}, deploy={"targets": []}), kinds=KINDS)
    assert off["b"].targets == ["snn", "ann", "classical"]
    assert off["b"].attacked == [] and off["b"].t_sweep == [] and off["b"].deployed == {}
    assert not off["b"].privacy_table
    own = copy.deepcopy(_config())
    own["datasets"]["a"]["attack"] = {"targets": []}
    own["datasets"]["b"]["attack"] = {"targets": ["ann"]}
    plan = P.build_plan(own, kinds=KINDS)
    assert plan["a"].attacked == [] and plan["a"].t_sweep == []
    assert plan["b"].attacked == ["ann"] and plan["b"].references == {"ann": ["ann"]}
    only = P.build_plan(_config(train={"models": ["snn"]}), kinds=KINDS)
    assert only["b"].targets == ["snn", "dpsnn_eps1", "dpsnn_eps8"] and "ann" not in only["b"].deployed
    with pytest.raises(BiospikeError, match="unknown model kind 'snm'"):
        P.build_plan(_config(train={"models": ["snm"]}), kinds=KINDS)
    with pytest.raises(BiospikeError, match="cortex_m4"):
        P.build_plan(_config(), kinds={"loihi": "neuromorphic"})


def test_plan_json_round_trip_and_outputs():
    plan = P.build_plan(_config(), kinds=KINDS)
    assert P.plan_from_json(P.plan_to_json(plan)) == plan
    out = set(P.outputs(plan, "R"))
    assert "R/b/population/ann/deploy/cortex_m4.json" in out
    assert not [o for o in out if o.endswith("cortex_m4.json") and "/ann/" not in o]  # never under an SNN
    assert "R/a/delta/dpsnn_eps1/attack/summary.json" in out and "R/a/delta/ann/attack/summary.json" not in out
    assert "R/b/delta/t_sweep.json" in out and "R/b/delta/privacy_utility.csv" in out


def test_report_reads_what_the_plan_makes():
    plan = P.build_plan(_config(), kinds=KINDS)
    made = set(P.outputs(plan, "R"))
    read = {str(p) for p in report.summary_inputs(plan, "R")}
    for name in ("metrics.json", "summary.json"):  # the leaves the report reads are the plan's leaves
        assert {p for p in read if p.endswith(name)} == {p for p in made if p.endswith(name)}
    deploy_read = {p for p in read if "/deploy/" in p}
    assert deploy_read == {p for p in made if "/deploy/" in p}
    figure = {str(p) for ds in plan for p in report.figure_inputs(plan, "R", "energy", ds)}
    assert figure == deploy_read


# ---------------------------------------------------------------------------------------------
# the workflow's DAG and the plan agree


def _dag_files(tmp_path: Path, config: dict) -> dict[str, str]:
    """Every file of the workflow's DAG (``snakemake --summary``) -> the rule that makes it."""
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-s", str(REPO / "Snakefile"), "--directory",
           str(tmp_path), "--configfile", str(configfile), "--replace-workflow-config", "--summary"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split("\t") for line in proc.stdout.splitlines()[1:] if "\t" in line]
    return {r[0]: r[2] for r in rows}


def _workflow_configs() -> list[tuple[str, dict]]:
    tiny = load_yaml(REPO / "config" / "tiny.yaml")
    no_dp = copy.deepcopy(tiny)
    no_dp["privacy"]["enabled"] = False
    no_attack = copy.deepcopy(tiny)
    no_attack["attack"]["targets"] = []
    audit_sweep = copy.deepcopy(tiny)
    audit_sweep["privacy"]["audit"]["enabled"] = True
    audit_sweep["attack"]["t_sweep"] = [10, 20]
    audit_sweep["deploy"]["models"] = ["snn", "dpsnn_eps8"]
    snn_only = copy.deepcopy(tiny)
    snn_only["train"]["models"] = ["snn"]
    converged = copy.deepcopy(tiny)  # a second train-time lever, with per-group K and the sweep per dataset
    converged["train"]["converged_epochs"] = [6, 12]
    converged["attack"]["targets"] = ["snn", "ann", "conv*", "dpsnn_eps*"]
    converged["attack"]["reference_models_by_group"] = {"dpsnn_eps*": 3}
    converged["attack"]["reference_shard_size"] = 2
    converged["datasets"]["demo_ecg"]["attack"] = {"t_sweep": [10, 20]}
    return [("tiny", tiny), ("demo", load_yaml(REPO / "config" / "config.yaml")), ("no_dp", no_dp),
            ("no_attack", no_attack), ("audit_sweep", audit_sweep), ("snn_only", snn_only), ("converged", converged)]


@pytest.mark.parametrize("name,config", _workflow_configs(), ids=[n for n, _ in _workflow_configs()])
def test_workflow_dag_and_plan_agree(name, config, tmp_path):
    dag = _dag_files(tmp_path, config)
    validated = validate_config(config)
    plan = P.build_plan(validated, hardware_dir=REPO / "config" / "hardware")
    results = validated["results_dir"]
    fig_dir = f"{results}/figures"
    wanted = set(P.outputs(plan, results)) | {str(p) for p in report.report_outputs(plan, results, fig_dir)}
    assert wanted <= set(dag), sorted(wanted - set(dag))[:5]
    # everything the report reads is made by the DAG
    read = {str(p) for p in report.summary_inputs(plan, results)}
    read |= {str(p) for ds in plan for kind in report.figure_kinds(plan[ds])
             for p in report.figure_inputs(plan, results, kind, ds)}
    assert read <= set(dag), sorted(read - set(dag))[:5]
    # and nothing trained, attacked or costed by the DAG escapes the plan (or the report)
    for path in dag:
        if path.endswith("/metrics.json") and "/t_sweep/" not in path:
            ds, enc, target = path.split("/")[-4:-1]
            assert target in plan[ds].targets and enc in plan[ds].encodings, path
        if path.endswith("/attack/summary.json") and "/t_sweep/" not in path:
            ds, enc, target = path.split("/")[-5:-2]
            assert target in plan[ds].attacked, path
        if "/deploy/" in path and path.endswith(".json"):
            assert path in read, path
        if "/refs/" in path and "/t_sweep/" not in path:
            ds, enc, _, group = path.split("/")[-5:-1]  # R/{ds}/{enc}/refs/{group}/shard{s}.pt
            assert group in plan[ds].reference_groups, path
    assert all(rule != "None" for rule in dag.values())


# ---------------------------------------------------------------------------------------------
# registries and names


def test_target_names_are_one_module():
    assert T.dp_target(1.0) == T.dp_target(1) == "dpsnn_eps1"
    assert T.dp_target(0.5) == "dpsnn_eps0.5"
    t = T.parse("dpsnn_eps0.5")
    assert (t.kind.name, t.lever.name, t.value, t.value_text) == ("snn", "dp", 0.5, "0.5")
    assert t.label == "DP-SNN ε=0.5" and t.spiking and t.checkpoint == "model.pt"
    assert T.parse("classical").checkpoint == "model.joblib" and not T.parse("classical").kind.attackable
    assert T.sort_targets(["classical", "ann", "dpsnn_eps8", "snn", "dpsnn_eps1"]) == \
        ["snn", "dpsnn_eps1", "dpsnn_eps8", "ann", "classical"]
    assert T.color("dpsnn_eps1", ["dpsnn_eps1", "dpsnn_eps8"]) != T.color("dpsnn_eps8", ["dpsnn_eps1", "dpsnn_eps8"])
    with pytest.raises(BiospikeError, match="unknown target 'dpann_eps1'"):
        T.parse("dpann_eps1")


def test_a_registered_kind_flows_into_the_plan():
    kind = ModelKind(name="snn_wide", label="wide SNN", color="#123456", order=5,
                     trainer="biospike.train:train_stage", fit="biospike.train:fit_on", spiking=True, nir=True,
                     runs_on=("neuromorphic",))
    register_model_kind(kind)
    try:
        plan = P.build_plan(_config(train={"models": ["snn", "snn_wide"]},
                                    attack={"targets": ["snn*"], "t_sweep": []},
                                    deploy={"targets": list(KINDS), "models": ["snn_wide"]}), kinds=KINDS)
        assert plan["b"].targets == ["snn", "dpsnn_eps1", "dpsnn_eps8", "snn_wide"]
        assert plan["b"].attacked == ["snn", "snn_wide"] and plan["b"].references["snn_wide"] == ["snn_wide"]
        assert plan["b"].deployed["snn_wide"] == ["loihi", "xylo_audio2"]
        assert "R/b/delta/snn_wide/deploy/model.nir" not in P.outputs(plan, "R")  # a leaf of simulate, not listed
        assert T.label("snn_wide") == "wide SNN"
        with pytest.raises(ValueError, match="already registered"):
            register_model_kind(kind)
    finally:
        MODEL_KINDS._items.pop("snn_wide")


def test_registry_errors_list_what_is_registered():
    with pytest.raises(BiospikeError, match="registered: snn, alif, dynsnn, stdp, tconv, ann, converted, classical"):
        MODEL_KINDS["svm"]
    from biospike.encode.stage import ENCODINGS

    assert ENCODINGS.names() == ["delta", "population", "rate", "ttfs", "poisson_burst", "delayed_burst"]
    assert report.FIGURES.names()[:3] == ["signals", "training", "confusion"]


# ---------------------------------------------------------------------------------------------
# code versions and imports


def _names(paths) -> set[str]:
    return {str(p.relative_to(PACKAGE_DIR)) for p in paths}


def test_code_version_follows_what_a_stage_imports():
    train = _names(module_closure("biospike.train"))
    assert {"train.py", "models/fused.py", "models/snn.py", "metrics.py", "results.py", "trainset.py"} <= train
    assert not {p for p in train if p.startswith(("privacy/", "attacks/", "deploy/"))}
    encode = _names(module_closure("biospike.encode.cli"))
    assert "encode/delta.py" in encode and "models/fused.py" not in encode
    ingest = _names(module_closure("biospike.ingest"))
    assert {"io/edf.py", "io/wfdb_beats.py", "io/physionet2017.py"} <= ingest  # named in the reader registry
    assert "biospike.io.edf" in direct_imports(PACKAGE_DIR / "io" / "__init__.py")  # a registry string counts
    assert not direct_imports(PACKAGE_DIR / "kinds.py") & {"biospike.train", "biospike.privacy.cli"}  # the catalogue's do not
    attack = _names(module_closure("biospike.attacks.cli"))
    assert "privacy/dp.py" not in attack and "train.py" not in attack  # added per rule: the group's recipe
    assert code_version("biospike.train") != code_version("biospike.encode.cli")
    assert code_version("biospike.train") == code_version("biospike.train")


def test_code_version_changes_when_an_imported_module_changes(tmp_path):
    pkg = tmp_path / "biospike"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from biospike.sub import b\n    return b\n")
    (pkg / "sub" / "b.py").write_text("X = 1\n")
    (pkg / "c.py").write_text("Y = 1\n")
    before = code_version("biospike.a", root=pkg)
    (pkg / "c.py").write_text("Y = 2\n")  # not imported by a
    assert code_version("biospike.a", root=pkg) == before
    (pkg / "sub" / "b.py").write_text("X = 2\n")  # imported inside a function
    assert code_version("biospike.a", root=pkg) != before


def test_no_import_cycles():
    """The package's import graph (module level and inside functions; registry strings are not
    imports until called) has no cycle."""
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        rel = path.relative_to(PACKAGE_DIR).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        modules[".".join(["biospike", *parts])] = path
    graph = {m: {d for d in direct_imports(p, references=False) if d in modules and d != m and not m.startswith(d + ".")}
             for m, p in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_levers_add_their_targets_from_their_config_keys():
    config = validate_config(load_yaml(REPO / "config" / "tiny.yaml"))
    config["train"]["converged_epochs"] = [6]
    plan = P.build_plan(config, hardware_dir=REPO / "config" / "hardware")
    dp = plan["demo_eeg"]
    assert {"convsnn_ep6", "convann_ep6"} <= set(dp.targets)
    t = T.parse("convsnn_ep6")
    assert (t.kind.name, t.lever.name, t.value, t.label) == ("snn", "converged", 6.0, "SNN 6 ep.")
    assert t.reference_groups() == ["convsnn_ep6"]  # the attacker trains references the same way
    config["privacy"]["enabled"] = False
    assert not any(T.dp_epsilon(x) for x in P.build_plan(config, hardware_dir=REPO / "config" / "hardware")["demo_eeg"].targets)
    # adversarial regularisation: one variant per weight, references trained the same way
    config["train"]["adversarial_weights"] = [0.5]
    dp = P.build_plan(config, hardware_dir=REPO / "config" / "hardware")["demo_eeg"]
    assert {"advsnn_l0.5", "advann_l0.5"} <= set(dp.targets)
    t = T.parse("advsnn_l0.5")
    assert (t.lever.name, t.value, t.label, t.reference_groups()) == ("advreg", 0.5, "SNN adv. reg. λ=0.5", ["advsnn_l0.5"])
    # an ensemble per M: references ensembles made the same way, single SNNs the comparison
    config["train"]["ensemble_sizes"] = [3]
    dp = P.build_plan(config, hardware_dir=REPO / "config" / "hardware")["demo_eeg"]
    assert "enssnn_m3" in dp.targets and "ensann_m3" not in dp.targets
    assert T.parse("enssnn_m3").reference_groups() == ["enssnn_m3", "snn"]


def test_every_levers_config_keys_are_plan_keys():
    """What lists a lever's variants decides what is built, not how a job computes: it is left
    out of every job's parameters (so adding an epsilon or an ensemble size reruns nothing)."""
    from biospike.kinds import LEVERS

    keys = P.plan_keys()
    for lever in LEVERS:
        for ref in filter(None, (lever.values, lever.enabled, lever.kinds)):
            section, key = ref.split(".")
            assert key in keys[section], (lever.name, ref)
    assert {"models", "ensemble_sizes", "adversarial_weights", "converged_epochs"} <= set(keys["train"])



def test_nir_refusal_follows_the_kind_and_the_neuron_it_trains_with():
    """The edge stage asks for model.nir only where NIR can express the model: not for the alif
    kind, nor for the snn kind (or its DP variants) trained with train.neuron: alif."""
    assert "adaptive-threshold" in T.parse("alif").nir_refusal({})
    assert T.parse("snn").nir_refusal({"neuron": "lif"}) is None
    assert "alif" in T.parse("snn").nir_refusal({"neuron": "alif"})
    assert "alif" in T.parse("dpsnn_eps8").nir_refusal({"neuron": "alif"})
    assert T.parse("dynsnn").nir_refusal({}) is None and T.parse("ann").nir_refusal({"neuron": "alif"}) is None
