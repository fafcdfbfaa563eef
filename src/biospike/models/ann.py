"""Non-spiking baseline of the same size as the SNN.

Same Linear layers, same time steps and input; the spiking LIF unit is replaced by a leaky
integrator followed by a ReLU (a rate-coded unit), the readout is the same leaky integrator.
Weights and per-step multiply-accumulates equal the SNN's, so the comparison isolates spiking.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ANN", "ANNArch", "LEAKY_BLOCK", "auto_input_scale"]


@dataclasses.dataclass
class ANNArch:
    """Everything needed to rebuild the non-spiking baseline; stored in every checkpoint."""

    n_in: int
    n_hidden: list[int]
    n_out: int
    dt_s: float = 1e-3
    tau_mem_s: float = 20e-3
    readout_tau_mem_s: float = 20e-3
    input_scale: float = 1.0
    bias: bool = True
    kind: str = "ann"

    @classmethod
    def from_dict(cls, d: dict) -> ANNArch:
        """The architecture of a dict (a checkpoint's ``arch``); keys the ANN has no use for
        (the SNN's neuron settings) are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields} | {"n_hidden": list(d["n_hidden"])})


# Time steps per block of the blocked filter: the in-block matmul costs ~T x LEAKY_BLOCK per unit
# instead of T^2, and the Python loop runs T / LEAKY_BLOCK times. Measured (forward + backward,
# B 16, H 64, one thread) against one (T, T) kernel: T 100 as fast, T 450 2.1x, T 1350 33x faster.
LEAKY_BLOCK = 128


def _leaky(current: torch.Tensor, decay: float, block: int = LEAKY_BLOCK) -> torch.Tensor:
    """h_t = decay * h_{t-1} + (1 - decay) * current_t over the time axis of (B, T, H), h_0 = 0.

    The filter is linear and time-invariant: within a block of ``block`` steps it is one matmul
    with the block's lower-triangular impulse response, and each block starts from the previous
    block's last state, h_{s+k} = sum_j K[k, j] current_{s+j} + decay^(k+1) h_{s-1}. That is
    O(T x block) instead of the O(T^2) of one (T, T) kernel (20x slower than the SNN at T = 1350)
    and T / block Python steps instead of T.
    """
    steps = current.shape[1]
    size = min(block, steps)
    lag = torch.arange(size, device=current.device)
    lag = lag[:, None] - lag[None, :]
    kernel = torch.where(lag >= 0, (1.0 - decay) * decay ** lag.clamp(min=0).double(), 0.0).to(current.dtype)
    if steps <= size:
        return torch.matmul(kernel, current)
    carry_gain = (decay ** torch.arange(1, size + 1, device=current.device).double()).to(current.dtype)[:, None]
    out, last = [], None
    for start in range(0, steps, size):
        chunk = current[:, start:start + size]
        n = chunk.shape[1]
        h = torch.matmul(kernel[:n, :n], chunk)
        if last is not None:
            h = h + carry_gain[:n] * last[:, None, :]
        out.append(h)
        last = h[:, -1]
    return torch.cat(out, dim=1)


class ANN(nn.Module):
    """Linear -> leaky integrator + ReLU (xL) -> Linear -> leaky-integrator readout; logits = mean_t output."""

    def __init__(self, arch: ANNArch) -> None:
        super().__init__()
        self.arch = arch
        sizes = [arch.n_in, *arch.n_hidden]
        self.fc = nn.ModuleList(nn.Linear(a, b, bias=arch.bias) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.out = nn.Linear(sizes[-1], arch.n_out, bias=arch.bias)
        self.decay = float(torch.exp(torch.tensor(-arch.dt_s / arch.tau_mem_s)))
        self.readout_decay = float(torch.exp(torch.tensor(-arch.dt_s / arch.readout_tau_mem_s)))

    def hidden_layer(self, current: torch.Tensor, layer: int) -> torch.Tensor:  # noqa: ARG002
        """Leaky integration then ReLU over time: current (B, T, H) -> activity (B, T, H)."""
        return torch.relu(_leaky(current, self.decay))

    def readout(self, current: torch.Tensor) -> torch.Tensor:
        """Leaky-integrator readout: current (B, T, O) -> output (B, T, O)."""
        return _leaky(current, self.readout_decay)

    def forward_trace(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Readout (B, T, O) and every hidden layer's activity [(B, T, H), ...]."""
        h = x * self.arch.input_scale
        acts = []
        for layer, fc in enumerate(self.fc):
            h = self.hidden_layer(fc(h), layer)
            acts.append(h)
        return self.readout(self.out(h)), acts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, O): the readout averaged over the T steps of input ``x`` (B, T, C)."""
        return self.forward_trace(x)[0].mean(dim=1)


def auto_input_scale(x: np.ndarray, arch: ANNArch | Mapping[str, Any], max_windows: int = 256) -> float:
    """Input gain that gives the first layer's leaky-integrated drive unit RMS before the ReLU
    (the ANN counterpart of :func:`biospike.models.snn.auto_input_scale`). ``arch`` needs ``dt_s``;
    a missing ``tau_mem_s`` takes the config schema's ``train`` default."""
    from biospike.models.snn import _getter, _pick, _solve_scale

    get = _getter(arch, ANNArch)
    tau_mem_s = get("tau_mem_s")
    xs = _pick(x, max_windows)
    with torch.no_grad():
        power = float(_leaky(xs, math.exp(-float(get("dt_s")) / float(tau_mem_s))).pow(2).mean(dim=(0, 1)).sum())
    return _solve_scale(power, 1.0, xs.shape[2])
