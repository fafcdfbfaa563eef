"""workflow/scripts/results_table.py: the docs/results.md tables read the right numbers."""

from __future__ import annotations

import importlib.util
import json

from tests.workflow.helpers import REPO

_spec = importlib.util.spec_from_file_location("results_table", REPO / "workflow" / "scripts" / "results_table.py")
rt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rt)


def test_strongest_attack_is_the_highest_window_auc_and_skips_unestimable():
    summary = {"attacks": {
        "loss": {"window": {"auc": 0.52, "auc_ci": [0.4, 0.6], "tpr_at_1pct_fpr": 0.01}},
        "rmia": {"window": {"auc": 0.61, "auc_ci": [0.5, 0.7], "tpr_at_1pct_fpr": "not estimable"}},
        "lira_online": {"window": {"status": "not estimable"}},
    }}
    best = rt.strongest_attack(summary)
    assert best["attack"] == "rmia" and best["auc"] == 0.61 and best["tpr_1pct"] == "not estimable"
    assert rt.strongest_attack({"attacks": {}}) is None
    with_test = rt.strongest_attack({**summary, "strongest_window": {"attack": "rmia", "auc": 0.61, "p_value": 0.2}})
    assert with_test["p_value"] == 0.2 and rt._attack_cell(with_test).endswith("rmia, p = 0.200)")


def test_energy_is_printed_in_the_right_unit():
    assert rt.fmt_energy(3.86e-6) == "3.86 µJ"
    assert rt.fmt_energy(925e-9) == "925 nJ"
    assert rt.fmt_energy(3.78e-3) == "3.78 mJ"
    assert rt.fmt_energy(None) == "–"


def _run(tmp_path, snn, ann, classical, dp8, dp8_auc):
    rows = [{"dataset": "emg_x", "encoding": "delta", "model": m, "balanced_accuracy": b, "epsilon": e, "deploy": {}}
            for m, b, e in (("snn", snn, None), ("ann", ann, None), ("classical", classical, None),
                            ("dpsnn_eps8", dp8, 7.99))]
    tmp_path.mkdir(parents=True)
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows}))
    attack = tmp_path / "emg_x" / "delta" / "dpsnn_eps8" / "attack"
    attack.mkdir(parents=True)
    attack.joinpath("summary.json").write_text(json.dumps(
        {"attacks": {"loss": {"window": {"auc": dp8_auc, "auc_ci": [0.4, 0.7], "tpr_at_1pct_fpr": 0.0}}}}))
    return rt.target_checks(rt.collect(tmp_path, "delta"))[2]


def test_target_checks_mark_each_target(tmp_path):
    met = _run(tmp_path / "a", snn=0.93, ann=0.94, classical=0.80, dp8=0.90, dp8_auc=0.52)
    assert "**no**" not in met and met.count("yes") == 5
    missed = _run(tmp_path / "b", snn=0.80, ann=0.90, classical=0.85, dp8=0.60, dp8_auc=0.70)
    assert missed.count("**no**") == 5


def test_emg_target_only_for_a_within_session_test_and_dp_difference_signed(tmp_path, monkeypatch):
    monkeypatch.setattr(rt, "test_split_kind", lambda path: "cross-record")
    row = _run(tmp_path / "c", snn=0.80, ann=0.80, classical=0.70, dp8=0.85, dp8_auc=0.50)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3] == "–"  # a cross-session test split is not the within-session EMG target
    assert cells[4] == "yes (0.850, +0.050)"


def test_leakage_table_lists_every_attacked_model(tmp_path):
    _run(tmp_path / "d", snn=0.9, ann=0.9, classical=0.8, dp8=0.85, dp8_auc=0.53)
    lines = rt.leakage_table(rt.collect(tmp_path / "d", "delta"))
    assert len(lines) == 3  # header, rule, the one attacked model
    assert lines[2].startswith("| emg_x | dpsnn_eps8 | 7.99 | 0.850 | 0.53 [0.40, 0.70] (0.000, loss) |")


