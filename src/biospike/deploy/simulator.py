"""Simulate a NIR graph: float reference mode and event-driven integer (quantized) mode.

The simulator reads the NIR graph, never the torch model. Populations are processed one after
the other over all time steps and all windows at once (a population's feed-forward input is one
matrix product over (windows x steps)); only the neuron recurrence steps over time.

Float mode mirrors the torch model's arithmetic op for op in float32 (same Linear kernel, same
order of the Euler updates), so hidden spikes are bit-identical to the norse model and readout
voltages agree to float32 rounding. Integer mode runs the quantized network
(:mod:`biospike.deploy.quantize`) with the target's neuron semantics: integer states clipped to
the state width, multiplicative (Loihi-style, ``x - ((x * d) >> bits)`` on magnitudes) or bit-shift
(Xylo: ``x - (x >> dash)``) decay, reset to a value or by subtraction, optional one-step delay
on connections from hidden neurons (Xylo's reservoir).

Event counting is vectorised: synaptic events of a projection = sum over (window, step) of the
presynaptic spike counts weighted by each source's fan-out (its non-zero weights); neuron
updates = neurons x steps (time-stepped targets update every neuron each step); routed packets
= spikes x the number of distinct destination cores of the spiking neuron.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["Network", "Population", "Projection", "Trace", "count_events", "fanout", "network_from_nir",
           "delayed", "delivered_activity", "events_by_layer", "simulate_float", "simulate_int", "source_activity"]


@dataclasses.dataclass
class Population:
    """One neuron population of a NIR graph, ``lif`` (spiking) or ``li`` (readout), with NIR's
    per-neuron CubaLIF/CubaLI parameters (time constants in seconds)."""

    name: str
    kind: str  # "lif" (spiking) or "li" (readout)
    size: int
    tau_syn_s: np.ndarray
    tau_mem_s: np.ndarray
    r: np.ndarray
    w_in: np.ndarray
    v_leak: np.ndarray
    v_threshold: np.ndarray | None = None
    v_reset: np.ndarray | None = None


@dataclasses.dataclass
class Projection:
    """Weights from ``src`` (a population or ``"input"``) to population ``dst``; ``recurrent``
    projections deliver their spikes one step later."""

    name: str
    src: str  # population name, or "input"
    dst: str
    weight: np.ndarray  # float32 (n_dst, n_src)
    bias: np.ndarray | None  # float32 (n_dst,)
    input_scale: np.ndarray | None = None  # nir.Scale between input and this projection
    recurrent: bool = False  # source is computed at or after the destination: uses step t-1
    delay_steps: int = 0  # nir.Delay between input and this projection: delivers x_{t - delay_steps}


@dataclasses.dataclass
class Network:
    """A NIR graph as populations in computation order, the projections between them, the
    readout population's name, the step ``dt_s`` and the graph metadata."""

    n_in: int
    dt_s: float
    pops: list[Population]
    projections: list[Projection]
    readout: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def pop(self, name: str) -> Population:
        """The population named ``name``."""
        return next(p for p in self.pops if p.name == name)

    def incoming(self, name: str) -> list[Projection]:
        """The projections into population ``name``."""
        return [p for p in self.projections if p.dst == name]

    @property
    def hidden(self) -> list[Population]:
        """The spiking (``lif``) populations."""
        return [p for p in self.pops if p.kind == "lif"]

    @property
    def n_neurons(self) -> int:
        """Neurons in all populations."""
        return sum(p.size for p in self.pops)


