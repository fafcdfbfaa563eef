"""The stage envelope: what a rule (or a user) hands a ``biospike <stage>`` command, parsed once.

Every stage receives the same three things, as one JSON object in ``--params``::

    {"settings": {"<section>": {...}, ...},   # config sections the stage reads (train, privacy, ...)
     "names": {"dataset": "...", "encoding": "...", "target": "..."},
     "seed": 20261123}                         # the root seed; the stage derives its own

or, by hand, the same from a config file: ``--config config.yaml --dataset demo_eeg`` (a whole
workflow config: the dataset's overrides are merged as the workflow merges them), or
``--config my_train.yaml`` holding only the sections to set (``train: {epochs: 5}``, plus
``seed`` if wanted). With both ``--config`` and ``--params``, the settings in ``--params`` are
merged over the file's. Each section is validated against the config schema and completed with
its defaults (:func:`biospike.config.section_settings`), so a stage never types a default of its
own; ``--help`` lists every key with its unit and default (:func:`settings_help`). Names come from
the envelope or the command line, else from what the input file recorded (never from a folder
name); the seed from the envelope, the config or ``--seed``.
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

__all__ = ["NAME_KEYS", "UNIT_SUFFIXES", "StageContext", "context_from_config", "context_from_dict",
           "context_from_sections", "envelope", "load_context", "load_params", "parse_envelope", "settings_help",
           "setup_logging", "stage_parser", "unit_of"]

NAME_KEYS = ("dataset", "encoding", "target", "model")
# unit of a setting from its name's suffix (the schema's convention: tau_mem_s, fs_hz, max_memory_gb)
UNIT_SUFFIXES = {"_s": "s", "_hz": "Hz", "_gb": "GB", "_j": "J", "_w": "W", "_v": "V"}


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
        """The name ``key`` (dataset, encoding, target, model) the stage was given, else
        ``default`` (what the input file recorded); neither is an error naming the flag."""
        value = self.names.get(key) or default
        if not value:
            raise BiospikeError(f"no {key} name: pass --{key} (or names.{key} in --params)")
        return str(value)

    def root_seed(self) -> int:
        """The root seed; none given is an error naming ``--seed``."""
        if self.seed is None:
            raise BiospikeError("no seed: pass --seed (or 'seed' in --params / the config)")
        return int(self.seed)

    def derive_seed(self, *keys: object) -> int:
        """A seed for one purpose from the root seed (:func:`biospike.config.derive_seed`)."""
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
    """The envelope a rule would build, from a config file: a whole workflow config (it has
    ``datasets``; the ``dataset``'s overrides are merged) or a file of sections only
    (:func:`context_from_sections`)."""
    from biospike.config import load_yaml, validate_config

    raw = load_yaml(path)
    if "datasets" not in raw:
        return context_from_sections(raw, sections, source=path, dataset=dataset)
    return context_from_dict(validate_config(raw, source=path), sections, dataset, source=path)


def context_from_sections(raw: Mapping[str, Any], sections: Sequence[str], source: str | Path | None = None,
                          dataset: str | None = None) -> StageContext:
    """The envelope from a mapping of config sections (``{"train": {...}, "seed": 1}``): every
    top-level key must be one the config schema knows (or ``dataset``, one entry of ``datasets``)
    and is validated; the sections the stage reads are kept, each completed with its defaults."""
    from biospike.config import format_problems, schema, section_settings

    known = [*schema()["properties"], "dataset"]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        import difflib

        problems = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(([key], f"unknown key{hint}; allowed: {', '.join(known)}"))
        raise BiospikeError(format_problems(problems), source)
    for key, value in raw.items():
        if key not in ("seed", "datasets", *sections):
            section_settings(key, value)  # a section this stage does not read is still checked
    seed = raw.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise BiospikeError(f"seed must be a non-negative integer, got {seed!r}", source)
    settings = {s: raw.get(s) for s in sections if s in raw}
    try:
        return parse_envelope(envelope(settings, {"dataset": dataset}, seed), sections)
    except BiospikeError as exc:
        raise BiospikeError(exc.problem.replace("--params: ", "").replace("(settings.dataset)", "(a 'dataset' section)"),
                            source) from None


def context_from_dict(config: Mapping[str, Any], sections: Sequence[str], dataset: str | None,
                      source: str | Path | None = None, **names: str) -> StageContext:
    """The envelope a rule would build from a validated config (dataset overrides merged;
    ``data_root`` from the config, else from ``BIOSPIKE_DATA_ROOT``, as the workflow takes it)."""
    import os

    from biospike.config import DATA_ROOT_ENV, stage_config

    if dataset is not None and dataset not in config["datasets"]:
        raise BiospikeError(f"dataset {dataset!r} is not defined under 'datasets' "
                            f"(defined: {', '.join(config['datasets'])})", source)
    settings: dict[str, Any] = {}
    for s in sections:
        if s == "dataset":
            settings[s] = config["datasets"][dataset] if dataset else {}
        elif s == "data_root":
            settings[s] = config.get(s) or os.environ.get(DATA_ROOT_ENV) or None
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
                        help="the stage envelope as JSON {settings, names, seed}, or @file (JSON or YAML); "
                             "with --config, its settings are merged over the file's")
    parser.add_argument("--config", metavar="FILE",
                        help="settings from a config file: a whole workflow config (with --dataset), or a YAML "
                             "file holding only the sections listed below (and optionally seed)")
    for key in names:
        parser.add_argument(f"--{key}", help=f"{key} name (recorded in the outputs; seeds derive from it)")
    parser.add_argument("--seed", type=int, help="root seed (default: the envelope's or the config's)")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch/BLAS (from Snakemake)")
    parser.set_defaults(_sections=tuple(sections))
    return parser


def load_context(args: argparse.Namespace) -> StageContext:
    """The stage context from parsed arguments: ``--config`` and/or ``--params`` (its settings
    merged over the file's), then the name and seed flags on top."""
    sections = args._sections
    params = load_params(args.params)
    if args.config:
        ctx = context_from_config(args.config, sections, getattr(args, "dataset", None))
        if params:
            ctx = _overlay(ctx, params, sections)
    else:
        ctx = parse_envelope(params, sections)
    flags = {k: getattr(args, k, None) for k in NAME_KEYS}
    ctx = dataclasses.replace(ctx, names={**ctx.names, **{k: str(v) for k, v in flags.items() if v}})
    if args.seed is not None:
        ctx = dataclasses.replace(ctx, seed=int(args.seed))
    if "train" in ctx.settings:
        # before any work or log line: a device that cannot be used is the whole error
        from biospike.device import resolve_device

        resolve_device(ctx.settings["train"]["device"])
    return ctx


def _overlay(ctx: StageContext, params: Mapping[str, Any], sections: Sequence[str]) -> StageContext:
    """``ctx`` with an envelope's settings merged over its sections (then re-validated), and the
    envelope's names and seed where it gives them."""
    from biospike.config import deep_merge

    given = params.get("settings") or {}
    base = {s: ctx.settings[s] for s in sections if isinstance(ctx.settings.get(s), Mapping)}
    merged = {s: deep_merge(base[s], given[s]) if s in base and isinstance(given[s], Mapping) else given[s]
              for s in given}  # a section this stage does not read stays in: parse_envelope refuses it
    top = parse_envelope({**params, "settings": {**base, **merged}}, sections)
    settings = {s: top.settings[s] if s in given or s in base else ctx.settings[s] for s in sections}
    seed = top.seed if params.get("seed") is not None else ctx.seed
    return StageContext(settings, {**ctx.names, **top.names}, seed)


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


def _deep_union(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _deep_union(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def _properties(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, dict]:
    """The properties of ``node`` with the ``$defs`` its ``allOf`` / ``$ref`` pull in merged key by
    key (a top-level section holds the defaults, its ``$defs`` entry the types and meanings)."""
    parts = [node]
    refs = [node.get("$ref")] + [p.get("$ref") for p in node.get("allOf", [])]
    parts += [root.get("$defs", {}).get(r.split("/")[-1], {}) for r in refs if r and r.startswith("#/$defs/")]
    props: dict[str, dict] = {}
    for part in parts:
        for key, sub in part.get("properties", {}).items():
            props[key] = _deep_union(props.get(key, {}), sub)
    return props


def _bounds(node: Mapping[str, Any]) -> str:
    """``in [0, 0.5]``, ``> 0``, ``<= 1`` ... from a number's minimum/maximum keywords."""
    lo = ("[", node["minimum"]) if "minimum" in node else ("(", node["exclusiveMinimum"]) if "exclusiveMinimum" in node else None
    hi = ("]", node["maximum"]) if "maximum" in node else (")", node["exclusiveMaximum"]) if "exclusiveMaximum" in node else None
    if lo and hi:
        return f" in {lo[0]}{lo[1]:g}, {hi[1]:g}{hi[0]}"
    if lo:
        return f" {'>=' if lo[0] == '[' else '>'} {lo[1]:g}"
    if hi:
        return f" {'<=' if hi[0] == ']' else '<'} {hi[1]:g}"
    return ""


def _allowed(node: Mapping[str, Any]) -> str:
    """What a leaf accepts, in words (``"a" | "b"``, ``number > 0``, ``list of integer >= 1``, ...);
    ``""`` for free text or objects."""
    if "enum" in node:
        return " | ".join(json.dumps(v) for v in node["enum"])
    if "const" in node:
        return json.dumps(node["const"])
    if "anyOf" in node:
        options = [_allowed({**sub, **({} if "type" in sub or "enum" in sub or "const" in sub else
                                       {"type": node.get("type")})}) or str(sub.get("type", "")) for sub in node["anyOf"]]
        return " | ".join(dict.fromkeys(o for o in options if o))
    types = node.get("type")
    words = []
    for kind in [types] if isinstance(types, str) else list(types or []):
        if kind == "boolean":
            words.append("true | false")
        elif kind in ("integer", "number"):
            words.append(kind + _bounds(node))
        elif kind == "array":
            inner = _allowed(node.get("items", {}))
            words.append(f"list of {inner}" if inner else "list")
        elif kind == "null":
            words.append("null")
        elif kind == "string":
            words.append("text")
        elif kind == "object":
            words.append("mapping")
    return " | ".join(words) if words and words != ["text"] and words != ["mapping"] else ""


def unit_of(key: str) -> str:
    """The unit a setting's name carries (``tau_mem_s`` -> ``s``), else ``""``."""
    return next((unit for suffix, unit in UNIT_SUFFIXES.items() if key.endswith(suffix)), "")


def settings_help(sections: Sequence[str]) -> str:
    """Every key of the sections with its unit, default, allowed values and meaning, from the schema."""
    if not sections:
        return ""
    from biospike.config import schema

    root = schema()
    lines = ["settings (set them in --config FILE, or in --params as settings.<section>.<key>):",
             "  <section>.<key> [unit] = default  (allowed values)  -- meaning;  '-': no default of its own"]

    def leaf(name: str, node: Mapping[str, Any], required: bool) -> None:
        unit = unit_of(name.rsplit(".", 1)[-1])
        if "default" in node:
            shown = json.dumps(node["default"])
        else:
            shown = "(required)" if required else "-"
        allowed = _allowed(node)
        desc = " ".join(str(node.get("description", "")).split())
        lines.append(f"  {name}" + (f" [{unit}]" if unit else "") + f" = {shown}"
                     + (f"  ({allowed})" if allowed else "") + (f"  -- {desc}" if desc else ""))

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        required = set(node.get("required", []))
        for part in node.get("allOf", []):
            required |= set(root.get("$defs", {}).get(str(part.get("$ref", "")).split("/")[-1], {}).get("required", []))
        for key, sub in _properties(node, root).items():
            if _properties(sub, root) and "$ref" not in sub:
                walk(f"{prefix}{key}.", sub)
            else:
                leaf(f"{prefix}{key}", sub, key in required)

    for section in sections:
        node = root["properties"].get(section)
        if node is None and section in root.get("$defs", {}):
            node = {"$ref": f"#/$defs/{section}"}
            node["required"] = root["$defs"][section].get("required", [])
        if node is None:
            continue
        if _properties(node, root):
            walk(f"{section}.", node)
        else:
            leaf(section, node, False)
    return "\n".join(lines)


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to the current ``sys.stderr`` (not the one at creation)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ARG002
        pass


def setup_logging() -> None:
    """INFO lines with a time stamp on stderr (what Snakemake keeps in each rule's log), from the
    ``biospike.*`` loggers. Its own handler, not the root logger's: norse logs at import time,
    which configures the root logger at WARNING and would silence the stages' INFO lines."""
    logger = logging.getLogger("biospike")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.propagate = False  # the root logger's handlers (if any) would print each line twice
