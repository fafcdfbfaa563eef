"""Spiking classifier built from ``torch.nn.Linear`` layers and parameter-free norse LIF/LI dynamics.

Layout is batch-first, time second: ``x`` is (B, T, C). Each feed-forward Linear runs over all
time steps in one call, (B, T, C) -> (B, T, H); only the neuron recurrence steps over T. This is
cheaper, and it is what makes Opacus' per-sample gradients right: the Linear sees one sample as
one row of the batch axis, so clipping is per sample, never per (sample, step) (DESIGN.md traps).
Optional recurrence is an explicit ``nn.Linear`` on the previous step's spikes (norse's recurrent
cells own weights Opacus cannot see).

The neuron update is norse's ``lif_feed_forward_step`` / ``li_feed_forward_step`` semantics:
current jump first, then Euler steps of v and i with the jumped current, spike on v > v_th, reset
to v_reset. The NIR export and the edge simulator reproduce exactly this order.

Two implementations of the same dynamics (``arch.impl``): ``"norse"`` calls norse's step functions
over T; ``"fused"`` (default) runs each layer's whole time loop as one autograd function
(:mod:`biospike.models.fused`) whose forward and gradients are bitwise equal to norse's and several
times faster to train. The fused path covers the feed-forward LIF with the SuperSpike surrogate;
a recurrent layer or another surrogate steps through norse (the recurrent Linear must run per step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from norse.torch.functional.leaky_integrator import LIParameters, LIState, li_feed_forward_step
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step
from torch import nn

from biospike.models.fused import LIFScan, LIScan, lif_constants


@dataclasses.dataclass
class SNNArch:
    """Everything needed to rebuild the network; stored in every checkpoint."""

    n_in: int
    n_hidden: list[int]
    n_out: int
    dt_s: float = 1e-3
    tau_mem_s: float = 20e-3
    tau_syn_s: float = 5e-3
    v_th: float = 1.0
    v_reset: float = 0.0
    v_leak: float = 0.0
    readout_tau_mem_s: float = 20e-3
    readout_tau_syn_s: float = 5e-3
    recurrent: bool = False
    surrogate: str = "super"
    surrogate_alpha: float = 100.0
    input_scale: float = 1.0  # multiplies input spike counts before the first Linear
    output_scale: float = 1.0  # multiplies the readout's input current (fold into out.weight/bias on export)
    bias: bool = True
    impl: str = "fused"  # "fused" (biospike.models.fused) or "norse" (norse step functions)
    kind: str = "snn"

    @classmethod
    def from_dict(cls, d: dict) -> SNNArch:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown SNN architecture keys: {sorted(unknown)}")
        arch = cls(**{**d, "n_hidden": list(d["n_hidden"])})
        if arch.impl not in ("fused", "norse"):
            raise ValueError(f"unknown SNN impl {arch.impl!r} (expected 'fused' or 'norse')")
        return arch


class SNN(nn.Module):
    """Linear -> LIF (xL, optional recurrent Linear) -> Linear -> LI readout; logits = mean_t v_out."""

    def __init__(self, arch: SNNArch) -> None:
        super().__init__()
        self.arch = arch
        sizes = [arch.n_in, *arch.n_hidden]
        self.fc = nn.ModuleList(nn.Linear(a, b, bias=arch.bias) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.rec = nn.ModuleList(nn.Linear(h, h, bias=False) for h in arch.n_hidden) if arch.recurrent else None
        self.out = nn.Linear(sizes[-1], arch.n_out, bias=arch.bias)
        if arch.bias:
            # A random bias alone drives a LIF to v = b tau_syn / dt, which makes some neurons fire
            # tonically whatever the input; start the hidden layers unbiased so that the input
            # scale (train.make_arch) sets the firing at initialisation.
            for fc in self.fc:
                nn.init.zeros_(fc.bias)
        self.lif_p = LIFParameters(
            tau_syn_inv=torch.as_tensor(1.0 / arch.tau_syn_s),
            tau_mem_inv=torch.as_tensor(1.0 / arch.tau_mem_s),
            v_leak=torch.as_tensor(arch.v_leak),
            v_th=torch.as_tensor(arch.v_th),
            v_reset=torch.as_tensor(arch.v_reset),
            method=arch.surrogate,
            alpha=torch.as_tensor(arch.surrogate_alpha),
        )
        self.li_p = LIParameters(
            tau_syn_inv=torch.as_tensor(1.0 / arch.readout_tau_syn_s),
            tau_mem_inv=torch.as_tensor(1.0 / arch.readout_tau_mem_s),
            v_leak=torch.as_tensor(0.0),
        )

    @property
    def fused(self) -> bool:
        """True if the hidden layers run the fused scan (else norse's step functions)."""
        return self.arch.impl == "fused" and self.rec is None and self.arch.surrogate == "super"

    def lif_layer(self, current: torch.Tensor, layer: int) -> torch.Tensor:
        """LIF dynamics over time for one layer: input current (B, T, H) -> spikes (B, T, H)."""
        if self.fused:
            p = self.lif_p
            a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, self.arch.dt_s)
            like = {"dtype": current.dtype, "device": current.device}
            return LIFScan.apply(current, a_mem.to(**like), a_syn_neg.to(**like), p.v_leak.to(**like),
                                 p.v_th.to(**like), p.v_reset.to(**like))
        batch, steps, width = current.shape
        zeros = current.new_zeros(batch, width)
        state = LIFFeedForwardState(v=zeros + self.arch.v_leak, i=zeros)
        spikes = []
        z = zeros
        for t in range(steps):
            inp = current[:, t]
            if self.rec is not None:
                inp = inp + self.rec[layer](z)
            z, state = lif_feed_forward_step(inp, state, self.lif_p, self.arch.dt_s)
            spikes.append(z)
        return torch.stack(spikes, dim=1)

    def readout(self, current: torch.Tensor) -> torch.Tensor:
        """LI readout over time: current (B, T, O) -> membrane voltage (B, T, O)."""
        if self.arch.impl == "fused":
            p = self.li_p
            a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, self.arch.dt_s)
            like = {"dtype": current.dtype, "device": current.device}
            return LIScan.apply(current, a_mem.to(**like), a_syn_neg.to(**like), p.v_leak.to(**like))
        batch, steps, width = current.shape
        zeros = current.new_zeros(batch, width)
        state = LIState(v=zeros, i=zeros)
        volts = []
        for t in range(steps):
            v, state = li_feed_forward_step(current[:, t], state, self.li_p, self.arch.dt_s)
            volts.append(v)
        return torch.stack(volts, dim=1)

    def forward_trace(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Readout voltages (B, T, O) and every hidden layer's spikes [(B, T, H), ...]."""
        h = x * self.arch.input_scale
        hidden_spikes = []
        for layer, fc in enumerate(self.fc):
            h = self.lif_layer(fc(h), layer)
            hidden_spikes.append(h)
        current = self.out(h)
        if self.arch.output_scale != 1.0:
            current = current * self.arch.output_scale
        return self.readout(current), hidden_spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        volts, _ = self.forward_trace(x)
        return volts.mean(dim=1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def hidden_sizes(model: SNN) -> Sequence[int]:
    return model.arch.n_hidden
