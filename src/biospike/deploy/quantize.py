"""Quantize a NIR-derived :class:`~biospike.deploy.simulator.Network` to a target's integer formats.

Per population ``P`` (all its incoming projections share P's state scale):

* Every input to P is first multiplied by the gain ``G`` that makes the target's integer neuron
  follow norse's dynamics (``a = dt/tau_mem``, ``b = dt/tau_syn``):
  ``G = a`` when the synaptic state decays before the new input is added and the membrane uses
  the new current (Loihi's CUBA order, which is norse's), ``G = a / (1 - b_q)`` when the input is
  added before the decay (Xylo), ``G = a / b`` when the target has no synaptic state
  (charge-preserving: one input deposits the same total voltage, ignoring membrane leak).
* State LSB ``sigma_P``: the finest step such that states seen on calibration windows (x1.5
  headroom) and the threshold fit the signed state width, and no projection needs a larger left
  shift than the target allows. Projection ``p`` gets a left shift
  ``s_p = ceil(log2(sigma_p / sigma_P))`` (its ideal symmetric per-layer scale
  ``sigma_p = max|G W_p| / (2^(bits-1) - 1)``); integer weights ``round(G W_p / (sigma_P 2^s_p))``
  are clipped to the signed weight width. Targets with one shift per kind of connection (Xylo:
  input, hidden, output) use the largest shift of the group.
* Thresholds ``floor(v_th / sigma) + 1`` (integer ``v >= th`` is exactly real ``v > v_th``),
  reset and leak voltages ``round(v / sigma)``.
* Decay: multiplicative ``d = round(rate 2^decay_bits)`` (Loihi: 12 bits), or bit shift
  ``dash = round(log2(tau / dt))`` clipped to [1, max_dash] (Xylo: ``v <- v - (v >> dash)``).
* Biases (Linear biases enter the synaptic current every step): into the current state with the
  same gain, or, on targets whose bias is a membrane term (Xylo), the steady-state equivalent
  per-step membrane bias (transients differ: reported, not hidden).
* ``ternary_per_neuron`` weights (TrueNorth's binary crossbar with one signed weight per axon
  type): each post-neuron keeps zero or one positive and one negative magnitude (ternary weight
  networks: threshold 0.7 mean|w|, magnitude = mean of the kept weights), then integers as above.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from biospike.deploy.hardware import HardwareProfile
from biospike.deploy.simulator import Network, Projection
from biospike.errors import BiospikeError

__all__ = ["QuantNetwork", "calibration_bounds", "quantize_network"]


@dataclasses.dataclass
class QuantNetwork:
    """A network in a target's integer formats: integer weights and their shifts, per population
    the state LSB, gain, thresholds and decay constants, and the state and weight widths."""

    net: Network
    neuron_model: dict[str, Any]
    weights: dict[str, np.ndarray]  # int64, shift applied: value added to the state per event
    weight_ints: dict[str, np.ndarray]  # stored integer weights (before the shift)
    shifts: dict[str, int]
    pops: dict[str, dict[str, Any]]
    state_min: int
    state_max: int
    decay_bits: int
    weight_bits: int
    max_spikes_per_step: int

    def summary(self) -> dict[str, Any]:
        """The quantization as a JSON-able dict (bits, shifts, weight ranges, and per population the
        state LSB, gain, threshold, decays and effective time constants)."""
        return {
            "weight_bits": self.weight_bits,
            "state_bits": int(math.log2(self.state_max + 1)) + 1,
            "decay_bits": self.decay_bits,
            "shifts": self.shifts,
            "max_abs_weight_int": {k: int(np.abs(v).max(initial=0)) for k, v in self.weight_ints.items()},
            "nonzero_synapses": {k: int(np.count_nonzero(v)) for k, v in self.weight_ints.items()},
            "populations": {
                k: {"state_lsb": float(p["sigma"]), "gain": float(p["gain"]),
                    "threshold_int": None if p["threshold"] is None else int(np.max(p["threshold"])),
                    "decay_syn": int(np.max(p["d_syn"])), "decay_mem": int(np.max(p["d_mem"])),
                    "readout": p.get("readout"),
                    "tau_syn_effective_s": float(p["tau_syn_eff_s"]), "tau_mem_effective_s": float(p["tau_mem_eff_s"])}
                for k, p in self.pops.items()
            },
        }


def _decay_constants(rate: np.ndarray, mode: str, bits: int, max_dash: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer decay parameter per neuron and the effective per-step decay rate it implements."""
    if mode == "multiply":
        d = np.clip(np.round(rate * (1 << bits)), 0, 1 << bits).astype(np.int64)
        return d, d / float(1 << bits)
    if mode == "bitshift":
        dash = np.clip(np.round(np.log2(1.0 / rate)), 1, max_dash).astype(np.int64)
        return dash, 2.0 ** (-dash.astype(np.float64))
    return np.zeros(rate.shape, np.int64), np.zeros(rate.shape)


