"""The whole workflow on config/real.yaml (every dataset, read from ../shared/data) on a reduced
budget: few epochs, one epsilon, two reference models, two edge targets. The reduced config is
derived from real.yaml at test time, so the test follows the lead's tuning of its datasets."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import h5py
import pytest
import yaml

from biospike.config import deep_merge
from biospike.io import subject_from_path
from tests.workflow.helpers import REPO, run_snakemake

pytestmark = [pytest.mark.realdata, pytest.mark.workflow, pytest.mark.slow]

REAL = REPO / "config" / "real.yaml"
DP_EPSILON = 8
DP_TARGET = f"dpsnn_eps{DP_EPSILON}"
HARDWARE = ("loihi", "cortex_m4")  # one spiking chip (NIR export + simulation), one MCU (the ANN)
# The budget, applied to the global sections and to every dataset override of the same section
# (an override of e.g. train.epochs in a dataset block would otherwise win).
BUDGET = {
    "train": {"epochs": 2, "patience": 2, "max_train_windows": 200},
    "privacy": {"epsilons": [DP_EPSILON], "epochs": 2,
                "audit": {"n_canaries": 20, "nonprivate_epochs": 2}},
    # the DP target only (its attack also checks the ROC against the DP ceiling): snn reference
    # models, no ann ones; every job costs a torch start-up, which dominates this budget
    "attack": {"targets": ["dpsnn_eps*"], "n_reference_models": 2, "t_sweep": [], "bootstrap": {"n": 20},
               "input_dropout": {"n_queries": 2}, "rmia": {"n_population": 200}},
}
GLOBAL_ONLY = {
    "deploy": {"targets": list(HARDWARE), "max_test_windows": 32, "calibration_windows": 32},
    "report": {"dpi": 50},
}
PSEUDONYM = {"subject": re.compile(r"^sub-[0-9a-f]{8,}$"), "record": re.compile(r"^rec-[0-9a-f]{8,}$")}


def _keys_of(budget: dict, override: dict) -> dict:
    """The part of ``budget`` whose keys a dataset override sets (recursively): the global budget
    covers the rest, and a dataset section may allow fewer keys (attack: targets only)."""
    out = {}
    for key, value in budget.items():
        if key in override:
            both_dicts = isinstance(value, dict) and isinstance(override[key], dict)
            out[key] = _keys_of(value, override[key]) if both_dicts else value
    return out


def reduced_config(real: dict, results_dir: Path, data_root: Path) -> dict:
    cfg = copy.deepcopy(real)
    for section, budget in BUDGET.items():
        cfg[section] = deep_merge(cfg.get(section) or {}, budget)
        for spec in cfg["datasets"].values():
            if spec.get(section):
                spec[section] = deep_merge(spec[section], _keys_of(budget, spec[section]))
    for section, budget in GLOBAL_ONLY.items():
        cfg[section] = deep_merge(cfg.get(section) or {}, budget)
    cfg["results_dir"] = str(results_dir)
    cfg["data_root"] = str(data_root)
    return cfg


@pytest.fixture(scope="module")
def real_cfg() -> dict:
    return yaml.safe_load(REAL.read_text())


@pytest.fixture(scope="module")
def real_run(shared_data, real_cfg, tmp_path_factory):
    """One run of the reduced real config (2 cores); returns (results dir, config, process)."""
    workdir = tmp_path_factory.mktemp("real_reduced")
    results = workdir / "results"
    cfg = reduced_config(real_cfg, results, shared_data.resolve())
    configfile = workdir / "real_reduced.yaml"
    configfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = run_snakemake(workdir, "--cores", "2", "--keep-going", configfile=configfile, check=False,
                         timeout_s=3600)
    return results, cfg, proc


def _failed_logs(results: Path) -> str:
    """Tails of the job logs that mention an error (the run's own output names only the rule)."""
    out = []
    for log in sorted((results / "logs").rglob("*.log")) if (results / "logs").is_dir() else []:
        text = log.read_text(errors="replace")
        if "error" in text.lower() or "Traceback" in text:
            out.append(f"--- {log.relative_to(results)}\n{text[-1500:]}")
    return "\n".join(out[:8])


def _load(path: Path) -> dict:
    assert path.is_file(), f"missing {path}"
    return json.loads(path.read_text())


def _encodings(cfg: dict, dataset: str) -> list[str]:
    spec = cfg["datasets"][dataset]
    return (spec.get("encode") or {}).get("encodings") or (cfg.get("encode") or {}).get("encodings") or ["delta", "population"]


def _cases(cfg: dict):
    return [(ds, enc) for ds in cfg["datasets"] for enc in _encodings(cfg, ds)]


def test_budget_reaches_every_dataset(real_cfg, tmp_path):
    """The reduced config keeps real.yaml's datasets and encoding, with the budget everywhere."""
    from biospike.config import stage_config

    cfg = reduced_config(real_cfg, tmp_path / "r", tmp_path / "d")
    assert cfg["datasets"].keys() == real_cfg["datasets"].keys() and cfg["datasets"]
    assert cfg["results_dir"] == str(tmp_path / "r") and cfg["data_root"] == str(tmp_path / "d")
    for ds in cfg["datasets"]:
        assert stage_config(cfg, "train", ds)["epochs"] == BUDGET["train"]["epochs"]
        assert stage_config(cfg, "privacy", ds)["epsilons"] == [DP_EPSILON]
        assert stage_config(cfg, "attack", ds)["n_reference_models"] == 2


def test_run_exits_zero(real_run):
    results, _, proc = real_run
    assert proc.returncode == 0, (f"snakemake failed ({proc.returncode}):\n{proc.stderr[-5000:]}\n"
                                  f"{_failed_logs(results)}")


def test_windows_have_pseudonymous_ids_only(real_run, shared_data):
    """No subject or record name of the source files reaches windows.h5 or spikes.h5."""
    results, cfg, _ = real_run
    seen_raw = set()
    for ds, spec in cfg["datasets"].items():
        root = Path(spec["path"].replace("{data_root}", cfg["data_root"]))
        files = sorted(root.glob(spec["pattern"]))
        assert files, f"{ds}: {spec['pattern']} matches nothing in {root}"
        raw = set()
        for f in files:
            rel = f.relative_to(root).as_posix()
            raw |= {p for part in Path(rel).parts for p in (part, Path(part).stem)}
            if spec.get("subject_regex"):
                raw.add(subject_from_path(rel, spec["subject_regex"], f))
        seen_raw |= raw
        stored = {}
        with h5py.File(results / ds / "windows.h5", "r") as fh:
            for key in ("subject", "record"):
                stored[key] = set(fh[key].asstr()[()])
        for enc in _encodings(cfg, ds):
            with h5py.File(results / ds / enc / "spikes.h5", "r") as fh:
                stored["subject"] |= set(fh["subject"].asstr()[()])
        for key, ids in stored.items():
            assert ids, f"{ds}: no {key} ids"
            bad = sorted(i for i in ids if not PSEUDONYM[key].match(i))
            assert not bad, f"{ds}: {key} ids that are not pseudonyms: {bad[:5]}"
            tokens = {t for i in ids for t in re.split(r"[-_/. ]", i)}
            leaked = sorted(raw & (ids | tokens))
            assert not leaked, f"{ds}: raw {key} names in the stored ids: {leaked[:5]}"
    # the raw names were really collected (PhysioNet 2017 record, eegmmidb subject, Myo participant)
    assert {"A00001", "S001", "12345"} <= seen_raw


def _private(cfg: dict, ds: str) -> bool:
    from biospike.config import stage_config

    return bool(stage_config(cfg, "privacy", ds).get("enabled", True))


def _attacked(cfg: dict, ds: str) -> list[str]:
    """The targets attacked on ``ds`` (a dataset may set its own attack.targets, e.g. [])."""
    from biospike.config import stage_config

    names = stage_config(cfg, "attack", ds)["targets"]
    return [DP_TARGET if t == "dpsnn_eps*" else t for t in names if t != "dpsnn_eps*" or _private(cfg, ds)]


def test_every_dataset_trained(real_run):
    results, cfg, _ = real_run
    for ds, enc in _cases(cfg):
        assert (results / ds / "windows.h5").is_file(), ds
        classes = cfg["datasets"][ds]["classes"]
        for model in ("snn", "ann", "classical", *([DP_TARGET] if _private(cfg, ds) else [])):
            m = _load(results / ds / enc / model / "metrics.json")
            assert m["class_names"] == classes, (ds, model, m["class_names"])
            bal = m["test"]["balanced_accuracy"]
            assert isinstance(bal, float) and math.isfinite(bal) and 0.0 <= bal <= 1.0, (ds, model, bal)


def test_dp_models_are_accounted(real_run):
    results, cfg, _ = real_run
    public_fit = (cfg.get("encode") or {}).get("fit_split") == "population"
    assert any(_private(cfg, ds) for ds, _ in _cases(cfg))
    for ds, enc in [(ds, enc) for ds, enc in _cases(cfg) if _private(cfg, ds)]:
        priv = _load(results / ds / enc / DP_TARGET / "privacy.json")
        assert priv["private"] is True and priv["target_epsilon"] == DP_EPSILON
        assert 0 < priv["epsilon"] <= DP_EPSILON * (1 + 1e-6), (ds, priv["epsilon"])
        assert priv["steps"] >= 1 and priv["noise_multiplier"] > 0
        encoder = [r for r in priv["preprocessing"] if r["statistic"].startswith("encoder")]
        assert len(encoder) == 1, priv["preprocessing"]
        if public_fit and "fit_split" not in (cfg["datasets"][ds].get("encode") or {}):
            assert encoder[0]["private"] is False and encoder[0]["fitted_on"] == "population", (ds, encoder)


def test_audits_stay_under_the_claim(real_run):
    """Where real.yaml enables the canary audit, its epsilon lower bound does not exceed the
    accounted epsilon (a bound above it would mean a bug in the DP path)."""
    from biospike.config import stage_config

    results, cfg, _ = real_run
    audited = [(ds, enc) for ds, enc in _cases(cfg)
               if _private(cfg, ds) and stage_config(cfg, "privacy", ds)["audit"].get("enabled")]
    for ds, enc in audited:
        eps = _load(results / ds / enc / DP_TARGET / "privacy.json")["epsilon"]
        audit = _load(results / ds / enc / DP_TARGET / "audit.json")
        assert audit["m"] == BUDGET["privacy"]["audit"]["n_canaries"]
        assert 0.0 <= audit["epsilon_lower_bound"] <= eps, (ds, audit["epsilon_lower_bound"], eps)
        assert _load(results / ds / enc / "privacy_audit_nonprivate.json")["epsilon_lower_bound"] >= 0.0


def test_attacks_summarised(real_run):
    results, cfg, _ = real_run
    assert any(_attacked(cfg, ds) for ds, _ in _cases(cfg))
    for ds, enc in _cases(cfg):
        if not _attacked(cfg, ds):  # utility-only dataset: no reference models were trained either
            assert not (results / ds / enc / "refs").exists(), ds
        for target in _attacked(cfg, ds):
            s = _load(results / ds / enc / target / "attack" / "summary.json")
            assert s["target"] == target and s["K"] == 2 and s["attacks"], (ds, target)
            for name, levels in s["attacks"].items():
                window = levels["window"]
                assert 0.0 <= window["auc"] <= 1.0, (ds, target, name, window.get("auc"))
                for level, r in levels.items():
                    assert "auc" in r or r.get("status") == "not estimable", (ds, target, name, level)
                    if "auc" in r:
                        assert 0.0 <= r["auc"] <= 1.0
            if target.startswith("dpsnn"):
                assert s["dp_ceiling_violated"] is False, (ds, target)


def test_deployed_on_each_target(real_run):
    import nir

    results, cfg, _ = real_run
    models = cfg.get("deploy", {}).get("models", ["snn"])
    for ds, enc in _cases(cfg):
        for model in models:
            graph = nir.read(str(results / ds / enc / model / "deploy" / "model.nir"))
            assert graph.nodes, (ds, model)
            d = _load(results / ds / enc / model / "deploy" / "loihi.json")
            assert d["energy"]["per_inference_j"] > 0, (ds, model)
            assert 0.0 <= d["balanced_accuracy"]["quantized"] <= 1.0
        mcu = _load(results / ds / enc / "ann" / "deploy" / "cortex_m4.json")
        assert mcu["energy"]["per_inference_j"] > 0 and 0.0 <= mcu["balanced_accuracy"]["float"] <= 1.0, ds


def test_summary_lists_every_dataset(real_run):
    results, cfg, _ = real_run
    summary = _load(results / "summary.json")
    assert {r["dataset"] for r in summary["rows"]} == set(cfg["datasets"])
    assert (results / "summary.html").is_file() and (results / "summary.md").is_file()


def test_forced_test_split_is_not_the_attacks_nonmembers(real_run):
    """With test_records_regex (emg_myo: session 3) the attacks' non-members are a holdout of
    the training sessions, not the other-session test split (docs/attacks.md)."""
    from biospike.store import read_windows

    results, cfg, _ = real_run
    forced = [ds for ds, spec in cfg["datasets"].items() if spec.get("test_records_regex")]
    assert forced
    for ds in forced:
        win = read_windows(results / ds / "windows.h5")
        non, test = set(win.mia["nonmembers"].tolist()), set(win.splits["test"].tolist())
        assert non and not non & test, ds
        assert not non & set(win.splits["train"].tolist()) and not non & set(win.splits["val"].tolist())
        assert not set(win.record[sorted(non)]) & set(win.record[sorted(test)]), ds  # other sessions
        assert win.preprocessing["split"]["units"]["mia_holdout"] >= 1
