"""Place a network's neurons and synapses on a target's cores, under its published limits.

Generic many-core targets (Loihi, Loihi 2, SpiNNaker 2, TrueNorth): each population is split
into equal chunks; a chunk holds at most ``neurons_per_core`` neurons and no more synapses than
the core's synapse count or synaptic memory allows; a core accepts at most
``axons_in_per_core`` presynaptic sources (fan-in is not split: a fully connected layer needs
all its sources on every core). DYNAP-CNN/Speck: one layer per core, a layer as a 1x1
convolution needs ``c_in * 2^ceil(log2(c_out))`` kernel entries and ``c_out`` neuron entries
(sinabs ``DynapcnnLayer.memory_summary``), cores are matched largest-demand first to the
smallest core that holds the layer. Xylo: one array with input/hidden/output neuron limits.
Fan-out on many-core targets: one output axon per neuron and destination core, at most
``axons_out_per_core`` on a core; with ``targets_per_neuron`` (TrueNorth: 1) a neuron feeding more
cores needs a splitter neuron per destination core, counted with the cores they fill.

A model that does not fit is not an error: the result says ``fits: false`` and lists each
violated limit as ``"does not fit: <limit> needs X, target has Y"``; the placement is still
made on a hypothetical target with enough cores, so costs can be reported.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping as MappingABC
from typing import Any

import numpy as np

from biospike.deploy.hardware import HardwareProfile
from biospike.deploy.simulator import Network

__all__ = ["Mapping", "destination_cores", "map_network"]


@dataclasses.dataclass
class Mapping:
    """Where a network sits on a target: whether it fits (and each violated limit), the cores used,
    the core of every neuron, the routed packets one source spike causes per projection, details."""

    fits: bool
    reasons: list[str]
    cores_used: int
    core_of: dict[str, np.ndarray]  # population -> core id per neuron
    dest_packets: dict[str, np.ndarray]  # projection -> packets (x mesh hops) one source spike causes
    details: dict[str, Any]
    # population -> per neuron, the splitter neurons relaying its spike (0: it addresses its cores itself)
    splitters: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The mapping as a JSON-able dict (fits, reasons, cores used and the details)."""
        return {"fits": self.fits, "reasons": self.reasons, "cores_used": self.cores_used, **self.details}


def _weight_values_per_neuron(net: Network, weights: dict[str, np.ndarray], pop: str) -> int:
    """The most distinct non-zero weight values any neuron of ``pop`` holds over its inputs."""
    incoming = [weights[pr.name] for pr in net.incoming(pop)]
    if not incoming:
        return 0
    rows = np.concatenate(incoming, axis=1)
    return max((np.unique(r[r != 0]).size for r in rows), default=0)


def _no_fit(limit: str, needs: float, has: float) -> str:
    return f"does not fit: {limit} needs {needs:g}, target has {has:g}"


def _core_xy(core: int, width: int) -> tuple[int, int]:
    return core % width, core // width


def _target_cores(weight: np.ndarray, dst_cores: np.ndarray) -> list[np.ndarray]:
    """Per source neuron (column of ``weight``), the distinct cores of its non-zero synapses."""
    return [np.unique(dst_cores[weight[:, j] != 0]) for j in range(weight.shape[1])]


def _routing(net: Network, core_of: dict[str, np.ndarray], weights: dict[str, np.ndarray], mesh_width: int | None,
             input_core: int = 0) -> dict[str, np.ndarray]:
    """Per projection and source neuron: sum over its distinct destination cores of the mesh hops
    (1 + Manhattan distance; one hop when no mesh is given). Spikes within the source's own core
    cost no routing. Input spikes enter at ``input_core``."""
    out: dict[str, np.ndarray] = {}
    for pr in net.projections:
        w = weights[pr.name]
        n_src = w.shape[1]
        src_cores = np.full(n_src, -1) if pr.src == "input" else core_of[pr.src]
        packets = np.zeros(n_src)
        for j, cores in enumerate(_target_cores(w, core_of[pr.dst])):
            src_core = input_core if src_cores[j] < 0 else src_cores[j]
            if src_cores[j] >= 0:
                cores = cores[cores != src_core]
            if cores.size == 0:
                continue
            if mesh_width:
                sx, sy = _core_xy(src_core, mesh_width)
                packets[j] = sum(1 + abs(cx - sx) + abs(cy - sy) for cx, cy in (_core_xy(int(c), mesh_width) for c in cores))
            else:
                packets[j] = cores.size
        out[pr.name] = packets
    return out