def _ternary_rows(w: np.ndarray) -> np.ndarray:
    """Per post-neuron ternary approximation: sign pattern x one magnitude per sign."""
    out = np.zeros_like(w, dtype=np.float64)
    for sign in (1.0, -1.0):
        part = np.where(sign * w > 0, np.abs(w), 0.0)
        mean = part.sum(axis=1, keepdims=True) / np.maximum(np.count_nonzero(part, axis=1, keepdims=True), 1)
        keep = part > 0.7 * mean
        mag = (part * keep).sum(axis=1, keepdims=True) / np.maximum(keep.sum(axis=1, keepdims=True), 1)
        out += sign * keep * mag
    return out


def _shift_group(pr: Projection, net: Network) -> str:
    if pr.src == "input":
        return "input"
    return "output" if pr.dst == net.readout else "hidden"


def quantize_network(net: Network, profile: HardwareProfile, bounds: dict[str, dict[str, float]] | None = None,
                     headroom: float = 1.5) -> QuantNetwork:
    """Integer version of ``net`` for ``profile``. ``bounds[pop] = {"max_abs_current", "max_abs_v"}``
    from :func:`calibration_bounds` (float units); without it only the threshold bounds the state."""
    model = profile.neuron_model
    wbits = int(profile.values["weight_bits"])
    sbits = int(profile.values["state_bits"])
    qmax = (1 << (wbits - 1)) - 1
    state_max = (1 << (sbits - 1)) - 1
    decay_bits = int(profile.get("decay_bits", 0))
    max_shift = int(profile.get("max_weight_shift", 0))
    max_dash = int(profile.get("max_dash", 62))
    ternary = model["weights"] == "ternary_per_neuron"  # TrueNorth: binary crossbar, signed axon types
    dt = net.dt_s
    pops: dict[str, dict[str, Any]] = {}
    real_w: dict[str, np.ndarray] = {}
    shifts: dict[str, int] = {}
    weights: dict[str, np.ndarray] = {}
    weight_ints: dict[str, np.ndarray] = {}
    ideal_sigma: dict[str, float] = {}
    for pop in net.pops:
        a = dt / pop.tau_mem_s * pop.r
        b = dt / pop.tau_syn_s
        in_gain = pop.w_in * dt / pop.tau_syn_s  # 1 for the norse mapping
        d_syn, b_q = _decay_constants(b, model["decay"] if model["synapse"] == "current" else "none", decay_bits, max_dash)
        d_mem, a_q = _decay_constants(a, model["decay"], decay_bits, max_dash)
        if model["synapse"] == "none":
            gain = a / b
        elif model["order"] == "input_then_decay":
            gain = a / (1.0 - b_q)
        else:
            gain = a.copy()
        gain = gain * in_gain
        incoming = net.incoming(pop.name)
        for pr in incoming:
            w = pr.weight.astype(np.float64)
            if pr.input_scale is not None:
                w = w * pr.input_scale[None, :]
            real_w[pr.name] = gain[:, None] * w
        if ternary:
            # one positive and one negative weight per neuron over all its feed-forward inputs
            # (a temporal kernel's taps included: TrueNorth has 4 axon types, the recurrent
            # projection takes the other two), so the feed-forward projections are joined first
            for group in ([pr for pr in incoming if not pr.recurrent], [pr for pr in incoming if pr.recurrent]):
                if group:
                    joint = _ternary_rows(np.concatenate([real_w[pr.name] for pr in group], axis=1))
                    cuts = np.cumsum([real_w[pr.name].shape[1] for pr in group])[:-1]
                    for pr, part in zip(group, np.split(joint, cuts, axis=1), strict=True):
                        real_w[pr.name] = part
        for pr in incoming:
            ideal_sigma[pr.name] = float(np.abs(real_w[pr.name]).max(initial=0.0)) / qmax
        # state scale: states must fit, thresholds must fit, shifts must stay within range
        bound = 0.0
        if pop.kind == "lif":
            bound = float(np.max(np.abs(pop.v_threshold)))
        if bounds and pop.name in bounds:
            bb = bounds[pop.name]
            bound = max(bound, bb.get("max_abs_v", 0.0), float(np.max(gain)) * bb.get("max_abs_current", 0.0))
        sigma_state = headroom * bound / state_max if bound > 0 else 0.0
        sigma_w = max((s for s in (ideal_sigma[p.name] for p in incoming) if s > 0), default=0.0) / (1 << max_shift)
        sigma = max(sigma_state, sigma_w)
        if sigma <= 0:
            sigma = 1.0
        for pr in incoming:
            s = ideal_sigma[pr.name]
            shifts[pr.name] = 0 if s <= 0 else int(np.clip(math.ceil(math.log2(s / sigma) - 1e-12), 0, max_shift))
        bias = np.zeros(pop.size)
        for pr in incoming:
            if pr.bias is not None:
                bias += gain * pr.bias.astype(np.float64)
        if model["bias_target"] == "membrane" and model["synapse"] == "current":
            steady = np.where(b_q > 0, (1.0 - b_q) / np.maximum(b_q, 1e-300), 0.0) if model["order"] == "input_then_decay" \
                else 1.0 / np.maximum(b_q, 1e-300)
            bias_membrane = np.round(bias * steady / sigma).astype(np.int64)
            bias_current = np.zeros(pop.size, np.int64)
        elif model["synapse"] == "none":
            bias_membrane = np.round(bias / sigma).astype(np.int64)
            bias_current = np.zeros(pop.size, np.int64)
        else:
            bias_current = np.round(bias / sigma).astype(np.int64)
            bias_membrane = np.zeros(pop.size, np.int64)
        tau_syn_eff = float(dt / b_q.max()) if b_q.max() > 0 else float("inf")
        tau_mem_eff = float(dt / a_q.max()) if a_q.max() > 0 else float("inf")
        threshold = None if pop.kind != "lif" else (np.floor(pop.v_threshold / sigma) + 1).astype(np.int64)
        readout_kind, offset_int, calibrated = None, 0, True
        if pop.kind != "lif" and model.get("readout", "membrane") == "spikes":
            # spike-count readout: an integrate-and-fire neuron (no leak, reset by subtraction)
            # whose count over the window is ~ its summed drive / threshold, after a common offset
            # that lifts every class's drive above zero (a silent neuron cannot rank)
            readout_kind = "spike_count"
            if model["synapse"] != "none":
                raise BiospikeError("a spike-count readout is sized from the per-step input drive, which holds only "
                                    "without a synaptic current state (synapse: none)")
            drive = (bounds or {}).get(pop.name, {})
            g = float(np.max(gain))
            calibrated = "mean_drive_min" in drive
            if calibrated:
                low, high = g * drive["mean_drive_min"], g * drive["mean_drive_p99_max"]
            else:  # no calibration windows (a mapping-only use): the worst case, no offset; the
                # simulate stage refuses to decode such a readout (deploy.cli.evaluate_snn_target)
                low = 0.0
                high = float(sum(np.abs(real_w[pr.name]).sum(axis=1) for pr in incoming if not pr.recurrent).max())
            offset = max(0.0, -low)
            threshold = np.full(pop.size, max(1, round(2.0 * (high + offset) / sigma)), np.int64)
            offset_int = int(math.ceil(offset / sigma))
            bias_membrane = bias_membrane + offset_int
            d_mem = np.zeros(pop.size, np.int64)
            tau_mem_eff = float("inf")
        elif model["decay"] == "linear":
            # TrueNorth's linear leak (leak reversal: towards 0) for the exponential decay it
            # stands in for: lambda = what the exponential removes per step at half threshold.
            # A readout (no threshold to scale it by) integrates without leak.
            d_mem = (np.maximum(1, np.round(a * threshold / 2.0)).astype(np.int64) if threshold is not None
                     else np.zeros(pop.size, np.int64))
        pops[pop.name] = {
            "sigma": sigma,
            "gain": float(np.max(gain)),
            "threshold": threshold,
            "readout": readout_kind,
            "readout_calibrated": calibrated,
            "readout_offset": offset_int,  # spike-count readout: the common offset within bias_membrane
            "v_reset": 0 if pop.kind != "lif" else np.round(pop.v_reset / sigma).astype(np.int64),
            "v_leak": np.round(pop.v_leak / sigma).astype(np.int64) if pop.kind == "lif" else np.zeros(pop.size, np.int64),
            "d_syn": d_syn,
            "d_mem": d_mem,
            "bias_current": np.clip(bias_current, -state_max - 1, state_max),
            "bias_membrane": np.clip(bias_membrane, -state_max - 1, state_max),
            "tau_syn_eff_s": tau_syn_eff,
            "tau_mem_eff_s": tau_mem_eff,
        }
    if model["shared_shift"]:
        groups: dict[str, int] = {}
        for pr in net.projections:
            g = _shift_group(pr, net)
            groups[g] = max(groups.get(g, 0), shifts[pr.name])
        for pr in net.projections:
            shifts[pr.name] = groups[_shift_group(pr, net)]
    for pr in net.projections:
        sigma = pops[pr.dst]["sigma"]
        wi = np.clip(np.round(real_w[pr.name] / (sigma * (1 << shifts[pr.name]))), -qmax - 1, qmax).astype(np.int64)
        weight_ints[pr.name] = wi
        weights[pr.name] = wi << shifts[pr.name]
    return QuantNetwork(net=net, neuron_model=model, weights=weights, weight_ints=weight_ints, shifts=shifts,
                        pops=pops, state_min=-state_max - 1, state_max=state_max, decay_bits=decay_bits,
                        weight_bits=wbits, max_spikes_per_step=int(profile.get("max_spikes_per_step", 1)))


