"""Shared plumbing for the stage CLIs: ``--params`` JSON from the rule, threads, seeding."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from biospike.errors import BiospikeError


def stage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options every rule passes: ``--params`` (JSON or @file) and ``--threads``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--params", default="{}", help="stage settings as JSON, or @path to a JSON/YAML file")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch/BLAS (from Snakemake)")
    return parser


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
