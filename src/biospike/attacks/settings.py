"""Settings of the ``attack`` config section, for the CLIs and library callers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from biospike.attacks import mia
from biospike.config import deep_merge
from biospike.errors import BiospikeError

# Mirrors workflow/schemas/config.schema.yaml (attack section) for library and CLI callers.
DEFAULTS: dict[str, Any] = {
    "attacks": ["loss", "lira", "rmia"],
    "n_reference_models": 4,
    "lira": {"online": True, "offline": True, "fixed_variance": True},
    "rmia": {"gamma": 2.0, "n_population": 1000, "offline_a": "auto", "online": False},
    "input_dropout": {"enabled": True, "p": 0.01, "n_queries": 10},
    "bootstrap": {"n": 500, "ci": 0.95, "by_subject": True, "n_permutations": 1000},
    "levels": ["window", "subject"],
    "t_sweep": [25, 50, 100],
    "t_sweep_attacks": ["loss", "rmia"],
    "t_sweep_reference_models": 2,
    "targets": ["snn", "ann", "dpsnn_eps*"],
    "fail_on_ceiling_violation": True,
    "reference_early_stopping": True,
    "reference_unit": "subject",
    "query_batch_size": 256,
}
# Keys a rule adds to --params beside the attack settings.
RESERVED_KEYS = ("seed", "dataset", "encoding", "train", "target")
# RMIA's offline a when it cannot be tuned (fewer than 3 reference models); the value the RMIA
# authors' reference configuration uses for CIFAR-10.
OFFLINE_A_FALLBACK = 0.3


def attack_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {k: v for k, v in params.items() if k not in RESERVED_KEYS}
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise BiospikeError(f"unknown attack settings: {unknown} (known: {sorted(DEFAULTS)})")
    out = deep_merge(DEFAULTS, cfg)
    bad_levels = set(out["levels"]) - set(mia.LEVELS)
    if bad_levels:
        raise BiospikeError(f"attack.levels: unknown level(s) {sorted(bad_levels)} (known: {list(mia.LEVELS)})")
    try:
        mia.attack_names(out)
    except ValueError as exc:
        raise BiospikeError(f"attack.attacks: {exc}") from None
    return out