def calibration_bounds(net: Network, x: np.ndarray) -> dict[str, dict[str, float]]:
    """Largest |synaptic current| and |membrane voltage| per population on calibration windows (float mode)."""
    import torch

    from biospike.deploy.simulator import delayed, simulate_float

    trace = simulate_float(net, x)
    bounds: dict[str, dict[str, float]] = {}
    xt = torch.as_tensor(np.asarray(x, np.float32))
    for pop in net.pops:
        # drive (sum of feed-forward inputs) bounds the current: |J| <= sum_k (1-b)^k |x| <= max|x| / b
        total = np.zeros((x.shape[0], x.shape[1], pop.size), np.float64)
        for pr in net.incoming(pop.name):
            src = xt.numpy() if pr.src == "input" else trace.spikes.get(pr.src)
            if src is None:
                continue
            src = delayed(src, pr.delay_steps)
            w = pr.weight.astype(np.float64)
            if pr.input_scale is not None:
                w = w * pr.input_scale[None, :]
            y = src.astype(np.float64) @ w.T
            if pr.bias is not None:
                y = y + pr.bias
            total += y
        b = net.dt_s / pop.tau_syn_s
        j = np.zeros((x.shape[0], pop.size))
        max_j = 0.0
        for t in range(x.shape[1]):
            j = (1 - b) * j + total[:, t]
            max_j = max(max_j, float(np.abs(j).max(initial=0.0)))
        max_v = float(np.abs(trace.readout).max(initial=0.0)) if pop.name == net.readout else float(np.max(np.abs(pop.v_threshold)))
        bounds[pop.name] = {"max_abs_current": max_j, "max_abs_v": max_v}
        if pop.name == net.readout and len(total):
            # what a spike-count readout needs: each window's mean drive per step per class
            mean_drive = total.mean(axis=1)  # (B, O), before the target's gain
            bounds[pop.name] |= {"mean_drive_min": float(mean_drive.min()),
                                 "mean_drive_p99_max": float(np.percentile(mean_drive.max(axis=1), 99))}
    return bounds
