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

One rule names each model's strongest membership-inference attack, everywhere (table, ROC figure,
``summary.json``): ``report.best_attack_by`` (default ``auc``: the highest window-level AUC over
all attacks, the maximum whose permutation p-value ``attack/summary.json`` reports under
``strongest_window``); :func:`strongest_attack` applies it and ``summary.json`` states it under
``strongest_attack_rule``. An edge target a model does not fit carries its reasons and no
numbers. ``summary.html`` shows every figure of the plan (relative links into the figure
directory) and a methods paragraph generated from the plan and the per-stage files
(:func:`methods_facts`, :func:`methods_text`).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from biospike.errors import BiospikeError
from biospike.plan import DatasetPlan, Plan, plan_from_json, target_dir
from biospike.registry import Registry
from biospike.store import atomic_path, provenance, read_json, write_json
from biospike.targets import dp_epsilon, label, parse
from biospike.units import fmt_num, fmt_si

__all__ = [
    "AttackResult", "DEFAULT_CFG", "DEPLOY_KEYS", "Doc", "FIGURES", "FIGURE_FORMATS", "FigureSpec",
    "LIKE_FOR_LIKE_TERMS", "Row",
    "accuracy_vs_steps", "as_number", "attack_results", "best_attack", "build_summary", "cli", "confusion_of",
    "discover_plan", "figure_entries", "figure_inputs", "figure_kinds", "figure_paths", "find_roc_csv",
    "levers_hardware", "levers_table", "like_for_like_total_j", "make_figure", "make_figures", "make_pointer", "methods_facts", "methods_text", "read_curve", "read_roc",
    "read_t_sweep", "read_test_metric", "register_figure", "report_outputs", "require_files", "resolve_pointer",
    "resolve_source", "strongest_attack", "strongest_attack_rule", "summary_html", "summary_inputs",
    "summary_markdown", "write_summary", "write_text",
]

FIGURE_FORMATS = ("png", "svg")

DEFAULT_CFG: dict[str, Any] = {
    "formats": list(FIGURE_FORMATS),
    "dpi": 200,
    "example_split": "test",
    "example_index": 0,
    "signal_channels": 3,
    "best_attack_by": "auc",
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
    """Every file the summary reads, in a stable order: the per-target JSON files, and each
    dataset's windows.h5 and spikes.h5 (only their attributes, for the methods paragraph)."""
    results = Path(results)
    paths: list[Path] = []
    for ds, dp in plan.items():
        paths.append(results / ds / "windows.h5")
        paths += [results / ds / enc / "spikes.h5" for enc in dp.encodings]
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
    """Add a figure kind (drawn by ``biospike.figures.plot_<name>``); the workflow makes one rule per kind."""
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
    """``{fig_dir}/{ds}/{kind}.{fmt}`` for each format."""
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
    """RFC 6901 pointer of a key path: ("a/b", 0) -> "/a~1b/0"."""
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
        """Read a JSON file."""
        return cls(Path(path), read_json(path))

    def find(self, *pointers: str) -> tuple[Any, str] | None:
        """(value, pointer) of the first pointer present, or None."""
        for ptr in pointers:
            try:
                return resolve_pointer(self.data, ptr), ptr
            except (KeyError, IndexError, ValueError, TypeError):
                continue
        return None

    def get(self, *pointers: str, required: bool = True, what: str = "") -> tuple[Any, str] | None:
        """As :meth:`find`; a missing value is an error naming the file unless ``required`` is False."""
        found = self.find(*pointers)
        if found is None and required:
            raise BiospikeError(f"no {what or 'value'} in this file (looked for {', '.join(pointers)})", self.path)
        return found

    def source(self, pointer: str) -> dict[str, str]:
        """The ``sources`` entry of a value at ``pointer`` in this file."""
        return {"file": str(self.path), "pointer": pointer}


class Row:
    """One summary row and its parallel sources."""

    def __init__(self, **keys: str) -> None:
        self.values: dict[str, Any] = dict(keys)
        self.sources: dict[str, Any] = {}

    def put(self, column: str, doc: Doc, found: tuple[Any, str] | None, sub: str | None = None,
            transform=None) -> None:
        """Set ``column`` (under ``deploy/{sub}`` when given) from ``found`` = (value, pointer) of
        ``doc``, with its source; None (no source) when not found."""
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
    "energy_per_inference_j": ("/energy/per_inference_j",),  # total: dynamic + chip static (null: unknown)
    "dynamic_energy_j": ("/energy/dynamic_j",),
    "static_energy_j": ("/energy/static_j",),  # chip static power x on-time
    "static_used_cores_energy_j": ("/energy/static_used_cores_j",),  # its share for the cores used
    "energy_total_terms": ("/energy/total_terms",),  # what the total contains: ["dynamic", "static"]
    "latency_s": ("/latency/per_inference_s",),
    "compute_latency_s": ("/latency/compute_per_inference_s",),  # the chip's own, apart from the window
    "edp_compute_js": ("/energy/edp_compute_js",),  # energy-delay product on the compute latency
    "time_to_decision_s": ("/latency/time_to_decision_s",),
    "power_w": ("/power/average_at_real_time_w",),
    "quantized_accuracy": ("/accuracy/quantized",),
    "quantized_balanced_accuracy": ("/balanced_accuracy/quantized",),
    "float_balanced_accuracy": ("/balanced_accuracy/float",),  # the float model it is compared with
    "cores_used": ("/cores_used",),
    # NeuroBench's own metrics (biospike.deploy.neurobench), per window, under its names
    "neurobench_effective_acs": ("/neurobench/metrics/SynapticOperations/Effective_ACs",),
    "neurobench_effective_macs": ("/neurobench/metrics/SynapticOperations/Effective_MACs",),
    "neurobench_dense_ops": ("/neurobench/metrics/SynapticOperations/Dense",),
    "neurobench_activation_sparsity": ("/neurobench/metrics/ActivationSparsity",),
    "neurobench_connection_sparsity": ("/neurobench/metrics/ConnectionSparsity",),
    "neurobench_footprint_bytes": ("/neurobench/metrics/Footprint",),
}


def read_test_metric(doc: Doc, metric: str, required: bool = True) -> tuple[Any, str] | None:
    """(value, pointer) of a test-split metric (accuracy, balanced_accuracy, macro_f1)."""
    return doc.get(f"{METRICS_TEST}/{metric}", required=required, what=f"test {metric}")


def confusion_of(doc: Doc) -> tuple[list[list[float]], list[str] | None]:
    """The test confusion matrix of a metrics.json and its class names (None if not recorded)."""
    found = doc.get(f"{METRICS_TEST}/confusion", what="test confusion matrix")
    names = doc.find("/class_names")
    return found[0], (names[0] if names else None)


# --- attacks ---------------------------------------------------------------------------------

@dataclasses.dataclass
class AttackResult:
    """One attack's numbers at one membership level, with the JSON pointers they came from."""

    name: str
    level: str
    auc: float | None
    tpr_at_1pct_fpr: float | str | None  # "not estimable" with too few non-members
    auc_ptr: str | None
    tpr_ptr: str | None
    auc_ci: list[float] | None = None
    n_nonmembers: int | None = None


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
        ci = entry.get("auc_ci")
        out.append(AttackResult(
            name=name, level=level, auc=entry.get("auc"), tpr_at_1pct_fpr=entry.get("tpr_at_1pct_fpr"),
            auc_ptr=make_pointer("attacks", name, level, "auc") if has_auc else None,
            tpr_ptr=make_pointer("attacks", name, level, "tpr_at_1pct_fpr") if has_tpr else None,
            auc_ci=ci if isinstance(ci, list) and len(ci) == 2 else None,
            n_nonmembers=entry.get("n_nonmembers"),
        ))
    return out