def network_from_nir(graph) -> Network:
    """Parse a NIR graph of Input/Scale/Delay/Affine/Linear/CubaLIF/CubaLI/Output nodes into a Network.

    Supported: feed-forward chains of populations with any number of incoming projections per
    population, self-recurrence (a Linear from a population back to itself), delayed input
    projections (Input [-> Scale] -> Delay -> Linear: a temporal kernel's taps) and one Output fed
    by a CubaLI readout. Anything else is a BiospikeError naming the node.
    """
    import nir

    from biospike.deploy.nir_export import graph_metadata

    meta = graph_metadata(graph)
    if "dt_s" not in meta:
        raise BiospikeError("NIR graph has no 'dt_s' metadata: the time step is needed to discretise it")
    dt_s = float(meta["dt_s"])
    nodes = graph.nodes
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            raise BiospikeError(f"NIR edge ({a!r}, {b!r}) names a missing node")
        preds[b].append(a)
        succs[a].append(b)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise BiospikeError(f"NIR graph must have exactly one Input node, found {len(inputs)}")
    input_name = inputs[0]
    n_in = int(np.prod(nodes[input_name].input_type["input"]))

    pops: dict[str, Population] = {}
    for name, node in nodes.items():
        if isinstance(node, nir.CubaLIF):
            pops[name] = Population(name, "lif", int(node.v_threshold.size),
                                    np.asarray(node.tau_syn, np.float64).ravel(), np.asarray(node.tau_mem, np.float64).ravel(),
                                    np.asarray(node.r, np.float64).ravel(), np.asarray(node.w_in, np.float64).ravel(),
                                    np.asarray(node.v_leak, np.float64).ravel(), np.asarray(node.v_threshold, np.float64).ravel(),
                                    np.asarray(node.v_reset, np.float64).ravel())
        elif isinstance(node, nir.CubaLI):
            pops[name] = Population(name, "li", int(node.v_leak.size),
                                    np.asarray(node.tau_syn, np.float64).ravel(), np.asarray(node.tau_mem, np.float64).ravel(),
                                    np.asarray(node.r, np.float64).ravel(), np.asarray(node.w_in, np.float64).ravel(),
                                    np.asarray(node.v_leak, np.float64).ravel())
        elif not isinstance(node, (nir.Input, nir.Output, nir.Scale, nir.Delay, nir.Affine, nir.Linear)):
            raise BiospikeError(f"NIR node {name!r} of type {type(node).__name__} is not supported by the simulator")

    def delay_of(node_name: str) -> int:
        """A Delay node's delay in whole steps (one delay for all its elements)."""
        delay_s = np.asarray(nodes[node_name].delay, np.float64).ravel()
        steps = np.rint(delay_s / dt_s)
        if delay_s.size == 0 or np.any(steps != steps[0]) or np.any(np.abs(delay_s - steps * dt_s) > 1e-9 * max(dt_s, 1.0)) \
                or steps[0] < 1:
            raise BiospikeError(f"NIR Delay node {node_name!r}: the simulator needs one delay of a whole number (>= 1) "
                                f"of steps dt_s={dt_s:g} s for every element")
        return int(steps[0])

    def source_of(proj_name: str) -> tuple[str, np.ndarray | None, int]:
        src = preds[proj_name]
        if len(src) != 1:
            raise BiospikeError(f"NIR projection {proj_name!r} must have exactly one source, has {src}")
        s = src[0]
        delay = 0
        if isinstance(nodes[s], nir.Delay):  # only input spikes are delayed (a temporal kernel's taps)
            delay = delay_of(s)
            if len(preds[s]) != 1 or not (preds[s][0] == input_name or isinstance(nodes[preds[s][0]], nir.Scale)):
                raise BiospikeError(f"NIR Delay node {s!r} must be fed by the Input node or its Scale")
            s = preds[s][0]
        if isinstance(nodes[s], nir.Scale):
            if preds[s] != [input_name]:
                raise BiospikeError(f"NIR Scale node {s!r} must be fed by the Input node")
            return "input", np.asarray(nodes[s].scale, np.float64).ravel(), delay
        if s == input_name:
            return "input", None, delay
        if s not in pops:
            raise BiospikeError(f"NIR projection {proj_name!r} is fed by {s!r}, which is not a neuron population")
        return s, None, delay

    projections: list[Projection] = []
    for name, node in nodes.items():
        if not isinstance(node, (nir.Affine, nir.Linear)):
            continue
        src, scale, delay = source_of(name)
        dst = succs[name]
        if len(dst) != 1 or dst[0] not in pops:
            raise BiospikeError(f"NIR projection {name!r} must feed exactly one neuron population, feeds {dst}")
        weight = np.asarray(node.weight, np.float32)
        bias = np.asarray(node.bias, np.float32) if isinstance(node, nir.Affine) else None
        projections.append(Projection(name, src, dst[0], weight, bias, scale, delay_steps=delay))
    for pname in pops:
        for s in preds[pname]:
            if not isinstance(nodes[s], (nir.Affine, nir.Linear)):
                raise BiospikeError(f"NIR population {pname!r} is fed directly by {s!r}; a weight node is expected")

    # order populations: a population comes after the sources of its non-self projections
    order: list[str] = []
    remaining = set(pops)
    while remaining:
        ready = sorted(p for p in remaining
                       if all(pr.src in ("input", p) or pr.src in order for pr in projections if pr.dst == p))
        if not ready:
            raise BiospikeError(f"NIR graph has a cycle between populations {sorted(remaining)}: only self-recurrence is supported")
        # keep the export's natural order (by position in the node dict) among ready populations
        ready.sort(key=list(nodes).index)
        order.append(ready[0])
        remaining.discard(ready[0])
    for pr in projections:
        pr.recurrent = pr.src == pr.dst
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    readouts = [p for p in order if pops[p].kind == "li"]
    if len(outputs) != 1 or len(readouts) != 1 or preds[outputs[0]] != readouts:
        raise BiospikeError("NIR graph must end in one CubaLI readout feeding one Output node")
    return Network(n_in=n_in, dt_s=dt_s, pops=[pops[p] for p in order], projections=projections,
                   readout=readouts[0], metadata=meta)


