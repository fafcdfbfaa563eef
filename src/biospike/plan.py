"""The plan: everything one validated config asks to make, derived in one place.

Per dataset: encodings x trained targets (model kinds and their lever variants) x attacked targets
(with their reference-model groups) x edge targets, the time-step sweep and the privacy table.
The workflow's default target and input functions, the report, and
``workflow/scripts/results_table.py`` all read this plan (:func:`build_plan`), so what the DAG
builds and what the report expects cannot drift apart (tests/unit/test_plan.py checks both).

Directory layout of one target: ``R/{dataset}/{encoding}/{target}/`` (model, metrics.json,
curve.csv, privacy.json for DP variants, ``attack/``, ``deploy/``); reference models:
``R/{dataset}/{encoding}/refs/{group}/shard{s}.pt``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from biospike import targets as T
from biospike.config import stage_config
from biospike.errors import BiospikeError
from biospike.registry import LEVERS, MODEL_KINDS

__all__ = ["HARDWARE_DIR", "PLAN_KEYS", "DatasetPlan", "Plan", "build_plan", "dataset_plan", "hardware_kinds", "plan_keys",
           "lever_kinds", "lever_values", "outputs", "plan_from_json", "plan_to_json", "target_dir", "target_files"]

HARDWARE_DIR = Path(__file__).resolve().parents[2] / "config" / "hardware"
# Config keys that decide *what* is built, not how one job computes: the plan reads them, the
# stage envelopes leave them out, so adding a model kind or an epsilon reruns no existing job.
# Besides these, every registered lever's values / enabled / kinds keys (plan_keys()).
PLAN_KEYS = {"train": ("models",), "attack": ("targets", "t_sweep"), "deploy": ("targets", "models")}


def plan_keys() -> dict[str, tuple[str, ...]]:
    """:data:`PLAN_KEYS` with the keys every registered lever's variants are listed by (its
    ``values``, ``enabled`` and ``kinds``: ``privacy.epsilons``, ``train.ensemble_sizes``, ...), so
    that a lever added later is a plan key too, with no list to keep in step."""
    keys = {section: list(names) for section, names in PLAN_KEYS.items()}
    for lever in LEVERS:
        for ref in (lever.values, lever.enabled, lever.kinds):
            if ref:
                section, key = ref.split(".")
                keys.setdefault(section, [])
                if key not in keys[section]:
                    keys[section].append(key)
    return {section: tuple(names) for section, names in keys.items()}


@dataclasses.dataclass
class DatasetPlan:
    """What the workflow produces for one dataset (and so what the report must find)."""

    encodings: list[str]
    targets: list[str]  # trained: metrics.json + curve.csv (+ privacy.json for DP variants)
    attacked: list[str] = dataclasses.field(default_factory=list)  # attack/summary.json
    deployed: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # target -> hardware
    t_sweep: list[str] = dataclasses.field(default_factory=list)  # encodings with t_sweep.json
    references: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # attacked -> ref groups
    n_references: int = 0  # reference models per group
    privacy_table: bool = False  # privacy_utility.csv per encoding
    audit: bool = False  # canary audits of every DP target and of the non-private recipe
    external: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # recording set -> targets applied

    def __post_init__(self) -> None:
        self.targets = T.sort_targets(self.targets)
        self.attacked = T.sort_targets(self.attacked)
        self.deployed = {t: list(self.deployed[t]) for t in T.sort_targets(self.deployed)}
        unknown = (set(self.attacked) | set(self.deployed)) - set(self.targets)
        if unknown:
            raise BiospikeError(f"plan: attacked/deployed targets {sorted(unknown)} are not trained targets")
        if not self.references:
            self.references = {t: T.parse(t).reference_groups() for t in self.attacked if T.is_target(t)}

    @property
    def hardware(self) -> list[str]:
        """Every hardware profile a target of the dataset is simulated on, in first-use order."""
        seen: dict[str, None] = {}
        for hws in self.deployed.values():
            seen.update(dict.fromkeys(hws))
        return list(seen)

    @property
    def dp_targets(self) -> list[str]:
        """The trained targets that are DP-SGD variants (``dpsnn_eps<E>``)."""
        return [t for t in self.targets if T.dp_epsilon(t) is not None]

    @property
    def reference_groups(self) -> list[str]:
        """The reference-model groups the attacked targets use, each once, in order."""
        return list(dict.fromkeys(g for t in self.attacked for g in self.references.get(t, [])))

    def to_json(self) -> dict[str, Any]:
        """The dataset's plan as a JSON-able dict."""
        return dataclasses.asdict(self)


