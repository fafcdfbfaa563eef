import copy

import pytest
import yaml

from biospike.config import deep_merge, derive_seed, stage_config, validate_config
from biospike.errors import BiospikeError


@pytest.fixture(scope="module")
def default_config(repo):
    return yaml.safe_load((repo / "config" / "config.yaml").read_text())


def test_default_config_validates_and_fills_defaults(default_config):
    cfg = validate_config(default_config)
    assert cfg["results_dir"] == "results"
    assert cfg["datasets"]["demo_eeg"]["pattern"] == "*.edf"


@pytest.mark.parametrize("name", ["config.yaml", "real.yaml", "tiny.yaml", "paper.yaml", "cohort.yaml", "external.yaml",
                                  "dynamics.yaml", "levers.yaml"])
def test_shipped_configs_validate(repo, name):
    path = repo / "config" / name
    if not path.exists():
        pytest.fail(f"{path} missing")
    validate_config(yaml.safe_load(path.read_text()), source=path)


def test_unknown_key_rejected_with_path(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["splits"]["test_fractoin"] = 0.3
    with pytest.raises(BiospikeError, match=r"splits.*test_fractoin"):
        validate_config(cfg, source="my.yaml")


def test_unknown_dataset_key_rejected(default_config):
    cfg = copy.deepcopy(default_config)
    cfg["datasets"]["demo_eeg"]["windw_s"] = 1.0
    with pytest.raises(BiospikeError, match=r"datasets/demo_eeg"):
        validate_config(cfg)


def test_deep_merge_and_stage_config():
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    cfg = {"encode": {"dt_s": 0.004, "delta": {"threshold": 1}},
           "datasets": {"x": {"encode": {"delta": {"threshold": 2}}}, "y": {}}}
    assert stage_config(cfg, "encode", "x") == {"dt_s": 0.004, "delta": {"threshold": 2}}
    assert stage_config(cfg, "encode", "y") == cfg["encode"]
    with pytest.raises(BiospikeError, match="not defined"):
        stage_config(cfg, "encode", "z")


def test_derive_seed_is_stable_and_separates_purposes():
    assert derive_seed(1, "a", "b") == derive_seed(1, "a", "b")
    assert derive_seed(1, "a", "b") != derive_seed(1, "a", "c")
    assert derive_seed(1, "a") != derive_seed(2, "a")
    assert 0 <= derive_seed(123, "x") < 2**31