# --------------------------------------------------------------------------------------------
# traces and event counts
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Trace:
    """What one simulation produced for a batch of windows."""

    spikes: dict[str, np.ndarray]  # hidden population -> (B, T, n) spike counts
    # (B, T, O) readout voltage (float units in float mode, integer units otherwise), or on a
    # target whose readout spikes (readout_spikes) the readout neurons' spikes
    readout: np.ndarray
    saturations: int = 0  # integer mode: state values clipped to the state width
    readout_spikes: bool = False  # logits are spike counts (per step), not mean voltages

    @property
    def logits(self) -> np.ndarray:
        """(B, O) logits: the readout voltage averaged over the steps (a spiking readout: its
        spike counts per step, the same decision as the counts)."""
        return self.readout.mean(axis=1)


def fanout(weight: np.ndarray) -> np.ndarray:
    """Non-zero synapses leaving each source neuron: (n_dst, n_src) -> (n_src,)."""
    return np.count_nonzero(weight, axis=0).astype(np.float64)


def delayed(a: np.ndarray, steps: int, axis: int = 1) -> np.ndarray:
    """Activity ``a`` delivered ``steps`` steps later along its time ``axis`` (1: (B, T, n);
    0: time-major), zeros before the window."""
    if steps == 0:
        return a
    out = np.zeros_like(a)
    if steps < a.shape[axis]:
        src = [slice(None)] * a.ndim
        dst = [slice(None)] * a.ndim
        src[axis], dst[axis] = slice(None, -steps), slice(steps, None)
        out[tuple(dst)] = a[tuple(src)]
    return out


def source_activity(net: Network, trace: Trace, x: np.ndarray, src: str, delay_steps: int = 0) -> np.ndarray:
    """(B, T, n) spike counts a projection from ``src`` carries: the input ``x`` or a hidden
    population's spikes in ``trace``, ``delay_steps`` later (a delayed projection)."""
    return delayed(x if src == "input" else trace.spikes[src], delay_steps)