def best_attack(results: list[AttackResult], by: str = "auc") -> AttackResult | None:
    """The strongest attack: highest ``by`` (auc or tpr_at_1pct_fpr), ties broken by the other,
    then by name (the first in sorted order, as the permutation test's maximum in
    ``biospike.attacks.metrics.strongest_attack_test`` breaks them)."""
    other = "auc" if by == "tpr_at_1pct_fpr" else "tpr_at_1pct_fpr"

    def key(r: AttackResult) -> tuple[float, float, str]:
        a, b = as_number(getattr(r, by)), as_number(getattr(r, other))
        return (-(-1.0 if a is None else a), -(-1.0 if b is None else b), r.name)

    usable = [r for r in results if as_number(r.auc) is not None or as_number(r.tpr_at_1pct_fpr) is not None]
    return min(usable, key=key) if usable else None


def strongest_attack(doc: Doc, level: str = "window", by: str = "auc") -> AttackResult | None:
    """The model's strongest attack by the report's one rule (:func:`strongest_attack_rule`),
    used by the summary table, the ROC figure and ``summary.json`` alike.

    With ``by="auc"`` at window level it is the attack named by ``strongest_window`` in the
    attack summary (the maximum the permutation test is about) whenever that is present, so the
    p-value printed beside it belongs to it; otherwise :func:`best_attack`."""
    results = attack_results(doc, level)
    if by == "auc" and level == "window":
        named = doc.find("/strongest_window/attack")
        if named is not None:
            match = [r for r in results if r.name == named[0] and as_number(r.auc) is not None]
            if match:
                return match[0]
    return best_attack(results, by)


def strongest_attack_rule(by: str = "auc", level: str = "window") -> str:
    """The rule in words, as the table header, the figure title and ``summary.json`` state it."""
    if by == "auc":
        return f"highest {level}-level AUC over all attacks (ties: higher TPR at 1% FPR, then name)"
    return f"highest {level}-level TPR at 1% FPR over all attacks (ties: higher AUC, then name)"


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
               "attack", "attack_auc", "attack_auc_ci", "attack_tpr_at_1pct_fpr", "attack_tpr_at_1pct_fpr_ci", "max_attack_auc",
               "max_attack_auc_p",
               "comparison_reference_kind", "comparison_attack", "comparison_max_attack_auc",
               "comparison_max_attack_auc_p", "spikes_per_inference")
DEPLOY_COLUMNS = (*DEPLOY_KEYS, "reasons")
# deploy cells that stay when the model does not fit the target (the rest would be numbers for a
# mapping that cannot run: the summary prints none of them)
DEPLOY_KEPT_WHEN_UNFIT = ("fits", "runs_model", "reasons")


def build_summary(plan: Plan, results: str | Path, cfg: Mapping[str, Any] | None = None,
                  fig_dir: str | Path | None = None, page_dir: str | Path | None = None) -> dict:
    """Rows per dataset x encoding x model with a parallel ``sources`` list (module docstring),
    the strongest-attack rule, every figure of the plan (paths relative to ``page_dir``, default
    ``results``; figures in ``fig_dir``, default ``results/figures``) and the methods paragraph
    with the facts it was written from."""
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
                row.values.update({c: None for c in ROW_COLUMNS if c.startswith(("attack", "max_attack", "comparison"))})
                if tgt in dp.attacked:
                    _put_attacks(row, Doc.load(tdir / "attack" / "summary.json"), cfg)
                for hw in dp.deployed.get(tgt, []):
                    _put_deploy(row, Doc.load(tdir / "deploy" / f"{hw}.json"), hw)
                rows.append(row)
    return {
        "columns": list(ROW_COLUMNS),
        "deploy_columns": list(DEPLOY_COLUMNS),
        "units": {"energy_per_inference_j": "J", "dynamic_energy_j": "J", "static_energy_j": "J",
                  "static_used_cores_energy_j": "J", "latency_s": "s", "compute_latency_s": "s", "edp_compute_js": "J s",
                  "time_to_decision_s": "s", "power_w": "W",
                  "spikes_per_inference": "spikes", "epsilon": "", "delta": ""},
        "best_attack_by": cfg["best_attack_by"],
        "attack_level": cfg["attack_level"],
        "strongest_attack_rule": strongest_attack_rule(cfg["best_attack_by"], cfg["attack_level"]),
        "hardware": list(dict.fromkeys(hw for dp in plan.values() for hw in dp.hardware)),
        "rows": [r.values for r in rows],
        "sources": [r.sources for r in rows],
        "figures": figure_entries(plan, results / "figures" if fig_dir is None else fig_dir,
                                  results if page_dir is None else page_dir, cfg["formats"]),
        "methods": {"text": methods_text(facts := methods_facts(plan, results)), "facts": facts},
    }


def _put_attacks(row: Row, att: Doc, cfg: Mapping[str, Any]) -> None:
    """The strongest attack by the report's rule, its AUC (CI) and TPR at 1% FPR; the maximum
    window AUC with its permutation p-value; the same maximum with the comparison reference
    models (non-private references of a DP target), when the attack summary has them."""
    best = strongest_attack(att, cfg["attack_level"], cfg["best_attack_by"])
    if best is None:
        raise BiospikeError(f"no attack with an AUC or TPR at level {cfg['attack_level']!r}", att.path)
    row.values["attack"] = best.name
    row.sources["attack"] = att.source(make_pointer("attacks"))
    row.put("attack_auc", att, None if best.auc_ptr is None else (best.auc, best.auc_ptr))
    row.put("attack_auc_ci", att, att.find(make_pointer("attacks", best.name, best.level, "auc_ci")))
    row.put("attack_tpr_at_1pct_fpr", att, None if best.tpr_ptr is None else (best.tpr_at_1pct_fpr, best.tpr_ptr))
    row.put("attack_tpr_at_1pct_fpr_ci", att, att.find(make_pointer("attacks", best.name, best.level, "tpr_at_1pct_fpr_ci")))
    # absent in summaries written before the permutation test / the comparison existed
    row.put("max_attack_auc", att, att.find("/strongest_window/auc"))
    row.put("max_attack_auc_p", att, att.find("/strongest_window/p_value"))
    row.put("comparison_reference_kind", att, att.find("/comparison/reference_kind"))
    row.put("comparison_attack", att, att.find("/comparison/strongest_window/attack"))
    row.put("comparison_max_attack_auc", att, att.find("/comparison/strongest_window/auc"))
    row.put("comparison_max_attack_auc_p", att, att.find("/comparison/strongest_window/p_value"))


def _put_deploy(row: Row, dep: Doc, hw: str) -> None:
    """One edge target's cells; a model that does not fit keeps only fits, model and reasons."""
    fits = dep.find(*DEPLOY_KEYS["fits"])
    if fits is None:
        raise BiospikeError("deploy result has no 'fits' field", dep.path)
    for column, ptrs in DEPLOY_KEYS.items():
        keep = bool(fits[0]) or column in DEPLOY_KEPT_WHEN_UNFIT
        row.put(column, dep, dep.find(*ptrs) if keep else None, sub=hw)
    reasons = dep.find("/reasons")
    row.put("reasons", dep, reasons if reasons is not None and reasons[0] else None, sub=hw)
    if not fits[0] and not row.values["deploy"][hw]["reasons"]:
        row.values["deploy"][hw]["reasons"] = ["does not fit (the deploy result gives no reason)"]


# --- methods paragraph -----------------------------------------------------------------------


def _h5_attrs(path: Path) -> dict[str, Any]:
    """The attributes of an HDF5 file (JSON strings decoded; no dataset is read); {} when the
    file is absent or unreadable (the methods paragraph then leaves those facts out)."""
    import json

    import h5py

    if not path.is_file():
        return {}
    out: dict[str, Any] = {}
    try:
        with h5py.File(path, "r") as fh:
            for key, raw in fh.attrs.items():
                if isinstance(raw, bytes):
                    raw = raw.decode()
                if isinstance(raw, str):
                    try:
                        out[key] = json.loads(raw)
                    except ValueError:
                        out[key] = raw
                else:
                    out[key] = raw.item() if hasattr(raw, "item") else raw
    except OSError:
        return {}
    return out