Plan = dict[str, DatasetPlan]


def plan_from_json(raw: Mapping[str, Any]) -> Plan:
    """The inverse of :func:`plan_to_json` (the report receives the plan this way)."""
    plan: Plan = {}
    fields = {f.name for f in dataclasses.fields(DatasetPlan)}
    for ds, spec in raw.items():
        try:
            plan[ds] = DatasetPlan(**{k: v for k, v in spec.items() if k in fields})
        except (KeyError, TypeError) as exc:
            raise BiospikeError(f"plan for dataset {ds!r} is malformed ({exc!r})") from None
    return plan


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-able dicts per dataset (read back with :func:`plan_from_json`)."""
    return {ds: dp.to_json() for ds, dp in plan.items()}


def hardware_kinds(names: Iterable[str], hardware_dir: str | Path = HARDWARE_DIR) -> dict[str, str]:
    """Each hardware profile's ``kind`` (``config/hardware/<name>.yaml``); a missing one is an error."""
    import yaml

    out = {}
    for name in names:
        path = Path(hardware_dir) / f"{name}.yaml"
        if not path.is_file():
            raise BiospikeError(f"deploy.targets names {name!r} but {path} does not exist")
        out[name] = str((yaml.safe_load(path.read_text()) or {}).get("kind", "neuromorphic"))
    return out


def _enabled(section: Mapping[str, Any]) -> bool:
    return bool(section) and bool(section.get("enabled", True))


def _check_names(names: Iterable[str], what: str) -> list[str]:
    out = []
    for name in names:
        if name not in MODEL_KINDS:
            raise BiospikeError(f"{what}: unknown model kind {name!r} (registered: {', '.join(MODEL_KINDS.names())})")
        out.append(str(name))
    return out


def lever_values(config: Mapping[str, Any], ds: str, lever: Any) -> list[float]:
    """The values a lever takes for dataset ``ds`` (its ``values`` key, when its ``enabled`` key
    is not false): the epsilons of DP, the epoch counts of converged training."""
    if lever.values is None:
        return []
    if lever.enabled is not None:
        section, key = lever.enabled.split(".")
        if not stage_config(config, section, ds).get(key, True):
            return []
    section, key = lever.values.split(".")
    return [float(v) for v in stage_config(config, section, ds).get(key) or []]


def lever_kinds(config: Mapping[str, Any], ds: str, lever: Any, models: Sequence[str]) -> list[str]:
    """The trained kinds a lever varies on dataset ``ds``: those of ``models`` it applies to, and
    of its ``kinds`` key's list when it has one (the defenses: ``defense.kinds``)."""
    kinds = [k for k in lever.applies_to if k in models]
    if lever.kinds is not None:
        section, key = lever.kinds.split(".")
        wanted = [str(k) for k in stage_config(config, section, ds).get(key) or []]
        # levers sharing the key (the defenses) each vary the kinds they apply to; a kind none of them
        # applies to is a mistake
        sharing = [lv for lv in LEVERS if lv.kinds == lever.kinds]
        bad = [k for k in wanted if not any(k in lv.applies_to for lv in sharing)]
        if bad:
            names = ", ".join(lv.name for lv in sharing)
            raise BiospikeError(f"{lever.kinds}: {bad} cannot be wrapped by {names} (they apply to "
                                f"{', '.join(dict.fromkeys(k for lv in sharing for k in lv.applies_to))})")
        kinds = [k for k in kinds if k in wanted]
    return kinds


