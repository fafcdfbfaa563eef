"""workflow/scripts/dp_sweep.py: the sweep runs the harden rule's own settings, with only the
recipe replaced."""

from __future__ import annotations

import importlib.util

import pytest

from tests.workflow.helpers import REPO

_spec = importlib.util.spec_from_file_location("dp_sweep", REPO / "workflow" / "scripts" / "dp_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def test_grid_parses_batch_epochs_lr():
    assert sweep.parse_grid("64:15:0.5,256:60:1") == [(64, 15, 0.5), (256, 60, 1.0)]
    with pytest.raises(ValueError):
        sweep.parse_grid("64:15")


def test_params_are_the_rules_with_the_recipe_replaced():
    from biospike.config import validate_config

    config = validate_config({
        "seed": 3, "privacy": {"epsilons": [8], "batch_size": 64, "epochs": 15, "lr": 0.5, "unit": "window"},
        "train": {"epochs": 20, "hidden": [64]},
        "datasets": {"d": {"reader": "edf", "modality": "eeg", "path": "x", "classes": ["a", "b"], "label_map": {},
                           "privacy": {"audit": {"enabled": True}}, "train": {"hidden": [32]}}}})
    ctx = sweep.sweep_params(config, "d", "delta", 256, 60, 1.0)
    p = ctx["privacy"]
    assert (p["batch_size"], p["epochs"], p["lr"]) == (256, 60, 1.0)
    assert p["unit"] == "window" and p["audit"]["enabled"] is True  # dataset override merged
    assert ctx["train"]["epochs"] == 20 and ctx["train"]["hidden"] == [32] and ctx.seed == 3
    assert (ctx.names["dataset"], ctx.names["encoding"]) == ("d", "delta")
