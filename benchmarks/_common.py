"""Shared helpers for benchmarks/<stage>.py (docs/design.md, "The benchmarks contract").

Each benchmark builds a list of rows ``{"metric", "unit", "ours", "peers": {name: value or None},
"ratio_vs_best_peer"}`` with :func:`row`, then calls :func:`report`, which prints a table and
writes ``results/bench/<stage>.json``. A peer that is not installed is kept with value ``None`` and
listed under ``missing`` in the printed table: reported, never silently skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def parser(stage: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"benchmarks/{stage}.py", description=description)
    p.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute on 2 cores)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=str(REPO / "results" / "bench" / f"{stage}.json"), help="JSON output path")
    return p


def have(module: str) -> bool:
    """True if ``module`` can be imported (peer libraries are optional bench extras)."""
    return importlib.util.find_spec(module) is not None


def best_time_s(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> float:
    """Best (minimum) wall time of ``repeat`` calls after ``warmup`` calls: the least noisy estimate."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def row(metric: str, unit: str, ours: float, peers: dict[str, float | None], higher_is_better: bool = True,
        **extra: Any) -> dict[str, Any]:
    """One result row; ``ratio_vs_best_peer`` > 1 means ours is better whatever the unit's direction."""
    present = {k: v for k, v in peers.items() if v is not None}
    if not present:
        ratio = None
    elif higher_is_better:
        ratio = ours / max(present.values())
    else:
        ratio = min(present.values()) / ours
    return {"metric": metric, "unit": unit, "ours": ours, "peers": peers, "ratio_vs_best_peer": ratio, **extra}


def _fmt(v: Any) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(rows: list[dict[str, Any]]) -> str:
    peers = sorted({p for r in rows for p in r["peers"]})
    head = ["metric", "unit", "ours", *peers, "ratio_vs_best_peer"]
    body = [[r["metric"], r["unit"], _fmt(r["ours"]), *(_fmt(r["peers"].get(p, "-")) for p in peers),
             _fmt(r["ratio_vs_best_peer"])] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    lines = [" | ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in [head, *body]]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], out: str | Path) -> None:
    """Print the table and write the rows as JSON (atomically)."""
    print(table(rows))
    missing = sorted({p for r in rows for p, v in r["peers"].items() if v is None})
    if missing:
        print(f"missing peers (pip install -e .[bench]): {', '.join(missing)}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(rows, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


# The peer both the training and the privacy benchmarks compare against.
import torch  # noqa: E402
from torch import nn  # noqa: E402

DT_S, TAU_SYN_S, TAU_MEM_S = 1e-3, 5e-3, 20e-3


class NorseLoop(nn.Module):
    """The plain norse way: cells as modules, one Linear call per time step."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        import norse.torch as norse

        self.fc = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, n_out)
        p = norse.LIFParameters(tau_syn_inv=torch.as_tensor(1 / TAU_SYN_S), tau_mem_inv=torch.as_tensor(1 / TAU_MEM_S))
        self.lif = norse.LIFCell(p, dt=DT_S)
        self.li = norse.LICell(norse.LIParameters(tau_syn_inv=torch.as_tensor(1 / TAU_SYN_S),
                                                  tau_mem_inv=torch.as_tensor(1 / TAU_MEM_S)), dt=DT_S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_lif = s_li = None
        volts = []
        for t in range(x.shape[1]):
            z, s_lif = self.lif(self.fc(x[:, t]), s_lif)
            v, s_li = self.li(self.out(z), s_li)
            volts.append(v)
        return torch.stack(volts, dim=1).mean(dim=1)
