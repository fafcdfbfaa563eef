"""Spiking classifier built from ``torch.nn.Linear`` layers and parameter-free norse LIF/LI dynamics.

Layout is batch-first, time second: ``x`` is (B, T, C). Each feed-forward Linear runs over all
time steps in one call, (B, T, C) -> (B, T, H); only the neuron recurrence steps over T. This is
cheaper, and it is what makes Opacus' per-sample gradients right: the Linear sees one sample as
one row of the batch axis, so clipping is per sample, never per (sample, step)
(docs/design.md, known traps).
Optional recurrence is an explicit ``nn.Linear`` on the previous step's spikes (norse's recurrent
cells own weights Opacus cannot see).

The neuron update is norse's ``lif_feed_forward_step`` / ``li_feed_forward_step`` semantics:
current jump first, then Euler steps of v and i with the jumped current, spike on v > v_th, reset
to v_reset. The NIR export and the edge simulator reproduce exactly this order.

Two implementations of the same dynamics (``arch.impl``): ``"norse"`` calls norse's step functions
over T; ``"fused"`` (default) runs each layer's whole time loop as one autograd function
(:mod:`biospike.models.fused`) whose forward and gradients are bitwise equal to norse's and several
times faster to train. The fused path covers the feed-forward LIF with every surrogate of
:data:`biospike.models.fused.SURROGATES`; a recurrent layer steps through norse (the recurrent
Linear must run per step), with norse's own surrogates only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from norse.torch.functional.leaky_integrator import LIParameters, LIState, li_feed_forward_step
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step
from norse.torch.functional.lsnn import LSNNFeedForwardState, LSNNParameters, lsnn_feed_forward_step
from torch import nn

from biospike.errors import BiospikeError
from biospike.models.fused import (
    SURROGATES,
    ALIFScan,
    LIFScan,
    LIScan,
    lif_constants,
    surrogate_alpha,
)

__all__ = ["AUTO_DRIVE_RMS", "NEURONS", "NEURON_KEYS", "NORSE_SURROGATES", "TRAINABLE", "NeuronDynamics", "SNN", "SNNArch",
           "TemporalKernel", "auto_input_scale", "delay_embed", "spread_indices"]

# hidden neuron models: "lif" (norse's lif_feed_forward_step) and "alif", the adaptive-threshold
# LIF of norse's LSNN (lsnn_feed_forward_step; Bellec et al. 2018): the threshold b decays to
# v_th with tau_adapt_s and jumps by adapt_beta at every spike
NEURONS = ("lif", "alif")
# per-neuron LIF constants that trainable dynamics learn (SNNArch.trainable)
TRAINABLE = ("tau_mem", "tau_syn", "v_th")


def _softplus_inverse(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))  # log(exp(y) - 1), stable for large y


class NeuronDynamics(nn.Module):
    """Trainable per-neuron constants of one LIF layer, kept in their valid ranges by construction:
    ``tau = dt + softplus(raw)`` (always longer than the step, so the Euler update stays stable)
    and ``v_th = softplus(raw)`` (positive). Untrained, they start at the architecture's values."""

    def __init__(self, width: int, arch: SNNArch) -> None:
        super().__init__()
        self.dt_s = float(arch.dt_s)
        self.names = [n for n in TRAINABLE if n in arch.trainable]
        # tau = dt exactly (valid: the state decays fully each step) starts a hair above it, as the
        # parametrisation keeps tau > dt
        floor = 1e-3 * arch.dt_s
        start = {"tau_mem": max(arch.tau_mem_s - arch.dt_s, floor), "tau_syn": max(arch.tau_syn_s - arch.dt_s, floor),
                 "v_th": arch.v_th}
        for name in self.names:
            value = torch.full((width,), float(start[name]), dtype=torch.float64)
            if not bool((value > 0).all()):
                raise BiospikeError(f"trainable {name}: the starting value must exceed 0")
            self.register_parameter(f"raw_{name}", nn.Parameter(_softplus_inverse(value).float()))

    def value(self, name: str, default: torch.Tensor) -> torch.Tensor:
        """Per-neuron ``tau_mem`` / ``tau_syn`` (s) or ``v_th``; ``default`` when it is not trained."""
        if name not in self.names:
            return default
        raw = nn.functional.softplus(getattr(self, f"raw_{name}"))
        return raw + self.dt_s if name.startswith("tau") else raw

