"""Sweep the DP recipe (expected batch size, epochs, learning rate) at one epsilon on datasets a
finished run has encoded, and print validation and test balanced accuracy per setting.

    python workflow/scripts/dp_sweep.py --configfile config/real.yaml --datasets emg_myo,emg_uci \\
        [--epsilon 8] [--grid 64:15:0.5,256:60:1.0,...] [--outdir /tmp/dp_sweep]

Each setting runs the workflow's own ``harden`` stage (the same code, settings merged exactly as
the rule merges them: privacy section + dataset override + train section + root seed) on
``{results_dir}/{dataset}/{encoding}/spikes.h5``; only batch_size, epochs and lr change. Choose on
the validation column: the test column is printed for the record, not for choosing. Searching
hyperparameters on private data is itself a use of that data the accountant does not see
(Papernot & Steinke 2022); docs/results.md says what the real config's choice cost.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DEFAULT_GRID = "64:15:0.5,128:40:0.5,256:30:0.5,256:60:0.5,256:60:1.0,256:60:2.0,256:120:1.0,512:120:1.0"


def parse_grid(text: str) -> list[tuple[int, int, float]]:
    """"batch:epochs:lr,..." -> [(batch, epochs, lr), ...]."""
    out = []
    for item in text.split(","):
        batch, epochs, lr = item.split(":")
        out.append((int(batch), int(epochs), float(lr)))
    return out


def sweep_params(config: dict, dataset: str, encoding: str, batch: int, epochs: int, lr: float):
    """The harden rule's stage context for ``dataset`` with the recipe replaced."""
    from biospike.cliutil import context_from_dict

    ctx = context_from_dict(config, ("privacy", "train"), dataset, encoding=encoding)
    ctx["privacy"].update(batch_size=batch, epochs=epochs, lr=lr)
    return ctx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", required=True, type=Path)
    parser.add_argument("--datasets", required=True, help="comma-separated dataset names")
    parser.add_argument("--encoding", default="delta")
    parser.add_argument("--epsilon", type=float, default=8.0)
    parser.add_argument("--grid", default=DEFAULT_GRID, help="batch:epochs:lr,... (default: %(default)s)")
    parser.add_argument("--outdir", type=Path, default=Path("/tmp/dp_sweep"))
    args = parser.parse_args(argv)

    import torch

    from biospike.config import load_yaml, validate_config
    from biospike.privacy.cli import harden_stage

    torch.set_num_threads(1)
    config = validate_config(load_yaml(args.configfile), args.configfile)
    results = Path(config["results_dir"])
    print("| dataset | batch | epochs | lr | noise multiplier | sample rate | steps | ε | val bal. acc. | test bal. acc. | s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        spikes = results / dataset / args.encoding / "spikes.h5"
        if not spikes.is_file():
            print(f"{spikes}: not found (run the workflow up to encode first)", file=sys.stderr)
            return 2
        for batch, epochs, lr in parse_grid(args.grid):
            start = time.perf_counter()
            out = args.outdir / dataset / f"b{batch}_e{epochs}_lr{lr:g}"
            m = harden_stage(sweep_params(config, dataset, args.encoding, batch, epochs, lr), spikes, out, args.epsilon,
                             progress=False)
            p = m["privacy"]
            print(f"| {dataset} | {batch} | {epochs} | {lr:g} | {p['noise_multiplier']:.3f} | {p['sample_rate']:.3f} | "
                  f"{p['steps']} | {p['epsilon']:.2f} | {m['val']['balanced_accuracy']:.3f} | "
                  f"{m['test']['balanced_accuracy']:.3f} | {time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
