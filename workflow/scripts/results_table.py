"""Markdown tables for docs/results.md from a finished run: utility, privacy, leakage and edge
cost per task, plus the issue's targets checked one by one.

    python workflow/scripts/results_table.py results/real [--encoding delta]
    python workflow/scripts/results_table.py results/cohort --cohort   # docs/results.md, "Cohorts"
    python workflow/scripts/results_table.py results/dynamics --dynamics   # one row per encoding
    python workflow/scripts/results_table.py results/levers --levers       # one row per privacy lever
    python workflow/scripts/results_table.py results/zoo --zoo             # every model kind per task

Reads only what the workflow wrote: ``summary.json`` (utility, epsilon, deploy cost, each with
its source file) and every attacked model's ``attack/summary.json`` (all attacks, window level).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

ENERGY_TARGETS = ("loihi", "loihi2", "spinnaker2", "xylo_audio2", "speck", "truenorth", "cortex_m4")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def fmt(value: Any, digits: int = 3) -> str:
    v = _num(value)
    return "–" if v is None else f"{v:.{digits}f}"


def fmt_energy(value_j: Any) -> str:
    v = _num(value_j)
    if v is None:
        return "–"
    for scale, unit in ((1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v / 1e-12:.3g} pJ"


def strongest_attack(attack_summary: dict, level: str = "window") -> dict | None:
    """The attack with the highest AUC at ``level`` (with its CI and TPR at 1% FPR), and at window
    level the permutation p-value of that maximum (``strongest_window``) when the run has one."""
    best = None
    for name, result in attack_summary.get("attacks", {}).items():
        row = result.get(level) or {}
        auc = _num(row.get("auc"))
        if auc is not None and (best is None or auc > best["auc"]):
            best = {"attack": name, "auc": auc, "auc_ci": row.get("auc_ci"), "tpr_1pct": row.get("tpr_at_1pct_fpr")}
    test = attack_summary.get("strongest_window") if level == "window" else None
    if best is not None and test:
        best["p_value"] = test.get("p_value")
    return best


def test_split_kind(windows_h5: Path) -> str:
    """'cross-record' when test_records_regex forced the test split onto other records (another
    session: not the within-session accuracy the EMG target names), else 'within'."""
    if not windows_h5.exists():
        return "within"
    import h5py

    from biospike.store import get_json_attr

    with h5py.File(windows_h5, "r") as fh:
        split = get_json_attr(fh, "preprocessing", {}).get("split", {})
    return "cross-record" if split.get("test_records_regex") else "within"


def collect(results: Path, encoding: str) -> dict[str, dict[str, Any]]:
    summary = json.loads((results / "summary.json").read_text())
    tasks: dict[str, dict[str, Any]] = {}
    for row in summary["rows"]:
        if row["encoding"] != encoding:
            continue
        task = tasks.setdefault(row["dataset"], {"models": {},
                                                 "test_split": test_split_kind(results / row["dataset"] / "windows.h5")})
        task["models"][row["model"]] = row
        attack_file = results / row["dataset"] / encoding / row["model"] / "attack" / "summary.json"
        if attack_file.exists():
            row["strongest"] = strongest_attack(json.loads(attack_file.read_text()))
    return tasks


def _dp_models(models: dict) -> list[tuple[float, dict]]:
    return sorted((float(r["epsilon"]), r) for m, r in models.items() if m.startswith("dpsnn") and _num(r.get("epsilon")))


def utility_table(tasks: dict) -> list[str]:
    lines = ["| task | SNN | ANN | classical | SNN − ANN | DP-SNN bal. acc. at accounted ε | SNN strongest attack AUC [95% CI] (TPR@1%FPR, attack, p) |",
             "|---|---|---|---|---|---|---|"]
    for ds, task in tasks.items():
        m = task["models"]
        snn, ann, cls = (_num(m.get(k, {}).get("balanced_accuracy")) for k in ("snn", "ann", "classical"))
        dp = ", ".join(f"ε={fmt(r['epsilon'], 2)}: {fmt(r['balanced_accuracy'])}" for _, r in _dp_models(m)) or "–"
        att_s = _attack_cell(m.get("snn", {}).get("strongest"))
        diff = fmt(snn - ann) if snn is not None and ann is not None else "–"
        lines.append(f"| {ds} | {fmt(snn)} | {fmt(ann)} | {fmt(cls)} | {diff} | {dp} | {att_s} |")
    return lines


def _attack_cell(att: dict | None) -> str:
    if att is None:
        return "–"
    tpr = _num(att["tpr_1pct"])
    ci = att.get("auc_ci") or [None, None]
    p = _num(att.get("p_value"))
    p_s = "" if p is None else f", p = {p:.3f}"
    return f"{att['auc']:.2f} [{fmt(ci[0], 2)}, {fmt(ci[1], 2)}] ({'n/e' if tpr is None else f'{tpr:.3f}'}, {att['attack']}{p_s})"


def leakage_table(tasks: dict) -> list[str]:
    """Strongest window-level attack per attacked model: AUC [95% CI] (TPR at 1% FPR, attack)."""
    lines = ["| task | model | ε | test bal. acc. | strongest attack: AUC [95% CI] (TPR@1%FPR, attack, permutation p of the maximum) |",
             "|---|---|---|---|---|"]
    for ds, task in tasks.items():
        m = task["models"]
        dp_names = [r["model"] for _, r in _dp_models(m)]
        # the early-stopped SNN and ANN first, then every other attacked model (kinds such as stdp,
        # lever variants), then the DP models by epsilon
        rest = sorted(k for k in m if k not in ("snn", "ann") and k not in dp_names)
        order = [k for k in ("snn", "ann") if k in m] + rest + dp_names
        for model in order:
            row = m[model]
            if row.get("strongest") is None:
                continue
            eps = fmt(row.get("epsilon"), 2) if _num(row.get("epsilon")) is not None else "∞"
            lines.append(f"| {ds} | {model} | {eps} | {fmt(row.get('balanced_accuracy'))} | {_attack_cell(row['strongest'])} |")
    return lines


def fmt_known(value: Any, fmt_fn=None) -> str:
    """A number of a model that fits: "unknown" when no published figure prices it (null)."""
    return "unknown" if _num(value) is None else (fmt_fn or fmt_energy)(value)


def fmt_seconds(value_s: Any) -> str:
    v = _num(value_s)
    if v is None:
        return "–"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v / 1e-9:.3g} ns"


def like_for_like_total(dep: dict) -> float | None:
    """The total when it contains both dynamic and chip static energy, else None (shown as
    "unknown" and never set beside the complete totals)."""
    terms = tuple(sorted(dep.get("energy_total_terms") or ()))
    return _num(dep.get("energy_per_inference_j")) if terms == ("dynamic", "static") else None


def energy_table(tasks: dict) -> list[str]:
    """Per task and edge target: dynamic, static (chip; its share for the cores used in brackets)
    and total energy per inference, the compute latency apart from the real-time window and the
    energy-delay product on it, and the quantized balanced accuracy. "unknown": a term no
    published source prices; a total is shown only when it contains both terms."""
    lines = ["| task | target | dynamic | static: chip (used cores) | total | compute latency | EDP on compute "
             "| bal. acc. quantized |", "|---|---|---|---|---|---|---|---|"]
    for ds, task in tasks.items():
        for target in ENERGY_TARGETS:
            model = "ann" if target == "cortex_m4" else "snn"
            dep = (task["models"].get(model, {}).get("deploy") or {}).get(target)
            if not dep:
                continue
            if not dep.get("fits"):
                lines.append(f"| {ds} | {target} | does not fit | – | – | – | – | – |")
                continue
            static = fmt_known(dep.get("static_energy_j"))
            if _num(dep.get("static_used_cores_energy_j")) is not None:
                static += f" ({fmt_energy(dep['static_used_cores_energy_j'])})"
            edp = _num(dep.get("edp_compute_js"))
            lines.append(f"| {ds} | {target} | {fmt_known(dep.get('dynamic_energy_j'))} | {static} | "
                         f"{fmt_known(like_for_like_total(dep))} | {fmt_known(dep.get('compute_latency_s'), fmt_seconds)} | "
                         f"{'unknown' if edp is None else f'{edp:.3g} J s'} | {fmt(dep.get('quantized_balanced_accuracy'), 2)} |")
    return lines


def _auc_detail(att: dict | None) -> str:
    if not att:
        return ""
    p = _num(att.get("p_value"))
    return f"{att['attack']} {att['auc']:.2f}" + ("" if p is None else f", p = {p:.2f}")


def target_checks(tasks: dict, eps_target: float = 8.0) -> list[str]:
    lines = ["| task | SNN ≥ ANN − 0.03 | SNN > classical | EMG ≥ 0.90 within-session | ε=8 loses ≤ 0.05 | ε=8 strongest AUC ≤ 0.55 |",
             "|---|---|---|---|---|---|"]

    def mark(ok: bool | None, detail: str) -> str:
        return "–" if ok is None else ("yes" if ok else "**no**") + f" ({detail})"

    for ds, task in tasks.items():
        m = task["models"]
        snn, ann, cls = (_num(m.get(k, {}).get("balanced_accuracy")) for k in ("snn", "ann", "classical"))
        dp8 = next((r for e, r in _dp_models(m) if abs(e - eps_target) < 0.5), None)
        dp8_acc = _num(dp8.get("balanced_accuracy")) if dp8 else None
        dp8_att = dp8.get("strongest") if dp8 else None
        emg_within = ds.startswith("emg") and task.get("test_split", "within") == "within"
        lines.append("| " + " | ".join([
            ds,
            mark(None if snn is None or ann is None else snn >= ann - 0.03, f"{fmt(snn)} vs {fmt(ann)}"),
            mark(None if snn is None or cls is None else snn > cls, f"{fmt(snn)} vs {fmt(cls)}"),
            mark(snn >= 0.90 if emg_within and snn is not None else None, fmt(snn)),
            mark(None if dp8_acc is None or snn is None else snn - dp8_acc <= 0.05,
                 f"{fmt(dp8_acc)}, {dp8_acc - snn:+.3f}" if dp8_acc is not None and snn is not None else ""),
            mark(None if dp8_att is None else dp8_att["auc"] <= 0.55, _auc_detail(dp8_att)),
        ]) + " |")
    return lines


CINC_CLASSES = ("normal", "af", "other")  # the CinC 2017 score: mean F1 over N, A, O (noisy left out)


def _ci_cell(value: Any, ci: Any, digits: int = 3) -> str:
    v = _num(value)
    if v is None:
        return "n/e" if value == "not estimable" else "–"
    lo, hi = (ci or [None, None])[:2]
    return f"{v:.{digits}f} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def cohort_utility_table(results: Path, encoding: str) -> list[str]:
    """Per model: test balanced accuracy and macro-F1 with their subject-bootstrap CIs, the mean F1
    over N / AF / other where the task has those classes (window level, not CinC's per-recording
    score), test n, epsilon."""
    summary = json.loads((results / "summary.json").read_text())
    lines = ["| task | model | ε | bal. acc. [95% CI] | macro-F1 [95% CI] | F1 N/A/O (windows) | test windows (subjects) | chance |",
             "|---|---|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        if row["encoding"] != encoding:
            continue
        metrics = json.loads((results / row["dataset"] / encoding / row["model"] / "metrics.json").read_text())
        per_class = metrics["test"].get("per_class") or {}
        f1_nao = (fmt(sum(per_class[c]["f1"] for c in CINC_CLASSES) / len(CINC_CLASSES))
                  if all(c in per_class for c in CINC_CLASSES) else "–")
        eps = fmt(row.get("epsilon"), 2) if _num(row.get("epsilon")) is not None else "∞"
        lines.append(f"| {row['dataset']} | {row['model']} | {eps} | "
                     f"{_ci_cell(row.get('balanced_accuracy'), row.get('balanced_accuracy_ci'))} | "
                     f"{_ci_cell(row.get('macro_f1'), row.get('macro_f1_ci'))} | {f1_nao} | "
                     f"{row.get('test_n_windows')} ({row.get('test_n_subjects')}) | {fmt(row.get('chance_balanced_accuracy'))} |")
    return lines


def cohort_leakage_table(results: Path, encoding: str) -> list[str]:
    """Per attacked model and membership level: the strongest attack by AUC, its AUC, TPR at 1%
    and 0.1% FPR, each with its bootstrap CI ("n/e": too few non-members to estimate), and the
    number of members / non-members at that level."""
    lines = ["| task | model | level | strongest attack | AUC [95% CI] | TPR@1%FPR [95% CI] | TPR@0.1%FPR [95% CI] | members / non-members | K |",
             "|---|---|---|---|---|---|---|---|---|"]
    for attack_file in sorted(results.glob(f"*/{encoding}/*/attack/summary.json")):
        summary = json.loads(attack_file.read_text())
        model = attack_file.parent.parent.name
        for level in summary.get("levels", ["window"]):
            best = strongest_attack(summary, level)
            if best is None:
                continue
            row = summary["attacks"][best["attack"]][level]
            lines.append(f"| {summary['dataset']} | {model} | {level} | {best['attack']} | "
                         f"{_ci_cell(row['auc'], row.get('auc_ci'))} | "
                         f"{_ci_cell(row.get('tpr_at_1pct_fpr'), row.get('tpr_at_1pct_fpr_ci'))} | "
                         f"{_ci_cell(row.get('tpr_at_0.1pct_fpr'), row.get('tpr_at_0.1pct_fpr_ci'))} | "
                         f"{row.get('n_members')} / {row.get('n_nonmembers')} | {summary.get('K')} |")
    return lines


def dynamics_table(results: Path) -> list[str]:
    """One row per dataset, encoding (input dynamics) and spiking model: test balanced accuracy
    [CI], the strongest window-level attack's AUC and TPR at 1% / 0.1% FPR [CIs], input and hidden
    spikes per inference, training wall time, and the edge cost (dynamic energy per inference, the
    part the input dynamics change, and the total where it is like for like; average power) on
    each simulated target. The network is the same in
    every row, so its memory is too: the footprint is printed once, under the table."""
    summary = json.loads((results / "summary.json").read_text())
    hardware = list(summary.get("hardware") or [])
    head = ["task", "encoding", "model", "bal. acc. [95% CI]", "attack", "AUC [95% CI]", "TPR@1%FPR [95% CI]",
            "TPR@0.1%FPR [95% CI]", "input / hidden spikes per window", "train time"]
    head += [f"{hw} energy / inference: dynamic (total)" for hw in hardware] + [f"{hw} power" for hw in hardware]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    footprints = set()
    for row in summary["rows"]:
        tdir = results / row["dataset"] / row["encoding"] / row["model"]
        attack_file = tdir / "attack" / "summary.json"
        if not attack_file.exists():
            continue
        metrics = json.loads((tdir / "metrics.json").read_text())
        att = json.loads(attack_file.read_text())
        best = strongest_attack(att, "window")
        cell = att["attacks"][best["attack"]]["window"] if best else {}
        spikes = metrics.get("spikes_per_inference") or {}
        footprints.add(metrics.get("n_parameters"))
        deploy = row.get("deploy") or {}
        energy = [f"{fmt_energy(deploy[hw].get('dynamic_energy_j'))} ({fmt_energy(like_for_like_total(deploy[hw]))})"
                  if hw in deploy and deploy[hw].get("fits") else "–" for hw in hardware]
        power = [(f"{_num(deploy[hw].get('power_w')) * 1e3:.3g} mW"
                  if hw in deploy and _num(deploy[hw].get("power_w")) is not None else "–") for hw in hardware]
        lines.append("| " + " | ".join([
            row["dataset"], row["encoding"], row["model"],
            _ci_cell(row.get("balanced_accuracy"), row.get("balanced_accuracy_ci")),
            best["attack"] if best else "–", _ci_cell(cell.get("auc"), cell.get("auc_ci")),
            _ci_cell(cell.get("tpr_at_1pct_fpr"), cell.get("tpr_at_1pct_fpr_ci")),
            _ci_cell(cell.get("tpr_at_0.1pct_fpr"), cell.get("tpr_at_0.1pct_fpr_ci")),
            f"{fmt(spikes.get('input'), 1)} / {fmt(spikes.get('hidden'), 1)}", fmt_seconds(metrics.get("wall_time_s")),
            *energy, *power]) + " |")
    known = sorted(f for f in footprints if f is not None)
    if known:
        lines.append("")
        lines.append(f"Same network in every row: {', '.join(str(f) for f in known)} parameters "
                     f"({', '.join(f'{4 * f / 1024:.1f} KiB' for f in known)} in float32).")
    return lines


def levers_table(results: Path) -> list[str]:
    """The privacy-utility-cost view of the run's report (``biospike.report.levers_table``, the
    same rows the report's "Privacy levers" table shows): one row per attacked target (the SNN,
    each kind, each lever variant) with test balanced accuracy [CI], the strongest attack's AUC and
    TPR at 1% FPR [CIs] (for a defense: the adaptive attacker's, who knows it), the comparison AUC
    (a defense's non-adaptive attack, DP's non-private references, single SNNs for an ensemble),
    the edge energy per inference on the first neuromorphic target that runs the spiking models (a
    defense runs its base network: that network's figure, marked), and against the SNN: the
    accuracy lost and the AUC removed per point of accuracy lost."""
    from biospike.report import levers_table as report_levers_table

    head, body = report_levers_table(json.loads((results / "summary.json").read_text()))
    if not head:
        return ["(one kind of model attacked: nothing to compare)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    lines += ["", "AUC removed per point lost: (SNN's strongest AUC - this model's) / (SNN's balanced accuracy - "
              "this model's, in points); 'free' where the lever lost under half a point and removed AUC. The "
              "attack of a query-time defense is the adaptive one (references wrapped in the defense)."]
    return lines


def _test_with_ci(metrics: dict | None) -> str:
    """Test balanced accuracy with its 95% bootstrap CI ('n/e' where the test split has one cluster)."""
    test = (metrics or {}).get("test") or {}
    ci = test.get("balanced_accuracy_ci")
    return _ci_cell(test.get("balanced_accuracy"), ci) if ci else f"{fmt(test.get('balanced_accuracy'))} [n/e]"


def zoo_table(results: Path, encoding: str) -> list[str]:
    """One row per task: every trained model kind's test balanced accuracy (validation in
    parentheses), the spiking kind with the best validation accuracy and its test accuracy, and
    whether it beats the classical baseline and comes within 2 points of the ANN on the test split.
    Reads each model's ``metrics.json``; the choice sees validation numbers only."""
    from biospike.kinds import MODEL_KINDS

    per_task: dict[str, dict[str, dict]] = {}
    for metrics_file in sorted(results.glob(f"*/{encoding}/*/metrics.json")):
        kind = metrics_file.parent.name
        if kind not in MODEL_KINDS:  # variants (DP, converged, ...) are not kinds
            continue
        m = json.loads(metrics_file.read_text())
        per_task.setdefault(metrics_file.parent.parent.parent.name, {})[kind] = m
    kinds = [k.name for k in sorted(MODEL_KINDS, key=lambda k: k.order)
             if any(k.name in models for models in per_task.values())]
    labels = {k.name: k.label for k in MODEL_KINDS}
    lines = ["| task | " + " | ".join(labels[k] for k in kinds)
             + " | best spiking kind on validation: test [95% CI] | beats classical | within 2 pts of ANN |",
             "|---|" + "---|" * len(kinds) + "---|---|---|"]

    def acc(m: dict | None, split: str) -> float | None:
        return None if m is None else _num((m.get(split) or {}).get("balanced_accuracy"))

    for task, models in per_task.items():
        cells = [f"{fmt(acc(models.get(k), 'test'))} ({fmt(acc(models.get(k), 'val'))})" if k in models else "–"
                 for k in kinds]
        spiking = {k: acc(m, "val") for k, m in models.items() if MODEL_KINDS[k].spiking and acc(m, "val") is not None}
        best = max(spiking, key=lambda k: (spiking[k], -MODEL_KINDS[k].order)) if spiking else None
        best_test = acc(models.get(best), "test") if best else None
        cls, ann = acc(models.get("classical"), "test"), acc(models.get("ann"), "test")
        beats = "–" if best_test is None or cls is None else ("yes" if best_test > cls else "no") + f" ({best_test - cls:+.3f})"
        near = "–" if best_test is None or ann is None else ("yes" if best_test >= ann - 0.02 else "no") + f" ({best_test - ann:+.3f})"
        best_cell = ("–" if best is None else
                     f"{labels[best]}: {_test_with_ci(models.get(best))}; classical {_test_with_ci(models.get('classical'))}")
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {best_cell} | {beats} | {near} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--encoding", default="delta")
    parser.add_argument("--cohort", action="store_true",
                        help="the cohort tables: utility with CIs, leakage per model and membership level")
    parser.add_argument("--dynamics", action="store_true",
                        help="one row per encoding and attacked model: utility, leakage, spikes, time, edge cost")
    parser.add_argument("--levers", action="store_true",
                        help="the privacy-utility-cost view: one row per attacked model and lever")
    parser.add_argument("--zoo", action="store_true",
                        help="every model kind per task (test, validation), the spiking kind chosen on validation")
    args = parser.parse_args()
    if args.zoo:
        print("### Model kinds per task: test balanced accuracy (validation)\n")
        print("\n".join(zoo_table(args.results, args.encoding)) + "\n")
        return
    if args.levers:
        print("### Privacy levers: utility, leakage and edge cost\n")
        print("\n".join(levers_table(args.results)) + "\n")
        return
    if args.dynamics:
        print("### Input dynamics: the same SNN on each encoding\n")
        print("\n".join(dynamics_table(args.results)) + "\n")
        return
    if args.cohort:
        for title, lines in (("Utility (test split, 95% subject-bootstrap CIs)", cohort_utility_table(args.results, args.encoding)),
                             ("Leakage: strongest attack per model and membership level",
                              cohort_leakage_table(args.results, args.encoding))):
            print(f"### {title}\n")
            print("\n".join(lines) + "\n")
        return
    tasks = collect(args.results, args.encoding)
    for title, lines in (("Utility, privacy and leakage (test split, balanced accuracy)", utility_table(tasks)),
                         ("Leakage: strongest attack on every attacked model (window level)", leakage_table(tasks)),
                         ("Energy per inference: dynamic, static, total (unknown = a term no source publishes); "
                          "compute latency and EDP on it; Cortex-M4 runs the ANN", energy_table(tasks)),
                         ("Targets", target_checks(tasks))):
        print(f"### {title}\n")
        print("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