def test_energy_table_has_dynamic_static_total_and_unknowns():
    """The edge table states each energy term; an unpublished term reads "unknown", and a total
    is printed only when it contains dynamic and chip static energy (like for like)."""
    deploy = {
        "loihi": {"fits": True, "dynamic_energy_j": 6e-8, "static_energy_j": 3.12e-3, "static_used_cores_energy_j": 4.9e-5,
                  "energy_per_inference_j": 3.12006e-3, "energy_total_terms": ["dynamic", "static"],
                  "compute_latency_s": None, "edp_compute_js": None, "quantized_balanced_accuracy": 0.8},
        "speck": {"fits": True, "dynamic_energy_j": None, "static_energy_j": 1.26e-5, "static_used_cores_energy_j": 2.8e-6,
                  "energy_per_inference_j": None, "energy_total_terms": [], "compute_latency_s": 1.6e-4,
                  "edp_compute_js": None, "quantized_balanced_accuracy": 0.7},
        # a total that does not say it holds both terms (an older file) is not shown
        "truenorth": {"fits": True, "dynamic_energy_j": 4.6e-9, "static_energy_j": None,
                      "energy_per_inference_j": 4.6e-9, "compute_latency_s": 0.03, "edp_compute_js": None,
                      "quantized_balanced_accuracy": 0.6},
        "xylo_audio2": {"fits": False},
    }
    tasks = {"emg_x": {"models": {"snn": {"deploy": deploy}}}}
    lines = rt.energy_table(tasks)
    assert "| dynamic | static: chip (used cores) | total | compute latency | EDP on compute |" in lines[0]
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    assert rows["loihi"][2:7] == ["60 nJ", "3.12 mJ (49 µJ)", "3.12 mJ", "unknown", "unknown"]
    assert rows["speck"][2:6] == ["unknown", "12.6 µJ (2.8 µJ)", "unknown", "160 µs"]
    assert rows["truenorth"][4] == "unknown" and rows["truenorth"][2] == "4.6 nJ"
    assert rows["xylo_audio2"][2] == "does not fit"


def test_levers_table_compares_each_lever_with_the_snn(tmp_path):
    """The report's lever rows as Markdown: one row per attacked target; a defense shows the
    adaptive AUC, the non-adaptive one beside, and its base network's energy (marked); AUC removed
    per point of accuracy lost against the SNN."""
    loihi = {"fits": True, "dynamic_energy_j": 8e-7, "energy_per_inference_j": 2e-3,
             "energy_total_terms": ["dynamic", "static"]}

    def row(model, bal, auc=None, comp=None, deploy=None):
        out = {"dataset": "emg", "encoding": "rate", "model": model, "balanced_accuracy": bal,
               "balanced_accuracy_ci": [bal - 0.1, bal + 0.1], "attack": None, "deploy": deploy or {}}
        if auc is not None:
            out |= {"attack": "loss", "attack_auc": auc, "attack_auc_ci": [auc - 0.05, auc + 0.05],
                    "attack_tpr_at_1pct_fpr": 0.02, "attack_tpr_at_1pct_fpr_ci": [0.0, 0.05],
                    "comparison_max_attack_auc": comp}
        return out

    rows = [row("snn", 0.80, 0.70, deploy={"loihi": loihi}), row("qdropsnn_p0.3", 0.78, 0.60, comp=0.55),
            row("converted", 0.81, 0.72, deploy={"loihi": {**loihi, "energy_per_inference_j": 3e-3}}),
            row("classical", 0.7)]
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows, "hardware": ["loihi", "cortex_m4"]}))
    lines = rt.levers_table(tmp_path)
    assert "loihi: dynamic (total) energy" in lines[0] and "cortex_m4" not in lines[0]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:5]]
    assert [r[2] for r in body] == ["SNN", "SNN + query dropout p=0.3", "converted SNN"]
    snn, qdrop, conv = body
    assert snn[3] == "none" and snn[-3:] == ["–", "–", "–"]
    assert qdrop[3] == "query-time input dropout" and qdrop[6] == "0.600 [0.550, 0.650]" and qdrop[8] == "0.550"
    assert qdrop[9] == "800 nJ (2 mJ) (base network)"
    assert qdrop[-3:] == ["-2.0", "-0.100", "0.0500"]  # 0.1 AUC removed for 2 points
    assert conv[3] == "kind: converted SNN" and conv[9] == "800 nJ (3 mJ)" and conv[-1] == "–"  # gained accuracy, leaks more
    (tmp_path / "summary.json").write_text(json.dumps({"rows": rows[:1], "hardware": []}))
    assert rt.levers_table(tmp_path) == ["(one kind of model attacked: nothing to compare)"]


def test_zoo_table_chooses_the_spiking_kind_on_validation_only(tmp_path):
    def write(task, kind, val, test, ci=None):
        d = tmp_path / task / "delta" / kind
        d.mkdir(parents=True)
        metrics = {"val": {"balanced_accuracy": val},
                   "test": {"balanced_accuracy": test, "balanced_accuracy_ci": ci}}
        (d / "metrics.json").write_text(json.dumps(metrics))

    # tconv is best on test, alif on validation: the table must report alif
    write("t", "snn", 0.80, 0.70)
    write("t", "alif", 0.90, 0.72, [0.6, 0.8])
    write("t", "tconv", 0.85, 0.95)
    write("t", "ann", 0.95, 0.73)
    write("t", "classical", 0.70, 0.71, [0.65, 0.77])
    write("t", "dpsnn_eps8", 0.99, 0.99)  # a variant, not a kind: not a candidate, not a column
    lines = rt.zoo_table(tmp_path, "delta")
    assert "dpsnn" not in "\n".join(lines)
    row = lines[2]
    assert "ALIF-SNN: 0.720 [0.600, 0.800]; classical 0.710 [0.650, 0.770]" in row
    assert "| yes (+0.010) | yes (-0.010) |" in row
    assert "0.950 (0.850)" in row  # every kind's test (validation) cell
