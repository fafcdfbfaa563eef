"""Configuration: loading, per-dataset overrides, and deterministic seeding from one root seed."""

from __future__ import annotations

import copy
import hashlib
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from biospike.errors import BiospikeError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict:
    """Return ``base`` updated recursively by ``override`` (neither is modified)."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def stage_config(config: Mapping[str, Any], stage: str, dataset: str | None = None) -> dict:
    """The effective settings of ``stage`` for ``dataset``: ``config[stage]`` updated by
    ``config["datasets"][dataset][stage]`` when the dataset overrides it."""
    base = config.get(stage, {})
    if dataset is None:
        return copy.deepcopy(dict(base))
    try:
        spec = config["datasets"][dataset]
    except KeyError:
        raise BiospikeError(f"dataset {dataset!r} is not defined under 'datasets'") from None
    return deep_merge(base, spec.get(stage))


def privacy_params(config: Mapping[str, Any], dataset: str, encoding: str) -> dict:
    """What the privacy rules pass as ``--params``: the dataset's effective privacy section, its
    train section under ``train``, the root seed and the names (one merge for the workflow and
    workflow/scripts/dp_sweep.py)."""
    return {**stage_config(config, "privacy", dataset), "train": stage_config(config, "train", dataset),
            "seed": config["seed"], "dataset": dataset, "encoding": encoding}


def derive_seed(root_seed: int, *keys: object) -> int:
    """A 31-bit seed for one purpose (e.g. ``("train", "demo_eeg", "delta", "snn")``).

    Hash-based so that adding a dataset or model does not shift the seeds of the others.
    """
    text = "/".join([str(int(root_seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int, threads: int | None = None, deterministic: bool = True) -> np.random.Generator:
    """Seed python, numpy and torch; route Snakemake's thread count to torch; return a Generator."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 -- libraries that still use the global RNG
    try:
        import torch
    except ImportError:  # ingestion-only installs
        torch = None
    if torch is not None:
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(max(1, int(threads)))
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    return np.random.default_rng(seed)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise BiospikeError("config file not found", path) from None
    except yaml.YAMLError as exc:
        raise BiospikeError(f"not valid YAML: {exc}", path) from None
    if not isinstance(data, dict):
        raise BiospikeError("config must be a mapping at top level", path)
    return data


def validate_config(config: dict, source: str | Path = "config", schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate against the workflow schema, filling defaults; unknown keys are an error.

    The same schema is used by the Snakefile's ``validate``; this function gives a one-line
    message with the offending key path for CLI users.
    """
    schema = yaml.safe_load(schema_path.read_text())
    config = copy.deepcopy(config)
    error = fill_defaults_and_validate(config, schema)
    if error is not None:
        path, message = error
        where = "/".join(map(str, path)) or "<top level>"
        raise BiospikeError(f"invalid config at '{where}': {message}", source)
    return config


def fill_defaults_and_validate(instance: Any, schema: dict) -> tuple[list, str] | None:
    """Validate ``instance`` against a JSON schema, filling each missing property that has a
    ``default`` in place; returns the first error as (key path, message), or None.

    One mechanism for the workflow config and for the stage CLIs that check their own section.
    """
    import jsonschema

    base = jsonschema.validators.validator_for(schema)

    def fill_defaults(validator, properties, node, node_schema):
        if isinstance(node, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in node:
                    node[key] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, node, node_schema)

    filling = jsonschema.validators.extend(base, {"properties": fill_defaults})
    errors = sorted(filling(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    return list(errors[0].absolute_path), errors[0].message
