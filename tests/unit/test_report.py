"""The report: summary numbers equal the per-stage files, every figure is drawn, missing inputs
are named, disabled stages simply have no rows/figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from biospike import report
from biospike.cli import main as biospike_main
from biospike.errors import BiospikeError
from biospike.plan import plan_from_json
from biospike.store import Spikes, Windows, write_json, write_spikes, write_windows
from biospike.targets import dp_epsilon

CLASSES = ["rest", "fist", "flex"]
CHANNELS = ["C3", "Cz", "C4", "Pz"]
EPSILONS = ["1", "8"]
HARDWARE = ["loihi", "xylo_audio2"]  # spiking targets of the SNNs
MCU = ["cortex_m4"]  # an MCU profile: costs the ANN, its JSON under ann/deploy/
T_STEPS = 50
DT_S = 0.004


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _roc(rng: np.random.Generator, strength: float, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    fpr = np.r_[0.0, np.sort(rng.uniform(0, 1, n - 2)), 1.0]
    tpr = np.clip(fpr ** (1 / (1 + strength)), 0, 1)
    return fpr, tpr


def _deploy_energy(rng: np.random.Generator, unknown_static: bool = False) -> dict:
    """The energy block of a deploy JSON: dynamic, chip static (and its used-core share), total;
    an unknown static power makes static and total null (unknown), as biospike simulate writes."""
    dynamic = float(10 ** rng.uniform(-8, -5))
    static = None if unknown_static else float(10 ** rng.uniform(-6, -3))
    total = None if static is None else dynamic + static
    return {"dynamic_j": dynamic, "static_j": static, "static_used_cores_j": None if static is None else static / 8,
            "total_j": total, "per_inference_j": total, "total_terms": [] if total is None else ["dynamic", "static"],
            "edp_compute_js": None if total is None else total * 1e-3}


def _deploy_json(rng: np.random.Generator, hw: str, enc: str) -> dict:
    """A deploy/{hw}.json as biospike simulate writes it (the fields the report reads)."""
    mcu = hw == "cortex_m4"
    fits = not (hw == "xylo_audio2" and enc == "population")
    out = {"target": hw, "title": hw.upper(), "kind": "mcu" if mcu else "neuromorphic", "model": "ann" if mcu else "snn",
           "fits": fits, "reasons": [] if fits else ["does not fit: inputs needs 32, target has 16"],
           "cores_used": 1 if mcu else int(rng.integers(1, 8)),
           "accuracy": {"float": float(rng.uniform(0.5, 0.9)), "quantized": float(rng.uniform(0.4, 0.9)), "n_windows": 8},
           "balanced_accuracy": {"float": float(rng.uniform(0.4, 0.8)), "quantized": float(rng.uniform(0.3, 0.8)),
                                 "n_windows": 8},
           "energy": _deploy_energy(rng, unknown_static=hw == "xylo_audio2"),
           "latency": {"steps": T_STEPS, "dt_s": DT_S, "per_inference_s": T_STEPS * DT_S,
                       "compute_per_inference_s": None if hw == "loihi" else T_STEPS * DT_S / 10,
                       "time_to_decision_s": float(rng.uniform(0.3, 1.0)) * T_STEPS * DT_S},
           "power": {"average_at_real_time_w": float(10 ** rng.uniform(-6, -2)), "static_w": 0.0}}
    if not mcu:
        acc = np.minimum(1, 0.3 + 0.6 * (1 - np.exp(-np.arange(1, T_STEPS + 1) / rng.uniform(5, 20))))
        out["accuracy_vs_time"] = {"accuracy_by_step": [round(float(a), 5) for a in acc],
                                   "balanced_accuracy_by_step": [round(float(a) * 0.9, 5) for a in acc], "step_s": DT_S}
        out["early_exit"] = {"confidence": 0.9, "accuracy": float(acc[20]), "balanced_accuracy": float(acc[20]) * 0.9,
                             "exit_step_mean": 21.0}
    return out


def build_plan(attacks: bool = True, deploy: bool = True, dp: bool = True, sweep: bool = True,
               encodings: tuple[str, ...] = ("delta", "population"), epsilons: tuple[str, ...] = tuple(EPSILONS)) -> dict:
    """A two-dataset plan (as JSON) with the given stages switched on."""
    targets = ["snn", "ann", "classical"] + ([f"dpsnn_eps{e}" for e in epsilons] if dp else [])
    spec = {
        "encodings": list(encodings),
        "targets": targets,
        "attacked": [t for t in targets if t != "classical"] if attacks else [],
        "deployed": ({t: HARDWARE for t in targets if t.startswith(("snn", "dpsnn"))} | {"ann": MCU}) if deploy else {},
        "t_sweep": list(encodings[:1]) if (attacks and sweep) else [],
    }
    return {"ds_a": spec, "ds_b": json.loads(json.dumps(spec))}


def build_fake_results(root: Path, plan_raw: dict, seed: int = 0) -> Path:
    """A results tree in the documented per-stage formats, filled with random numbers."""
    rng = np.random.default_rng(seed)
    results = root / "results"
    n, fs_hz, length = 24, 250.0, 200
    for ds, spec in plan_raw.items():
        t = np.arange(length) / fs_hz
        signals = np.stack([np.stack([np.sin(2 * np.pi * (5 + c) * t + i) + 0.1 * rng.standard_normal(length)
                                      for c in range(len(CHANNELS))]) for i in range(n)]).astype(np.float32)
        labels = np.arange(n) % len(CLASSES)
        subject = np.array([f"s{i // 4}" for i in range(n)])
        splits = {"train": np.arange(0, 12), "val": np.arange(12, 16), "test": np.arange(16, 24)}
        preprocessing = {"n_subjects": 6, "n_records": 6, "bandpass": {"band_hz": [20.0, 95.0]},
                         "window": {"window_s": length / fs_hz, "stride_s": 0.4},
                         "split": {"by": "subject", "units": {"train": 3, "val": 1, "test": 2},
                                   "windows": {"train": 12, "val": 4, "test": 8}}}
        write_windows(results / ds / "windows.h5", Windows(
            signals=signals, labels=labels, subject=subject, record=subject, fs_hz=fs_hz,
            channel_names=CHANNELS, class_names=CLASSES, modality="emg", preprocessing=preprocessing, splits=splits))
        for enc in spec["encodings"]:
            if enc in ("delta", "rate"):
                names = [f"{c}{s}" for c in CHANNELS for s in "+-"]
            else:
                names = [f"{c}/p{k:02d}" for c in CHANNELS for k in range(8)]
            spikes = (rng.random((n, T_STEPS, len(names))) < 0.08).astype(np.uint8)
            encoder = {"name": enc, "settings": {"threshold": 0.5} if enc == "delta" else {"n_neurons": 8},
                       "fitted_on": "train", "timebase": {"n_steps": T_STEPS, "dt_s": DT_S}}
            write_spikes(results / ds / enc / "spikes.h5", Spikes(
                spikes=spikes, labels=labels, subject=subject, dt_s=DT_S, channel_names=names,
                class_names=CLASSES, encoder=encoder, stats={}, splits=splits))
            for tgt in spec["targets"]:
                tdir = results / ds / enc / tgt
                conf = rng.integers(0, 10, (3, 3)) + np.diag(rng.integers(5, 20, 3))
                bal = float(np.mean(np.diag(conf) / conf.sum(axis=1)))
                is_snn = tgt.startswith(("snn", "dpsnn"))
                write_json(tdir / "metrics.json", {
                    "model": tgt, "dataset": ds, "encoding": enc, "class_names": CLASSES,
                    "test": {"n": int(conf.sum()), "accuracy": float(np.trace(conf) / conf.sum()),
                             "balanced_accuracy": bal, "macro_f1": float(bal - rng.uniform(0, 0.05)),
                             "confusion": conf.tolist()},
                    "val": {"balanced_accuracy": float(rng.uniform(0.4, 0.9))},
                    "spikes_per_inference": {"input": float(rng.uniform(50, 100)),
                                             "hidden": float(rng.uniform(10, 90)) if is_snn else None,
                                             "total": float(rng.uniform(100, 200)) if is_snn else None},
                    "time_steps": T_STEPS, "dt_s": DT_S, "n_parameters": 1218 if is_snn else 57,
                    "n_windows": {"train": 12, "val": 4, "test": 8, "train_available": 12},
                    "arch": {"kind": "snn", "n_hidden": [64], "tau_mem_s": 0.05, "tau_syn_s": 0.02, "v_th": 1.0,
                             "surrogate": "super", "surrogate_alpha": 100.0} if is_snn else
                            {"kind": tgt, "n_hidden": [64]} if tgt == "ann" else
                            {"kind": "classical", "features": "log RMS + log Welch band power per channel", "C": 1.0},
                    "provenance": {"config": {"train": {"epochs": 12, "batch_size": 64, "lr": 0.005, "patience": 3}}},
                })
                epochs = 1 if tgt == "classical" else 12
                loss = np.exp(-np.arange(epochs) / 4) + 0.3
                _write_csv(tdir / "curve.csv", ["epoch", "train_loss", "val_loss", "val_balanced_accuracy", "val_accuracy", "lr"],
                           [[e + 1, f"{loss[e]:.6g}", f"{loss[e] + 0.1:.6g}", f"{0.4 + 0.04 * e:.6g}", f"{0.45 + 0.04 * e:.6g}", "0.003"]
                            for e in range(epochs)])
                eps = dp_epsilon(tgt)
                if eps is not None:
                    write_json(tdir / "privacy.json", {
                        "private": True, "target_epsilon": eps, "epsilon": eps * float(rng.uniform(0.95, 1.0)),
                        "delta": 1e-5, "privacy_unit": "window", "accountant": "prv",
                        "mechanism": "Poisson-subsampled Gaussian, add/remove-one-unit adjacency",
                        "noise_multiplier": float(rng.uniform(0.5, 3.0)), "max_grad_norm_initial": 1.0,
                        "adaptive_clipping": {"enabled": True}, "sample_rate": 0.25, "steps": 48, "epochs": 12,
                        "lr": 0.5, "optimizer": "sgd", "valid_for_release": True})
                if tgt in spec["attacked"]:
                    attacks = {}
                    for name in ("loss", "lira_offline", "rmia"):
                        attacks[name] = {}
                        for level in ("window", "subject"):
                            if name == "rmia" and level == "subject":  # as biospike.attacks.cli writes it
                                attacks[name][level] = {"status": "not estimable", "reason": "no non-members"}
                                continue
                            strength = float(rng.uniform(0, 1.5))
                            fpr, tpr = _roc(rng, strength)
                            _write_csv(tdir / "attack" / f"{name}_{level}_roc.csv", ["fpr", "tpr", "threshold"],
                                       [[f"{a:.6g}", f"{b:.6g}", "0"] for a, b in zip(fpr, tpr, strict=True)])
                            auc = float(rng.uniform(0.5, 0.8))
                            attacks[name][level] = {"auc": auc, "auc_ci": [auc - 0.05, auc + 0.05],
                                                    "tpr_at_1pct_fpr": float(rng.uniform(0.0, 0.1)),
                                                    "tpr_at_1pct_fpr_ci": [0.0, 0.2],
                                                    "tpr_at_0.1pct_fpr": "not estimable",
                                                    "n_members": 12, "n_nonmembers": 200}
                    # the strongest attack has the lowest TPR at 1% FPR: a rule by TPR would pick another one
                    top = max(attacks, key=lambda n: attacks[n]["window"]["auc"])
                    attacks[top]["window"]["tpr_at_1pct_fpr"] = 0.001
                    summary = {
                        "target": tgt, "attacks": attacks, "attack_names": list(attacks), "levels": ["window", "subject"],
                        "privacy": None, "K": 4, "reference_kind": tgt, "n_members": 12, "n_nonmembers": 200,
                        "n_member_subjects": 3, "n_nonmember_subjects": 2, "split_unit": "subject",
                        "provenance": {"config": {"attack": {"bootstrap": {"n": 200}}}},
                        "strongest_window": {"attack": top, "auc": attacks[top]["window"]["auc"],
                                             "p_value": round(1 - attacks[top]["window"]["auc"], 3),
                                             "n_permutations": 1000, "unit": "subject"}}
                    if eps is not None:  # DP targets: the same attacks with non-private references
                        c_auc = float(rng.uniform(0.6, 0.9))
                        summary["comparison"] = {"reference_kind": "snn", "K": 4, "attacks": {}, "strongest_window": {
                            "attack": "lira_offline", "auc": c_auc, "p_value": 0.01, "n_permutations": 1000}}
                    write_json(tdir / "attack" / "summary.json", summary)
                for hw in spec["deployed"].get(tgt, []):
                    write_json(tdir / "deploy" / f"{hw}.json", _deploy_json(rng, hw, enc))
        for enc in spec["t_sweep"]:
            write_json(results / ds / enc / "t_sweep.json", {"rows": [
                {"time_steps": T, "dt_s": DT_S, "attack": att, "level": level,
                 "auc": auc, "auc_ci_low": auc - 0.04, "auc_ci_high": auc + 0.04,
                 "tpr_at_1pct_fpr": "not estimable" if T == 5 else float(0.01 + k * 0.01 + 0.002 * T)}
                for T in (50, 5, 10, 25) for k, att in enumerate(("loss", "rmia")) for level in ("window", "subject")
                for auc in [float(0.5 + 0.02 * k + 0.01 * T ** 0.5)]], "trend": {}})
    return results


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    plan_raw = build_plan()
    results = build_fake_results(root, plan_raw)
    params = {"seed": 1, "settings": {"report": {"dpi": 60}}}
    rc = biospike_main(["report", "--params", json.dumps(params), "--plan", json.dumps(plan_raw), "--results", str(results),
                        "--output-json", str(results / "summary.json"), "--output-md", str(results / "summary.md"),
                        "--output-html", str(results / "summary.html"), "--figures", str(results / "figures")])
    assert rc == 0
    return results, plan_raw


def test_every_summary_number_equals_its_source(fake):
    results, plan_raw = fake
    summary = json.loads((results / "summary.json").read_text())
    rows, sources = summary["rows"], summary["sources"]
    n_models = sum(len(s["encodings"]) * len(s["targets"]) for s in plan_raw.values())
    assert len(rows) == len(sources) == n_models
    checked = 0
    for row, src in zip(rows, sources, strict=True):
        for col in ("balanced_accuracy", "macro_f1", "accuracy", "epsilon", "delta", "privacy_unit",
                    "attack_auc", "attack_auc_ci", "attack_tpr_at_1pct_fpr", "max_attack_auc", "max_attack_auc_p",
                    "comparison_max_attack_auc", "comparison_max_attack_auc_p", "spikes_per_inference"):
            if row[col] is not None:
                assert col in src, (row["model"], col)
                assert report.resolve_source(src[col]) == row[col]
                checked += 1
        for hw, cells in (row.get("deploy") or {}).items():
            for col, value in cells.items():
                if value is not None:
                    assert report.resolve_source(src["deploy"][hw][col]) == value
                    checked += 1
    assert checked > 200


def test_summary_reads_the_documented_keys(fake):
    """Independent of the sources mechanism: the cells equal the stage files' documented keys."""
    results, _ = fake
    summary = json.loads((results / "summary.json").read_text())
    for row in summary["rows"]:
        tdir = results / row["dataset"] / row["encoding"] / row["model"]
        metrics = json.loads((tdir / "metrics.json").read_text())
        assert row["balanced_accuracy"] == metrics["test"]["balanced_accuracy"]
        assert row["macro_f1"] == metrics["test"]["macro_f1"]
        assert row["spikes_per_inference"] == metrics["spikes_per_inference"]["total"]
        if row["model"].startswith("dpsnn_eps"):
            privacy = json.loads((tdir / "privacy.json").read_text())
            assert (row["epsilon"], row["delta"], row["privacy_unit"]) == \
                (privacy["epsilon"], privacy["delta"], privacy["privacy_unit"])
        else:
            assert row["epsilon"] is None
        if row["model"] == "classical":
            assert row["attack"] is None and row["attack_auc"] is None
        else:
            doc = json.loads((tdir / "attack" / "summary.json").read_text())
            att = doc["attacks"]
            # the strongest attack is the highest window AUC, the one the permutation test is about
            assert row["attack"] == max(att, key=lambda a: att[a]["window"]["auc"]) == doc["strongest_window"]["attack"]
            assert row["attack_auc"] == max(a["window"]["auc"] for a in att.values()) == row["max_attack_auc"]
            assert row["attack_tpr_at_1pct_fpr"] == att[row["attack"]]["window"]["tpr_at_1pct_fpr"]
            assert row["attack_auc_ci"] == att[row["attack"]]["window"]["auc_ci"]
            assert row["max_attack_auc_p"] == doc["strongest_window"]["p_value"]
            if "comparison" in doc:
                assert row["comparison_max_attack_auc"] == doc["comparison"]["strongest_window"]["auc"]
                assert row["comparison_reference_kind"] == "snn"
            else:
                assert row["comparison_max_attack_auc"] is None
        for hw, cells in (row.get("deploy") or {}).items():
            dep = json.loads((tdir / "deploy" / f"{hw}.json").read_text())
            assert cells["fits"] == dep["fits"]
            assert cells["runs_model"] == dep["model"]
            if not dep["fits"]:  # the reasons, and no number for a mapping that cannot run
                assert cells["reasons"] == dep["reasons"] and cells["reasons"]
                assert all(cells[c] is None for c in cells if c not in ("fits", "runs_model", "reasons")), cells
                continue
            assert cells["energy_per_inference_j"] == dep["energy"]["per_inference_j"]
            assert cells["dynamic_energy_j"] == dep["energy"]["dynamic_j"]
            assert cells["static_energy_j"] == dep["energy"]["static_j"]
            assert cells["static_used_cores_energy_j"] == dep["energy"]["static_used_cores_j"]
            assert cells["energy_total_terms"] == dep["energy"]["total_terms"]
            assert cells["compute_latency_s"] == dep["latency"]["compute_per_inference_s"]
            assert cells["edp_compute_js"] == dep["energy"]["edp_compute_js"]
            assert cells["latency_s"] == dep["latency"]["per_inference_s"]
            assert cells["time_to_decision_s"] == dep["latency"]["time_to_decision_s"]
            assert cells["power_w"] == dep["power"]["average_at_real_time_w"]
            assert cells["quantized_accuracy"] == dep["accuracy"]["quantized"]
            assert cells["quantized_balanced_accuracy"] == dep["balanced_accuracy"]["quantized"]
            assert cells["float_balanced_accuracy"] == dep["balanced_accuracy"]["float"]
            assert cells["runs_model"] == ("ann" if row["model"] == "ann" else "snn")  # every JSON under its model


