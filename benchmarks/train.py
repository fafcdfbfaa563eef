"""Training throughput: biospike's SNN against snntorch and a plain norse step-by-step loop.

Same network in all three: Linear(C, H) -> LIF (tau_syn, tau_mem, v_th 1) -> Linear(H, O) ->
leaky-integrator readout, logits = mean over T of the readout voltage; same batch, T and data
(Bernoulli input spikes), cross-entropy, Adam. Measured: training samples/s (forward, backward,
optimizer step) and inference samples/s, best of several repetitions on one thread.

- ours: ``biospike.models.SNN`` (Linear over all T at once + fused LIF/LI scans), default impl;
  ``ours (impl=norse)`` is the same model stepping through norse's functions, for reference.
- norse: ``norse.torch.LIFCell`` / ``LICell`` modules stepping over T with the Linear inside the loop.
- adaptive LIF: ``ours_alif`` (the same model with ``neuron: alif``, fused ALIF scan) against
  ``norse_lsnn`` (``norse.torch.LSNNCell`` stepping over T, the same dynamics), and its cost
  against our LIF (``alif_vs_lif``, issue target: the adaptive neuron trains within 1.5x of the LIF).
- trainable dynamics: ``ours_dyn`` (the model with ``trainable: [tau_mem, tau_syn, v_th]``, per-neuron
  constants learned inside the fused scan) against ``norse_dyn`` (norse's ``lif_feed_forward_step``
  stepping over T with per-neuron ``tau_mem_inv``, ``tau_syn_inv`` and ``v_th`` as ``nn.Parameter``:
  norse's way of learning them), and its cost against our LIF (``dyn_vs_lif``).
- snntorch: ``snntorch.Synaptic`` (2nd-order LIF: synaptic current + membrane) stepping over T with the
  Linear inside the loop; readout ``Synaptic`` without reset, its membrane averaged over T.

Writes results/bench/train.json (docs/design.md, "The benchmarks contract").
Run: ``/tmp/venv/bin/python benchmarks/train.py [--quick]``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DT_S, TAU_MEM_S, TAU_SYN_S, NorseLoop, best_time_s, have, parser, report, row  # noqa: E402


class SnnTorchLoop(nn.Module):
    """snntorch's documented pattern: Linear + neuron per step, membrane readout."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        import snntorch

        alpha, beta = math.exp(-DT_S / TAU_SYN_S), math.exp(-DT_S / TAU_MEM_S)
        self.fc = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, n_out)
        self.lif = snntorch.Synaptic(alpha=alpha, beta=beta, threshold=1.0, reset_mechanism="zero")
        self.li = snntorch.Synaptic(alpha=alpha, beta=beta, reset_mechanism="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        syn1, mem1 = self.lif.init_synaptic()
        syn2, mem2 = self.li.init_synaptic()
        volts = []
        for t in range(x.shape[1]):
            z, syn1, mem1 = self.lif(self.fc(x[:, t]), syn1, mem1)
            _, syn2, mem2 = self.li(self.out(z), syn2, mem2)
            volts.append(mem2)
        return torch.stack(volts, dim=1).mean(dim=1)


TAU_ADAPT_S, ADAPT_BETA = 0.2, 0.1


def ours(n_in: int, n_hidden: int, n_out: int, impl: str, neuron: str = "lif", trainable: tuple = ()) -> nn.Module:
    from biospike.models import build_model

    return build_model({"kind": "snn", "n_in": n_in, "n_hidden": [n_hidden], "n_out": n_out, "dt_s": DT_S,
                        "tau_mem_s": TAU_MEM_S, "tau_syn_s": TAU_SYN_S, "readout_tau_mem_s": TAU_MEM_S,
                        "readout_tau_syn_s": TAU_SYN_S, "impl": impl, "neuron": neuron,
                        "tau_adapt_s": TAU_ADAPT_S, "adapt_beta": ADAPT_BETA, "trainable": list(trainable)})


class NorseDynLoop(nn.Module):
    """norse with learned per-neuron LIF constants: ``lif_feed_forward_step`` per step with
    ``tau_mem_inv``, ``tau_syn_inv`` and ``v_th`` as parameters, Linear inside the loop."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        import norse.torch as norse

        self.fc = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, n_out)
        self.tau_mem_inv = nn.Parameter(torch.full((n_hidden,), 1 / TAU_MEM_S))
        self.tau_syn_inv = nn.Parameter(torch.full((n_hidden,), 1 / TAU_SYN_S))
        self.v_th = nn.Parameter(torch.ones(n_hidden))
        self.li = norse.LICell(norse.LIParameters(tau_syn_inv=torch.as_tensor(1 / TAU_SYN_S),
                                                  tau_mem_inv=torch.as_tensor(1 / TAU_MEM_S)), dt=DT_S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from norse.torch.functional.lif import (
            LIFFeedForwardState,
            LIFParameters,
            lif_feed_forward_step,
        )

        p = LIFParameters(tau_syn_inv=self.tau_syn_inv, tau_mem_inv=self.tau_mem_inv, v_th=self.v_th)
        zeros = x.new_zeros(x.shape[0], self.fc.out_features)
        s = LIFFeedForwardState(v=zeros, i=zeros)
        s_li = None
        volts = []
        for t in range(x.shape[1]):
            z, s = lif_feed_forward_step(self.fc(x[:, t]), s, p, DT_S)
            v, s_li = self.li(self.out(z), s_li)
            volts.append(v)
        return torch.stack(volts, dim=1).mean(dim=1)


class NorseLSNNLoop(nn.Module):
    """norse's adaptive LIF the plain way: ``LSNNCell`` per step, Linear inside the loop."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        import norse.torch as norse

        self.fc = nn.Linear(n_in, n_hidden)
        self.out = nn.Linear(n_hidden, n_out)
        p = norse.LSNNParameters(tau_syn_inv=torch.as_tensor(1 / TAU_SYN_S), tau_mem_inv=torch.as_tensor(1 / TAU_MEM_S),
                                 tau_adapt_inv=torch.as_tensor(1 / TAU_ADAPT_S), beta=torch.as_tensor(ADAPT_BETA))
        self.lsnn = norse.LSNNCell(p, dt=DT_S)
        self.li = norse.LICell(norse.LIParameters(tau_syn_inv=torch.as_tensor(1 / TAU_SYN_S),
                                                  tau_mem_inv=torch.as_tensor(1 / TAU_MEM_S)), dt=DT_S)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s_lsnn = s_li = None
        volts = []
        for t in range(x.shape[1]):
            z, s_lsnn = self.lsnn(self.fc(x[:, t]), s_lsnn)
            v, s_li = self.li(self.out(z), s_li)
            volts.append(v)
        return torch.stack(volts, dim=1).mean(dim=1)


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, repeat: int) -> tuple[float, float]:
    """(training samples/s, inference samples/s)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def train_steps() -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

    def infer_steps() -> None:
        with torch.no_grad():
            for _ in range(steps):
                model(x)

    n = steps * x.shape[0]
    return n / best_time_s(train_steps, repeat), n / best_time_s(infer_steps, repeat)


def main(argv: list[str] | None = None) -> int:
    p = parser("train", __doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps-t", type=int, default=100, help="time steps T")
    p.add_argument("--inputs", type=int, default=32)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--classes", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    steps, repeat = (3, 3) if args.quick else (10, 5)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, args.steps_t, args.inputs, generator=gen) < 0.1).float() * 3.0
    y = torch.randint(0, args.classes, (args.batch,), generator=gen)
    sizes = (args.inputs, args.hidden, args.classes)
    print(f"batch {args.batch}, T {args.steps_t}, {args.inputs} -> {args.hidden} -> {args.classes}, "
          f"{steps} optimizer steps x best of {repeat}, {args.threads} thread(s), torch {torch.__version__}")

    results: dict[str, tuple[float, float] | None] = {}
    builders = {
        "ours": lambda: ours(*sizes, impl="fused"),
        "ours_norse_impl": lambda: ours(*sizes, impl="norse"),
        "norse": (lambda: NorseLoop(*sizes)) if have("norse") else None,
        "snntorch": (lambda: SnnTorchLoop(*sizes)) if have("snntorch") else None,
        "ours_alif": lambda: ours(*sizes, impl="fused", neuron="alif"),
        "norse_lsnn": (lambda: NorseLSNNLoop(*sizes)) if have("norse") else None,
        "ours_dyn": lambda: ours(*sizes, impl="fused", trainable=("tau_mem", "tau_syn", "v_th")),
        "norse_dyn": (lambda: NorseDynLoop(*sizes)) if have("norse") else None,
    }
    for name, build in builders.items():
        if build is None:
            results[name] = None
            print(f"{name}: not installed")
            continue
        torch.manual_seed(0)
        results[name] = measure(build(), x, y, steps, repeat)
        print(f"{name}: train {results[name][0]:.0f} samples/s, inference {results[name][1]:.0f} samples/s")

    peers = ("norse", "snntorch")
    rows = [
        row("train_throughput", "samples/s", results["ours"][0],
            {k: (results[k][0] if results[k] else None) for k in peers},
            ours_norse_impl=results["ours_norse_impl"][0],
            setup={"batch": args.batch, "T": args.steps_t, "sizes": list(sizes), "threads": args.threads}),
        row("inference_throughput", "samples/s", results["ours"][1],
            {k: (results[k][1] if results[k] else None) for k in peers},
            ours_norse_impl=results["ours_norse_impl"][1]),
        row("alif_train_throughput", "samples/s", results["ours_alif"][0],
            {"norse": results["norse_lsnn"][0] if results["norse_lsnn"] else None},
            alif_vs_lif=results["ours_alif"][0] / results["ours"][0]),
        row("trainable_dynamics_train_throughput", "samples/s", results["ours_dyn"][0],
            {"norse": results["norse_dyn"][0] if results["norse_dyn"] else None},
            dyn_vs_lif=results["ours_dyn"][0] / results["ours"][0]),
    ]
    report(rows, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
