"""Reference models for the attacks: K members as one stacked ensemble vs K sequential trainings.

LiRA and RMIA need many reference models that differ only in their training half, initialisation
and data order. Same data (Bernoulli input spikes, demo-EEG-like shape), same network (the
project's SNN: Linear(C, H) -> LIF -> Linear(H, O) -> leaky-integrator readout), same recipe
(Adam, shuffled batches, a fixed number of epochs), same seeds:

Two comparisons, both on the same 2 cores:

- jobs (what the workflow runs): ours = ceil(K / 16) shard processes, one after the other, each
  training 16 members as one stacked ensemble (``biospike.train.fit_many``, 2 torch threads);
  the peer = the former design, one process per reference model (``biospike.train.fit``, 1 torch
  thread, two processes at a time, as Snakemake ran them on 2 cores). Both include each
  process's start-up (imports, reading the data), which is what a Snakemake job costs.
- in-process (the arithmetic alone): ``fit_many`` on all K members against ``fit`` called K times
  in one process, 1 torch thread each; no start-up on either side.

Metric: wall time for K = 32 members (lower is better; ``ratio_vs_best_peer`` = peer / ours,
target >= 4 for the jobs), and the largest weight difference between the two (the ensemble must
train the same models: 0 expected). SNN and ANN rows.

Writes results/bench/attack.json (docs/design.md, "The benchmarks contract").
Run: ``python benchmarks/attack.py [--quick]`` on an otherwise idle machine (--threads is ignored:
the jobs use the threads the workflow gives them, the in-process rows 1).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DT_S, TAU_MEM_S, TAU_SYN_S, parser, report, row  # noqa: E402


def _data(n: int, steps: int, channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    rate = np.where(y[:, None, None] == 0, np.linspace(0.02, 0.2, channels), np.linspace(0.2, 0.02, channels))
    return (rng.random((n, steps, channels)) < rate).astype(np.uint8), y


def _members(x: np.ndarray, y: np.ndarray, k: int, seed: int = 1) -> list[np.ndarray]:
    """Each member keeps a random half of the candidates (as the attacks' keep masks do)."""
    rng = np.random.default_rng(seed)
    return [np.sort(rng.permutation(len(x))[: len(x) // 2]) for _ in range(k)]


def _setup(kind: str, x: np.ndarray, y: np.ndarray, k: int, hidden: int, epochs: int, batch: int):
    from biospike.models import make_arch

    cfg = {"epochs": epochs, "patience": epochs + 1, "batch_size": batch, "hidden": [hidden], "lr": 0.005,
           "tau_mem_s": TAU_MEM_S, "tau_syn_s": TAU_SYN_S, "readout_tau_mem_s": TAU_MEM_S,
           "readout_tau_syn_s": TAU_SYN_S}
    idx = _members(x, y, k)
    archs = [make_arch(kind, x.shape[2], 2, DT_S, cfg, x[i]) for i in idx]
    empty = x[:0]
    return cfg, idx, archs, empty


def run(kind: str, x: np.ndarray, y: np.ndarray, k: int, hidden: int, epochs: int, batch: int) -> dict:
    from biospike.train import fit, fit_many

    cfg, idx, archs, empty = _setup(kind, x, y, k, hidden, epochs, batch)
    seeds = list(range(100, 100 + k))
    start = time.perf_counter()
    together = fit_many(archs, [x[i] for i in idx], [y[i] for i in idx], [empty] * k, [y[:0]] * k, cfg, seeds,
                        progress=False)
    ensemble_s = time.perf_counter() - start
    start = time.perf_counter()
    alone = [fit(archs[j], x[idx[j]], y[idx[j]], empty, y[:0], cfg, seeds[j], progress=False) for j in range(k)]
    sequential_s = time.perf_counter() - start
    diff = max(float((a.model.state_dict()[n] - b.model.state_dict()[n]).abs().max())
               for a, b in zip(together, alone, strict=True) for n in a.model.state_dict())
    return {"ensemble_s": ensemble_s, "sequential_s": sequential_s, "max_weight_diff": diff}


_JOB = """
import sys, numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from biospike.train import fit, fit_many
d = np.load(sys.argv[1], allow_pickle=True).item()
members = [int(m) for m in sys.argv[3].split(",")]
x, y, empty = d["x"], d["y"], d["x"][:0]
if len(members) == 1:
    j = members[0]
    fit(d["archs"][j], x[d["idx"][j]], y[d["idx"][j]], empty, y[:0], d["cfg"], 100 + j, progress=False)
else:
    fit_many([d["archs"][j] for j in members], [x[d["idx"][j]] for j in members], [y[d["idx"][j]] for j in members],
             [empty] * len(members), [y[:0]] * len(members), d["cfg"], [100 + j for j in members], progress=False)
"""


def jobs(kind: str, x: np.ndarray, y: np.ndarray, k: int, hidden: int, epochs: int, batch: int,
         shard_size: int = 16) -> dict:
    """Wall time of the workflow's jobs: K one-model processes two at a time vs shard processes."""
    import subprocess
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    cfg, idx, archs, _ = _setup(kind, x, y, k, hidden, epochs, batch)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.npy"
        np.save(data, {"x": x, "y": y, "idx": idx, "archs": archs, "cfg": cfg}, allow_pickle=True)

        def job(threads: int, members: list[int]) -> None:
            subprocess.run([sys.executable, "-c", _JOB, str(data), str(threads), ",".join(map(str, members))],
                           check=True)

        start = time.perf_counter()
        for lo in range(0, k, shard_size):
            job(2, list(range(lo, min(k, lo + shard_size))))
        shards_s = time.perf_counter() - start
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda j: job(1, [j]), range(k)))
        one_each_s = time.perf_counter() - start
    return {"shards_s": shards_s, "one_each_s": one_each_s}


def main() -> None:
    args = parser("attack", __doc__.splitlines()[0]).parse_args()
    k = 32
    n, steps, channels, hidden, batch = (240, 100, 16, 64, 64) if args.quick else (600, 100, 16, 64, 64)
    epochs = 2 if args.quick else 4
    x, y = _data(n, steps, channels)
    shape = {"K": k, "windows_per_member": n // 2, "T": steps, "C": channels, "H": hidden, "batch": batch,
             "epochs": epochs}
    rows = []
    for kind in ("snn", "ann"):
        j = jobs(kind, x, y, k, hidden, epochs, batch)
        print(f"{kind} jobs: 2 shards of 16 {j['shards_s']:.1f} s, 32 one-model jobs {j['one_each_s']:.1f} s, "
              f"x{j['one_each_s'] / j['shards_s']:.2f}")
        rows.append(row(f"{k} reference models as jobs ({kind.upper()})", "s", j["shards_s"],
                        {"one job per model": j["one_each_s"]}, higher_is_better=False, **shape,
                        ours_jobs="2 shard processes of 16 members, 2 threads, one after the other",
                        peer_jobs="32 processes of 1 member, 1 thread, 2 at a time"))
    torch.set_num_threads(1)
    for kind in ("snn", "ann"):
        r = run(kind, x, y, k, hidden, epochs, batch)
        print(f"{kind}: ensemble {r['ensemble_s']:.2f} s, sequential {r['sequential_s']:.2f} s, "
              f"x{r['sequential_s'] / r['ensemble_s']:.2f}, max weight difference {r['max_weight_diff']:.2e}")
        rows.append(row(f"{k} reference models in-process ({kind.upper()})", "s", r["ensemble_s"],
                        {"sequential fit x K": r["sequential_s"]}, higher_is_better=False,
                        max_weight_diff=r["max_weight_diff"], **{**shape, "threads": 1}))
    report(rows, args.out)


if __name__ == "__main__":
    main()
