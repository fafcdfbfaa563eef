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