def _pick(data: Any, *keys: str) -> Any:
    """data[k1][k2]... or None."""
    for key in keys:
        if not isinstance(data, Mapping) or key not in data:
            return None
        data = data[key]
    return data


def methods_facts(plan: Plan, results: str | Path) -> dict[str, Any]:
    """The facts behind the methods paragraph, per dataset: data and splits (windows.h5
    attributes), encoders (spikes.h5 attributes), models (metrics.json: architecture, parameters,
    training settings, windows per split), the DP recipe and accounted epsilon (privacy.json),
    the attacks (attack/summary.json: attacks, K, members and non-members, bootstrap and
    permutation counts) and the edge targets (deploy JSON: title, fits, reasons), each per
    encoding where it can differ. A fact missing from an older file is left out (None)."""
    results = Path(results)
    out: dict[str, Any] = {}
    for ds, dp in plan.items():
        win = _h5_attrs(results / ds / "windows.h5")
        pre = win.get("preprocessing") if isinstance(win.get("preprocessing"), Mapping) else {}
        split = pre.get("split") if isinstance(pre.get("split"), Mapping) else {}
        facts: dict[str, Any] = {"data": {
            "modality": win.get("modality"), "fs_hz": win.get("fs_hz"), "channels": win.get("channel_names"),
            "classes": win.get("class_names"), "n_subjects": pre.get("n_subjects"), "n_records": pre.get("n_records"),
            "window_s": _pick(pre, "window", "window_s"), "stride_s": _pick(pre, "window", "stride_s"),
            "bandpass_hz": _pick(pre, "bandpass", "band_hz"), "split_by": split.get("by"),
            "split_units": split.get("units"), "split_windows": split.get("windows"),
            "source": str(results / ds / "windows.h5")}}
        encodings = {}
        for enc in dp.encodings:
            sp = _h5_attrs(results / ds / enc / "spikes.h5")
            encoder = sp.get("encoder") if isinstance(sp.get("encoder"), Mapping) else {}
            encodings[enc] = {"name": encoder.get("name", enc), "settings": encoder.get("settings"),
                              "fitted_on": encoder.get("fitted_on"), "dt_s": sp.get("dt_s"),
                              "n_steps": _pick(encoder, "timebase", "n_steps"),
                              "n_inputs": len(sp["channel_names"]) if isinstance(sp.get("channel_names"), list) else None}
        facts["encodings"] = encodings
        models: dict[str, Any] = {}
        for tgt in dp.targets:
            per_enc = {}
            for enc in dp.encodings:
                m = Doc.load(target_dir(results, ds, enc, tgt) / "metrics.json").data
                per_enc[enc] = {"arch": m.get("arch"), "n_parameters": m.get("n_parameters"),
                                "n_windows": m.get("n_windows"), "time_steps": m.get("time_steps"),
                                "train_settings": _pick(m, "provenance", "config", "train"),
                                "test_n_subjects": _pick(m, "test", "n_subjects")}
            models[tgt] = {"label": label(tgt), "per_encoding": per_enc}
        facts["models"] = models
        privacy: dict[str, Any] = {}
        for tgt in dp.dp_targets:
            per_enc = {}
            for enc in dp.encodings:
                p = Doc.load(target_dir(results, ds, enc, tgt) / "privacy.json").data
                per_enc[enc] = {k: p.get(k) for k in (
                    "epsilon", "target_epsilon", "delta", "privacy_unit", "accountant", "mechanism", "noise_multiplier",
                    "max_grad_norm_initial", "sample_rate", "steps", "epochs", "lr", "optimizer", "valid_for_release",
                    "n_units")}
                per_enc[enc]["adaptive_clipping"] = _pick(p, "adaptive_clipping", "enabled")
            privacy[tgt] = {"label": label(tgt), "per_encoding": per_enc}
        facts["privacy"] = privacy
        attacks: dict[str, Any] = {}
        for tgt in dp.attacked:
            per_enc = {}
            for enc in dp.encodings:
                a = Doc.load(target_dir(results, ds, enc, tgt) / "attack" / "summary.json").data
                per_enc[enc] = {k: a.get(k) for k in (
                    "attack_names", "K", "reference_kind", "n_members", "n_nonmembers", "n_member_subjects",
                    "n_nonmember_subjects", "levels", "split_unit")}
                per_enc[enc] |= {
                    "attack_names": a.get("attack_names") or sorted(a.get("attacks") or {}),
                    "n_bootstrap": _pick(a, "provenance", "config", "attack", "bootstrap", "n"),
                    "n_permutations": _pick(a, "strongest_window", "n_permutations"),
                    "permutation_unit": _pick(a, "strongest_window", "unit"),
                    "comparison_K": _pick(a, "comparison", "K"),
                    "comparison_reference_kind": _pick(a, "comparison", "reference_kind")}
            attacks[tgt] = {"label": label(tgt), "per_encoding": per_enc}
        facts["attacks"] = attacks
        edge: dict[str, Any] = {}
        for tgt, hws in dp.deployed.items():
            for hw in hws:
                for enc in dp.encodings:
                    d = Doc.load(target_dir(results, ds, enc, tgt) / "deploy" / f"{hw}.json").data
                    entry = edge.setdefault(hw, {"title": d.get("title") or hw, "kind": d.get("kind"), "models": {}})
                    entry["models"].setdefault(tgt, {})[enc] = {"fits": d.get("fits"), "reasons": d.get("reasons") or []}
        facts["edge"] = edge
        out[ds] = facts
    return out


def _g(value: Any, digits: int = 3) -> str:
    """A number in ``digits`` significant digits ("0.956", "1e-05", "1,218" for integers)."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    v = float(value)
    return f"{int(v):,}" if v.is_integer() and abs(v) < 1e6 else f"{v:.{digits}g}"


def _per_enc(values: Mapping[str, Any], fmt: Callable[[Any], str] = _g) -> str | None:
    """One value when every encoding has the same, else "a (delta), b (population)"; None if none."""
    present = {enc: v for enc, v in values.items() if v is not None}
    if not present:
        return None
    shown = {enc: fmt(v) for enc, v in present.items()}
    if len(set(shown.values())) == 1:
        return next(iter(shown.values()))
    return ", ".join(f"{v} ({enc})" for enc, v in shown.items())


def _span(values: Iterable[Any]) -> str | None:
    """"n" when all values are equal, else "lo–hi"; None when there is none."""
    nums = sorted({v for v in values if isinstance(v, int | float) and not isinstance(v, bool)})
    if not nums:
        return None
    return _g(nums[0]) if len(nums) == 1 else f"{_g(nums[0])}–{_g(nums[-1])}"


def _plural(n: Any, word: str) -> str:
    """"1 subject", "3 subjects", "2 classes"."""
    return f"{_g(n)} {word}{'' if n == 1 else 'es' if word.endswith('s') else 's'}"


def _list(items: Sequence[str]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


def _arch_text(arch: Mapping[str, Any] | None, train: Mapping[str, Any] | None) -> str:
    """One model's architecture and training recipe in words."""
    arch, train = arch or {}, train or {}
    kind = arch.get("kind")
    hidden = arch.get("n_hidden")
    hidden_txt = f"hidden layer{'s' if isinstance(hidden, list) and len(hidden) > 1 else ''} of {'/'.join(map(str, hidden))} units" \
        if isinstance(hidden, list) and hidden else None
    if kind == "snn":
        parts = [f"{'recurrent ' if arch.get('recurrent') else ''}LIF network"]
        if hidden_txt:
            parts.append(hidden_txt)
        if arch.get("tau_mem_s") is not None and arch.get("tau_syn_s") is not None:
            parts.append(f"τ_mem {_g(arch['tau_mem_s'] * 1e3)} ms, τ_syn {_g(arch['tau_syn_s'] * 1e3)} ms")
        if arch.get("v_th") is not None:
            parts.append(f"threshold {_g(arch['v_th'])}")
        text = ", ".join(parts)
        if arch.get("surrogate"):
            text += (f", trained by backpropagation through time with the {arch['surrogate']} surrogate gradient"
                     + (f" (α = {_g(arch['surrogate_alpha'])})" if arch.get("surrogate_alpha") is not None else ""))
    elif kind == "ann":
        text = "non-spiking network of the same size" + (f" ({hidden_txt})" if hidden_txt else "")
    elif kind == "classical":
        text = str(arch.get("features") or "hand-crafted features") + ", logistic regression" + \
            (f" with C = {_g(arch['C'])}" if arch.get("C") is not None else "")
        return text
    else:
        text = str(kind or "model")
    if train.get("epochs") is not None:
        recipe = [f"at most {_plural(train['epochs'], 'epoch')}"]
        if train.get("batch_size") is not None:
            recipe.append(f"batch size {_g(train['batch_size'])}")
        if train.get("lr") is not None:
            recipe.append(f"learning rate {_g(train['lr'])}")
        if train.get("patience") is not None:
            recipe.append(f"early stopping after {_plural(train['patience'], 'epoch')} without validation gain")
        text += "; " + ", ".join(recipe)
    return text