def delay_embed(x: torch.Tensor, kernel_steps: int, dilation: int) -> torch.Tensor:
    """The delay line of a causal temporal kernel: (B, T, C) -> (B, T, K*C) whose block k (columns
    k*C .. (k+1)*C) is ``x`` delayed by ``k * dilation`` steps, zeros before the window starts."""
    if kernel_steps == 1:
        return x
    steps = x.shape[1]
    pad = (kernel_steps - 1) * dilation
    padded = nn.functional.pad(x, (0, 0, pad, 0))
    return torch.cat([padded[:, pad - k * dilation: pad - k * dilation + steps] for k in range(kernel_steps)], dim=2)


class TemporalKernel(nn.Module):
    """A causal 1-D convolution over time of the input spike trains: current_t = b + sum_k W_k
    x_{t - k*dilation}, k < kernel_steps, every input channel to every neuron (a Conv1d with
    ``kernel_steps`` taps, left-padded so no step sees the future).

    It is one ``nn.Linear`` on the delay line of :func:`delay_embed` (weight (H, K*C), block k the
    tap of delay k*dilation), not an ``nn.Conv1d``: Opacus then computes its per-sample gradients
    as for any Linear on (B, T, ...), and the NIR export and the edge simulator (K delayed Linear
    projections) reproduce the very same matrix product. Its default initialisation (uniform in
    +-1/sqrt(K*C)) is a Conv1d's."""

    def __init__(self, n_in: int, n_out: int, kernel_steps: int, dilation: int, bias: bool = True) -> None:
        super().__init__()
        if kernel_steps < 1 or dilation < 1:
            raise BiospikeError(f"temporal kernel of {kernel_steps} steps at dilation {dilation}: both must be >= 1")
        self.n_in, self.kernel_steps, self.dilation = int(n_in), int(kernel_steps), int(dilation)
        self.taps = nn.Linear(n_in * kernel_steps, n_out, bias=bias)

    @property
    def weight(self) -> torch.Tensor:
        """(H, K*C) weights of all taps side by side (tap k in columns k*C .. (k+1)*C)."""
        return self.taps.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """(H,) bias, added once (it belongs to no tap)."""
        return self.taps.bias

    @property
    def out_features(self) -> int:
        """H, the neurons fed (as ``nn.Linear.out_features``)."""
        return self.taps.out_features

    @property
    def delays_steps(self) -> list[int]:
        """The delay of each tap, in steps (tap k's weights: ``tap_weight(k)``)."""
        return [k * self.dilation for k in range(self.kernel_steps)]

    def tap_weight(self, k: int) -> torch.Tensor:
        """(H, C) weights of the tap delayed by ``k * dilation`` steps."""
        return self.taps.weight[:, k * self.n_in:(k + 1) * self.n_in]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input spikes (B, T, C) -> current (B, T, H)."""
        return self.taps(delay_embed(x, self.kernel_steps, self.dilation))


# the surrogates norse's step functions know (the norse path and recurrent layers run only these)
NORSE_SURROGATES = ("super", "triangle", "tanh", "circ", "heavi_erfc")

# input_scale "auto" and the data-driven initialisation aim the membrane drive's RMS across
# neurons and steps at this many thresholds.
AUTO_DRIVE_RMS = 3.0


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
    neuron: str = "lif"  # "lif" or "alif" (NEURONS)
    trainable: list[str] = dataclasses.field(default_factory=list)  # of TRAINABLE: learned per neuron
    trainable_layers: list[int] | None = None  # hidden layers whose constants are learned (None: all)
    tau_adapt_s: float = 0.2  # alif: threshold adaptation time constant
    adapt_beta: float = 0.1  # alif: threshold jump per spike (units of v_th's scale)
    kernel_steps: int = 1  # taps of the temporal kernel on the input (1: a plain Linear; TemporalKernel)
    kernel_dilation: int = 1  # steps between the temporal kernel's taps

    @classmethod
    def from_dict(cls, d: dict) -> SNNArch:
        """The architecture of a dict (a checkpoint's ``arch``); unknown keys or ``impl`` are errors."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown SNN architecture keys: {sorted(unknown)}")
        arch = cls(**{**d, "n_hidden": list(d["n_hidden"]), "trainable": list(d.get("trainable") or []),
                      "trainable_layers": None if d.get("trainable_layers") is None else list(d["trainable_layers"])})
        bad = sorted(set(arch.trainable) - set(TRAINABLE))
        if bad:
            raise ValueError(f"unknown trainable neuron constants {bad} (expected some of {', '.join(TRAINABLE)})")
        if arch.impl not in ("fused", "norse"):
            raise ValueError(f"unknown SNN impl {arch.impl!r} (expected 'fused' or 'norse')")
        if arch.neuron not in NEURONS:
            raise ValueError(f"unknown neuron {arch.neuron!r} (expected one of {', '.join(NEURONS)})")
        if arch.surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {arch.surrogate!r} (expected one of {', '.join(SURROGATES)})")
        return arch


class SNN(nn.Module):
    """Linear (or a temporal kernel, :class:`TemporalKernel`) -> LIF (xL, optional recurrent Linear)
    -> Linear -> LI readout; logits = mean_t v_out."""

    def __init__(self, arch: SNNArch) -> None:
        super().__init__()
        self.arch = arch
        if arch.surrogate not in NORSE_SURROGATES and (arch.impl != "fused" or arch.recurrent):
            raise BiospikeError(
                f"train.surrogate {arch.surrogate!r} runs in the fused kernel only: it needs train.impl 'fused' and "
                f"train.recurrent false (norse's step functions know {', '.join(NORSE_SURROGATES)})")
        if arch.trainable and arch.neuron != "lif":
            raise BiospikeError("train.trainable (learned per-neuron constants) covers LIF neurons; "
                                f"train.neuron is {arch.neuron!r}")
        sizes = [arch.n_in, *arch.n_hidden]
        layers = range(len(arch.n_hidden)) if arch.trainable_layers is None else arch.trainable_layers
        bad_layers = [la for la in layers if not 0 <= la < len(arch.n_hidden)]
        if bad_layers:
            raise BiospikeError(f"train.trainable_layers {bad_layers}: the network has hidden layers "
                                f"0..{len(arch.n_hidden) - 1}")
        # per-neuron constants learned by hidden layer (absent key: that layer keeps the arch's)
        self.dynamics = nn.ModuleDict({str(la): NeuronDynamics(arch.n_hidden[la], arch) for la in layers}
                                      if arch.trainable else {})
        self.fc = nn.ModuleList(nn.Linear(a, b, bias=arch.bias) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        if arch.kernel_steps > 1:  # a temporal-kernel front end (the tconv kind) replaces the first Linear
            self.fc[0] = TemporalKernel(arch.n_in, arch.n_hidden[0], arch.kernel_steps, arch.kernel_dilation, arch.bias)
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
            method=arch.surrogate if arch.surrogate in NORSE_SURROGATES else "super",
            alpha=torch.as_tensor(arch.surrogate_alpha),
        )
        self.lsnn_p = LSNNParameters(
            tau_syn_inv=self.lif_p.tau_syn_inv, tau_mem_inv=self.lif_p.tau_mem_inv,
            tau_adapt_inv=torch.as_tensor(1.0 / arch.tau_adapt_s), v_leak=self.lif_p.v_leak, v_th=self.lif_p.v_th,
            v_reset=self.lif_p.v_reset, beta=torch.as_tensor(arch.adapt_beta), method=self.lif_p.method,
            alpha=self.lif_p.alpha)
        self.li_p = LIParameters(
            tau_syn_inv=torch.as_tensor(1.0 / arch.readout_tau_syn_s),
            tau_mem_inv=torch.as_tensor(1.0 / arch.readout_tau_mem_s),
            v_leak=torch.as_tensor(0.0),
        )

    @property
    def fused(self) -> bool:
        """True if the hidden layers run the fused scan (else norse's step functions)."""
        return self.arch.impl == "fused" and self.rec is None

    def layer_params(self, layer: int) -> LIFParameters:
        """The LIF parameters of hidden layer ``layer``: per neuron (H,) where they are learned."""
        dyn = self.dynamics[str(layer)] if str(layer) in self.dynamics else None
        if dyn is None:
            return self.lif_p
        p = self.lif_p
        return p._replace(tau_mem_inv=1.0 / dyn.value("tau_mem", 1.0 / p.tau_mem_inv),
                          tau_syn_inv=1.0 / dyn.value("tau_syn", 1.0 / p.tau_syn_inv),
                          v_th=dyn.value("v_th", p.v_th))

    def neuron_constants(self) -> list[dict[str, np.ndarray]]:
        """Per hidden layer, the per-neuron ``tau_mem_s``, ``tau_syn_s`` and ``v_th`` in use (what
        the NIR export writes)."""
        out = []
        a = self.arch
        with torch.no_grad():
            for layer, width in enumerate(a.n_hidden):
                c = {k: np.full(width, float(v)) for k, v in (("tau_mem_s", a.tau_mem_s), ("tau_syn_s", a.tau_syn_s),
                                                               ("v_th", a.v_th))}
                dyn = self.dynamics[str(layer)] if str(layer) in self.dynamics else None
                for name in dyn.names if dyn is not None else ():
                    key = f"{name}_s" if name.startswith("tau") else name
                    c[key] = dyn.value(name, torch.zeros(())).double().cpu().numpy()
                out.append(c)
        return out

    def lif_layer(self, current: torch.Tensor, layer: int, v_th_scale: torch.Tensor | None = None) -> torch.Tensor:
        """LIF dynamics over time for one layer: input current (B, T, H) -> spikes (B, T, H).
        ``v_th_scale`` (B, H) multiplies each window's neuron thresholds (a query-time defense,
        :mod:`biospike.defenses`; inference only)."""
        p = self.layer_params(layer)
        if v_th_scale is not None:
            p = p._replace(v_th=p.v_th * v_th_scale.to(current.dtype))
        if self.fused:
            a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, self.arch.dt_s)
            like = {"dtype": current.dtype, "device": current.device}
            return LIFScan.apply(current, a_mem.to(**like), a_syn_neg.to(**like), p.v_leak.to(**like),
                                 p.v_th.to(**like), p.v_reset.to(**like), self.arch.surrogate,
                                 surrogate_alpha(self.arch.surrogate, self.arch.surrogate_alpha))
        zeros = current.new_zeros(current.shape[0], current.shape[2])
        return self._norse_loop(current, layer, lif_feed_forward_step, p,
                                LIFFeedForwardState(v=zeros + self.arch.v_leak, i=zeros))

    def _norse_loop(self, current: torch.Tensor, layer: int, step: Any, params: Any, state: Any) -> torch.Tensor:
        """Step a norse feed-forward ``step`` function over T from ``state``, adding the recurrent
        Linear's input from the previous step's spikes: (B, T, H) current -> (B, T, H) spikes."""
        z = current.new_zeros(current.shape[0], current.shape[2])
        spikes = []
        for t in range(current.shape[1]):
            inp = current[:, t]
            if self.rec is not None:
                inp = inp + self.rec[layer](z)
            z, state = step(inp, state, params, self.arch.dt_s)
            spikes.append(z)
        return torch.stack(spikes, dim=1)

    def alif_layer(self, current: torch.Tensor, layer: int) -> torch.Tensor:
        """Adaptive LIF dynamics over time for one layer: input current (B, T, H) -> spikes (B, T, H)."""
        p = self.lsnn_p
        if self.fused:
            a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, self.arch.dt_s)
            like = {"dtype": current.dtype, "device": current.device}
            return ALIFScan.apply(current, a_mem.to(**like), a_syn_neg.to(**like),
                                  (self.arch.dt_s * p.tau_adapt_inv).to(**like), p.v_leak.to(**like),
                                  p.v_th.to(**like), p.v_reset.to(**like), p.beta.to(**like), self.arch.surrogate,
                                  surrogate_alpha(self.arch.surrogate, self.arch.surrogate_alpha))
        zeros = current.new_zeros(current.shape[0], current.shape[2])
        return self._norse_loop(current, layer, lsnn_feed_forward_step, p,
                                LSNNFeedForwardState(v=zeros + self.arch.v_leak, i=zeros, b=zeros + self.arch.v_th))

    def hidden_layer(self, current: torch.Tensor, layer: int, v_th_scale: torch.Tensor | None = None) -> torch.Tensor:
        """The neuron dynamics of hidden layer ``layer`` (row-wise; what a stacked ensemble calls);
        ``v_th_scale`` as in :meth:`lif_layer` (LIF neurons only)."""
        if self.arch.neuron == "alif":
            if v_th_scale is not None:
                raise BiospikeError("threshold noise covers LIF neurons; the adaptive-threshold (alif) neuron moves its own")
            return self.alif_layer(current, layer)
        return self.lif_layer(current, layer, v_th_scale)

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

    def forward_trace(self, x: torch.Tensor, v_th_scales: Sequence[torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Readout voltages (B, T, O) and every hidden layer's spikes [(B, T, H), ...];
        ``v_th_scales``: one (B, H) threshold multiplier per hidden layer (:meth:`lif_layer`)."""
        h = x * self.arch.input_scale
        hidden_spikes = []
        for layer, fc in enumerate(self.fc):
            h = self.hidden_layer(fc(h), layer, None if v_th_scales is None else v_th_scales[layer])
            hidden_spikes.append(h)
        current = self.out(h)
        if self.arch.output_scale != 1.0:
            current = current * self.arch.output_scale
        return self.readout(current), hidden_spikes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, O): the readout voltage averaged over the T steps of input spikes ``x`` (B, T, C)."""
        volts, _ = self.forward_trace(x)
        return volts.mean(dim=1)

    def _filtered(self, current: torch.Tensor, params: Any) -> torch.Tensor:
        """The synapse-membrane filter of ``params`` applied to a current, in float64, no reset."""
        a_mem, a_syn_neg = lif_constants(params.tau_mem_inv.double(), params.tau_syn_inv.double(), self.arch.dt_s)
        return LIScan.apply(current.double(), a_mem, a_syn_neg, torch.tensor(0.0, dtype=torch.float64))

    @torch.no_grad()
    def calibrate_(self, x_calib: np.ndarray, max_windows: int = 256, output_scale: bool = True) -> None:
        """Data-driven initialisation on a few windows ``x_calib`` (N, T, C) (DP training passes
        public ones):

        - each hidden layer after the first gets its weights rescaled so that its membrane drive
          has an RMS of ``AUTO_DRIVE_RMS`` thresholds, as ``input_scale: auto`` does for the first
          layer (default-initialised weights fed by sparse spikes leave a second layer silent);
        - with ``output_scale``, the readout gain is chosen so that the readout's features (the
          time-averaged, readout-filtered last hidden spikes) have unit RMS, as the ANN's do.
          Spikes are sparse, so without it the logits start ~100x smaller than the ANN's and Adam
          needs hundreds of steps just to grow the readout weights. The gain is stored in the arch.
        """
        if len(x_calib) == 0:
            return
        pick = spread_indices(len(x_calib), max_windows)
        h = torch.as_tensor(np.asarray(x_calib[pick]), dtype=torch.float32) * self.arch.input_scale
        for layer, fc in enumerate(self.fc):
            if layer > 0:
                rms = float(self._filtered(torch.nn.functional.linear(h, fc.weight), self.lif_p).pow(2).mean().sqrt())
                if rms > 0:
                    fc.weight.mul_(AUTO_DRIVE_RMS * self.arch.v_th / rms)
            h = self.hidden_layer(fc(h), layer)
        if output_scale:
            self._set_readout_gain(h)

    def _set_readout_gain(self, last_hidden: torch.Tensor) -> None:
        features = self._filtered(last_hidden, self.li_p).mean(dim=1)
        rms = float(features.pow(2).mean().sqrt())
        self.arch.output_scale = 1.0 / rms if rms > 0 else 1.0

    def calibrate_readout_(self, x_calib: np.ndarray, max_windows: int = 256) -> None:
        """Only the readout gain of :meth:`calibrate_`, on the hidden layers as they are now
        (after the STDP kind has learned them, their rates differ from the initial ones)."""
        if len(x_calib) == 0:
            return
        pick = spread_indices(len(x_calib), max_windows)
        with torch.no_grad():
            _, hidden = self.forward_trace(torch.as_tensor(np.asarray(x_calib[pick]), dtype=torch.float32))
            self._set_readout_gain(hidden[-1])


def auto_input_scale(x: np.ndarray, arch: SNNArch | Mapping[str, Any], max_windows: int = 256) -> float:
    """Input gain that makes the first hidden layer's drive about ``AUTO_DRIVE_RMS`` thresholds.

    Ignoring threshold and reset, a LIF neuron's membrane is a linear filter of its input current
    ``I = s W x`` (synapse then membrane). With ``nn.Linear``'s default init (weights uniform in
    +-1/sqrt(C), variance 1/(3C)) and zero bias, the mean square of that membrane drive over neurons
    and time is ``s^2 / (3C) * sum_c E[F_c^2]`` where ``F_c`` is channel c's filtered spike train
    in the data. Solving for ``s`` takes both the input rate and the fan-in into account.
    ``arch`` needs ``dt_s``; missing time constants and threshold take the config schema's ``train``
    defaults (as :func:`biospike.models.make_arch` with default settings).
    """
    get = _getter(arch)
    xs = _pick(x, max_windows)
    a_mem, a_syn_neg = lif_constants(torch.tensor(1.0 / get("tau_mem_s"), dtype=torch.float64),
                                     torch.tensor(1.0 / get("tau_syn_s"), dtype=torch.float64), float(get("dt_s")))
    with torch.no_grad():
        filtered = LIScan.apply(xs, a_mem, a_syn_neg, torch.tensor(0.0, dtype=torch.float64))
        power = float(filtered.pow(2).mean(dim=(0, 1)).sum())
    return _solve_scale(power, AUTO_DRIVE_RMS * float(get("v_th")), xs.shape[2])


# Neuron settings an arch may leave out: they then take the config schema's ``train`` default, what
# make_arch gives with default settings (the dataclasses' own defaults are older, different values).
NEURON_KEYS = ("tau_mem_s", "tau_syn_s", "v_th", "readout_tau_mem_s", "readout_tau_syn_s")


def _getter(arch: Any, arch_cls: type = SNNArch):
    """arch field by name from a dataclass or a dict. An absent neuron setting (``NEURON_KEYS``)
    takes the schema's ``train`` default, any other absent field ``arch_cls``'s default."""
    defaults = {f.name: f.default for f in dataclasses.fields(arch_cls)}

    def get(name: str) -> Any:
        value = arch.get(name) if isinstance(arch, Mapping) else getattr(arch, name, None)
        if value is None and name in NEURON_KEYS:
            from biospike.config import section_settings

            value = section_settings("train")[name]
        if value is None:
            value = defaults.get(name, dataclasses.MISSING)
        if value is dataclasses.MISSING:
            raise ValueError(f"architecture needs {name!r}")
        return value

    return get


def spread_indices(n: int, max_windows: int) -> np.ndarray:
    """Up to ``max_windows`` indices of ``range(n)`` spread evenly (all of them when n is smaller)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, max_windows)).round().astype(np.int64))


def _pick(x: np.ndarray, max_windows: int) -> torch.Tensor:
    """Up to ``max_windows`` windows spread evenly over ``x``, as float64."""
    from biospike.errors import BiospikeError

    if len(x) == 0:
        raise BiospikeError("no training windows to compute input_scale 'auto' from")
    return torch.as_tensor(np.asarray(x[spread_indices(len(x), max_windows)]), dtype=torch.float64)


def _solve_scale(power: float, target_rms: float, n_in: int) -> float:
    from biospike.errors import BiospikeError

    if not power > 0:
        raise BiospikeError("the training windows carry no input spikes: nothing to scale (check the encoder)")
    return float(target_rms * math.sqrt(3.0 * n_in / power))
