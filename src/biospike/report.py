"""The report: one summary table with every number traced to its source, and the figures.

Inputs are the per-stage result files; what must exist is decided by the *plan*
(:mod:`biospike.plan`: datasets, encodings, trained targets, attacked targets, deployed targets x
hardware, T sweeps) that the workflow derives from the config and hands over in ``--params``.
A stage that is disabled has no entries in the plan and hence no rows or figures; a file the
plan names that is missing is an error naming the file. Without a plan (CLI use on an existing
results tree) the plan is discovered from the files present.

Traceability: ``summary.json`` holds ``rows`` (one per dataset x encoding x model) and a
parallel ``sources`` list: ``sources[i][column]`` is ``{"file": ..., "pointer": ...}`` (an RFC
6901 JSON pointer into that file) for every number in ``rows[i][column]``; deploy numbers sit
under ``rows[i]["deploy"][hardware][column]`` with the same nesting in ``sources``.
:func:`resolve_source` follows one; the tests check every cell that way.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from biospike.errors import BiospikeError
from biospike.plan import DatasetPlan, Plan, plan_from_json, target_dir
from biospike.registry import Registry
from biospike.store import atomic_path, provenance, read_json, write_json
from biospike.targets import dp_epsilon, label
from biospike.units import fmt_num, fmt_si

FIGURE_FORMATS = ("png", "svg")

DEFAULT_CFG: dict[str, Any] = {
    "formats": list(FIGURE_FORMATS),
    "dpi": 200,
    "example_split": "test",
    "example_index": 0,
    "signal_channels": 3,
    "best_attack_by": "tpr_at_1pct_fpr",
    "attack_level": "window",
}


def discover_plan(results: str | Path) -> Plan:
    """The plan implied by the files present under ``results`` (for CLI use without a config)."""
    results = Path(results)
    plan: Plan = {}
    for windows in sorted(results.glob("*/windows.h5")):
        ds_dir = windows.parent
        encodings = sorted(p.parent.name for p in ds_dir.glob("*/spikes.h5"))
        targets: set[str] = set()
        attacked: set[str] = set()
        deployed: dict[str, set[str]] = {}
        t_sweep = []
        mcu: set[str] = set()  # MCU baselines go last, as in the config's usual order
        for enc in encodings:
            enc_dir = ds_dir / enc
            if (enc_dir / "t_sweep.json").is_file():
                t_sweep.append(enc)
            for metrics in enc_dir.glob("*/metrics.json"):
                tgt = metrics.parent.name
                targets.add(tgt)
                if (metrics.parent / "attack" / "summary.json").is_file():
                    attacked.add(tgt)
                for hw_json in (metrics.parent / "deploy").glob("*.json"):
                    deployed.setdefault(tgt, set()).add(hw_json.stem)
                    if Doc.load(hw_json).find("/kind") == ("mcu", "/kind"):
                        mcu.add(hw_json.stem)
        if encodings:
            plan[ds_dir.name] = DatasetPlan(encodings, sorted(targets), sorted(attacked),
                                            {t: sorted(h, key=lambda x: (x in mcu, x)) for t, h in deployed.items()},
                                            t_sweep)
    return plan


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------


def summary_inputs(plan: Plan, results: str | Path) -> list[Path]:
    """Every file the summary reads, in a stable order."""
    results = Path(results)
    paths: list[Path] = []
    for ds, dp in plan.items():
        for enc in dp.encodings:
            for tgt in dp.targets:
                tdir = target_dir(results, ds, enc, tgt)
                paths.append(tdir / "metrics.json")
                if dp_epsilon(tgt) is not None:
                    paths.append(tdir / "privacy.json")
                if tgt in dp.attacked:
                    paths.append(tdir / "attack" / "summary.json")
                for hw in dp.deployed.get(tgt, []):
                    paths.append(tdir / "deploy" / f"{hw}.json")
    return paths


@dataclasses.dataclass(frozen=True)
class FigureSpec:
    """One figure kind: where it goes in the report, when a dataset has it, which files it reads
    (the figure rule's inputs), how its data are gathered (``data(ds, dp, results, cfg)``) and
    which ``biospike.figures.plot_<name>`` draws it."""

    name: str
    category: str  # Snakemake report category, numbered in pipeline order
    label: str
    applies: Callable[[DatasetPlan], bool]
    inputs: Callable[[DatasetPlan, Path, str], list[Path]]
    data: Callable[..., dict]


FIGURES: Registry[FigureSpec] = Registry("figure kind")


def register_figure(spec: FigureSpec) -> FigureSpec:
    return FIGURES.register(spec)


def _target_dirs(dp: DatasetPlan, results: Path, ds: str) -> list[tuple[str, str, Path]]:
    return [(enc, t, target_dir(results, ds, enc, t)) for enc in dp.encodings for t in dp.targets]


def figure_kinds(dp: DatasetPlan) -> list[str]:
    """The figures a dataset gets: a disabled stage has none."""
    return [f.name for f in FIGURES if f.applies(dp)]


def figure_inputs(plan: Plan, results: str | Path, kind: str, ds: str) -> list[Path]:
    """The files one figure reads (the figure rule's inputs)."""
    return FIGURES[kind].inputs(plan[ds], Path(results), ds)


def figure_paths(fig_dir: str | Path, ds: str, kind: str, formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    return [Path(fig_dir) / ds / f"{kind}.{fmt}" for fmt in formats]


def report_outputs(plan: Plan, results: str | Path, fig_dir: str | Path | None = None,
                   formats: Sequence[str] = FIGURE_FORMATS) -> list[Path]:
    """Everything the report writes for ``plan`` (summary files and every figure)."""
    results = Path(results)
    fig_dir = Path(fig_dir) if fig_dir is not None else results / "figures"
    out = [results / "summary.json", results / "summary.md", results / "summary.html"]
    for ds, dp in plan.items():
        for kind in figure_kinds(dp):
            out += figure_paths(fig_dir, ds, kind, formats)
    return out


def require_files(paths: Iterable[Path]) -> None:
    """Raise naming the first missing file (and how many others are missing)."""
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more missing file(s))" if len(missing) > 1 else ""
        raise BiospikeError(f"file not found: the report plan requires it{more}", missing[0])


# ---------------------------------------------------------------------------------------------
# reading per-stage files, with the source of every value
# ---------------------------------------------------------------------------------------------


def _pointer_escape(key: str) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def make_pointer(*keys: str | int) -> str:
    return "".join("/" + _pointer_escape(str(k)) for k in keys)


def resolve_pointer(data: Any, pointer: str) -> Any:
    """RFC 6901: ``/a/0/b`` -> data["a"][0]["b"]; KeyError/IndexError if absent."""
    if pointer == "":
        return data
    if not pointer.startswith("/"):
        raise KeyError(pointer)
    for raw in pointer[1:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(data, list):
            data = data[int(key)]
        elif isinstance(data, dict):
            data = data[key]
        else:
            raise KeyError(pointer)
    return data


def resolve_source(source: Mapping[str, str], base: str | Path = ".") -> Any:
    """The value a ``sources`` entry points at (``file`` relative to ``base`` unless absolute)."""
    path = Path(source["file"])
    if not path.is_absolute():
        path = Path(base) / path
    if path.suffix == ".csv":
        return _csv_source_value(path, source["pointer"])
    return resolve_pointer(read_json(path), source["pointer"])


def _csv_source_value(path: Path, pointer: str) -> float:
    """CSV sources use ``/<row>/<column>``."""
    _, row, column = pointer.split("/", 2)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    return float(rows[int(row)][column])


@dataclasses.dataclass
class Doc:
    """A JSON file and the name it is reported under."""

    path: Path
    data: Any

    @classmethod
    def load(cls, path: str | Path) -> Doc:
        return cls(Path(path), read_json(path))

    def find(self, *pointers: str) -> tuple[Any, str] | None:
        for ptr in pointers:
            try:
                return resolve_pointer(self.data, ptr), ptr
            except (KeyError, IndexError, ValueError, TypeError):
                continue
        return None

    def get(self, *pointers: str, required: bool = True, what: str = "") -> tuple[Any, str] | None:
        found = self.find(*pointers)
        if found is None and required:
            raise BiospikeError(f"no {what or 'value'} in this file (looked for {', '.join(pointers)})", self.path)
        return found

    def source(self, pointer: str) -> dict[str, str]:
        return {"file": str(self.path), "pointer": pointer}


class Row:
    """One summary row and its parallel sources."""

    def __init__(self, **keys: str) -> None:
        self.values: dict[str, Any] = dict(keys)
        self.sources: dict[str, Any] = {}

    def put(self, column: str, doc: Doc, found: tuple[Any, str] | None, sub: str | None = None,
            transform=None) -> None:
        values, sources = self.values, self.sources
        if sub is not None:
            values = values.setdefault("deploy", {}).setdefault(sub, {})
            sources = sources.setdefault("deploy", {}).setdefault(sub, {})
        if found is None:
            values[column] = None
            return
        value, ptr = found
        values[column] = transform(value) if transform else _plain(value)
        sources[column] = doc.source(ptr)


def as_number(value: Any) -> float | None:
    """A finite float, or None for null / NaN / strings such as "not estimable"."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Where each number lives in the per-stage files (JSON pointers; where a tuple holds several, the
# first present wins). Kept in one place so a change of an upstream format is a one-line change.
METRICS_TEST = "/test"  # biospike train / classical: metrics.json {"test": {...}, "class_names": [...]}
SPIKES_PER_INFERENCE = ("/spikes_per_inference/total",)  # input + hidden spikes (SNNs; null otherwise)
PRIVACY_KEYS = {  # biospike harden: privacy.json
    "epsilon": ("/epsilon",),
    "delta": ("/delta",),
    "privacy_unit": ("/privacy_unit",),
    "epsilon_valid_for_release": ("/valid_for_release",),  # false for replayable (seeded) noise
}
DEPLOY_KEYS = {  # biospike simulate: R/{dataset}/{encoding}/{target}/deploy/{hardware}.json
    "fits": ("/fits",),
    "runs_model": ("/model",),  # "snn" (also DP-SNNs), or "ann" for an MCU profile (under ann/deploy/)
    "energy_per_inference_j": ("/energy/per_inference_j",),
    "latency_s": ("/latency/per_inference_s",),
    "time_to_decision_s": ("/latency/time_to_decision_s",),
    "power_w": ("/power/average_at_real_time_w",),
    "quantized_accuracy": ("/accuracy/quantized",),
    "quantized_balanced_accuracy": ("/balanced_accuracy/quantized",),
    "float_balanced_accuracy": ("/balanced_accuracy/float",),  # the float model it is compared with
    "cores_used": ("/cores_used",),
}


def read_test_metric(doc: Doc, metric: str, required: bool = True) -> tuple[Any, str] | None:
    """(value, pointer) of a test-split metric (accuracy, balanced_accuracy, macro_f1)."""
    return doc.get(f"{METRICS_TEST}/{metric}", required=required, what=f"test {metric}")


def confusion_of(doc: Doc) -> tuple[list[list[float]], list[str] | None]:
    found = doc.get(f"{METRICS_TEST}/confusion", what="test confusion matrix")
    names = doc.find("/class_names")
    return found[0], (names[0] if names else None)


# --- attacks ---------------------------------------------------------------------------------

@dataclasses.dataclass
class AttackResult:
    name: str
    level: str
    auc: float | None
    tpr_at_1pct_fpr: float | str | None  # "not estimable" with too few non-members
    auc_ptr: str | None
    tpr_ptr: str | None


def attack_results(doc: Doc, level: str) -> list[AttackResult]:
    """Every attack at membership ``level`` (window | subject) in an attack/summary.json
    (biospike attack): ``{"attacks": {name: {level: {"auc", "tpr_at_1pct_fpr", ...}}}}``; an
    entry without "auc" (status "not estimable") has no numbers."""
    attacks = doc.data.get("attacks") if isinstance(doc.data, Mapping) else None
    if not isinstance(attacks, Mapping):
        raise BiospikeError("no 'attacks' mapping in this attack summary", doc.path)
    out: list[AttackResult] = []
    for name, by_level in attacks.items():
        entry = by_level.get(level) if isinstance(by_level, Mapping) else None
        if not isinstance(entry, Mapping):
            continue
        has_auc, has_tpr = "auc" in entry, "tpr_at_1pct_fpr" in entry
        out.append(AttackResult(
            name=name, level=level, auc=entry.get("auc"), tpr_at_1pct_fpr=entry.get("tpr_at_1pct_fpr"),
            auc_ptr=make_pointer("attacks", name, level, "auc") if has_auc else None,
            tpr_ptr=make_pointer("attacks", name, level, "tpr_at_1pct_fpr") if has_tpr else None,
        ))
    return out


def best_attack(results: list[AttackResult], by: str = "tpr_at_1pct_fpr") -> AttackResult | None:
    """The strongest attack: highest ``by`` (tpr_at_1pct_fpr or auc), ties broken by the other."""
    other = "auc" if by == "tpr_at_1pct_fpr" else "tpr_at_1pct_fpr"

    def key(r: AttackResult) -> tuple[float, float, str]:
        a, b = as_number(getattr(r, by)), as_number(getattr(r, other))
        return (-1.0 if a is None else a, -1.0 if b is None else b, r.name)

    usable = [r for r in results if as_number(r.auc) is not None or as_number(r.tpr_at_1pct_fpr) is not None]
    return max(usable, key=key) if usable else None


def read_roc(path: str | Path) -> tuple[list[float], list[float]]:
    """fpr, tpr columns of an attack ROC CSV."""
    path = Path(path)
    if not path.is_file():
        raise BiospikeError("file not found (ROC curve named by the attack summary)", path)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    if not rows or "fpr" not in rows[0] or "tpr" not in rows[0]:
        raise BiospikeError("ROC CSV needs 'fpr' and 'tpr' columns", path)
    return [float(r["fpr"]) for r in rows], [float(r["tpr"]) for r in rows]


def find_roc_csv(attack_dir: Path, attack: AttackResult) -> Path:
    """attack/{attack}_{level}_roc.csv beside the summary (biospike attack)."""
    return attack_dir / f"{attack.name}_{attack.level}_roc.csv"


# ---------------------------------------------------------------------------------------------
# curves and sweeps
# ---------------------------------------------------------------------------------------------


def read_curve(path: str | Path) -> dict[str, list[float]]:
    """A training curve CSV as column -> values (non-numeric cells become NaN)."""
    path = Path(path)
    if not path.is_file():
        raise BiospikeError("file not found (training curve)", path)
    rows = list(csv.DictReader(path.read_text().splitlines()))
    if not rows:
        return {}
    out: dict[str, list[float]] = {}
    for col in rows[0]:
        vals = []
        for r in rows:
            try:
                vals.append(float(r[col]))
            except (TypeError, ValueError):
                vals.append(float("nan"))
        out[col] = vals
    return out


def read_t_sweep(path: str | Path, level: str = "window") -> dict[str, dict[str, list]]:
    """t_sweep.json (biospike attack-sweep) -> per attack at ``level``: T, AUC (+ CI), TPR@1%FPR.

    Layout: ``{"rows": [{"time_steps", "attack", "level", "auc", "auc_ci_low", "auc_ci_high",
    "tpr_at_1pct_fpr", ...}], "trend": {...}}``; a TPR that is "not estimable" becomes NaN.
    """
    doc = Doc.load(path)
    rows = doc.data.get("rows") if isinstance(doc.data, Mapping) else None
    if not isinstance(rows, list):
        raise BiospikeError("no 'rows' list in this T-sweep file", path)
    out: dict[str, dict[str, list]] = {}
    for r in rows:
        if r.get("level", level) != level:
            continue
        try:
            t_steps = float(r["time_steps"])
        except (KeyError, TypeError, ValueError):
            raise BiospikeError("a T-sweep row has no numeric 'time_steps'", path) from None
        cols = out.setdefault(str(r.get("attack", "attack")), {"T": [], "auc": [], "auc_ci_low": [],
                                                               "auc_ci_high": [], "tpr_at_1pct_fpr": []})
        cols["T"].append(t_steps)
        for key in ("auc", "auc_ci_low", "auc_ci_high", "tpr_at_1pct_fpr"):
            v = as_number(r.get(key))
            cols[key].append(float("nan") if v is None else v)
    for name, cols in out.items():
        order = sorted(range(len(cols["T"])), key=lambda i: cols["T"][i])
        out[name] = {k: [v[i] for i in order] for k, v in cols.items()}
    return out


def accuracy_vs_steps(doc: Doc) -> dict[str, Any] | None:
    """Balanced accuracy after each elapsed step, the step duration on this target, and the
    early-exit point, from a deploy JSON (``accuracy_vs_time``); None when the target has no such
    curve (MCU baselines). ``metric`` names the score: deploy results written before balanced
    accuracy was added give plain accuracy (``"accuracy"``)."""
    metric = "balanced_accuracy"
    found = doc.find("/accuracy_vs_time/balanced_accuracy_by_step")
    if found is None or not found[0]:
        metric = "accuracy"
        found = doc.find("/accuracy_vs_time/accuracy_by_step")
    if found is None or not found[0]:
        return None
    acc = [float(a) for a in found[0]]
    step_s = doc.find("/accuracy_vs_time/step_s")
    exit_acc = doc.find(f"/early_exit/{metric}")
    exit_step = doc.find("/early_exit/exit_step_mean")
    return {"steps": list(range(1, len(acc) + 1)), "metric": metric, "accuracy": acc,
            "step_s": None if step_s is None else as_number(step_s[0]),
            "early_exit": None if exit_acc is None or exit_step is None else
            {"step": as_number(exit_step[0]), "accuracy": as_number(exit_acc[0])}}


# ---------------------------------------------------------------------------------------------
# the summary
# ---------------------------------------------------------------------------------------------

# test-split uncertainty and context (biospike.metrics.evaluate): column -> key under /test
UTILITY_KEYS = {"balanced_accuracy_ci": "balanced_accuracy_ci", "macro_f1_ci": "macro_f1_ci", "test_n_windows": "n",
                "test_n_subjects": "n_subjects", "chance_balanced_accuracy": "chance/balanced_accuracy"}
ROW_COLUMNS = ("balanced_accuracy", "balanced_accuracy_ci", "macro_f1", "macro_f1_ci", "test_n_windows",
               "test_n_subjects", "chance_balanced_accuracy", "accuracy", "epsilon", "delta", "privacy_unit", "epsilon_valid_for_release",
               "attack", "attack_auc", "attack_tpr_at_1pct_fpr", "max_attack_auc", "max_attack_auc_p",
               "spikes_per_inference")
DEPLOY_COLUMNS = tuple(DEPLOY_KEYS)


def build_summary(plan: Plan, results: str | Path, cfg: Mapping[str, Any] | None = None) -> dict:
    """Rows per dataset x encoding x model with a parallel ``sources`` list (module docstring)."""
    cfg = {**DEFAULT_CFG, **(cfg or {})}
    results = Path(results)
    require_files(summary_inputs(plan, results))
    rows: list[Row] = []
    for ds, dp in plan.items():
        for enc in dp.encodings:
            for tgt in dp.targets:
                tdir = target_dir(results, ds, enc, tgt)
                row = Row(dataset=ds, encoding=enc, model=tgt)
                metrics = Doc.load(tdir / "metrics.json")
                row.put("balanced_accuracy", metrics, read_test_metric(metrics, "balanced_accuracy"))
                row.put("macro_f1", metrics, read_test_metric(metrics, "macro_f1"))
                row.put("accuracy", metrics, read_test_metric(metrics, "accuracy", required=False))
                for column, key in UTILITY_KEYS.items():  # CIs, n, chance: absent in files before they existed
                    row.put(column, metrics, read_test_metric(metrics, key, required=False))
                row.put("spikes_per_inference", metrics, metrics.find(*SPIKES_PER_INFERENCE))
                if dp_epsilon(tgt) is not None:
                    priv = Doc.load(tdir / "privacy.json")
                    row.put("epsilon", priv, priv.get(*PRIVACY_KEYS["epsilon"], what="epsilon"))
                    row.put("delta", priv, priv.get(*PRIVACY_KEYS["delta"], what="delta"))
                    row.put("privacy_unit", priv, priv.find(*PRIVACY_KEYS["privacy_unit"]))
                    row.put("epsilon_valid_for_release", priv, priv.find(*PRIVACY_KEYS["epsilon_valid_for_release"]))
                else:
                    row.values.update(epsilon=None, delta=None, privacy_unit=None, epsilon_valid_for_release=None)
                row.values.update(attack=None, attack_auc=None, attack_tpr_at_1pct_fpr=None, max_attack_auc=None,
                                  max_attack_auc_p=None)
                if tgt in dp.attacked:
                    att = Doc.load(tdir / "attack" / "summary.json")
                    best = best_attack(attack_results(att, cfg["attack_level"]), cfg["best_attack_by"])
                    if best is None:
                        raise BiospikeError(f"no attack with an AUC or TPR at level {cfg['attack_level']!r}", att.path)
                    row.values["attack"] = best.name
                    row.sources["attack"] = att.source(make_pointer("attacks"))
                    row.put("attack_auc", att, None if best.auc_ptr is None else (best.auc, best.auc_ptr))
                    row.put("attack_tpr_at_1pct_fpr", att,
                            None if best.tpr_ptr is None else (best.tpr_at_1pct_fpr, best.tpr_ptr))
                    # the highest window AUC over all attacks and its permutation p-value (absent
                    # in summaries written before the test existed)
                    row.put("max_attack_auc", att, att.find("/strongest_window/auc"))
                    row.put("max_attack_auc_p", att, att.find("/strongest_window/p_value"))
                for hw in dp.deployed.get(tgt, []):
                    dep = Doc.load(tdir / "deploy" / f"{hw}.json")
                    for column, ptrs in DEPLOY_KEYS.items():
                        row.put(column, dep, dep.find(*ptrs), sub=hw)
                    if row.values["deploy"][hw]["fits"] is None:
                        raise BiospikeError("deploy result has no 'fits' field", dep.path)
                rows.append(row)
    return {
        "columns": list(ROW_COLUMNS),
        "deploy_columns": list(DEPLOY_COLUMNS),
        "units": {"energy_per_inference_j": "J", "latency_s": "s", "power_w": "W",
                  "spikes_per_inference": "spikes", "epsilon": "", "delta": ""},
        "best_attack_by": cfg["best_attack_by"],
        "attack_level": cfg["attack_level"],
        "hardware": list(dict.fromkeys(hw for dp in plan.values() for hw in dp.hardware)),
        "rows": [r.values for r in rows],
        "sources": [r.sources for r in rows],
    }


# --- markdown / html -------------------------------------------------------------------------

def _with_ci(value: Any, ci: Any) -> str:
    """0.612 [0.520, 0.701]; the point alone when there is no interval."""
    if value is None:
        return "–"
    if not isinstance(ci, list) or len(ci) != 2 or None in ci:
        return fmt_num(value)
    return f"{fmt_num(value)} [{fmt_num(ci[0])}, {fmt_num(ci[1])}]"


def _main_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    head = ["dataset", "encoding", "model", "bal. acc. [95% CI]", "chance", "macro-F1 [95% CI]", "test n (subjects)",
            "ε (δ, unit)", "best attack", "attack AUC", "TPR@1%FPR", "max AUC (p)", "spikes/inference"]
    body = []
    for r in summary["rows"]:
        eps = "–" if r["epsilon"] is None else f"{fmt_num(r['epsilon'], 2)} ({r['delta']:.0e}, {r['privacy_unit'] or '?'})"
        if r["epsilon"] is not None and r.get("epsilon_valid_for_release") is False:
            eps += " NOT valid for release (replayable noise)"
        n = "–" if r.get("test_n_windows") is None else (
            f"{r['test_n_windows']} ({r['test_n_subjects']})" if r.get("test_n_subjects") is not None else str(r["test_n_windows"]))
        body.append([r["dataset"], r["encoding"], label(r["model"]), _with_ci(r["balanced_accuracy"], r.get("balanced_accuracy_ci")),
                     fmt_num(r.get("chance_balanced_accuracy")), _with_ci(r["macro_f1"], r.get("macro_f1_ci")), n, eps,
                     r["attack"] or "–", fmt_num(r["attack_auc"]), fmt_num(r["attack_tpr_at_1pct_fpr"]), _max_auc_cell(r),
                     fmt_num(r["spikes_per_inference"], 1)])
    return head, body


def _max_auc_cell(r: Mapping[str, Any]) -> str:
    """Highest window AUC over all attacks with the permutation p-value of that maximum."""
    auc, p = r.get("max_attack_auc"), r.get("max_attack_auc_p")
    if auc is None:
        return "–"
    return fmt_num(auc) if p is None else f"{fmt_num(auc)} ({fmt_num(p)})"


def _balanced_cell(d: Mapping[str, Any]) -> str:
    """Quantized balanced accuracy, with the float model's in brackets: "0.812 (0.830)"."""
    q, f = d.get("quantized_balanced_accuracy"), d.get("float_balanced_accuracy")
    return fmt_num(q) if f is None else f"{fmt_num(q)} ({fmt_num(f)})"


def _deploy_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One line per model x edge target, in the summary's row order (SNN, DP-SNNs, then the ANN
    baseline on MCU profiles)."""
    head = ["dataset", "encoding", "model", "edge target", "fits", "cores", "bal. acc. quantized (float)",
            "energy/inference", "latency", "time to decision", "power"]
    order = {hw: i for i, hw in enumerate(summary.get("hardware", []))}
    body = []
    for r in summary["rows"]:
        for hw in sorted(r.get("deploy") or {}, key=lambda h: (order.get(h, len(order)), h)):
            d = r["deploy"][hw]
            body.append([r["dataset"], r["encoding"], label(r["model"]), hw, fmt_num(d["fits"]),
                         fmt_num(d.get("cores_used")), _balanced_cell(d), fmt_si(d["energy_per_inference_j"], "J"),
                         fmt_si(d["latency_s"], "s"), fmt_si(d.get("time_to_decision_s"), "s"), fmt_si(d["power_w"], "W")])
    return head, body


def _md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    by = "TPR at 1% FPR" if summary["best_attack_by"] == "tpr_at_1pct_fpr" else "AUC"
    parts = [
        "# biospike summary",
        "",
        "Test-split scores per dataset, encoding and model; privacy from each DP model's accountant; "
        f"the strongest membership-inference attack (by {by}, {summary['attack_level']}-level membership); "
        "spikes per inference on the test split. Every number is copied from a per-stage JSON file: "
        "`summary.json` lists, for each cell, the file and the JSON pointer it came from.",
        "",
        "## Utility, privacy and leakage",
        "",
        _md_table(*_main_table(summary)),
    ]
    head, body = _deploy_table(summary)
    if body:
        parts += ["", "## Edge targets", "",
                  "Per edge target: does the model fit, cores used, balanced accuracy of the quantized model on the "
                  "simulated test windows (of the float model in brackets), energy per inference (dynamic + static), "
                  "latency per inference, time to "
                  "decision with the confidence early exit, and average power at the real-time rate. "
                  "MCU targets run the same-size ANN baseline.", "", _md_table(head, body)]
    return "\n".join(parts) + "\n"


def summary_html(summary: Mapping[str, Any]) -> str:
    """The same tables as a small self-contained HTML page (shown in the Snakemake report)."""
    import html

    def table(head: list[str], body: list[list[str]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs, previous = [], None
        for row in body:
            group = tuple(row[:2])  # dataset, encoding: a rule above each new group
            cls = " class='group'" if previous is not None and group != previous else ""
            previous = group
            trs.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(trs)}</tbody></table>"

    md = summary_markdown(summary).split("\n\n")
    intro = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(md[1]))
    style = ("body{font-family:system-ui,sans-serif;margin:1em 1.2em;color:#222}"
             "table{border-collapse:collapse;font-size:12.5px;margin-bottom:2em}"
             "th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}"
             "th{background:#f3f3f3;position:sticky;top:0}"
             "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
             "tr.group td{border-top:2px solid #999}"
             "tr:hover td{background:#f7fbff}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>biospike summary</title><style>{style}</style></head><body>",
             "<h1>biospike summary</h1>", f"<p>{intro}</p>", "<h2>Utility, privacy and leakage</h2>",
             table(*_main_table(summary))]
    head, body = _deploy_table(summary)
    if body:
        parts += ["<h2>Edge targets</h2>", table(head, body)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# ---------------------------------------------------------------------------------------------
# figures (plotting lives in biospike.figures; here: gather the data for one figure)
# ---------------------------------------------------------------------------------------------


def make_figure(kind: str, ds: str, plan: Plan, results: str | Path, fig_dir: str | Path,
                cfg: Mapping[str, Any] | None = None) -> list[Path]:
    """Draw one figure of one dataset; returns the files written."""
    from biospike import figures

    cfg = {**DEFAULT_CFG, **(cfg or {})}
    results = Path(results)
    if ds not in plan:
        raise BiospikeError(f"dataset {ds!r} is not in the report plan (have: {', '.join(plan)})")
    dp = plan[ds]
    if kind not in figure_kinds(dp):
        raise BiospikeError(f"figure {kind!r} has no data for dataset {ds!r} (stage disabled in the plan)")
    require_files(figure_inputs(plan, results, kind, ds))
    data = FIGURES[kind].data(ds, dp, results, cfg)
    fig = getattr(figures, f"plot_{kind}")(data)
    paths = figure_paths(fig_dir, ds, kind, cfg["formats"])
    figures.save(fig, paths, dpi=cfg["dpi"])
    return paths


def _signals_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:
    import numpy as np

    from biospike.store import read_spikes, read_windows

    win = read_windows(results / ds / "windows.h5")
    split = cfg["example_split"]
    pool = win.splits.get(split)
    if pool is None or len(pool) == 0:
        pool = np.arange(len(win.labels))
    idx = int(pool[min(int(cfg["example_index"]), len(pool) - 1)])
    n_ch = min(int(cfg["signal_channels"]), len(win.channel_names))
    encodings = {}
    for enc in dp.encodings:
        sp = read_spikes(results / ds / enc / "spikes.h5")
        if len(sp.labels) != len(win.labels):
            raise BiospikeError(f"spikes.h5 has {len(sp.labels)} windows, windows.h5 has {len(win.labels)}",
                                results / ds / enc / "spikes.h5")
        encodings[enc] = {"spikes": sp.spikes[idx], "dt_s": sp.dt_s, "channel_names": sp.channel_names,
                          "encoder": sp.encoder}
    return {
        "dataset": ds, "signal": win.signals[idx, :n_ch], "fs_hz": win.fs_hz,
        "channel_names": win.channel_names[:n_ch], "label": win.class_names[int(win.labels[idx])],
        "modality": win.modality, "window_index": idx, "encodings": encodings,
    }


def _training_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001
    curves = {enc: {t: read_curve(target_dir(results, ds, enc, t) / "curve.csv") for t in dp.targets}
              for enc in dp.encodings}
    return {"dataset": ds, "curves": curves}


def _confusion_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001
    mats = {}
    class_names = None
    for enc in dp.encodings:
        for t in dp.targets:
            doc = Doc.load(target_dir(results, ds, enc, t) / "metrics.json")
            mat, names = confusion_of(doc)
            class_names = class_names or names
            bal = read_test_metric(doc, "balanced_accuracy")[0]
            mats[(enc, t)] = {"confusion": mat, "balanced_accuracy": bal}
    if class_names is None:
        from biospike.store import read_spikes

        class_names = read_spikes(results / ds / dp.encodings[0] / "spikes.h5").class_names
    return {"dataset": ds, "encodings": dp.encodings, "targets": dp.targets, "matrices": mats,
            "class_names": class_names}


def _privacy_utility_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001
    out: dict[str, Any] = {"dataset": ds, "encodings": {}}
    for enc in dp.encodings:
        points = []
        lines = {}
        unit = None
        for t in dp.targets:
            tdir = target_dir(results, ds, enc, t)
            if dp_epsilon(t) is not None:
                bal = read_test_metric(Doc.load(tdir / "metrics.json"), "balanced_accuracy")[0]
                priv = Doc.load(tdir / "privacy.json")
                eps = priv.get(*PRIVACY_KEYS["epsilon"], what="epsilon")[0]
                found_unit = priv.find(*PRIVACY_KEYS["privacy_unit"])
                unit = unit or (found_unit[0] if found_unit else None)
                points.append({"target": t, "epsilon": eps, "balanced_accuracy": bal})
            elif t in ("snn", "ann"):
                lines[t] = read_test_metric(Doc.load(tdir / "metrics.json"), "balanced_accuracy")[0]
        out["encodings"][enc] = {"points": sorted(points, key=lambda p: p["epsilon"]), "lines": lines, "unit": unit}
    first = Doc.load(target_dir(results, ds, dp.encodings[0], dp.targets[0]) / "metrics.json")
    out["n_classes"] = len(confusion_of(first)[0])
    return out


def _roc_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:
    out: dict[str, Any] = {"dataset": ds, "level": cfg["attack_level"], "encodings": {}}
    for enc in dp.encodings:
        curves = {}
        for t in dp.attacked:
            tdir = target_dir(results, ds, enc, t)
            att = Doc.load(tdir / "attack" / "summary.json")
            best = best_attack(attack_results(att, cfg["attack_level"]), cfg["best_attack_by"])
            if best is None:
                continue
            fpr, tpr = read_roc(find_roc_csv(tdir / "attack", best))
            ceiling = None
            if dp_epsilon(t) is not None:
                priv = Doc.load(tdir / "privacy.json")
                ceiling = (priv.get(*PRIVACY_KEYS["epsilon"], what="epsilon")[0],
                           priv.get(*PRIVACY_KEYS["delta"], what="delta")[0])
            curves[t] = {"attack": best.name, "fpr": fpr, "tpr": tpr, "auc": best.auc, "ceiling": ceiling}
        out["encodings"][enc] = curves
    return out


def _attack_vs_T_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001, N802
    return {"dataset": ds, "level": cfg["attack_level"],
            "sweeps": {enc: read_t_sweep(results / ds / enc / "t_sweep.json", cfg["attack_level"]) for enc in dp.t_sweep}}


def _deploy_docs(ds: str, dp: DatasetPlan, results: Path) -> dict[tuple[str, str, str], Doc]:
    return {(enc, t, hw): Doc.load(target_dir(results, ds, enc, t) / "deploy" / f"{hw}.json")
            for enc in dp.encodings for t, hws in dp.deployed.items() for hw in hws}


def _energy_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001
    bars = []
    for (enc, t, hw), doc in _deploy_docs(ds, dp, results).items():  # each JSON under the model it costs
        fits = doc.get(*DEPLOY_KEYS["fits"], what="fits")[0]
        energy = doc.find(*DEPLOY_KEYS["energy_per_inference_j"])
        reason = doc.find("/reasons")
        bars.append({"encoding": enc, "target": t, "hardware": hw, "fits": bool(fits),
                     "energy_j": None if energy is None else energy[0],
                     "reason": None if reason is None else reason[0]})
    return {"dataset": ds, "encodings": dp.encodings, "hardware": dp.hardware, "bars": bars}


def _latency_accuracy_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:  # noqa: ARG001
    curves = []
    for (enc, t, hw), doc in _deploy_docs(ds, dp, results).items():
        found = accuracy_vs_steps(doc)
        if found is None or not doc.get(*DEPLOY_KEYS["fits"], what="fits")[0]:
            continue
        curves.append({"encoding": enc, "target": t, "hardware": hw, **found})
    return {"dataset": ds, "encodings": dp.encodings, "curves": curves}


def _privacy_inputs(dp: DatasetPlan, results: Path, ds: str) -> list[Path]:
    tdirs = _target_dirs(dp, results, ds)
    return [d / "metrics.json" for _, t, d in tdirs if t in ("snn", "ann") or dp_epsilon(t) is not None] + \
           [d / "privacy.json" for _, t, d in tdirs if dp_epsilon(t) is not None]


def _roc_inputs(dp: DatasetPlan, results: Path, ds: str) -> list[Path]:
    tdirs = _target_dirs(dp, results, ds)
    return [d / "attack" / "summary.json" for _, t, d in tdirs if t in dp.attacked] + \
           [d / "privacy.json" for _, t, d in tdirs if t in dp.attacked and dp_epsilon(t) is not None]


def _deploy_inputs(dp: DatasetPlan, results: Path, ds: str) -> list[Path]:
    return [d / "deploy" / f"{hw}.json" for _, t, d in _target_dirs(dp, results, ds) for hw in dp.deployed.get(t, [])]


for _spec in (
    FigureSpec("signals", "2 Encoding", "signal and spike rasters", lambda dp: True,
               lambda dp, r, ds: [r / ds / "windows.h5"] + [r / ds / enc / "spikes.h5" for enc in dp.encodings],
               _signals_data),
    FigureSpec("training", "3 Training", "training curves", lambda dp: True,
               lambda dp, r, ds: [d / "curve.csv" for _, _, d in _target_dirs(dp, r, ds)], _training_data),
    FigureSpec("confusion", "3 Training", "confusion matrices", lambda dp: True,
               lambda dp, r, ds: [d / "metrics.json" for _, _, d in _target_dirs(dp, r, ds)], _confusion_data),
    FigureSpec("privacy_utility", "4 Privacy", "privacy-utility curve", lambda dp: bool(dp.dp_targets),
               _privacy_inputs, _privacy_utility_data),
    FigureSpec("roc", "5 Membership inference", "attack ROC (log-log) with DP ceilings", lambda dp: bool(dp.attacked),
               _roc_inputs, _roc_data),
    FigureSpec("attack_vs_T", "5 Membership inference", "attack TPR and AUC vs time steps T",
               lambda dp: bool(dp.t_sweep), lambda dp, r, ds: [r / ds / enc / "t_sweep.json" for enc in dp.t_sweep],
               _attack_vs_T_data),
    FigureSpec("energy", "6 Edge deployment", "energy per inference per target", lambda dp: bool(dp.deployed),
               _deploy_inputs, _energy_data),
    FigureSpec("latency_accuracy", "6 Edge deployment", "latency-accuracy trade-off", lambda dp: bool(dp.deployed),
               _deploy_inputs, _latency_accuracy_data),
):
    register_figure(_spec)


def make_figures(plan: Plan, results: str | Path, fig_dir: str | Path, cfg: Mapping[str, Any] | None = None,
                 kinds: Sequence[str] | None = None, datasets: Sequence[str] | None = None) -> list[Path]:
    written: list[Path] = []
    for ds in datasets or list(plan):
        for kind in figure_kinds(plan[ds]):
            if kinds is None or kind in kinds:
                written += make_figure(kind, ds, plan, results, fig_dir, cfg)
    return written


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def write_summary(plan: Plan, results: str | Path, output_json: str | Path, output_md: str | Path | None = None,
                  output_html: str | Path | None = None, cfg: Mapping[str, Any] | None = None,
                  params: Mapping[str, Any] | None = None) -> dict:
    summary = build_summary(plan, results, cfg)
    summary["provenance"] = provenance(params or {}, inputs=summary_inputs(plan, results),
                                       seed=(params or {}).get("seed"))
    write_json(output_json, summary)
    if output_md is not None:
        write_text(output_md, summary_markdown(summary))
    if output_html is not None:
        write_text(output_html, summary_html(summary))
    return summary


def cli(argv: list[str], prog: str = "biospike report") -> int:
    from biospike.cliutil import load_context, load_params, stage_parser

    parser = stage_parser(prog, "Summary tables (JSON, Markdown, HTML) and figures from a results tree.",
                          sections=("report",), names=())
    parser.add_argument("--results", required=True, help="results directory (config results_dir)")
    parser.add_argument("--plan", help="the run's plan as JSON or @file (biospike.plan); default: discovered from --results")
    parser.add_argument("--output-json", help="summary.json to write")
    parser.add_argument("--output-md", help="summary.md to write")
    parser.add_argument("--output-html", help="summary.html to write (a table for the Snakemake report)")
    parser.add_argument("--figures", help="figure directory: {figures}/{dataset}/{kind}.{png,svg}")
    parser.add_argument("--only", action="append", choices=FIGURES.names(), metavar="KIND",
                        help=f"draw only this figure kind (repeatable; {', '.join(FIGURES.names())})")
    parser.add_argument("--dataset", action="append", help="draw figures of this dataset only (repeatable)")
    args = parser.parse_args(argv)
    ctx = load_context(args)
    cfg = {**DEFAULT_CFG, **ctx["report"]}
    plan = plan_from_json(load_params(args.plan)) if args.plan else discover_plan(args.results)
    if not plan:
        raise BiospikeError("nothing to report: no dataset with windows.h5 and spikes.h5", args.results)
    if not (args.output_json or args.figures):
        parser.error("give --output-json and/or --figures")
    if args.output_json:
        write_summary(plan, args.results, args.output_json, args.output_md, args.output_html, cfg,
                      {"report": ctx["report"], "seed": ctx.seed})
    if args.figures:
        if args.dataset:
            unknown = sorted(set(args.dataset) - set(plan))
            if unknown:
                raise BiospikeError(f"dataset(s) {unknown} not in the report plan (have: {', '.join(plan)})")
        if args.only and args.dataset:
            # a figure rule: exactly these figures, an error if the plan has no data for them
            for ds in args.dataset:
                for kind in args.only:
                    make_figure(kind, ds, plan, args.results, args.figures, cfg)
        else:
            make_figures(plan, args.results, args.figures, cfg, kinds=args.only, datasets=args.dataset)
    return 0