def map_network(net: Network, profile: HardwareProfile, weights: dict[str, np.ndarray]) -> Mapping:
    """Place ``net`` (with its quantized ``weights``: a zero weight is no synapse) on ``profile``."""
    v = profile.values
    reasons: list[str] = []
    details: dict[str, Any] = {}
    n_hidden = sum(p.size for p in net.hidden)
    n_out = net.pop(net.readout).size
    if "max_inputs" in v and net.n_in > v["max_inputs"]:
        reasons.append(_no_fit("input channels", net.n_in, v["max_inputs"]))
    if "max_outputs" in v and n_out > v["max_outputs"]:
        reasons.append(_no_fit("output neurons", n_out, v["max_outputs"]))
    if "max_hidden_neurons" in v and n_hidden > v["max_hidden_neurons"]:
        reasons.append(_no_fit("hidden neurons", n_hidden, v["max_hidden_neurons"]))
    if any(pr.recurrent for pr in net.projections) and v.get("supports_recurrence") is False:
        reasons.append(_no_fit("recurrent connections", 1, 0))
    if "weight_values_per_neuron" in v:  # TrueNorth: one signed weight per axon type
        most = max((_weight_values_per_neuron(net, weights, pop.name) for pop in net.pops), default=0)
        details["max_weight_values_per_neuron"] = most
        if most > v["weight_values_per_neuron"]:
            reasons.append(_no_fit("distinct weight values of one neuron", most, v["weight_values_per_neuron"]))
    longest_delay = max((pr.delay_steps for pr in net.projections), default=0)
    if longest_delay:  # a temporal kernel's taps: each needs a synapse (or axon) that delays by its steps
        details["longest_delay_steps"] = longest_delay
        if "max_delay_steps" not in v:
            reasons.append(f"delayed synapses (a temporal kernel of up to {longest_delay} steps): whether this target "
                           "delays a synapse, and by how much, is not known (profile key max_delay_steps)")
        elif longest_delay > v["max_delay_steps"]:
            reasons.append(_no_fit("synaptic delay (steps)", longest_delay, v["max_delay_steps"]))
    core_of: dict[str, np.ndarray] = {}
    if v.get("one_layer_per_core"):
        reasons += _map_layer_per_core(net, profile, weights, core_of, details)
    else:
        reasons += _map_chunks(net, profile, weights, core_of, details)
    cores_used = int(np.unique(np.concatenate([c for c in core_of.values()])).size) if core_of else 0
    if cores_used > v["cores"] and not v.get("one_layer_per_core"):
        reasons.append(_no_fit("cores", cores_used, v["cores"]))
    splitters: dict[str, np.ndarray] = {}
    if not v.get("one_layer_per_core") and core_of:
        reasons += _fan_out(net, weights, core_of, v, details, splitters)
        cores_used += details.get("splitter_cores", 0)
        if details.get("splitter_cores") and cores_used > v["cores"]:
            reasons.append(_no_fit("cores (with splitter cores)", cores_used, v["cores"]))
    dest = _routing(net, core_of, weights, v.get("mesh_width"))
    return Mapping(fits=not reasons, reasons=reasons, cores_used=cores_used, core_of=core_of,
                   dest_packets=dest, details=details, splitters=splitters)