def test_markdown_and_html_list_every_row(fake):
    results, _ = fake
    summary = json.loads((results / "summary.json").read_text())
    md = (results / "summary.md").read_text()
    html = (results / "summary.html").read_text()
    main_rows = [line for line in md.splitlines() if line.startswith("| ds_")]
    # one deploy line per model x edge target, the ANN baseline on the MCU among them
    n_deploy = sum(len(r.get("deploy") or {}) for r in summary["rows"])
    assert any("cortex_m4" in (r.get("deploy") or {}) for r in summary["rows"] if r["model"] == "ann")
    # and one privacy-lever line per attacked model (SNN, ANN, DP-SNN: three things to compare)
    n_levers = len(report.levers_table(summary)[1])
    assert n_levers == sum(1 for r in summary["rows"] if r.get("attack")) >= 2 and "## Privacy levers" in md
    assert len(main_rows) == len(summary["rows"]) + n_deploy + n_levers
    assert f"{summary['rows'][0]['balanced_accuracy']:.3f}" in md
    # the deploy table shows balanced accuracy (quantized, float in brackets), not plain accuracy
    d = summary["rows"][0]["deploy"]["loihi"]
    assert f"{d['quantized_balanced_accuracy']:.3f} ({d['float_balanced_accuracy']:.3f})" in md
    assert f"{d['quantized_accuracy']:.3f}" not in md
    assert html.count("<tr") == len(summary["rows"]) + n_deploy + n_levers + 3  # + three header rows


