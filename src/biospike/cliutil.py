"""The stage envelope: what a rule (or a user) hands a ``biospike <stage>`` command, parsed once.

Every stage receives the same three things, as one JSON object in ``--params``::

    {"settings": {"<section>": {...}, ...},   # config sections the stage reads (train, privacy, ...)
     "names": {"dataset": "...", "encoding": "...", "target": "..."},
     "seed": 20261123}                         # the root seed; the stage derives its own

or, by hand, the same from a config file: ``--config config.yaml --dataset demo_eeg``. Each
section is validated against the config schema and completed with its defaults
(:func:`biospike.config.section_settings`), so a stage never types a default of its own. Names
come from the envelope or the command line, else from what the input file recorded (never from
a folder name); the seed from the envelope or ``--seed``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from biospike.errors import BiospikeError

NAME_KEYS = ("dataset", "encoding", "target", "model")


@dataclasses.dataclass(frozen=True)
class StageContext:
    """Validated settings per config section, the run's names and the root seed."""

    settings: Mapping[str, dict]
    names: Mapping[str, str]
    seed: int | None

    def __getitem__(self, section: str) -> dict:
        try:
            return self.settings[section]
        except KeyError:
            raise BiospikeError(f"this stage was given no '{section}' settings") from None

    def name(self, key: str, default: str | None = None) -> str:
        value = self.names.get(key) or default
        if not value:
            raise BiospikeError(f"no {key} name: pass --{key} (or names.{key} in --params)")
        return str(value)

    def root_seed(self) -> int:
        if self.seed is None:
            raise BiospikeError("no seed: pass --seed (or 'seed' in --params / the config)")
        return int(self.seed)

    def derive_seed(self, *keys: object) -> int:
        from biospike.config import derive_seed

        return derive_seed(self.root_seed(), *keys)

    def with_names(self, **names: str | None) -> StageContext:
        """The same context with names filled where still missing (e.g. from an input file)."""
        merged = dict(self.names)
        for key, value in names.items():
            if value and not merged.get(key):
                merged[key] = str(value)
        return dataclasses.replace(self, names=merged)


def envelope(settings: Mapping[str, Any], names: Mapping[str, Any], seed: int | None) -> dict:
    """The ``--params`` object of a stage (rules build it with this function)."""
    return {"settings": dict(settings), "names": {k: str(v) for k, v in names.items() if v is not None},
            "seed": seed}


def parse_envelope(params: Mapping[str, Any], sections: Sequence[str]) -> StageContext:
    """Validate an envelope: every section in ``sections`` is filled with the schema's defaults
    (absent sections too); an unknown top-level key or section is an error."""
    from biospike.config import section_settings

    unknown = sorted(set(params) - {"settings", "names", "seed"})
    if unknown:
        raise BiospikeError(f"--params: unknown key(s) {unknown}; expected 'settings', 'names' and 'seed'")
    given = params.get("settings") or {}
    if not isinstance(given, Mapping):
        raise BiospikeError("--params: 'settings' must be an object of config sections")
    extra = sorted(set(given) - set(sections))
    if extra:
        raise BiospikeError(f"--params: this stage reads the section(s) {list(sections)}, not {extra}")
    settings = {s: section_settings(s, given.get(s)) for s in sections}
    if "dataset" in settings and not given.get("dataset"):
        raise BiospikeError("--params: this stage needs the dataset's settings (settings.dataset), or --config with --dataset")
    names = params.get("names") or {}
    bad = sorted(set(names) - set(NAME_KEYS))
    if bad:
        raise BiospikeError(f"--params: unknown name(s) {bad} (known: {', '.join(NAME_KEYS)})")
    seed = params.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise BiospikeError(f"--params: 'seed' must be a non-negative integer, got {seed!r}")
    return StageContext(settings, {k: str(v) for k, v in names.items()}, seed)


def context_from_config(path: str | Path, sections: Sequence[str], dataset: str | None) -> StageContext:
    """The envelope a rule would build, from a whole config file and a dataset name."""
    from biospike.config import load_yaml, validate_config

    return context_from_dict(validate_config(load_yaml(path), source=path), sections, dataset, source=path)