def delivered_activity(net: Network, trace: Trace, x: np.ndarray, pr: Projection, hidden_delay: bool = False) -> np.ndarray:
    """(B, T, n) source activity as projection ``pr`` delivers it: its own delay, plus one step on a
    recurrent connection or (``hidden_delay``, Xylo) on any connection from a hidden population;
    what arrives after the last step is not delivered within the window."""
    lag = 1 if pr.recurrent or (hidden_delay and pr.src != "input") else 0
    return source_activity(net, trace, x, pr.src, pr.delay_steps + lag).astype(np.float64, copy=False)


def count_events(net: Network, trace: Trace, x: np.ndarray, weights: dict[str, np.ndarray] | None = None,
                 dest_cores: dict[str, np.ndarray] | None = None, hidden_delay: bool = False,
                 splitters: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per (window, step) event counts, shape (B, T) each.

    A spike travelling over a recurrent connection (or, with ``hidden_delay``, over any connection
    from a hidden population: Xylo) is delivered, and counted, in the next step; spikes of the last
    step on such connections are never delivered within the window.

    ``weights`` overrides the projection weights (integer weights after quantization: a weight
    rounded to zero is no synapse). ``dest_cores[proj]`` is, per source neuron, the number of
    distinct destination cores (mesh hops included) a spike of that neuron is routed to.
    ``splitters[pop]`` is, per neuron, the splitter neurons that relay its spike (a chip whose
    neurons address one core, TrueNorth): each spike then also costs one packet to the splitter
    core, one synaptic event and one spike per splitter, and every splitter updates every step.
    The relay's one-step delay is not modelled (the counts per inference are the same).
    """
    batch, steps = x.shape[:2]
    syn = np.zeros((batch, steps))
    routed = np.zeros((batch, steps))
    for pr in net.projections:
        w = pr.weight if weights is None else weights[pr.name]
        act = delivered_activity(net, trace, x, pr, hidden_delay)
        syn += act @ fanout(w)
        if dest_cores is not None:
            routed += act @ dest_cores[pr.name]
    spikes = np.zeros((batch, steps))
    for s in trace.spikes.values():
        spikes += s.sum(axis=2)
    n_splitters = 0
    for pop, relay in (splitters or {}).items():
        if not relay.any():
            continue
        act = trace.spikes[pop].astype(np.float64, copy=False)
        relayed = act @ relay.astype(np.float64)
        syn += relayed
        spikes += relayed
        if dest_cores is not None:
            routed += act @ (relay > 0).astype(np.float64)
        n_splitters += int(relay.sum())
    if trace.readout_spikes:  # a spiking readout's spikes are output events too
        spikes += trace.readout.sum(axis=2)
    updates = np.full((batch, steps), float(net.n_neurons + n_splitters))
    return {"syn_events": syn, "neuron_updates": updates, "spikes": spikes, "routed": routed,
            "input_events": x.sum(axis=2, dtype=np.float64)}


def events_by_layer(net: Network, trace: Trace, x: np.ndarray, weights: dict[str, np.ndarray] | None = None,
                    dest_cores: dict[str, np.ndarray] | None = None, hidden_delay: bool = False) -> dict[str, dict[str, float]]:
    """Per-window means of :func:`count_events`' terms split by layer: per projection its
    synaptic events and routed packets, per population its spikes and neuron updates (splitter
    relays are not attributed to a layer; their counts stay in the totals)."""
    steps = x.shape[1]
    n = max(len(x), 1)
    out: dict[str, dict[str, float]] = {}
    for pr in net.projections:
        w = pr.weight if weights is None else weights[pr.name]
        per_src = delivered_activity(net, trace, x, pr, hidden_delay).sum(axis=(0, 1))
        out[pr.name] = {"kind": "projection", "src": pr.src, "dst": pr.dst,
                        "syn_events": float(per_src @ fanout(w)) / n,
                        "routed": float(per_src @ dest_cores[pr.name]) / n if dest_cores is not None else 0.0}
    for pop in net.pops:
        if pop.name == net.readout and not trace.readout_spikes:
            spikes = 0.0
        else:
            spikes = float((trace.readout if pop.name == net.readout else trace.spikes[pop.name]).sum()) / n
        out[pop.name] = {"kind": "population", "neurons": pop.size, "spikes": spikes,
                         "neuron_updates": float(pop.size * steps)}
    return out


# --------------------------------------------------------------------------------------------
# float mode: op-for-op mirror of the norse model
# --------------------------------------------------------------------------------------------


def _tap_groups(incoming: list[Projection]) -> list[list[Projection]]:
    """The non-recurrent projections into one population, grouped by source (and input scale) in
    order of delay: a temporal kernel's taps form one group, any other projection a group of one.
    Only the delay-0 tap may carry a bias; a group without a delay-0 tap is refused."""
    groups: dict[str, list[Projection]] = {}
    for pr in incoming:
        if not pr.recurrent:
            groups.setdefault(pr.src, []).append(pr)
    out = []
    for src, taps in groups.items():
        if all(t.delay_steps == 0 for t in taps):  # no temporal kernel: each projection on its own
            out.extend([t] for t in taps)
            continue
        taps = sorted(taps, key=lambda t: t.delay_steps)
        if len(taps) > 1 and (taps[0].delay_steps != 0 or any(t.bias is not None for t in taps[1:])
                              or len({t.delay_steps for t in taps}) != len(taps)
                              or any(not np.array_equal(_scale(t), _scale(taps[0])) for t in taps)):
            raise BiospikeError(f"projections {[t.name for t in taps]} from {src!r}: delayed taps need one undelayed "
                                "tap (the only one with a bias), distinct delays and one input scale")
        if len(taps) == 1 and taps[0].delay_steps:
            raise BiospikeError(f"projection {taps[0].name!r} from {src!r} is delayed with no undelayed tap beside it")
        out.append(taps)
    return out


def _scale(pr: Projection) -> np.ndarray:
    return np.ones(1) if pr.input_scale is None else pr.input_scale


def _unit(values: np.ndarray) -> bool:
    return bool(np.all(np.abs(values - 1.0) < 1e-9))


def simulate_float(net: Network, x: np.ndarray) -> Trace:
    """Float32 reference simulation of the NIR graph on spike counts ``x`` (B, T, C)."""
    import torch
    import torch.nn.functional as F

    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise BiospikeError(f"input must be (windows, steps, {net.n_in}), got {x.shape}")
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    outs: dict[str, torch.Tensor] = {}
    dt = net.dt_s
    with torch.no_grad():
        for pop in net.pops:
            current = None
            recs = [torch.as_tensor(pr.weight) for pr in net.incoming(pop.name) if pr.recurrent]
            for taps in _tap_groups(net.incoming(pop.name)):
                pr = taps[0]  # delay 0 (a plain projection is a group of one)
                if pr.src == "input":
                    src = xt
                    if pr.input_scale is not None:
                        scale = pr.input_scale
                        src = src * float(scale[0]) if np.all(scale == scale[0]) else src * torch.as_tensor(scale, dtype=torch.float32)
                else:
                    src = outs[pr.src]
                # a temporal kernel's taps as one product over the delay line, the model's own
                # TemporalKernel arithmetic: delays k*dilation, weights side by side
                delays = [t.delay_steps for t in taps]
                w = torch.as_tensor(np.concatenate([t.weight for t in taps], axis=1) if len(taps) > 1 else pr.weight)
                b = None if pr.bias is None else torch.as_tensor(pr.bias)
                if len(taps) > 1:
                    src = torch.cat([torch.as_tensor(delayed(src.numpy(), d)) for d in delays], dim=2)
                y = F.linear(src, w, b)
                current = y if current is None else current + y
            if current is None:
                current = xt.new_zeros(xt.shape[0], xt.shape[1], pop.size)
            # synaptic input gain w_in * dt / tau_syn (1 for the norse mapping) and resistance r
            gain = pop.w_in * dt / pop.tau_syn_s
            if not _unit(gain):
                current = current * torch.as_tensor(gain, dtype=torch.float32)
            tau_mem_inv = torch.as_tensor(1.0 / pop.tau_mem_s, dtype=torch.float32)
            tau_syn_inv = torch.as_tensor(1.0 / pop.tau_syn_s, dtype=torch.float32)
            v_leak = torch.as_tensor(pop.v_leak, dtype=torch.float32)
            r = None if _unit(pop.r) else torch.as_tensor(pop.r, dtype=torch.float32)
            batch, steps, width = current.shape
            zeros = current.new_zeros(batch, width)
            v = zeros + v_leak if pop.kind == "lif" else zeros
            i = zeros
            z = zeros
            seq = []
            if pop.kind == "lif":
                v_th = torch.as_tensor(pop.v_threshold, dtype=torch.float32)
                v_reset = torch.as_tensor(pop.v_reset, dtype=torch.float32)
            for t in range(steps):
                inp = current[:, t]
                for w in recs:
                    inp = inp + F.linear(z, w)
                i_new = i + inp  # current jump first
                drive = i_new if r is None else r * i_new
                dv = dt * tau_mem_inv * ((v_leak - v) + drive)
                v_decayed = v + dv
                di = -dt * tau_syn_inv * i_new
                i = i_new + di
                if pop.kind == "lif":
                    z = (v_decayed - v_th > 0).to(v_decayed.dtype)
                    v = (1 - z) * v_decayed + z * v_reset
                    seq.append(z)
                else:
                    v = v_decayed
                    seq.append(v)
            outs[pop.name] = torch.stack(seq, dim=1)
    spikes = {p.name: outs[p.name].numpy() for p in net.hidden}
    return Trace(spikes=spikes, readout=outs[net.readout].numpy())


# --------------------------------------------------------------------------------------------
# integer mode
# --------------------------------------------------------------------------------------------


def _decay(x: np.ndarray, mode: str, param: np.ndarray, bits: int) -> np.ndarray:
    """One step of state decay on int64 states (param: per-neuron decay constant or dash)."""
    if mode == "multiply":  # Loihi: sign(x) * ((|x| * (2^bits - d)) >> bits), i.e. truncation toward 0
        mag = np.abs(x)
        mag *= (1 << bits) - param
        mag >>= bits
        return np.where(x < 0, -mag, mag)
    if mode == "bitshift":  # Xylo: x - (x >> dash); a positive state loses at least 1 (xylosim)
        dec = x >> param
        return x - np.where((x > 0) & (dec == 0), 1, dec)
    if mode == "linear":  # TrueNorth, leak reversal on: x + sgn(x) * lambda, lambda = -param <= 0
        return x - np.sign(x) * param
    return x


def simulate_int(qnet, x: np.ndarray) -> Trace:
    """Integer simulation of a :class:`~biospike.deploy.quantize.QuantNetwork` on spike counts x (B, T, C).

    Internally time-major (T, B, n) so each step reads and writes contiguous rows.
    """
    net = qnet.net
    model = qnet.neuron_model
    if x.ndim != 3 or x.shape[2] != net.n_in:
        raise BiospikeError(f"input must be (windows, steps, {net.n_in}), got {x.shape}")
    batch, steps, _ = x.shape
    x_tm = np.ascontiguousarray(np.transpose(x, (1, 0, 2)), dtype=np.float64)
    lo, hi = qnet.state_min, qnet.state_max
    outs: dict[str, np.ndarray] = {}  # time-major (T, B, n) int64
    saturations = 0
    hidden_delayed = bool(model["hidden_delay"])
    current_syn = model["synapse"] == "current"
    decay_first = model["order"] == "decay_then_input"
    to_value = model["reset"] == "to_value"
    linear_leak = model["decay"] == "linear"
    spiking_readout = model.get("readout", "membrane") == "spikes"
    for pop in net.pops:
        qp = qnet.pops[pop.name]
        # on a spike-only target the readout is an integrate-and-fire neuron whose spikes are counted
        spiking = pop.kind == "lif" or spiking_readout
        ff = np.zeros((steps, batch, pop.size))
        recs = []
        for pr in net.incoming(pop.name):
            qw = qnet.weights[pr.name].T.astype(np.float64)  # (n_src, n_dst) integer weights, already shifted
            if pr.recurrent:
                recs.append(qw)
                continue
            src = x_tm if pr.src == "input" else outs[pr.src].astype(np.float64)
            src = delayed(src, pr.delay_steps, axis=0)  # a temporal kernel's tap (time-major here)
            if hidden_delayed and pr.src != "input":  # Xylo: spikes of hidden neurons arrive one step later
                ff[1:] += src[:-1] @ qw
            else:
                ff += src @ qw  # exact: integer products and sums stay below 2^53
        ff_int = ff.astype(np.int64)
        if qp["bias_current"].any():
            ff_int += qp["bias_current"]
        v_leak = qp["v_leak"] if np.any(qp["v_leak"]) else None
        bias_v = qp["bias_membrane"] if np.any(qp["bias_membrane"]) else None
        i_state = np.zeros((batch, pop.size), np.int64)
        v = np.zeros((batch, pop.size), np.int64) + (qp["v_leak"] if pop.kind == "lif" else 0)
        subtract = not to_value or pop.kind != "lif"  # a counting readout resets by subtraction
        z = np.zeros((batch, pop.size), np.int64)
        seq = np.empty((steps, batch, pop.size), np.int64)
        th = qp["threshold"]
        for t in range(steps):
            inp = ff_int[t]
            for qw in recs:
                if z.any():
                    inp = inp + (z.astype(np.float64) @ qw).astype(np.int64)
            if current_syn:
                if decay_first:
                    i_state = _decay(i_state, model["decay"], qp["d_syn"], qnet.decay_bits) + inp
                    i_state, n_sat = _clip(i_state, lo, hi)
                else:  # Xylo: accumulate, saturate, then decay
                    i_state, n_sat = _clip(i_state + inp, lo, hi)
                    i_state = _decay(i_state, model["decay"], qp["d_syn"], qnet.decay_bits)
                saturations += n_sat
                drive = i_state
            else:
                drive = inp
            if linear_leak:  # TrueNorth: integrate, then leak (Cassidy et al. 2013's order)
                base = 0 if v_leak is None else v_leak
                v = _decay(v + drive - base, "linear", qp["d_mem"], 0) + base
            elif v_leak is None:
                v = _decay(v, model["decay"], qp["d_mem"], qnet.decay_bits) + drive
            else:
                v = _decay(v - v_leak, model["decay"], qp["d_mem"], qnet.decay_bits) + v_leak + drive
            if bias_v is not None:
                v += bias_v
            v, n_sat = _clip(v, lo, hi)
            saturations += n_sat
            if spiking:
                fired = v >= th
                if not subtract:
                    z = fired.astype(np.int64)
                    if fired.any():
                        v = np.where(fired, qp["v_reset"], v)
                else:  # subtract the threshold once per spike, up to max_spikes_per_step spikes
                    z = np.where(fired, np.minimum(v // np.maximum(th, 1), qnet.max_spikes_per_step), 0)
                    v = v - z * th
                seq[t] = z
            else:
                seq[t] = v
        outs[pop.name] = seq
    spikes = {p.name: np.ascontiguousarray(np.transpose(outs[p.name], (1, 0, 2))) for p in net.hidden}
    readout = np.ascontiguousarray(np.transpose(outs[net.readout], (1, 0, 2))).astype(np.float64)
    return Trace(spikes=spikes, readout=readout, saturations=int(saturations), readout_spikes=spiking_readout)


def _clip(x: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, int]:
    """Saturate to the state width; returns the array and how many values were clipped."""
    if x.size == 0 or (x.max() <= hi and x.min() >= lo):
        return x, 0
    n = int(np.count_nonzero((x > hi) | (x < lo)))
    return np.clip(x, lo, hi), n