def test_unfit_edge_rows_say_why_and_print_no_numbers(fake):
    results, _ = fake
    summary = json.loads((results / "summary.json").read_text())
    md = (results / "summary.md").read_text()
    html = (results / "summary.html").read_text()
    unfit = [(r, hw, d) for r in summary["rows"] for hw, d in (r.get("deploy") or {}).items() if not d["fits"]]
    assert unfit and any(d["fits"] for r in summary["rows"] for d in (r.get("deploy") or {}).values())
    for r, hw, d in unfit:
        line = next(line for line in md.splitlines()
                    if line.startswith(f"| {r['dataset']} | {r['encoding']} | {report.label(r['model'])} | {hw} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[4] == "no: " + "; ".join(d["reasons"]), cells
        assert set(cells[5:]) == {"–"}, cells  # no cores, accuracy, energy, latency or power
        deploy = json.loads((results / r["dataset"] / r["encoding"] / r["model"] / "deploy" / f"{hw}.json").read_text())
        assert f"{deploy['energy']['dynamic_j']:.3g}" not in line
    assert html.count("<td class='reason'>no: ") == len(unfit)


def test_one_rule_names_the_strongest_attack_everywhere(fake):
    """Table header and note, summary.json and the ROC figure agree: highest window AUC."""
    results, plan_raw = fake
    summary = json.loads((results / "summary.json").read_text())
    md = (results / "summary.md").read_text()
    assert summary["best_attack_by"] == "auc"
    assert "highest window-level AUC" in summary["strongest_attack_rule"]
    assert summary["strongest_attack_rule"] in md and "strongest attack *" in md
    header = next(line for line in md.splitlines() if line.startswith("| dataset | encoding | model | bal. acc."))
    assert "p *" in header and "max AUC (p), non-private refs" in header
    plan = plan_from_json(plan_raw)
    for ds, dp in plan.items():
        roc = report.FIGURES["roc"].data(ds, dp, results, dict(report.DEFAULT_CFG))
        for enc, curves in roc["encodings"].items():
            for t, c in curves.items():
                row = next(r for r in summary["rows"] if (r["dataset"], r["encoding"], r["model"]) == (ds, enc, t))
                assert c["attack"] == row["attack"] and c["auc"] == row["attack_auc"]
    # a DP row shows the matched-reference AUC beside the non-private-reference one
    dp_row = next(r for r in summary["rows"] if r["model"] == "dpsnn_eps8")
    line = next(line for line in md.splitlines() if line.startswith(f"| {dp_row['dataset']} | {dp_row['encoding']} | DP-SNN ε=8 |"))
    assert f"{dp_row['comparison_max_attack_auc']:.3f} (p 0.010)" in line


def test_rule_by_tpr_is_stated_and_applied(tmp_path):
    """best_attack_by: tpr_at_1pct_fpr still works, and says so; the permutation maximum then has its own column."""
    plan_raw = build_plan(dp=False, deploy=False, sweep=False)
    results = build_fake_results(tmp_path, plan_raw)
    summary = report.build_summary(plan_from_json(plan_raw), results, {"best_attack_by": "tpr_at_1pct_fpr"})
    assert "TPR at 1% FPR" in summary["strongest_attack_rule"]
    for row in (r for r in summary["rows"] if r["attack"]):
        att = json.loads((results / row["dataset"] / row["encoding"] / row["model"] / "attack" / "summary.json").read_text())
        assert row["attack_tpr_at_1pct_fpr"] == max(a["window"]["tpr_at_1pct_fpr"] for a in att["attacks"].values())
        assert row["attack"] != att["strongest_window"]["attack"]  # the fake gives the max-AUC attack the lowest TPR
    md = report.summary_markdown(summary)
    assert "| max AUC (p) |" in md and "p *" not in md


def test_summary_links_every_figure_of_the_plan(fake):
    results, plan_raw = fake
    summary = json.loads((results / "summary.json").read_text())
    md = (results / "summary.md").read_text()
    html = (results / "summary.html").read_text()
    plan = plan_from_json(plan_raw)
    pngs = [p for p in report.report_outputs(plan, results) if p.suffix == ".png"]
    linked = [e["png"] for entries in summary["figures"].values() for e in entries]
    assert sorted(linked) == sorted(p.relative_to(results).as_posix() for p in pngs)
    for rel in linked:
        assert (results / rel).is_file()
        assert f"<img src='{rel}'" in html and f"]({rel})" in md
    assert html.count("<img ") == len(pngs)
    for ds in plan:
        assert f"<h3>{ds}</h3><div class='grid'>" in html


def test_methods_paragraph_has_the_numbers(fake):
    results, _ = fake
    summary = json.loads((results / "summary.json").read_text())
    text = " ".join(summary["methods"]["text"])
    md = (results / "summary.md").read_text()
    html = (results / "summary.html").read_text()
    facts = summary["methods"]["facts"]["ds_a"]
    assert "EMG recordings of 6 subjects" in text and "4 channels (C3, Cz, C4, Pz) at 250 Hz" in text
    assert "training 3 subjects (12 windows), validation 1 subject (4 windows) and test 2 subjects (8 windows)" in text
    assert "delta coding (threshold = 0.5; fitted on the train split; 8 input neurons; T = 50 steps of 4 ms)" in text
    assert "3 classes (rest, fist, flex)" in text
    assert "hidden layer of 64 units" in text and "; 1,218 parameters." in text
    assert "SNN, DP-SNN ε=1 and DP-SNN ε=8 were quantized and simulated on LOIHI and XYLO_AUDIO2" in text
    assert "ANN was costed with the MCU model on CORTEX_M4" in text
    eps = {t: p["per_encoding"]["delta"]["epsilon"] for t, p in facts["privacy"].items()}
    assert f"DP-SNN ε=8 (target ε = 8): ε = {eps['dpsnn_eps8']:.2f} at noise multiplier" in text
    assert "At δ = 1e-05, the PRV accountant gives" in text
    assert "K = 4 reference models" in text and "K = 4 non-private reference models" in text
    assert "the 12 training windows (3 subjects)" in text and "200 held-out windows (2 subjects)" in text
    assert "200 bootstrap resamples over whole subjects" in text and "1,000 permutations" in text
    assert ("The population-coded SNN, DP-SNN ε=1 and DP-SNN ε=8 do not fit XYLO_AUDIO2 (does not fit: inputs needs 32, "
            "target has 16): no numbers for them there.") in text
    assert "## Methods (generated draft)" in md and summary["methods"]["text"][0] in md
    assert "<h2>Methods (generated draft)</h2>" in html


def test_every_figure_is_written_and_not_blank(fake):
    import matplotlib.image as mpimg

    results, plan_raw = fake
    plan = plan_from_json(plan_raw)
    expected = [p for p in report.report_outputs(plan, results) if "figures" in p.parts]
    assert len(expected) == 2 * 2 * len(report.FIGURES.names())  # 2 datasets x 2 formats x every kind
    for path in expected:
        assert path.is_file(), path
        assert path.stat().st_size > 5_000, path
        if path.suffix == ".png":
            img = mpimg.imread(path)
            assert img[..., :3].std() > 0.05, f"{path} looks blank"
        else:
            assert path.read_text().lstrip().startswith("<?xml")
    written = {p for p in (results / "figures").rglob("*") if p.is_file()}
    assert written == set(expected)


def test_missing_required_file_is_named(tmp_path, capsys):
    plan_raw = build_plan()
    results = build_fake_results(tmp_path, plan_raw)
    gone = results / "ds_b" / "population" / "dpsnn_eps8" / "privacy.json"
    gone.unlink()
    rc = biospike_main(["report", "--plan", json.dumps(plan_raw), "--results", str(results),
                        "--output-json", str(results / "summary.json")])
    assert rc == 2
    assert str(gone) in capsys.readouterr().err
    assert not (results / "summary.json").exists()
    with pytest.raises(BiospikeError) as exc:
        report.make_figure("privacy_utility", "ds_b", plan_from_json(plan_raw), results, tmp_path / "f")
    assert exc.value.path == str(gone)


def test_missing_roc_named_by_attack_summary(tmp_path):
    plan_raw = build_plan(dp=False, deploy=False, sweep=False)
    results = build_fake_results(tmp_path, plan_raw)
    for roc in (results / "ds_a" / "delta" / "snn" / "attack").glob("*_roc.csv"):
        roc.unlink()
    with pytest.raises(BiospikeError, match="roc"):
        report.make_figure("roc", "ds_a", plan_from_json(plan_raw), results, tmp_path / "f")


def test_disabled_stages_have_no_rows_or_figures(tmp_path):
    plan_raw = build_plan(attacks=False, deploy=False, dp=False)
    results = build_fake_results(tmp_path, plan_raw)
    plan = plan_from_json(plan_raw)
    summary = report.build_summary(plan, results)
    assert {r["model"] for r in summary["rows"]} == {"snn", "ann", "classical"}
    assert all(r["attack_auc"] is None and r["epsilon"] is None and "deploy" not in r for r in summary["rows"])
    assert report.figure_kinds(plan["ds_a"]) == ["signals", "training", "confusion"]
    written = report.make_figures(plan, results, tmp_path / "figs", {"dpi": 50, "formats": ["png"]})
    assert sorted(p.name for p in written) == sorted(["signals.png", "training.png", "confusion.png"] * 2)
    with pytest.raises(BiospikeError, match="stage disabled"):
        report.make_figure("roc", "ds_a", plan, results, tmp_path / "figs")


def test_discovered_plan_equals_config_plan(fake):
    results, plan_raw = fake
    found, wanted = report.discover_plan(results), plan_from_json(plan_raw)
    for dp in (*found.values(), *wanted.values()):  # hardware order is presentation only
        dp.deployed = {t: sorted(h) for t, h in dp.deployed.items()}
    assert found == wanted


def test_figure_rule_mode_writes_only_that_figure(fake, tmp_path):
    results, plan_raw = fake
    out = tmp_path / "figs"
    rc = biospike_main(["report", "--plan", json.dumps(plan_raw), "--params", json.dumps({"settings": {"report": {"dpi": 50}}}),
                        "--results", str(results), "--figures", str(out), "--only", "energy", "--dataset", "ds_a"])
    assert rc == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*")) == ["ds_a/energy.png", "ds_a/energy.svg"]


def test_best_attack_by_either_metric_ties_broken_alike():
    mk = report.AttackResult
    results = [mk("a", "window", 0.9, 0.01, "/x", "/y"), mk("b", "window", 0.6, 0.05, "/x", "/y"),
               mk("c", "window", 0.7, "not estimable", "/x", "/y")]
    assert report.best_attack(results, "tpr_at_1pct_fpr").name == "b"
    assert report.best_attack(results, "auc").name == "a"
    assert report.best_attack(results).name == "a"  # the default rule: highest AUC
    # equal AUC and TPR (an attack and its dropout variant): the first name, as the permutation test's argmax
    tied = [mk("loss_dropout", "window", 0.7, 0.02, "/x", "/y"), mk("loss", "window", 0.7, 0.02, "/x", "/y")]
    assert report.best_attack(tied).name == "loss"


def test_json_pointer_round_trip():
    data = {"a/b": [{"c~d": 3}]}
    ptr = report.make_pointer("a/b", 0, "c~d")
    assert ptr == "/a~1b/0/c~0d"
    assert report.resolve_pointer(data, ptr) == 3


def test_si_formatting():
    assert report.fmt_si(2.5e-6, "J") == "2.5 µJ"
    assert report.fmt_si(0.0123, "s") == "12.3 ms"
    assert report.fmt_si(None, "W") == "–"


def test_edge_table_shows_unknown_terms_and_no_unlike_total(fake):
    """A term no source publishes reads "unknown" in its column and in the total; a total without
    both terms (dynamic and chip static) is never printed beside the others."""
    results, _ = fake
    summary = json.loads((results / "summary.json").read_text())
    md = (results / "summary.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| dataset | encoding | model | edge target"))
    columns = [c.strip() for c in head.strip("|").split("|")]
    assert {"dynamic energy", "static energy: chip (used cores)", "total energy", "compute latency",
            "EDP on compute"} <= set(columns)
    seen = set()
    for r in summary["rows"]:
        for hw, d in (r.get("deploy") or {}).items():
            if not d["fits"]:
                continue
            line = next(line for line in md.splitlines()
                        if line.startswith(f"| {r['dataset']} | {r['encoding']} | {report.label(r['model'])} | {hw} |"))
            cells = dict(zip(columns, (c.strip() for c in line.strip("|").split("|")), strict=True))
            if d["static_energy_j"] is None:  # unknown static power: static and total unknown
                assert cells["static energy: chip (used cores)"] == "unknown" and cells["total energy"] == "unknown"
                assert cells["dynamic energy"] == report.fmt_si(d["dynamic_energy_j"], "J")
                seen.add("unknown")
            else:
                assert cells["total energy"] == report.fmt_si(d["energy_per_inference_j"], "J")
                assert cells["static energy: chip (used cores)"] == (
                    f"{report.fmt_si(d['static_energy_j'], 'J')} ({report.fmt_si(d['static_used_cores_energy_j'], 'J')})")
                seen.add("known")
            if d["compute_latency_s"] is None:
                assert cells["compute latency"] == "unknown"
    assert seen == {"unknown", "known"}


def test_totals_with_unlike_terms_are_not_shown():
    """A total the deploy JSON does not say contains dynamic and chip static energy (an older
    file, or a partial sum) is not shown, nor drawn, beside the like-for-like ones."""
    assert report.like_for_like_total_j({"energy_per_inference_j": 2e-6, "energy_total_terms": ["static", "dynamic"]}) == 2e-6
    assert report.like_for_like_total_j({"energy_per_inference_j": 2e-6, "energy_total_terms": ["dynamic"]}) is None
    assert report.like_for_like_total_j({"energy_per_inference_j": 2e-6}) is None
    from biospike.deploy.hardware import TOTAL_TERMS

    assert tuple(sorted(TOTAL_TERMS)) == report.LIKE_FOR_LIKE_TERMS


def test_energy_bars_of_unknown_totals_say_so():
    """A model that fits but whose total is unknown gets no bar and the word "unknown"."""
    from biospike import figures

    bars = [{"encoding": "delta", "target": "snn", "hardware": "loihi", "fits": True, "energy_j": 3e-3, "reason": None},
            {"encoding": "delta", "target": "snn", "hardware": "speck", "fits": True, "energy_j": None, "reason": None}]
    fig = figures.plot_energy({"dataset": "d", "encodings": ["delta"], "hardware": ["loihi", "speck"], "bars": bars})
    assert len(fig.axes[0].patches) == 1
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "unknown" in texts and "×" not in texts


def test_energy_bars_end_at_the_energy():
    """On the log axis a bar must top out at its energy, not at energy + the axis floor."""
    from biospike import figures

    bars = [{"encoding": "delta", "target": t, "hardware": hw, "fits": True, "energy_j": e, "reason": None}
            for t, hw, e in (("snn", "loihi", 3e-6), ("snn", "xylo_audio2", 2e-7), ("ann", "cortex_m4", 7.7e-5))]
    bars.append({"encoding": "delta", "target": "snn", "hardware": "speck", "fits": False, "energy_j": None,
                 "reason": "does not fit"})
    fig = figures.plot_energy({"dataset": "d", "encodings": ["delta"], "hardware": ["loihi", "xylo_audio2", "speck", "cortex_m4"],
                               "bars": bars})
    tops = sorted(p.get_y() + p.get_height() for p in fig.axes[0].patches)
    assert tops == pytest.approx(sorted([3e-6, 2e-7, 7.7e-5]), rel=1e-9)
    assert any(t.get_text() == "×" for t in fig.axes[0].texts)  # the target it does not fit


def test_latency_curve_is_balanced_accuracy(tmp_path):
    """The latency-accuracy figure plots balanced accuracy by step (plain accuracy only for deploy
    results written before it existed, and then labelled as such)."""
    from biospike import figures

    dep = _deploy_json(np.random.default_rng(3), "loihi", "delta")
    doc = report.Doc(tmp_path / "loihi.json", dep)
    curve = report.accuracy_vs_steps(doc)
    assert curve["metric"] == "balanced_accuracy"
    assert curve["accuracy"] == dep["accuracy_vs_time"]["balanced_accuracy_by_step"]
    assert curve["early_exit"] == {"step": 21.0, "accuracy": dep["early_exit"]["balanced_accuracy"]}
    fig = figures.plot_latency_accuracy({"dataset": "d", "encodings": ["delta"],
                                         "curves": [{"encoding": "delta", "target": "snn", "hardware": "loihi", **curve}]})
    assert fig.axes[0].get_ylabel().startswith("balanced accuracy")
    old = json.loads(json.dumps(dep))
    del old["accuracy_vs_time"]["balanced_accuracy_by_step"], old["early_exit"]["balanced_accuracy"]
    curve = report.accuracy_vs_steps(report.Doc(tmp_path / "old.json", old))
    assert curve["metric"] == "accuracy" and curve["accuracy"] == dep["accuracy_vs_time"]["accuracy_by_step"]
    fig = figures.plot_latency_accuracy({"dataset": "d", "encodings": ["delta"],
                                         "curves": [{"encoding": "delta", "target": "snn", "hardware": "loihi", **curve}]})
    assert fig.axes[0].get_ylabel().startswith("accuracy")


def test_levers_table_compares_every_attacked_model_with_the_snn():
    """The privacy-utility-cost view: one line per attacked model with what it varies, its TPR CI,
    the comparison AUC where the attack has one, its base network's energy for a defense (marked),
    and the differences to the SNN with the AUC removed per point lost; absent when only one kind
    of model is attacked."""
    loihi = {"fits": True, "dynamic_energy_j": 8e-7, "energy_per_inference_j": 5e-2,
             "energy_total_terms": ["dynamic", "static"]}

    def row(model, bal, auc, deploy=None, comp=None):
        return {"dataset": "d", "encoding": "e", "model": model, "balanced_accuracy": bal,
                "balanced_accuracy_ci": [bal - 0.1, bal + 0.1], "attack": "rmia", "attack_auc": auc,
                "attack_auc_ci": [auc - 0.05, auc + 0.05], "attack_tpr_at_1pct_fpr": 0.02,
                "attack_tpr_at_1pct_fpr_ci": [0.0, 0.05], "comparison_max_attack_auc": comp, "deploy": deploy or {}}

    summary = {"hardware": ["loihi", "cortex_m4"], "rows": [
        row("snn", 0.75, 0.57, {"loihi": loihi}), row("dpsnn_eps8", 0.74, 0.57, {"loihi": loihi}, comp=0.6),
        row("qthrsnn_sd0.5", 0.70, 0.53, comp=0.55), row("converted", 0.77, 0.55, {"loihi": loihi}),
        row("enssnn_m3", 0.755, 0.56, {"loihi": loihi}, comp=0.58),
        {**row("classical", 0.7, 0.5), "attack": None}]}
    head, body = report.levers_table(summary)
    assert head[-4:] == ["loihi: dynamic (total) energy", "Δ bal. acc. vs SNN (points)", "Δ AUC vs SNN",
                         "AUC removed per point lost"]
    assert [b[2] for b in body] == ["SNN", "DP-SNN ε=8", "SNN + threshold noise σ=0.5", "converted SNN",
                                    "SNN ensemble M=3"]
    assert [b[3] for b in body] == ["none", "DP-SGD", "query-time threshold noise", "kind: converted SNN",
                                    "ensemble of SNNs"]
    snn, dp, qthr, conv, ens = body
    assert snn[-3:] == ["–", "–", "–"] and snn[7] == "0.020 [0.000, 0.050]" and snn[8] == "–"
    assert dp[8] == "0.600" and dp[-1] == "–"  # non-private references' AUC; a point lost, no AUC removed
    assert qthr[8] == "0.550" and qthr[9] == "800 nJ (50 mJ) (base network)"
    assert qthr[-3:] == ["-5.0", "-0.040", "0.0080"]
    assert conv[-3:] == ["+2.0", "-0.020", "free"]  # gained accuracy and removed AUC
    assert ens[8] == "0.580" and ens[-3:] == ["+0.5", "-0.010", "free"]
    assert report.levers_table({"hardware": [], "rows": [row("snn", 0.7, 0.6)]}) == ([], [])
    # an attack with a TPR but no AUC, and a lever that loses accuracy and leaks more: no ratio
    _, body = report.levers_table({"hardware": [], "rows": [row("snn", 0.75, 0.57), {**row("advsnn_l1", 0.7, 0.6)},
                                                             {**row("ann", 0.7, 0.5), "attack_auc": None}]})
    assert body[1][-3:] == ["-5.0", "+0.030", "–"] and body[2][-3:] == ["–", "–", "–"]
    # costed on the first edge target an attacked SNN fits, not on one it does not
    unfit = {"loihi": {"fits": False}, "speck": {**loihi}}
    head, _ = report.levers_table({"hardware": ["loihi", "speck"], "rows": [row("snn", 0.75, 0.57, unfit),
                                                                          row("ann", 0.7, 0.5)]})
    assert "speck: dynamic (total) energy" in head


def test_neurobench_table_lists_spiking_models_under_neurobench_names():
    from biospike.report import _neurobench_table

    nb = {"neurobench_footprint_bytes": 6172, "neurobench_connection_sparsity": 0.0161,
          "neurobench_activation_sparsity": 0.8907, "neurobench_effective_acs": 4893.8,
          "neurobench_effective_macs": 0.0, "neurobench_dense_ops": 147200.0}
    summary = {"rows": [
        {"dataset": "d", "encoding": "delta", "model": "snn", "deploy": {"loihi": {"fits": True, **nb}}},
        {"dataset": "d", "encoding": "delta", "model": "ann", "deploy": {"cortex_m4": {"fits": True}}},
    ]}
    head, body = _neurobench_table(summary)
    assert "ActivationSparsity" in head and "SynapticOperations: Effective_ACs" in head
    assert len(body) == 1  # the ANN on the MCU has no NeuroBench metrics
    assert body[0][3:] == ["6172", "0.016", "0.891", "4894", "0", "147200"]