def dataset_plan(config: Mapping[str, Any], ds: str, kinds: Mapping[str, str]) -> DatasetPlan | None:
    """The plan of one dataset (None when it has no encodings: nothing beyond ingestion)."""
    encodings = [str(e) for e in stage_config(config, "encode", ds).get("encodings", [])]
    if not encodings:
        return None
    train = stage_config(config, "train", ds)
    models = _check_names(train.get("models", ["snn", "ann", "classical"]), f"datasets/{ds}/train/models")
    targets = list(models)
    for lever in LEVERS:
        targets += [T.lever_target(lever.name, kind, float(v)) for kind in lever_kinds(config, ds, lever, models)
                    for v in lever_values(config, ds, lever)]
    priv = stage_config(config, "privacy", ds)
    att = stage_config(config, "attack", ds)
    attacked, t_sweep, references, n_refs = [], [], {}, 0
    if att:
        patterns = att.get("targets", ["snn", "ann", "dpsnn_eps*"])
        attacked = [t for t in targets if T.parse(t).kind.attackable and any(fnmatch(t, p) for p in patterns)]
        n_refs = int(att.get("n_reference_models", 0))
        references = {t: T.parse(t).reference_groups() for t in attacked}
        if att.get("t_sweep") and "snn" in targets and attacked:
            t_sweep = list(encodings)
    dep = config.get("deploy", {})
    deployed: dict[str, list[str]] = {}
    dep_models = [str(m) for m in dep.get("models", ["snn"])]
    hardware = [str(h) for h in dep.get("targets", [])]
    unknown = [h for h in hardware if h not in kinds]
    if unknown:
        raise BiospikeError(f"plan: kind of hardware profile(s) {unknown} unknown (config/hardware/<name>.yaml)")
    if hardware and dep_models:
        for name in targets:
            t = T.parse(name)
            if name in dep_models and t.query_time:
                raise BiospikeError(f"deploy.models names {name}: a query-time defense is not part of the exported "
                                    f"graph; the chip runs its base network, list {t.kind.name!r} instead")
            # spiking targets named in deploy.models; non-spiking baselines (the ANN on an MCU)
            # beside them, so the edge table compares like with like
            if name in dep_models or (not t.kind.nir and t.lever is None):
                hws = [h for h in hardware if kinds[h] in t.kind.runs_on]
                if hws:
                    deployed[name] = hws
    external = {}
    for set_name, ext in (config["datasets"][ds].get("external") or {}).items():
        wanted = ext.get("targets") or targets
        unknown = sorted(set(wanted) - set(targets))
        if unknown:
            raise BiospikeError(f"datasets/{ds}/external/{set_name}/targets: {unknown} are not trained targets "
                                f"(trained: {', '.join(targets)})")
        external[str(set_name)] = [t for t in targets if t in wanted]
    return DatasetPlan(encodings=encodings, targets=targets, attacked=attacked, deployed=deployed,
                       t_sweep=t_sweep, references=references, n_references=n_refs, external=external,
                       privacy_table=_enabled(priv) and any(T.dp_epsilon(t) is not None for t in targets),
                       audit=_enabled(priv) and _enabled(priv.get("audit", {})))


def build_plan(config: Mapping[str, Any], hardware_dir: str | Path = HARDWARE_DIR,
               kinds: Mapping[str, str] | None = None) -> Plan:
    """The plan of a validated config (defaults filled)."""
    if kinds is None:
        kinds = hardware_kinds(config.get("deploy", {}).get("targets", []), hardware_dir)
    plan: Plan = {}
    for ds in config.get("datasets", {}):
        dp = dataset_plan(config, ds, kinds)
        if dp is not None:
            plan[ds] = dp
    return plan


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------


def target_dir(results: str | Path, ds: str, enc: str, target: str) -> Path:
    """``{results}/{ds}/{enc}/{target}``: the folder of one target."""
    return Path(results) / ds / enc / target


def target_files(results: str | Path, ds: str, enc: str, target: str) -> list[Path]:
    """What the training of one target writes (checkpoint, metrics, curve, privacy record)."""
    t = T.parse(target)
    base = target_dir(results, ds, enc, target)
    files = [base / t.checkpoint, base / "metrics.json", base / "curve.csv", base / "per_subject.csv"]
    if t.lever is not None:
        files += [base / name for name in t.lever.outputs]
    return files


def outputs(plan: Plan, results: str | Path) -> list[str]:
    """Every leaf output of the pipeline (without the report), for the workflow's default target."""
    results = Path(results)
    out: list[Path] = []
    for ds, dp in plan.items():
        out.append(results / ds / "windows.h5")
        for enc in dp.encodings:
            out.append(results / ds / enc / "spikes.h5")
            for tgt in dp.targets:
                out.append(target_dir(results, ds, enc, tgt) / "metrics.json")
            if dp.privacy_table:
                out.append(results / ds / enc / "privacy_utility.csv")
            for tgt in dp.attacked:
                out.append(target_dir(results, ds, enc, tgt) / "attack" / "summary.json")
            if enc in dp.t_sweep:
                out.append(results / ds / enc / "t_sweep.json")
            for tgt, hws in dp.deployed.items():
                out += [target_dir(results, ds, enc, tgt) / "deploy" / f"{hw}.json" for hw in hws]
            for set_name, tgts in dp.external.items():
                out += [target_dir(results, ds, enc, tgt) / "external" / set_name / "metrics.json" for tgt in tgts]
    return [str(p) for p in out]