def _encoder_text(e: Mapping[str, Any]) -> str:
    """One encoding in words: name (settings; fitted on; input neurons; time grid)."""
    settings = e.get("settings") if isinstance(e.get("settings"), Mapping) else {}
    details = [", ".join(f"{k} = {v if isinstance(v, str) else _g(v) if isinstance(v, int | float) else v}"
                         for k, v in settings.items() if v is not None and not isinstance(v, Mapping))]
    if e.get("fitted_on"):
        details.append(f"fitted on the {e['fitted_on']} split")
    if e.get("n_inputs"):
        details.append(f"{_g(e['n_inputs'])} input neurons")
    if e.get("n_steps") and e.get("dt_s"):
        details.append(f"T = {_g(e['n_steps'])} steps of {_g(e['dt_s'] * 1e3)} ms")
    details = [d for d in details if d]
    return f"{e.get('name')} coding" + (f" ({'; '.join(details)})" if details else "")


def methods_text(facts: Mapping[str, Any]) -> list[str]:
    """The methods paragraphs (Markdown: ``**lead.**`` words) written from :func:`methods_facts`,
    one group per dataset: data and splits, encodings and models, DP recipe and epsilon, attacks
    and K, edge targets. Numbers only where a result file recorded them; meant as a draft to adapt."""
    paragraphs = []
    for ds, f in facts.items():
        d = f.get("data", {})
        encs = f.get("encodings", {})
        # data and splits
        bits = [f"**{ds}.**"]
        what = " ".join(x for x in (str(d["modality"]).upper() if d.get("modality") else None, "recordings") if x)
        if d.get("n_subjects") is not None:
            what += f" of {_plural(d['n_subjects'], 'subject')}"
            if d.get("n_records") is not None:
                what += f" ({_plural(d['n_records'], 'recording')})"
        chans = d.get("channels") or []
        if chans:
            listed = ", ".join(chans[:8]) + (", …" if len(chans) > 8 else "")
            what += f", {_plural(len(chans), 'channel')} ({listed})"
        if d.get("fs_hz"):
            what += f" at {_g(d['fs_hz'])} Hz"
        if isinstance(d.get("bandpass_hz"), list) and len(d["bandpass_hz"]) == 2:
            what += f", band-pass filtered {_g(d['bandpass_hz'][0])}–{_g(d['bandpass_hz'][1])} Hz"
        if d.get("window_s"):
            what += f", cut into {_g(d['window_s'])} s windows" + (f" every {_g(d['stride_s'])} s" if d.get("stride_s") else "")
        classes = d.get("classes") or []
        if classes:
            what += f"; {_plural(len(classes), 'class')} ({', '.join(map(str, classes))})"
        bits.append(what + ".")
        units, windows = d.get("split_units") or {}, d.get("split_windows") or {}
        if units or windows:
            by = d.get("split_by") or "unit"
            parts = []
            for key, name in (("train", "training"), ("val", "validation"), ("test", "test"), ("population", "attacker population")):
                if key in units or key in windows:
                    u = f"{_plural(units[key], by)}" if key in units else None
                    w = f"{_plural(windows[key], 'window')}" if key in windows else None
                    parts.append(f"{name} {u}" + (f" ({w})" if w and u else w or "") if u else f"{name} {w}")
            bits.append(f"Windows were split by {by} into {_list(parts)}.")
        paragraphs.append(" ".join(bits))
        # encodings and models
        bits = []
        if encs:
            bits.append(f"**Encoding and models ({ds}).** Each window was encoded into spikes by "
                        f"{_list([_encoder_text(e) for e in encs.values()])}.")
        for m in (m for t, m in f.get("models", {}).items() if dp_epsilon(t) is None):  # DP variants: below
            per = m["per_encoding"]
            first = next(iter(per.values()), {})
            n_params = _per_enc({enc: v.get("n_parameters") for enc, v in per.items()})
            bits.append(f"{m['label']}: {_arch_text(first.get('arch'), first.get('train_settings'))}"
                        + (f"; {n_params} parameters" if n_params else "") + ".")
        if bits:
            paragraphs.append(" ".join(bits))
        # differential privacy
        priv = f.get("privacy", {})
        if priv:
            first = next(iter(next(iter(priv.values()))["per_encoding"].values()))
            recipe = "DP-SGD" + (f" ({first['mechanism']})" if first.get("mechanism") else "")
            if first.get("privacy_unit"):
                recipe += f" with {first['privacy_unit']}-level privacy"
            how = []
            if first.get("epochs") is not None:
                how.append(f"{_plural(first['epochs'], 'epoch')}" + (f" ({_g(first['steps'])} steps at sampling rate "
                                                                      f"{_g(first['sample_rate'])})" if first.get("steps") and first.get("sample_rate") else ""))
            if first.get("max_grad_norm_initial") is not None:
                how.append(f"clipping bound {_g(first['max_grad_norm_initial'])}"
                           + (" (initial; adapted during training)" if first.get("adaptive_clipping") else ""))
            if first.get("lr") is not None:
                how.append(f"learning rate {_g(first['lr'])}" + (f" ({first['optimizer']})" if first.get("optimizer") else ""))
            eps_txt = []
            for p in priv.values():
                per = p["per_encoding"]
                pairs = {enc: f"ε = {v['epsilon']:.2f}" + (f" at noise multiplier {_g(v['noise_multiplier'])}"
                                                          if v.get("noise_multiplier") is not None else "")
                         for enc, v in per.items() if v.get("epsilon") is not None}
                values = _per_enc(pairs, str) or "ε not recorded"
                target = next((v.get("target_epsilon") for v in per.values() if v.get("target_epsilon") is not None), None)
                eps_txt.append(f"{p['label']}" + (f" (target ε = {_g(target)})" if target is not None else "") + f": {values}")
            accountant = f"the {str(first['accountant']).upper()} accountant" if first.get("accountant") else "the accountant"
            delta = f"At δ = {_g(first['delta'])}, " if first.get("delta") is not None else ""
            text = (f"**Differential privacy ({ds}).** The DP-SNNs were trained with {recipe}"
                    + (f": {', '.join(how)}" if how else "") + f". {delta}{accountant} gives {'; '.join(eps_txt)}.")
            text = text.replace(". the ", ". The ")
            if any(v.get("valid_for_release") is False for p in priv.values() for v in p["per_encoding"].values()):
                text += " The noise was seeded (replayable), so these ε are not valid for a released model."
            paragraphs.append(text)
        # attacks
        att = f.get("attacks", {})
        if att:
            every = [v for a in att.values() for v in a["per_encoding"].values()]
            names = list(dict.fromkeys(n for v in every for n in (v.get("attack_names") or [])))
            k = _span(v.get("K") for v in every)
            text = (f"**Membership inference ({ds}).** {_plural(len(names), 'attack')} ({', '.join(n.replace('_', ' ') for n in names)}) "
                    f"were run against {_list([a['label'] for a in att.values()])}")
            text += (f", with K = {k} reference models per attacked model trained with the target's own recipe "
                     "(the same DP-SGD and ε for a DP target)") if k else ""
            ck = _span(v.get("comparison_K") for v in every)
            if ck:
                text += f"; for the DP targets the same attacks with K = {ck} non-private reference models are reported beside them"
            text += "."
            mem, non = _span(v.get("n_members") for v in every), _span(v.get("n_nonmembers") for v in every)
            if mem and non:
                ms, ns = _span(v.get("n_member_subjects") for v in every), _span(v.get("n_nonmember_subjects") for v in every)
                text += (f" Members: the {mem} training windows" + (f" ({ms} subjects)" if ms else "")
                         + f" of the target; non-members: {non} held-out windows" + (f" ({ns} subjects)" if ns else "") + ".")
            boot, perm = _span(v.get("n_bootstrap") for v in every), _span(v.get("n_permutations") for v in every)
            unit = next((v.get("permutation_unit") or v.get("split_unit") for v in every
                         if v.get("permutation_unit") or v.get("split_unit")), None)
            unit_txt = f" over whole {str(unit).replace('_', ' ')}s" if unit else ""
            if boot:
                text += f" Confidence intervals of AUC and TPR at 1% FPR come from {boot} bootstrap resamples{unit_txt}."
            if perm:
                text += (f" Each model's strongest attack (highest window-level AUC) was tested against {perm} "
                         f"permutations of the member label{unit_txt}.")
            paragraphs.append(text)
        # edge targets
        edge = f.get("edge", {})
        if edge:
            by_model: dict[tuple[str, str], list[str]] = {}  # (model, how) -> targets
            unfit: dict[tuple[str, str, str], list[str]] = {}
            for e in edge.values():
                how = "costed with the MCU model on" if e.get("kind") == "mcu" else "quantized and simulated on"
                for tgt, per in e["models"].items():
                    by_model.setdefault((label(tgt), how), []).append(str(e["title"]))
                    for enc, r in per.items():
                        if r.get("fits") is False:
                            why = "; ".join(map(str, r.get("reasons") or [])) or "no reason recorded"
                            unfit.setdefault((enc, str(e["title"]), why), []).append(label(tgt))
            groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # models costed alike, named together
            for (model, how), titles in by_model.items():
                groups.setdefault((how, tuple(dict.fromkeys(titles))), []).append(model)
            text = f"**Edge targets ({ds}).** " + "; ".join(
                f"{_list(models)} {'was' if len(models) == 1 else 'were'} {how} {_list(list(titles))}"
                for (how, titles), models in groups.items()) + "."
            for (enc, title, why), models in unfit.items():
                text += (f" The {enc}-coded {_list(models)} {'does' if len(models) == 1 else 'do'} not fit {title} "
                         f"({why}): no numbers for {'it' if len(models) == 1 else 'them'} there.")
            paragraphs.append(text)
    return paragraphs