def context_from_dict(config: Mapping[str, Any], sections: Sequence[str], dataset: str | None,
                      source: str | Path | None = None, **names: str) -> StageContext:
    """The envelope a rule would build from a validated config (dataset overrides merged)."""
    from biospike.config import stage_config

    if dataset is not None and dataset not in config["datasets"]:
        raise BiospikeError(f"dataset {dataset!r} is not defined under 'datasets' "
                            f"(defined: {', '.join(config['datasets'])})", source)
    settings: dict[str, Any] = {}
    for s in sections:
        if s == "dataset":
            settings[s] = config["datasets"][dataset] if dataset else {}
        elif isinstance(config.get(s), Mapping):
            settings[s] = stage_config(config, s, dataset)
        else:
            settings[s] = config.get(s)
    return parse_envelope(envelope(settings, {"dataset": dataset, **names}, config["seed"]), sections)


def stage_parser(prog: str, description: str, sections: Sequence[str] = (),
                 names: Sequence[str] = ("dataset",)) -> argparse.ArgumentParser:
    """A parser with what every stage takes: the envelope (``--params``, or ``--config`` with
    ``--dataset``), the names, ``--seed`` and ``--threads``. Its help lists every setting of the
    stage's config sections with its default and meaning, from the schema."""
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=settings_help(sections),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="{}",
                        help="the stage envelope as JSON {settings, names, seed}, or @file (JSON or YAML)")
    parser.add_argument("--config", help="take the settings from this config file instead (with --dataset)")
    for key in names:
        parser.add_argument(f"--{key}", help=f"{key} name (recorded in the outputs; seeds derive from it)")
    parser.add_argument("--seed", type=int, help="root seed (default: the envelope's or the config's)")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch/BLAS (from Snakemake)")
    parser.set_defaults(_sections=tuple(sections))
    return parser


def load_context(args: argparse.Namespace) -> StageContext:
    """The stage context from parsed arguments: ``--config`` or ``--params``, then the name and
    seed flags on top."""
    sections = args._sections
    if args.config:
        ctx = context_from_config(args.config, sections, getattr(args, "dataset", None))
    else:
        ctx = parse_envelope(load_params(args.params), sections)
    flags = {k: getattr(args, k, None) for k in NAME_KEYS}
    ctx = dataclasses.replace(ctx, names={**ctx.names, **{k: str(v) for k, v in flags.items() if v}})
    if args.seed is not None:
        ctx = dataclasses.replace(ctx, seed=int(args.seed))
    return ctx


def load_params(text: str) -> dict[str, Any]:
    """Parse ``--params``: inline JSON, or ``@file`` holding JSON or YAML."""
    if text.startswith("@"):
        path = Path(text[1:])
        if path.suffix in (".yaml", ".yml"):
            from biospike.config import load_yaml

            return load_yaml(path)
        from biospike.store import read_json

        return read_json(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BiospikeError(f"--params is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise BiospikeError("--params must be a JSON object")
    return value


def settings_help(sections: Sequence[str]) -> str:
    """Every key of the sections with its default and description, from the schema."""
    if not sections:
        return ""
    from biospike.config import schema

    root = schema()
    lines = ["settings (config sections; set them in --params settings.<section> or in --config):"]

    def walk(prefix: str, node: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        props = {}
        for part in [node, *[root["$defs"][p["$ref"].split("/")[-1]] for p in node.get("allOf", []) if "$ref" in p]]:
            for key, sub in part.get("properties", {}).items():
                props.setdefault(key, {}).update(sub)
        for key, sub in props.items():
            default = defaults.get(key, sub.get("default"))
            if sub.get("type") == "object" or "properties" in sub and not sub.get("description", "").strip():
                walk(f"{prefix}{key}.", sub, default if isinstance(default, Mapping) else {})
                continue
            desc = " ".join(str(sub.get("description", "")).split())
            shown = json.dumps(default) if default is not None or "default" in sub else "-"
            lines.append(f"  {prefix}{key} = {shown}" + (f"  -- {desc}" if desc else ""))

    for section in sections:
        node = root["properties"].get(section, {})
        walk(f"{section}.", node, {})
    return "\n".join(lines)


def setup_logging() -> None:
    """INFO lines with a time stamp on stderr (what Snakemake keeps in each rule's log)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
