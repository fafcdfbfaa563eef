"""Configuration: the schema, validation with defaults, per-dataset overrides, seeding.

The one schema (``biospike/config.schema.yaml``, also at ``workflow/schemas/``) holds every key,
its type, allowed values, unit and default. The workflow validates the whole config against it at
start-up (:func:`validate_config`); each stage validates its own section with the same schema and
the same defaults (:func:`section_settings`), so a library caller without a config gets exactly
the workflow's behaviour and no default is typed twice.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from biospike.errors import BiospikeError

__all__ = ["DATA_LAYOUT", "DATA_ROOT_ENV", "SCHEMA_PATH", "data_root_error", "deep_merge", "derive_seed",
           "fill_defaults_and_validate", "format_problems", "load_yaml", "resolve_data_root", "schema",
           "section_schema", "section_settings", "seed_everything", "stage_config", "validate_config"]

SCHEMA_PATH = Path(__file__).resolve().parent / "config.schema.yaml"


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
    """The mapping in a YAML file; a missing, malformed or non-mapping file is a BiospikeError."""
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


DATA_ROOT_ENV = "BIOSPIKE_DATA_ROOT"
DATA_LAYOUT = ("a folder holding the recordings under the dataset paths the config names after {data_root}, "
               "e.g. ecg/mitdb/100.hea, eeg/eegmmidb/S001/S001R03.edf, emg/uci_emg_gestures/01/*.txt "
               "(data/README.md lists the layout and where to get each set)")


def data_root_error(paths: list[str]) -> str:
    """The message for dataset ``paths`` that need ``{data_root}`` when none is set: the key, the
    two ways to set it and the folder layout it must have."""
    return (f"config key data_root is not set, but dataset paths {list(dict.fromkeys(paths))[:3]} start with {{data_root}}: pass it on "
            f"the command line (--config data_root=/path/to/data) or set {DATA_ROOT_ENV}; it must be {DATA_LAYOUT}")


def resolve_data_root(config: dict) -> dict:
    """``data_root`` from the config, else from the environment; a config whose datasets read
    ``{data_root}`` without one is an error naming the key and the expected layout, as is a
    data_root that is not a folder."""
    root = config.get("data_root") or os.environ.get(DATA_ROOT_ENV) or None
    needs = [str(spec.get("path", "")) for spec in config.get("datasets", {}).values()
             if "{data_root}" in str(spec.get("path", ""))]
    if needs and not root:
        raise BiospikeError(data_root_error(needs))
    if needs and not Path(root).is_dir():
        raise BiospikeError(f"config key data_root is {root!r}, which is not a folder; it must be {DATA_LAYOUT}")
    return {**config, "data_root": root}


# ---------------------------------------------------------------------------------------------
# the schema
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    try:
        return yaml.safe_load(SCHEMA_PATH.read_text())
    except OSError as exc:
        raise BiospikeError(f"cannot read the config schema ({exc})", SCHEMA_PATH) from None


def schema() -> dict:
    """The whole config schema (a fresh copy)."""
    return copy.deepcopy(_schema())


def section_schema(section: str) -> dict:
    """The schema of one top-level key (``train``, ``privacy``, ``data_root``, ...) with the
    ``$defs`` its references point to and the top-level defaults; ``dataset`` is the schema of
    one entry of ``datasets``."""
    root = schema()
    defs = root.get("$defs", {})
    if section in root["properties"]:
        return {"$defs": defs, **root["properties"][section]}
    if section in defs:
        return {"$defs": defs, "$ref": f"#/$defs/{section}"}
    raise BiospikeError(f"the config schema has no section {section!r} "
                        f"(sections: {', '.join(root['properties'])})", SCHEMA_PATH)


def section_settings(section: str, given: Any = None, where: str | None = None) -> Any:
    """``given`` validated against the schema's ``section`` with every missing key set to its
    default (MNE's ``_check_option`` idea: one validator, the schema's own defaults). An unknown
    key or a bad value is one :class:`BiospikeError` listing every problem with its key path.
    A scalar section (``data_root``) given as None takes its default."""
    node = section_schema(section)
    if node.get("type") == "object" or "$ref" in node or "allOf" in node:
        value: Any = copy.deepcopy(dict(given or {}))
    else:
        value = copy.deepcopy(node.get("default")) if given is None else copy.deepcopy(given)
    problems = fill_defaults_and_validate(value, node)
    if problems:
        raise BiospikeError(format_problems(problems, prefix=where or section))
    return value


def validate_config(config: dict, source: str | Path = "config", schema_path: Path = SCHEMA_PATH) -> dict:
    """Validate a whole config, filling defaults; unknown keys are an error.

    The message has one line per problem, ``invalid config at 'train/epoch': ...`` with the
    allowed keys or values, the way the workflow reports it at start-up.
    """
    sch = schema() if schema_path == SCHEMA_PATH else yaml.safe_load(Path(schema_path).read_text())
    config = copy.deepcopy(config)
    problems = fill_defaults_and_validate(config, sch) + _kind_only_settings(config)
    if problems:
        raise BiospikeError(format_problems(problems), source)
    return config


Problem = tuple[list, str]

# train settings a model kind sets (ModelKind.train_settings) that a config may not: set globally
# they would turn every other kind (and its reference models and levers) into that recipe
KIND_ONLY_TRAIN_KEYS = {"learning": "surrogate", "front_end": "linear"}


def _kind_only_settings(config: Mapping[str, Any]) -> list[Problem]:
    sections = [(["train"], config.get("train") or {})]
    sections += [(["datasets", name, "train"], (ds or {}).get("train") or {})
                 for name, ds in (config.get("datasets") or {}).items() if isinstance(ds, Mapping)]
    return [(path + [key], f"is set by the model kind, not the config (it must stay {default!r}): "
                           f"list the kind that does this in train.models (stdp, tconv)")
            for path, section in sections if isinstance(section, Mapping)
            for key, default in KIND_ONLY_TRAIN_KEYS.items() if section.get(key, default) != default]


def fill_defaults_and_validate(instance: Any, schema: dict) -> list[Problem]:
    """Validate ``instance`` against a JSON schema, filling each missing property that has a
    ``default`` in place; returns every problem as (key path, message), empty if valid."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)

    def fill_defaults(validator, properties, node, node_schema):
        if isinstance(node, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in node:
                    node[key] = copy.deepcopy(sub["default"])
        yield from base.VALIDATORS["properties"](validator, properties, node, node_schema)

    filling = jsonschema.validators.extend(base, {"properties": fill_defaults})
    errors = list(filling(schema).iter_errors(instance))
    problems = []
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        problems += _explain(error, schema)
    seen, unique = set(), []
    for path, message in problems:
        key = ("/".join(map(str, path)), message)
        if key not in seen:
            seen.add(key)
            unique.append((path, message))
    return unique


def _allowed_keys(error, root: Mapping[str, Any]) -> list[str]:
    keys: list[str] = []
    for sub in _subschemas(error.schema, root):
        keys += [k for k in sub.get("properties", {}) if k not in keys]
    return keys


def _subschemas(node: Mapping[str, Any], root: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``node`` and the schemas its ``allOf`` / ``$ref`` pull in (one level of $defs)."""
    out = [node]
    for part in node.get("allOf", []):
        if "$ref" in part and part["$ref"].startswith("#/$defs/"):
            out.append(root.get("$defs", {}).get(part["$ref"].split("/")[-1], {}))
        else:
            out.append(part)
    if "$ref" in node and node["$ref"].startswith("#/$defs/"):
        out.append(root.get("$defs", {}).get(node["$ref"].split("/")[-1], {}))
    return out


def _expected(sub) -> str:
    """What one branch of an anyOf wants, in words."""
    value = sub.validator_value
    words = {"enum": lambda: f"one of {', '.join(map(repr, value))}", "const": lambda: repr(value),
             "exclusiveMinimum": lambda: f"a number > {value}", "minimum": lambda: f"a number >= {value}",
             "exclusiveMaximum": lambda: f"a number < {value}", "maximum": lambda: f"a number <= {value}",
             "type": lambda: f"a value of type {value}"}
    return words[sub.validator]() if sub.validator in words else sub.message


def _explain(error, root: Mapping[str, Any]) -> list[Problem]:
    """One or more (path, message) for a jsonschema error, in words a user can act on."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = _allowed_keys(error, root)
        out = []
        for key in sorted(set(error.instance) - set(allowed)) if allowed else []:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            out.append(([*path, key], f"unknown key{hint}; allowed: {', '.join(allowed)}"))
        return out or [(path, error.message)]
    if error.validator == "enum":
        return [(path, f"{error.instance!r} is not allowed; allowed: {', '.join(map(repr, error.validator_value))}")]
    if error.validator in ("exclusiveMinimum", "minimum", "exclusiveMaximum", "maximum", "type"):
        return [(path, f"{error.instance!r} is not valid: expected {_expected(error)}")]
    if error.validator == "required":
        return [(path, error.message.replace("is a required property", "is required here"))]
    if error.validator in ("anyOf", "oneOf") and error.context:
        options = []
        for sub in error.context:
            text = _expected(sub)
            if text not in options:
                options.append(text)
        return [(path, f"{error.instance!r} is not valid: expected {' or '.join(options)}")]
    return [(path, error.message)]


def format_problems(problems: list[Problem], prefix: str | None = None) -> str:
    """``invalid config at 'a/b': message`` per line (``prefix`` leads every key path)."""
    lines = []
    for path, message in problems:
        where = "/".join([*([prefix] if prefix else []), *map(str, path)]) or "<top level>"
        lines.append(f"invalid config at '{where}': {message}")
    return "\n".join(lines)