# --- markdown / html -------------------------------------------------------------------------


def figure_entries(plan: Plan, fig_dir: str | Path, page_dir: str | Path,
                   formats: Sequence[str] = FIGURE_FORMATS) -> dict[str, list[dict[str, str]]]:
    """Every figure of the plan per dataset: kind, label, category and the path of each format
    relative to ``page_dir`` (where summary.md/.html live), with forward slashes for links."""
    out: dict[str, list[dict[str, str]]] = {}
    for ds, dp in plan.items():
        out[ds] = []
        for kind in figure_kinds(dp):
            spec = FIGURES[kind]
            entry = {"kind": kind, "label": spec.label, "category": spec.category}
            for path in figure_paths(fig_dir, ds, kind, formats):
                entry[path.suffix.lstrip(".")] = Path(os.path.relpath(path, page_dir)).as_posix()
            out[ds].append(entry)
    return out


def _with_ci(value: Any, ci: Any) -> str:
    """0.612 [0.520, 0.701]; the point alone when there is no interval."""
    if value is None:
        return "–"
    if not isinstance(ci, list) or len(ci) != 2 or None in ci:
        return fmt_num(value)
    return f"{fmt_num(value)} [{fmt_num(ci[0])}, {fmt_num(ci[1])}]"


def _with_p(auc: Any, p: Any) -> str:
    """0.612 (p 0.04); the AUC alone without a p-value."""
    if auc is None:
        return "–"
    return fmt_num(auc) if p is None else f"{fmt_num(auc)} (p {fmt_num(p)})"


def _merged_p(summary: Mapping[str, Any]) -> bool:
    """Whether the strongest attack is the permutation test's maximum (rule auc, window level)."""
    return summary.get("best_attack_by", "auc") == "auc" and summary.get("attack_level", "window") == "window"


def _comparison_header(summary: Mapping[str, Any]) -> str | None:
    """Header of the comparison column, None when no row has a comparison."""
    kinds = {r.get("comparison_reference_kind") for r in summary["rows"]
             if r.get("comparison_max_attack_auc") is not None or r.get("comparison_reference_kind") is not None}
    if not kinds:
        return None
    private = [k for k in kinds if k is not None and dp_epsilon(str(k)) is not None]
    return "max AUC (p), non-private refs" if not private else "max AUC (p), comparison refs"


def _main_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    merged = _merged_p(summary)
    comparison = _comparison_header(summary)
    head = ["dataset", "encoding", "model", "bal. acc. [95% CI]", "chance", "macro-F1 [95% CI]", "test n (subjects)",
            "ε (δ, unit)", "strongest attack *", "attack AUC [95% CI]"]
    head += ["p *", "TPR@1%FPR"] if merged else ["TPR@1%FPR", "max AUC (p)"]
    head += [comparison] if comparison else []
    head += ["spikes/inference"]
    body = []
    for r in summary["rows"]:
        eps = "–" if r["epsilon"] is None else f"{fmt_num(r['epsilon'], 2)} ({r['delta']:.0e}, {r['privacy_unit'] or '?'})"
        if r["epsilon"] is not None and r.get("epsilon_valid_for_release") is False:
            eps += " NOT valid for release (replayable noise)"
        n = "–" if r.get("test_n_windows") is None else (
            f"{r['test_n_windows']} ({r['test_n_subjects']})" if r.get("test_n_subjects") is not None else str(r["test_n_windows"]))
        cells = [r["dataset"], r["encoding"], label(r["model"]), _with_ci(r["balanced_accuracy"], r.get("balanced_accuracy_ci")),
                 fmt_num(r.get("chance_balanced_accuracy")), _with_ci(r["macro_f1"], r.get("macro_f1_ci")), n, eps,
                 (r["attack"] or "–").replace("_", " "), _with_ci(r["attack_auc"], r.get("attack_auc_ci"))]
        if merged:
            cells += [fmt_num(r.get("max_attack_auc_p")) if r["attack"] else "–", fmt_num(r["attack_tpr_at_1pct_fpr"])]
        else:
            cells += [fmt_num(r["attack_tpr_at_1pct_fpr"]), _with_p(r.get("max_attack_auc"), r.get("max_attack_auc_p"))]
        if comparison:
            cells.append(_with_p(r.get("comparison_max_attack_auc"), r.get("comparison_max_attack_auc_p")))
        cells.append(fmt_num(r["spikes_per_inference"], 1))
        body.append(cells)
    return head, body


def _balanced_cell(d: Mapping[str, Any]) -> str:
    """Quantized balanced accuracy, with the float model's in brackets: "0.812 (0.830)"."""
    q, f = d.get("quantized_balanced_accuracy"), d.get("float_balanced_accuracy")
    if q is None:
        return "–"
    return fmt_num(q) if f is None else f"{fmt_num(q)} ({fmt_num(f)})"