def destination_cores(net: Network, weights: dict[str, np.ndarray], core_of: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per hidden or readout population, the number of distinct cores each of its neurons sends to
    (over every outgoing projection, its own core included: on-core synapses use an output axon too)."""
    out: dict[str, np.ndarray] = {}
    for pop in net.pops:
        targets = [set() for _ in range(pop.size)]
        for pr in net.projections:
            if pr.src != pop.name:
                continue
            for j, cores in enumerate(_target_cores(weights[pr.name], core_of[pr.dst])):
                targets[j].update(cores.tolist())
        out[pop.name] = np.array([len(t) for t in targets], np.int64)
    return out


def _fan_out(net: Network, weights: dict[str, np.ndarray], core_of: dict[str, np.ndarray], v: MappingABC,
             details: dict[str, Any], splitters: dict[str, np.ndarray]) -> list[str]:
    """Fan-out limits: output axons per core (one per source neuron and destination core, as
    nengo-loihi counts them) and destination cores per neuron (TrueNorth: one; a neuron feeding
    more cores needs a splitter neuron per destination core, on extra cores)."""
    reasons: list[str] = []
    dests = destination_cores(net, weights, core_of)
    axons: dict[int, int] = {}
    for name, d in dests.items():
        for core, n in zip(core_of[name].tolist(), d.tolist(), strict=True):
            axons[core] = axons.get(core, 0) + n
    details["max_output_axons_per_core"] = max(axons.values(), default=0)
    details["max_destination_cores_per_neuron"] = int(max((int(d.max(initial=0)) for d in dests.values()), default=0))
    if "axons_out_per_core" in v and details["max_output_axons_per_core"] > v["axons_out_per_core"]:
        reasons.append(_no_fit("output axons per core", details["max_output_axons_per_core"], v["axons_out_per_core"]))
    limit = v.get("targets_per_neuron")
    if limit:
        # a neuron with d > limit destination cores sends to one splitter core whose d neurons
        # (one per destination core) relay the spike: d extra neurons, one tick later
        splitters.update({name: np.where(d > limit, d, 0) for name, d in dests.items()})
        n_split = int(sum(int(s.sum()) for s in splitters.values()))
        details["splitter_neurons"] = n_split
        details["splitter_cores"] = math.ceil(n_split / int(v.get("neurons_per_core", max(n_split, 1)))) if n_split else 0
        details["splitter_delay_steps"] = 1 if n_split else 0
    return reasons


def _map_chunks(net: Network, profile: HardwareProfile, weights: dict[str, np.ndarray], core_of: dict[str, np.ndarray],
                details: dict[str, Any]) -> list[str]:
    v = profile.values
    reasons: list[str] = []
    cores: list[dict[str, Any]] = []  # per open core: what its populations already take
    per_pop = {}
    single_array = "neurons_per_core" not in v  # Xylo: one neuron array, limited by max_* counts only
    for pop in net.pops:
        incoming = net.incoming(pop.name)
        fan_in = sum(weights[pr.name].shape[1] for pr in incoming) * v.get("axons_per_input", 1)
        if "axons_in_per_core" in v and fan_in > v["axons_in_per_core"]:
            reasons.append(_no_fit(f"fan-in of {pop.name} (input axons per core)", fan_in, v["axons_in_per_core"]))
        nnz_rows = sum(np.count_nonzero(weights[pr.name], axis=1) for pr in incoming) if incoming else np.zeros(pop.size)
        max_row = int(np.max(nnz_rows, initial=0))
        cap = int(v.get("neurons_per_core", pop.size))
        longest_delay = max((pr.delay_steps for pr in incoming), default=0)
        if longest_delay and "delay_index_bits" in v:
            # Loihi: the delay buckets of a core's compartments take bits from their index
            delay_bits = max(1, math.ceil(math.log2(longest_delay + 2)))
            cap = min(cap, 2 ** (v["delay_index_bits"] - delay_bits))
        neuron_cap = cap  # neurons a core holding this population may hold in all
        if "synapses_per_core" in v and max_row > 0:
            cap = min(cap, v["synapses_per_core"] // max_row)
        if "synapse_memory_bits_per_core" in v and max_row > 0:
            cap = min(cap, v["synapse_memory_bits_per_core"] // (max_row * v.get("synapse_bits", v["weight_bits"])))
        if cap < 1:
            reasons.append(_no_fit(f"synapses of one {pop.name} neuron on a core", max_row,
                                   v.get("synapses_per_core", v.get("synapse_memory_bits_per_core", 0))))
            cap = 1
        if single_array:
            core_of[pop.name] = np.zeros(pop.size, np.int64)
            per_pop[pop.name] = {"cores": 1, "neurons_per_core": pop.size, "fan_in": fan_in,
                                 "synapses": int(np.sum(nnz_rows))}
            continue
        n_cores = math.ceil(pop.size / cap)
        chunk = math.ceil(pop.size / n_cores)
        slot = np.arange(pop.size) // chunk
        core_of[pop.name] = np.empty(pop.size, np.int64)
        for k in range(n_cores):
            members = slot == k
            need = {"neurons": int(members.sum()), "synapses": int(np.sum(nnz_rows[members])), "axons": fan_in,
                    "neuron_cap": neuron_cap}
            core_of[pop.name][members] = _place(cores, need, v, pop.name)
        per_pop[pop.name] = {"cores": n_cores, "neurons_per_core": chunk, "fan_in": fan_in,
                             "synapses": int(np.sum(nnz_rows))}
    details["populations"] = per_pop
    details["cores_shared_by_populations"] = sum(len(c["pops"]) > 1 for c in cores)
    return reasons


def _place(cores: list[dict[str, Any]], need: dict[str, int], v: MappingABC, pop: str) -> int:
    """First fit: the first open core with room for ``need`` (neurons within every sharer's
    neuron cap, synapses within synapse storage, input axons within the fan-in limit; the axons of
    populations sharing a core add up, as if their sources were distinct), else a new core."""
    bits = v.get("synapse_bits", v.get("weight_bits", 0))
    for index, core in enumerate(cores):
        neurons = core["neurons"] + need["neurons"]
        synapses = core["synapses"] + need["synapses"]
        fits = (neurons <= min(core["neuron_cap"], need["neuron_cap"])
                and ("synapses_per_core" not in v or synapses <= v["synapses_per_core"])
                and ("synapse_memory_bits_per_core" not in v or synapses * bits <= v["synapse_memory_bits_per_core"])
                and ("axons_in_per_core" not in v or core["axons"] + need["axons"] <= v["axons_in_per_core"]))
        if fits and pop not in core["pops"]:
            core.update(neurons=neurons, synapses=synapses, axons=core["axons"] + need["axons"],
                        neuron_cap=min(core["neuron_cap"], need["neuron_cap"]))
            core["pops"].add(pop)
            return index
    cores.append({**need, "pops": {pop}})
    return len(cores) - 1


def _map_layer_per_core(net: Network, profile: HardwareProfile, weights: dict[str, np.ndarray],
                        core_of: dict[str, np.ndarray], details: dict[str, Any]) -> list[str]:
    v = profile.values
    reasons: list[str] = []
    kernel_mem = list(v["kernel_memory_per_core"])
    neuron_mem = list(v["neuron_memory_per_core"])
    demands = {}
    for pop in net.pops:
        c_in = sum(weights[pr.name].shape[1] for pr in net.incoming(pop.name) if not pr.recurrent)
        demands[pop.name] = (c_in * 2 ** math.ceil(math.log2(max(pop.size, 1))), pop.size)
        dests = {pr.dst for pr in net.projections if pr.src == pop.name}
        if "max_destinations_per_layer" in v and len(dests) > v["max_destinations_per_layer"]:
            reasons.append(_no_fit(f"destinations of {pop.name}", len(dests), v["max_destinations_per_layer"]))
    if len(net.pops) > len(kernel_mem):
        reasons.append(_no_fit("layers (one per core)", len(net.pops), len(kernel_mem)))
    free = set(range(len(kernel_mem)))
    assigned: dict[str, int] = {}
    extra = len(kernel_mem)
    for name in sorted(demands, key=lambda n: demands[n], reverse=True):
        kern, neur = demands[name]
        options = sorted((kernel_mem[c], neuron_mem[c], c) for c in free if kernel_mem[c] >= kern and neuron_mem[c] >= neur)
        if options:
            core = options[0][2]
            free.discard(core)
        else:
            best_k = max(kernel_mem)
            if kern > best_k:
                reasons.append(_no_fit(f"kernel memory of {name}", kern, best_k))
            elif neur > max(neuron_mem):
                reasons.append(_no_fit(f"neuron memory of {name}", neur, max(neuron_mem)))
            else:
                reasons.append(_no_fit(f"a free core large enough for {name}", 1, 0))
            core, extra = extra, extra + 1  # hypothetical extra core, for cost estimates
        assigned[name] = core
        core_of[name] = np.full(net.pop(name).size, core)
    details["populations"] = {n: {"core": c, "kernel_memory": demands[n][0], "neuron_memory": demands[n][1]}
                              for n, c in assigned.items()}
    return reasons
