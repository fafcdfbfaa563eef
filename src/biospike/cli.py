"""``biospike <subcommand>``: one subcommand per workflow rule.

Each stage module owns its argument parser and exposes ``cli(argv) -> int``; this module only
dispatches, so importing the CLI does not import torch for stages that do not need it.
A :class:`~biospike.errors.BiospikeError` becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["SUBCOMMANDS", "main"]

# subcommand -> ("module:function", one-line help); the function takes (argv, prog) -> exit code
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("biospike.demo:cli", "write labelled synthetic EEG (EDF+), ECG (WFDB) and EMG (text) recordings"),
    "ingest": ("biospike.ingest:cli", "read recordings, preprocess, window, split by subject -> windows.h5"),
    "encode": ("biospike.encode.cli:cli", "windows.h5 -> spikes.h5 (delta | population | rate | ttfs | *_burst)"),
    "train": ("biospike.train:cli", "train an SNN / ANN / classical model on spikes.h5"),
    "harden": ("biospike.privacy.cli:cli_harden", "DP-SGD training with an accounted (epsilon, delta)"),
    "privacy-table": ("biospike.privacy.cli:cli_table", "privacy-utility table over the epsilon targets"),
    "attack": ("biospike.attacks.cli:cli", "membership-inference attacks on a trained model"),
    "attack-train": ("biospike.attacks.cli:cli_train", "train one attack reference model (or a time-step-sweep target)"),
    "attack-sweep": ("biospike.attacks.cli:cli_sweep", "collect the time-step sweep's attack summaries"),
    "export": ("biospike.deploy.nir_export:cli", "export a trained SNN to NIR"),
    "simulate": ("biospike.deploy.cli:cli", "map, quantize and simulate a model on an edge target"),
    "report": ("biospike.report:cli", "summary tables and figures"),
    "predict": ("biospike.predict:cli", "apply a trained model to new recordings (external validation)"),
}


def _usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    return f"usage: biospike <subcommand> [options]\n\nsubcommands:\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    """``biospike <subcommand> [options]``: run the subcommand named in ``argv`` (default
    ``sys.argv[1:]``); returns the exit status (a BiospikeError: one line on stderr, status 2)."""
    from biospike.errors import BiospikeError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from biospike import __version__

        print(f"biospike {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        sys.stderr.write(f"biospike: error: unknown subcommand {name!r}\n\n{_usage()}")
        return 2
    module_name, func_name = SUBCOMMANDS[name][0].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(rest, prog=f"biospike {name}") or 0)
    except BiospikeError as exc:
        sys.stderr.write(f"biospike {name}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