def _fits_cell(d: Mapping[str, Any]) -> str:
    """"yes", or "no: <reasons>" for a model that does not fit the target."""
    if d.get("fits"):
        return "yes"
    return "no: " + "; ".join(str(r) for r in (d.get("reasons") or ["reason not recorded"]))


# what a total must contain to be shown (and compared): dynamic energy and chip static energy
LIKE_FOR_LIKE_TERMS = ("dynamic", "static")


def like_for_like_total_j(d: Mapping[str, Any]) -> float | None:
    """A deploy cell's total energy when it contains every term (dynamic and chip static), else
    None: totals with a term missing are not shown beside the others, nor compared with them."""
    terms = d.get("energy_total_terms") or ()
    return d.get("energy_per_inference_j") if tuple(sorted(terms)) == LIKE_FOR_LIKE_TERMS else None


def _known_si(value: Any, unit: str) -> str:
    """A number of a model that fits: "unknown" when no published figure prices it (null)."""
    return "unknown" if value is None else fmt_si(value, unit)


def _deploy_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One line per model x edge target, in the summary's row order (SNN, DP-SNNs, then the ANN
    baseline on MCU profiles); a model that does not fit says why and shows no numbers. Energy in
    its terms: dynamic, chip static (and its share for the cores used) and total; a term no
    source publishes reads "unknown", and so does every total it belongs to."""
    head = ["dataset", "encoding", "model", "edge target", "fits", "cores", "bal. acc. quantized (float)",
            "dynamic energy", "static energy: chip (used cores)", "total energy", "latency", "compute latency",
            "EDP on compute", "time to decision", "power"]
    order = {hw: i for i, hw in enumerate(summary.get("hardware", []))}
    body = []
    for r in summary["rows"]:
        for hw in sorted(r.get("deploy") or {}, key=lambda h: (order.get(h, len(order)), h)):
            d = r["deploy"][hw]
            if not d.get("fits"):
                body.append([r["dataset"], r["encoding"], label(r["model"]), hw, _fits_cell(d)] + ["–"] * (len(head) - 5))
                continue
            static = _known_si(d.get("static_energy_j"), "J")
            if d.get("static_used_cores_energy_j") is not None:
                static += f" ({fmt_si(d['static_used_cores_energy_j'], 'J')})"
            body.append([r["dataset"], r["encoding"], label(r["model"]), hw, _fits_cell(d),
                         fmt_num(d.get("cores_used")), _balanced_cell(d), _known_si(d.get("dynamic_energy_j"), "J"),
                         static, _known_si(like_for_like_total_j(d), "J"), fmt_si(d["latency_s"], "s"),
                         _known_si(d.get("compute_latency_s"), "s"), _known_si(d.get("edp_compute_js"), "J s"),
                         fmt_si(d.get("time_to_decision_s"), "s"), _known_si(d["power_w"], "W")])
    return head, body


def _neurobench_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One line per spiking model with NeuroBench's metrics (computed by the neurobench package;
    target-independent, so taken from the first edge target that has them)."""
    head = ["dataset", "encoding", "model", "Footprint (bytes)", "ConnectionSparsity", "ActivationSparsity",
            "SynapticOperations: Effective_ACs", "Effective_MACs", "Dense"]
    body = []
    for r in summary["rows"]:
        d = next((d for d in (r.get("deploy") or {}).values() if d.get("neurobench_dense_ops") is not None), None)
        if d is None:
            continue
        body.append([r["dataset"], r["encoding"], label(r["model"]), fmt_num(d["neurobench_footprint_bytes"]),
                     fmt_num(d["neurobench_connection_sparsity"], 3), fmt_num(d["neurobench_activation_sparsity"], 3),
                     fmt_num(d["neurobench_effective_acs"], 0), fmt_num(d["neurobench_effective_macs"], 0),
                     fmt_num(d["neurobench_dense_ops"], 0)])
    return head, body


_NEUROBENCH_INTRO = ("NeuroBench's metrics (Yik et al. 2025), computed by the neurobench package on each spiking "
                     "model, per window: synaptic operations as accumulates for spike inputs (ACs), multiply-"
                     "accumulates for multi-spike counts (MACs) and all weights every step (Dense); activation "
                     "sparsity over hidden layers, steps and windows. MembraneUpdates is not computed: it needs "
                     "snnTorch neurons stepped per time step (the edge JSONs' neuron_updates count the same).")


def levers_hardware(hardware: Sequence[str], attacked: Sequence[tuple[Any, str]],
                    fits: Callable[[Any, str, str], bool]) -> str | None:
    """The edge target the lever views (table and figure) cost on: the first of ``hardware``
    (config order) that an attacked spiking model fits; ``attacked`` holds (where, target) pairs,
    ``fits(where, target, hardware)`` says whether it fits, a query-time defense asking for its
    base network. An MCU runs only the ANN, so it is never chosen."""
    for h in hardware:
        for where, t in attacked:
            if parse(t).kind.spiking and fits(where, _energy_source(t), h):
                return h
    return None


def levers_table(summary: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The privacy-utility-cost view: one line per attacked model, what it varies against the SNN
    (its kind, or its lever: DP, a defense, a training recipe), utility and the strongest attack
    (AUC, TPR at 1% FPR) with their CIs, the comparison AUC (the attack with references not made
    like the target: a defense's non-adaptive attack, DP's non-private references, single models
    for an ensemble), the energy per inference on the first edge target that runs the spiking
    models (a defense: its base network's, marked) and the differences to the SNN of the same
    dataset and encoding, with the AUC removed per point of accuracy lost. No lines when only one
    kind of model is attacked (nothing to compare). ``workflow/scripts/results_table.py --levers``
    prints the same table."""
    rows = [r for r in summary["rows"] if r.get("attack")]
    by_key = {(r["dataset"], r["encoding"], r["model"]): r for r in summary["rows"]}
    titles = {parse(r["model"]).lever_title for r in rows}
    if len(titles) < 2:
        return [], []
    hw = levers_hardware(summary.get("hardware", []), [((r["dataset"], r["encoding"]), r["model"]) for r in rows],
                         lambda where, t, h: (((by_key.get((*where, t)) or {}).get("deploy") or {}).get(h) or {})
                         .get("fits") is True)
    head = ["dataset", "encoding", "model", "lever", "bal. acc. [95% CI]", "attack", "attack AUC [95% CI]",
            "TPR@1%FPR [95% CI]", "comparison AUC (window, max)"]
    head += [f"{hw}: dynamic (total) energy"] if hw else []
    head += ["Δ bal. acc. vs SNN (points)", "Δ AUC vs SNN", "AUC removed per point lost"]
    body = []
    for r in rows:
        t = parse(r["model"])
        cells = [r["dataset"], r["encoding"], label(r["model"]), t.lever_title,
                 _with_ci(r["balanced_accuracy"], r.get("balanced_accuracy_ci")), r["attack"],
                 _with_ci(r["attack_auc"], r.get("attack_auc_ci")),
                 _with_ci(r["attack_tpr_at_1pct_fpr"], r.get("attack_tpr_at_1pct_fpr_ci")),
                 fmt_num(r.get("comparison_max_attack_auc")) if r.get("comparison_max_attack_auc") is not None else "–"]
        if hw:
            source = by_key.get((r["dataset"], r["encoding"], _energy_source(r["model"])))
            d = ((source or {}).get("deploy") or {}).get(hw) or {}
            cells.append(f"{_known_si(d.get('dynamic_energy_j'), 'J')} ({_known_si(like_for_like_total_j(d), 'J')})"
                         + (" (base network)" if t.query_time else "") if d.get("fits") else "–")
        snn = by_key.get((r["dataset"], r["encoding"], "snn"))
        if snn is None or r["model"] == "snn" or None in (snn.get("attack_auc"), snn.get("balanced_accuracy"),
                                                           r.get("attack_auc"), r.get("balanced_accuracy")):
            cells += ["–", "–", "–"]
        else:
            lost = 100 * (snn["balanced_accuracy"] - r["balanced_accuracy"])
            removed = snn["attack_auc"] - r["attack_auc"]
            # a ratio only where accuracy was paid for removed AUC; nothing removed: no ratio
            per_point = "–" if removed <= 0 else (f"{removed / lost:.4f}" if lost > 0.5 else "free")
            cells += [f"{-lost:+.1f}", f"{-removed:+.3f}", per_point]
        body.append(cells)
    return head, body


def _levers_intro() -> str:
    return ("Every attacked model against the SNN of its dataset and encoding: what it changes (another kind, or a "
            "lever: DP-SGD, a training recipe, a query-time defense), its utility and the strongest attack with "
            "their CIs. A query-time defense is attacked adaptively (the attacker's reference models wrapped in the "
            "same defense); the comparison AUC is the attack with references not made like the target (a defense's "
            "non-adaptive attack, DP's non-private references, single SNNs for an ensemble). Energy: dynamic, and the "
            "like-for-like total, per inference on the first edge target that runs the spiking models; a defense "
            "runs its base network. Differences to the SNN: test balanced accuracy in points, strongest-attack AUC, "
            "and the AUC removed per point of accuracy lost ('free' where the lever lost under half a point and "
            "removed AUC).")


def _md_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def _intro(summary: Mapping[str, Any]) -> str:
    return ("Test-split scores per dataset, encoding and model, with 95% subject-bootstrap intervals; privacy "
            "from each DP model's accountant; membership inference; spikes per inference on the test split. "
            "Every number is copied from a per-stage JSON file: `summary.json` lists, for each cell, the file "
            "and the JSON pointer it came from.")


def _rule_note(summary: Mapping[str, Any]) -> str:
    rule = summary.get("strongest_attack_rule") or strongest_attack_rule(summary.get("best_attack_by", "auc"),
                                                                         summary.get("attack_level", "window"))
    text = (f"* Strongest attack: the {rule}; the same attack is drawn in the ROC figure and named in "
            "`summary.json` (`strongest_attack_rule`).")
    if _merged_p(summary):
        text += (" p: permutation p-value of that maximum AUC (member labels permuted over whole split units), "
                 "from `strongest_window` in the attack summary.")
    else:
        text += " max AUC (p): the highest window-level AUC over all attacks and its permutation p-value."
    if _comparison_header(summary):
        text += (" DP models are attacked with reference models trained by the same DP recipe (the threat model); "
                 "the last attack column gives the maximum AUC (p) of the same attacks with non-private "
                 "reference models, from `comparison` in the attack summary.")
    return text


def _edge_intro() -> str:
    return ("Per edge target: does the model fit (if not, why, and no numbers), cores used, balanced accuracy "
            "of the quantized model on the simulated test windows (of the float model in brackets), energy per "
            "inference in its terms: dynamic, static (chip static power x on-time; in brackets its share for the "
            "cores the model uses) and total (dynamic + chip static), latency per inference, the chip's own "
            "compute latency per inference apart from the real-time window and the energy-delay product on it, "
            "time to decision with the confidence early exit, and average power at the real-time rate. "
            "\"unknown\": a term no published source prices (the profile says null); a total is shown only "
            "when it contains both terms, so the totals shown are like for like. MCU targets run the "
            "same-size ANN baseline (dynamic: run-mode energy, which includes the core's static share "
            "while computing; static: sleep power for the rest of the window).")


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown: main table, edge table, links to every figure, methods draft."""
    parts = ["# biospike summary", "", _intro(summary), "", "## Utility, privacy and leakage", "",
             _md_table(*_main_table(summary)), "", _rule_note(summary)]
    head, body = levers_table(summary)
    if body:
        parts += ["", "## Privacy levers", "", _levers_intro(), "", _md_table(head, body)]
    head, body = _deploy_table(summary)
    if body:
        parts += ["", "## Edge targets", "", _edge_intro(), "", _md_table(head, body)]
    head, body = _neurobench_table(summary)
    if body:
        parts += ["", "## NeuroBench metrics", "", _NEUROBENCH_INTRO, "", _md_table(head, body)]
    figures = summary.get("figures") or {}
    if any(figures.values()):
        parts += ["", "## Figures", ""]
        for ds, entries in figures.items():
            parts += [f"### {ds}", ""]
            for e in entries:
                svg = f" ([SVG]({e['svg']}))" if e.get("svg") else ""
                img = f"![{e['label']}]({e['png']})" if e.get("png") else e["label"]
                parts.append(f"- **{e['label']}**{svg}: {img}")
            parts.append("")
    text = (summary.get("methods") or {}).get("text") or []
    if text:
        parts += ["", "## Methods (generated draft)", "",
                  "Written from the plan and the result files; numbers as recorded there. Adapt before use.", ""]
        for paragraph in text:
            parts += [paragraph, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


def summary_html(summary: Mapping[str, Any]) -> str:
    """The same content as a small self-contained HTML page: tables, a figure grid per dataset
    (images linked relative to the page; a note where one cannot be loaded, e.g. when the page is
    shown inside Snakemake's report, which holds the figures itself) and the methods draft."""
    import html

    def inline(text: str) -> str:
        out = html.escape(text)
        out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
        return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)

    def table(head: list[str], body: list[list[str]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs, previous = [], None
        for row in body:
            group = tuple(row[:2])  # dataset, encoding: a rule above each new group
            cls = " class='group'" if previous is not None and group != previous else ""
            previous = group
            tds = "".join(f"<td class='reason'>{html.escape(c)}</td>" if c.startswith("no: ") else f"<td>{html.escape(c)}</td>"
                          for c in row)
            trs.append(f"<tr{cls}>{tds}</tr>")
        return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(trs)}</tbody></table>"

    style = ("body{font-family:system-ui,sans-serif;margin:1em 1.2em;color:#222;max-width:110em}"
             "table{border-collapse:collapse;font-size:12.5px;margin-bottom:1em}"
             "th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}"
             "th{background:#f3f3f3;position:sticky;top:0}"
             "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
             "td.reason{white-space:normal;text-align:left;color:#8a3b00;min-width:16em}"
             "tr.group td{border-top:2px solid #999}"
             "tr:hover td{background:#f7fbff}"
             "p.note{font-size:12.5px;color:#444;max-width:70em}"
             ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:18px;margin-bottom:2em}"
             "figure{margin:0}figure img{width:100%;height:auto;border:1px solid #eee;background:#fff}"
             "figcaption{font-size:12.5px;color:#444;margin-top:4px}"
             "figure .missing{display:none;font-size:12px;color:#8a3b00}"
             "figure.missing img{display:none}figure.missing .missing{display:block}"
             ".methods p{max-width:70em;line-height:1.45}")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>biospike summary</title><style>{style}</style></head><body>",
             "<h1>biospike summary</h1>", f"<p>{inline(_intro(summary))}</p>", "<h2>Utility, privacy and leakage</h2>",
             table(*_main_table(summary)), f"<p class='note'>{inline(_rule_note(summary))}</p>"]
    head, body = levers_table(summary)
    if body:
        parts += ["<h2>Privacy levers</h2>", f"<p class='note'>{inline(_levers_intro())}</p>", table(head, body)]
    head, body = _deploy_table(summary)
    if body:
        parts += ["<h2>Edge targets</h2>", f"<p class='note'>{inline(_edge_intro())}</p>", table(head, body)]
    head, body = _neurobench_table(summary)
    if body:
        parts += ["<h2>NeuroBench metrics</h2>", f"<p class='note'>{inline(_NEUROBENCH_INTRO)}</p>", table(head, body)]
    figures = summary.get("figures") or {}
    if any(figures.values()):
        parts.append("<h2>Figures</h2>")
        for ds, entries in figures.items():
            parts.append(f"<h3>{html.escape(ds)}</h3><div class='grid'>")
            for e in entries:
                png, svg = e.get("png"), e.get("svg")
                href = html.escape(png or svg or "", quote=True)
                links = " · ".join(f"<a href='{html.escape(e[f], quote=True)}'>{f.upper()}</a>" for f in ("png", "svg") if e.get(f))
                img = (f"<a href='{href}'><img src='{href}' alt='{html.escape(ds)}: {html.escape(e['label'])}' "
                       "onerror=\"this.closest('figure').classList.add('missing')\"></a>") if png else ""
                parts.append(f"<figure id='fig-{html.escape(ds)}-{e['kind']}'>{img}"
                             f"<div class='missing'>figure not found at {html.escape(png or '')} (relative to this page)</div>"
                             f"<figcaption>{html.escape(e['label'])} ({links})</figcaption></figure>")
            parts.append("</div>")
    text = (summary.get("methods") or {}).get("text") or []
    if text:
        parts += ["<h2>Methods (generated draft)</h2><div class='methods'>",
                  "<p class='note'>Written from the plan and the result files; numbers as recorded there. Adapt before use.</p>"]
        parts += [f"<p>{inline(p)}</p>" for p in text]
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_text(path: str | Path, text: str) -> None:
    """Write a text file atomically."""
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
    """Per encoding and attacked model: the ROC of its strongest attack by the report's rule (the
    attack the summary table names), its AUC and TPR at 1% FPR, the number of non-members (the
    curve cannot resolve a lower FPR than 1/n) and a DP model's (epsilon, delta) ceiling."""
    by, level = cfg["best_attack_by"], cfg["attack_level"]
    out: dict[str, Any] = {"dataset": ds, "level": level, "rule": strongest_attack_rule(by, level), "by": by,
                           "encodings": {}}
    for enc in dp.encodings:
        curves = {}
        for t in dp.attacked:
            tdir = target_dir(results, ds, enc, t)
            att = Doc.load(tdir / "attack" / "summary.json")
            best = strongest_attack(att, level, by)
            if best is None:
                continue
            fpr, tpr = read_roc(find_roc_csv(tdir / "attack", best))
            ceiling = None
            if dp_epsilon(t) is not None:
                priv = Doc.load(tdir / "privacy.json")
                ceiling = (priv.get(*PRIVACY_KEYS["epsilon"], what="epsilon")[0],
                           priv.get(*PRIVACY_KEYS["delta"], what="delta")[0])
            curves[t] = {"attack": best.name, "fpr": fpr, "tpr": tpr, "auc": best.auc,
                         "tpr_at_1pct_fpr": as_number(best.tpr_at_1pct_fpr), "n_nonmembers": best.n_nonmembers,
                         "ceiling": ceiling}
        out["encodings"][enc] = curves
    return out


def _energy_source(t: str) -> str:
    """The target whose edge cost stands for ``t``: a query-time defense runs its base network."""
    target = parse(t)
    return target.kind.name if target.query_time else t


def _leakage_utility_data(ds: str, dp: DatasetPlan, results: Path, cfg: Mapping[str, Any]) -> dict:
    """The privacy-utility-cost view, per encoding and attacked model: test balanced accuracy
    (with its subject-bootstrap CI), the strongest attack's AUC and TPR at 1% FPR (with their CIs)
    by the report's rule -- so that models of different families are compared at matched test
    accuracy, not at their own -- and the dynamic energy per inference on the first edge target
    that runs the attacked spiking models (a query-time defense: its base network's)."""
    by, level = cfg["best_attack_by"], cfg["attack_level"]
    out: dict[str, Any] = {"dataset": ds, "level": level, "rule": strongest_attack_rule(by, level), "encodings": {}}
    docs = _deploy_docs(ds, dp, results)

    def energy(enc: str, t: str, hw: str) -> float | None:
        doc = docs.get((enc, _energy_source(t), hw))
        if doc is None or not doc.get(*DEPLOY_KEYS["fits"], what="fits")[0]:
            return None
        found = doc.find(*DEPLOY_KEYS["dynamic_energy_j"])
        return None if found is None else as_number(found[0])

    hw = levers_hardware(dp.hardware, [(enc, t) for enc in dp.encodings for t in dp.attacked],
                         lambda enc, t, h: energy(enc, t, h) is not None)
    out["hardware"] = hw
    for enc in dp.encodings:
        points = []
        for t in dp.attacked:
            tdir = target_dir(results, ds, enc, t)
            doc = Doc.load(tdir / "attack" / "summary.json")
            best = strongest_attack(doc, level, by)
            metrics = Doc.load(tdir / "metrics.json")
            bal = read_test_metric(metrics, "balanced_accuracy")[0]
            ci = metrics.find(f"{METRICS_TEST}/balanced_accuracy_ci")
            if best is None or as_number(best.auc) is None or bal is None:
                continue
            tpr_ci = doc.find(make_pointer("attacks", best.name, best.level, "tpr_at_1pct_fpr_ci"))
            points.append({"target": t, "balanced_accuracy": bal, "balanced_accuracy_ci": ci[0] if ci else None,
                           "auc": best.auc, "auc_ci": best.auc_ci, "attack": best.name,
                           "tpr_at_1pct_fpr": as_number(best.tpr_at_1pct_fpr), "tpr_ci": tpr_ci[0] if tpr_ci else None,
                           "energy_j": energy(enc, t, hw) if hw and parse(t).kind.spiking else None,
                           "energy_of_base": _energy_source(t) != t})
        out["encodings"][enc] = points
    first = Doc.load(target_dir(results, ds, dp.encodings[0], dp.targets[0]) / "metrics.json")
    out["n_classes"] = len(confusion_of(first)[0])
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
        terms = doc.find(*DEPLOY_KEYS["energy_total_terms"])
        reason = doc.find("/reasons")
        # only totals that contain dynamic and chip static energy are drawn side by side
        total = like_for_like_total_j({"energy_per_inference_j": None if energy is None else energy[0],
                                       "energy_total_terms": None if terms is None else terms[0]})
        bars.append({"encoding": enc, "target": t, "hardware": hw, "fits": bool(fits), "energy_j": total,
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
    FigureSpec("leakage_utility", "5 Membership inference",
               "privacy-utility-cost: attack AUC and TPR against test accuracy, AUC against energy",
               lambda dp: len(dp.attacked) >= 2,
               lambda dp, r, ds: _roc_inputs(dp, r, ds) + [d / "metrics.json" for _, t, d in _target_dirs(dp, r, ds)
                                                          if t in dp.attacked] + _deploy_inputs(dp, r, ds),
               _leakage_utility_data),
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
    """Draw every figure of the plan (or only ``kinds`` / ``datasets``); returns the files written."""
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
                  params: Mapping[str, Any] | None = None, fig_dir: str | Path | None = None) -> dict:
    """Write summary.json (and .md / .html when given); figure links point into ``fig_dir``
    (default ``results/figures``, where the figure rules write), relative to each page."""
    cfg = {**DEFAULT_CFG, **(cfg or {})}
    fig_dir = Path(results) / "figures" if fig_dir is None else Path(fig_dir)
    summary = build_summary(plan, results, cfg, fig_dir, Path(output_json).parent)
    summary["provenance"] = provenance(params or {}, inputs=summary_inputs(plan, results),
                                       seed=(params or {}).get("seed"))
    write_json(output_json, summary)
    for path, render in ((output_md, summary_markdown), (output_html, summary_html)):
        if path is not None:
            page = dict(summary, figures=figure_entries(plan, fig_dir, Path(path).parent, cfg["formats"]))
            write_text(path, render(page))
    return summary


def cli(argv: list[str], prog: str = "biospike report") -> int:
    """``biospike report``: summary files (--output-json/-md/-html) and/or figures (--figures)."""
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
                      {"report": ctx["report"], "seed": ctx.seed}, args.figures)
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
