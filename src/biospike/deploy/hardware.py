"""Edge-target profiles (``config/hardware/*.yaml``): loading, validation, and the cost model.

A profile holds the target's published constants in ``values`` and, for every one of them, a
``sources`` entry ``{ref: <paper/table or vendor doc>, verified: <how it was checked, or "no: ...">}``.
Loading validates the schema and that no constant lacks a source; a bad profile is a
:class:`BiospikeError` naming the file and the key.

Cost model (docs/design.md, docs/hardware.md "Energy model"): dynamic energy per inference =
synaptic events x E_synop + neuron updates x E_neuron + routed packets x E_hop (or clock cycles x
E_cycle on Xylo); static energy = chip static power x on-time, stated for the whole chip(s) and for
the share of the cores the model uses; total = dynamic + chip static. A constant no source
publishes is ``null`` in the profile ("unknown"): the terms that need it, and every total built on
them, are None, never a guess and never zero. A term may be folded into another's constant
(``energy_folded``, e.g. TrueNorth's neuron and routing energy inside its per-event active
energy). Latency per inference from the chip's own clocking: ``timestep`` (fixed tick or
real-time dt per step), ``cycles`` (Xylo: rockpool's cycles-per-step model / clock), ``events``
(Speck: time per event), ``mac`` (MCU).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError

__all__ = ["DEFAULT_NEURON_MODEL", "ENERGY_TERMS", "NEURON_MODEL_KEYS", "NULLABLE_KEYS", "SCHEMA", "TOTAL_TERMS",
           "VALUE_KEYS", "HardwareProfile", "as_float_dict", "compute_per_inference_s", "compute_step_s",
           "edp_js", "energy_j", "energy_terms", "finite", "load_profile", "profile_from_dict", "rank_by_total",
           "rankable_groups", "resolve_profile", "static_energy_j", "step_time_s", "xylo_cycles_per_step"]

# key -> (type, meaning). Types: "int", "number", "bool", "int_list".
VALUE_KEYS: dict[str, tuple[str, str]] = {
    # resources
    "cores": ("int", "neuromorphic cores (or 1 for a single-array chip like Xylo)"),
    "neurons_per_core": ("int", "neurons (compartments) one core holds"),
    "axons_in_per_core": ("int", "distinct presynaptic sources (input axons) one core accepts: fan-in per core"),
    "axons_out_per_core": ("int", "distinct output axons (destination fan-out entries) per core"),
    "axons_per_input": ("int", "axons one presynaptic source occupies (TrueNorth: 2, one per weight sign)"),
    "targets_per_neuron": ("int", "destination cores one neuron's spike can address (TrueNorth: 1; more need splitter neurons)"),
    "synapses_per_core": ("int", "synapses one core stores"),
    "synapse_memory_bits_per_core": ("int", "synaptic memory per core in bits"),
    "synapse_bits": ("int", "bits one stored synapse takes (weight + index)"),
    "kernel_memory_per_core": ("int_list", "Speck/DYNAP-CNN kernel (weight) memory entries of each core"),
    "neuron_memory_per_core": ("int_list", "Speck/DYNAP-CNN neuron memory entries of each core"),
    "one_layer_per_core": ("bool", "each layer must sit on its own core (DYNAP-CNN)"),
    "max_destinations_per_layer": ("int", "layers one layer may send to (DYNAP-CNN: 2)"),
    "max_inputs": ("int", "input channels"),
    "max_outputs": ("int", "output neurons"),
    "max_hidden_neurons": ("int", "hidden neurons in total"),
    "supports_recurrence": ("bool", "recurrent (same-layer) connections are possible"),
    "mesh_width": ("int", "cores per mesh row, for hop distances"),
    "delay_index_bits": ("int", "Loihi: bits a core's synaptic delays and compartment index share (D steps of delay take ceil(log2(D+2)) of them)"),
    "weight_values_per_neuron": ("int", "distinct signed weight values one neuron can hold over its inputs (TrueNorth: 4, one per axon type)"),
    "max_delay_steps": ("int", "longest delay a synapse (or axon) can add, in steps; 0: none (a temporal kernel needs one per tap)"),
    # precision
    "weight_bits": ("int", "signed weight bits"),
    "state_bits": ("int", "signed neuron state bits (membrane and synaptic current)"),
    "decay_bits": ("int", "fractional bits of a multiplicative decay constant"),
    "max_weight_shift": ("int", "largest left shift applied to integer weights"),
    "max_dash": ("int", "largest bit-shift decay (Xylo dash)"),
    "max_spikes_per_step": ("int", "spikes a neuron can emit in one step"),
    # energy
    "energy_synop_j": ("number", "energy per synaptic event (one spike delivered over one synapse)"),
    "energy_neuron_update_j": ("number", "energy per neuron update (one neuron, one step)"),
    "energy_neuron_update_inactive_j": ("number", "energy per update of a neuron with no input and zero state"),
    "energy_route_j": ("number", "energy per spike packet per mesh hop"),
    "static_power_w": ("number", "static (leakage + idle) power of the chip while it runs"),
    "energy_per_cycle_j": ("number", "MCU: energy per clock cycle in run mode"),
    "cycles_per_mac": ("number", "MCU: clock cycles per multiply-accumulate of the int8 kernels"),
    "sleep_power_w": ("number", "MCU: power in the low-power mode between inferences"),
    "flash_bytes": ("int", "MCU: program/weight memory"),
    "ram_bytes": ("int", "MCU: data memory"),
    # timing
    "tick_s": ("number", "fixed time-step (tick) length"),
    "clock_hz": ("number", "core clock"),
    "cycles_margin": ("number", "Xylo: safety margin on the cycles model (fraction)"),
    "event_latency_s": ("number", "Speck: processing time per input event"),
}

# energy constants a profile may declare unknown (null): the source searched gave no figure
NULLABLE_KEYS = frozenset({"energy_synop_j", "energy_neuron_update_j", "energy_neuron_update_inactive_j",
                           "energy_route_j", "static_power_w", "energy_per_cycle_j", "sleep_power_w"})

# energy term -> the profile constant that prices it (neuromorphic targets)
ENERGY_TERMS = {"synaptic": "energy_synop_j", "neuron": "energy_neuron_update_j", "routing": "energy_route_j",
                "cycles": "energy_per_cycle_j", "static": "static_power_w"}
# what every total reported carries: the whole dynamic energy and the chip static energy. A total
# missing either is None, so any two totals that are numbers contain the same terms.
TOTAL_TERMS = ("dynamic", "static")

NEURON_MODEL_KEYS = {
    "synapse": ("current", "none"),
    "decay": ("multiply", "bitshift", "linear", "none"),
    "order": ("decay_then_input", "input_then_decay"),
    "reset": ("to_value", "subtract"),
    "bias_target": ("current", "membrane"),
    "hidden_delay": (True, False),
    "shared_shift": (True, False),
    "weights": ("uniform", "ternary_per_neuron"),
    "readout": ("membrane", "spikes"),
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "title", "kind", "latency_model", "values", "sources"],
    "properties": {
        "name": {"type": "string"},
        "title": {"type": "string"},
        "kind": {"enum": ["neuromorphic", "mcu"]},
        "latency_model": {"enum": ["timestep", "cycles", "events", "mac"]},
        "notes": {"type": "string"},
        # dynamic terms priced inside another term's constant: not unknown, not free
        "energy_folded": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"enum": ["synaptic", "neuron", "routing"]} for k in ("synaptic", "neuron", "routing")},
        },
        "neuron_model": {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: {"enum": list(v)} for k, v in NEURON_MODEL_KEYS.items()},
        },
        "values": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                k: ({"type": "integer", "minimum": 0} if t == "int" else
                    {"type": ["number", "null"], "minimum": 0} if k in NULLABLE_KEYS else
                    {"type": "number", "minimum": 0} if t == "number" else
                    {"type": "boolean"} if t == "bool" else
                    {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1})
                for k, (t, _) in VALUE_KEYS.items()
            },
        },
        "sources": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "required": ["ref", "verified"],
                "properties": {"ref": {"type": "string", "minLength": 5}, "verified": {"type": "string", "minLength": 2}},
            },
        },
    },
}

DEFAULT_NEURON_MODEL = {"synapse": "current", "decay": "multiply", "order": "decay_then_input",
                        "reset": "to_value", "bias_target": "current", "hidden_delay": False,
                        "shared_shift": False, "weights": "uniform", "readout": "membrane"}


@dataclasses.dataclass
class HardwareProfile:
    """One validated edge-target profile: published constants (``values``, SI units in the key
    names), their ``sources``, the neuron semantics the simulator applies and the latency model."""

    name: str
    title: str
    kind: str
    latency_model: str
    values: dict[str, Any]
    sources: dict[str, dict[str, str]]
    neuron_model: dict[str, Any]
    notes: str = ""
    path: str = ""
    energy_folded: dict[str, str] = dataclasses.field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """The constant ``key`` of ``values``, or ``default`` when the profile does not publish it."""
        return self.values.get(key, default)

    def summary(self) -> dict[str, Any]:
        """The profile as a JSON-able dict (recorded in every ``{target}.json``)."""
        return {"name": self.name, "title": self.title, "kind": self.kind, "latency_model": self.latency_model,
                "neuron_model": self.neuron_model, "energy_folded": self.energy_folded, "values": self.values,
                "sources": self.sources, "path": self.path}


def profile_from_dict(data: dict[str, Any], source: str = "<profile>") -> HardwareProfile:
    """A profile from its YAML content: schema-checked, every value with a source, the values its
    kind needs present, neuron-model defaults filled; a problem is a BiospikeError naming ``source``."""
    import jsonschema

    if not isinstance(data, dict):
        raise BiospikeError("hardware profile must be a mapping", source)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(map(str, err.absolute_path)) or "<top level>"
        raise BiospikeError(f"invalid hardware profile at '{where}': {err.message}", source)
    missing = sorted(k for k in data["values"] if k not in data["sources"])
    if missing:
        raise BiospikeError(f"invalid hardware profile: values {missing} have no entry under 'sources'", source)
    stray = sorted(k for k in data["sources"] if k not in data["values"])
    if stray:
        raise BiospikeError(f"invalid hardware profile: sources {stray} name no value", source)
    values = data["values"]
    needed = {"neuromorphic": ("cores", "weight_bits", "state_bits"),
              "mcu": ("energy_per_cycle_j", "cycles_per_mac", "clock_hz")}[data["kind"]]
    absent = [k for k in needed if values.get(k) is None]
    if absent:
        raise BiospikeError(f"invalid hardware profile: a {data['kind']} profile needs values {absent}", source)
    folded = dict(data.get("energy_folded", {}))
    for term, into in folded.items():
        if term == into or into in folded or values.get(ENERGY_TERMS[into]) is None:
            raise BiospikeError(f"invalid hardware profile: energy_folded/{term} names {into!r}, which is not a "
                                "priced term of its own", source)
    model = {**DEFAULT_NEURON_MODEL, **data.get("neuron_model", {})}
    if model["decay"] == "multiply" and data["kind"] == "neuromorphic" and "decay_bits" not in values:
        raise BiospikeError("invalid hardware profile: decay 'multiply' needs values/decay_bits", source)
    return HardwareProfile(name=data["name"], title=data["title"], kind=data["kind"],
                           latency_model=data["latency_model"], values=dict(values),
                           sources=dict(data["sources"]), neuron_model=model,
                           notes=data.get("notes", ""), path=str(source), energy_folded=folded)


def load_profile(path: str | Path) -> HardwareProfile:
    """The profile in the YAML file ``path`` (see :func:`profile_from_dict`)."""
    from biospike.config import load_yaml

    return profile_from_dict(load_yaml(path), str(path))


def resolve_profile(profile: HardwareProfile | dict[str, Any] | str | Path) -> HardwareProfile:
    """A profile given as itself, as its dict, as a YAML path, or by the name of a profile in the
    repository's ``config/hardware/`` (:data:`biospike.plan.HARDWARE_DIR`), e.g. ``"loihi2"``."""
    if isinstance(profile, HardwareProfile):
        return profile
    if isinstance(profile, dict):
        return profile_from_dict(profile)
    path = Path(profile)
    if path.is_file():
        return load_profile(path)
    from biospike.plan import HARDWARE_DIR

    named = HARDWARE_DIR / f"{profile}.yaml"
    if path.suffix == "" and named.is_file():
        return load_profile(named)
    known = sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml")) if HARDWARE_DIR.is_dir() else []
    raise BiospikeError(f"no hardware profile {str(profile)!r}: not a file, nor a profile in {HARDWARE_DIR} "
                        f"({', '.join(known) or 'none found'})")


# --------------------------------------------------------------------------------------------
# cost model
# --------------------------------------------------------------------------------------------


def xylo_cycles_per_step(n_in: int, n_hidden: int, n_out: int, p_in: float, p_hidden: float,
                         hidden_fanout_avg: float) -> float:
    """Clock cycles Xylo Audio 2 needs for one time step (rockpool ``syns61201/power_cycles_model.py``,
    without aliases and with Isyn2 disabled; p_* are per-step spiking probabilities)."""
    n_ien = n_oen = n_hidden  # the model takes every hidden neuron as a possible input/output expansion
    input_cycles = n_in * (p_in * n_ien * 3.5 + 1)
    hidden_isyn_cycles = n_hidden * (hidden_fanout_avg * 7 * p_hidden + 3)
    output_isyn_cycles = n_oen * p_hidden * (1 + 8 * n_out)
    hidden_spike_cycles = n_hidden * (19 + 3 * p_hidden)  # 2p + 1p variable terms with no aliases
    output_spike_cycles = 12 * n_out
    return input_cycles + hidden_isyn_cycles + output_isyn_cycles + hidden_spike_cycles + output_spike_cycles


def compute_step_s(profile: HardwareProfile, work: dict[str, float]) -> tuple[float | None, str]:
    """Time the chip needs to compute one step as fast as it can (None when no published figure).

    ``work`` carries per-step averages: ``cycles`` (Xylo), ``events`` (events into the cores, Speck),
    ``macs`` (MCU).
    """
    model = profile.latency_model
    if model == "timestep":
        tick = profile.get("tick_s")
        return (tick, f"fixed tick {tick} s") if tick is not None else (None, "no published per-step compute time")
    if model == "cycles":
        margin = profile.get("cycles_margin", 0.0)
        return work["cycles"] * (1.0 + margin) / profile.values["clock_hz"], "rockpool Xylo cycles model x (1 + margin) / clock"
    if model == "events":
        return work["events"] * profile.values["event_latency_s"], "events per step x time per event"
    return work["macs"] * profile.values["cycles_per_mac"] / profile.values["clock_hz"], "MACs x cycles per MAC / clock"


def step_time_s(profile: HardwareProfile, dt_s: float, real_time: bool, work: dict[str, float]) -> tuple[float, str]:
    """Wall-clock duration of one step: in real-time mode a step cannot end before its input has
    arrived (at least dt_s); otherwise the compute time (dt_s when the chip publishes none)."""
    compute, how = compute_step_s(profile, work)
    if real_time:
        return (dt_s if compute is None else max(dt_s, compute)), how + "; real time: at least dt per step"
    if compute is None:
        return dt_s, how + "; dt used"
    return compute, how


def compute_per_inference_s(profile: HardwareProfile, work: dict[str, float], steps: int) -> float | None:
    """Compute latency of one inference: ``steps`` x the chip's own time per step, apart from the
    real-time window (None when the chip publishes no per-step compute time)."""
    step, _ = compute_step_s(profile, work)
    return None if step is None else steps * step


def edp_js(energy_j: float | None, delay_s: float | None) -> float | None:
    """Energy-delay product (J s); None when either factor is unknown."""
    return None if energy_j is None or delay_s is None else energy_j * delay_s


def _term_status(profile: HardwareProfile, term: str) -> str:
    """"modelled" (a published figure prices it), "unknown" (the profile says null, or gives no
    figure at all), "in <term>" (folded into another term's constant) or "not applicable"
    (routing on a one-core target: packets between cores are all there is to price)."""
    if term in profile.energy_folded:
        return f"in {profile.energy_folded[term]}"
    if profile.values.get(ENERGY_TERMS[term]) is not None:
        return "modelled"
    return "not applicable" if term == "routing" and profile.values.get("cores") == 1 else "unknown"


def energy_terms(profile: HardwareProfile) -> dict[str, Any]:
    """Which energy terms the profile prices: ``modelled``, ``unknown`` (no published figure: the
    term, the dynamic or static energy it belongs to and every total built on it are unknown) and
    ``folded`` (term -> the term whose constant includes it). A missing figure is never guessed."""
    if profile.kind == "mcu":
        status = {"active": "modelled", "sleep": "unknown" if profile.values.get("sleep_power_w") is None else "modelled"}
    elif "energy_per_cycle_j" in profile.values:  # Xylo: all dynamic work is in the clock cycles
        status = {"cycles": _term_status(profile, "cycles"), "synaptic": "in cycles", "neuron": "in cycles",
                  "routing": "in cycles", "static": _term_status(profile, "static")}
    else:
        status = {t: _term_status(profile, t) for t in ("synaptic", "neuron", "routing", "static")}
    return {"modelled": [t for t, st in status.items() if st == "modelled"],
            "unknown": [t for t, st in status.items() if st == "unknown"],
            "folded": {t: st[3:] for t, st in status.items() if st.startswith("in ")},
            "not_applicable": [t for t, st in status.items() if st == "not applicable"]}


def static_energy_j(static_power_w: float | None, time_s: float, cores_used: int | None,
                    cores: int | None) -> dict[str, float | int | None]:
    """Static energy over ``time_s``, stated twice: for the whole chip(s) the model occupies (a
    model needing more cores than one chip has occupies several) and for the share of the cores it
    actually uses (what a chip shared with other work would attribute to it). None where the
    static power is unknown, or the core counts are."""
    known_cores = cores_used is not None and cores
    fraction = cores_used / cores if known_cores else None
    chips = max(1, math.ceil(cores_used / cores)) if known_cores else 1
    if static_power_w is None:
        return {"chips": chips, "used_core_fraction": fraction, "static_j": None, "static_used_cores_j": None}
    return {"chips": chips, "used_core_fraction": fraction, "static_j": static_power_w * chips * time_s,
            "static_used_cores_j": None if fraction is None else static_power_w * fraction * time_s}


def _sum_known(*parts: float | None) -> float | None:
    return None if any(p is None for p in parts) else float(sum(parts))


def energy_j(profile: HardwareProfile, syn_events: float, neuron_updates: float, route_hops: float,
             time_s: float, inactive_updates: float = 0.0, cycles: float = 0.0,
             cores_used: int | None = None) -> dict[str, Any]:
    """Energy of one inference split into its terms for the given counts and on-time ``time_s``.

    Per-event targets: synaptic events x E_synop + neuron updates x E_neuron + routed packets x
    E_hop; a chip priced per clock cycle (Xylo) takes its dynamic energy from ``cycles``. A term
    whose constant is unknown is None, and so are ``dynamic_j`` and the totals; a folded term is
    0.0 (its energy is in the constant it is folded into). ``static_j`` is the chip static power x
    ``time_s`` (whole chips), ``static_used_cores_j`` its share for ``cores_used`` of the chip's
    cores; ``total_j`` = dynamic + chip static, ``total_used_cores_j`` = dynamic + the share.
    """
    v = profile.values
    status = {t: _term_status(profile, t) for t in ENERGY_TERMS}

    def priced(term: str, count: float) -> float | None:
        st = status[term]
        return count * v[ENERGY_TERMS[term]] if st == "modelled" else None if st == "unknown" else 0.0

    if "energy_per_cycle_j" in v and profile.kind == "neuromorphic":
        terms: dict[str, float | None] = {"synaptic_j": 0.0, "neuron_j": 0.0, "routing_j": 0.0,
                                          "cycles_j": priced("cycles", cycles)}
    else:
        e_neu = priced("neuron", neuron_updates)
        e_inactive = v.get("energy_neuron_update_inactive_j")
        if e_neu is not None and e_inactive is not None and status["neuron"] == "modelled":
            active = max(neuron_updates - inactive_updates, 0.0)
            e_neu = active * v["energy_neuron_update_j"] + inactive_updates * e_inactive
        elif "energy_neuron_update_inactive_j" in v and e_inactive is None and inactive_updates > 0:
            e_neu = None  # inactive updates counted, their price declared unknown: not guessed
        terms = {"synaptic_j": priced("synaptic", syn_events), "neuron_j": e_neu,
                 "routing_j": priced("routing", route_hops)}
    dynamic = _sum_known(*terms.values())
    # the priced terms alone: a lower bound on the dynamic energy when some term is unknown
    priced_dynamic = float(sum(t for t in terms.values() if t is not None))
    static = static_energy_j(v.get("static_power_w"), time_s, cores_used, v.get("cores"))
    total = _sum_known(dynamic, static["static_j"])
    return {**terms, "dynamic_j": dynamic, "dynamic_priced_j": priced_dynamic, "static_power_w": v.get("static_power_w"),
            "static_time_s": float(time_s), "cores_used": cores_used, "cores": v.get("cores"), **static, "total_j": total,
            "total_used_cores_j": _sum_known(dynamic, static["static_used_cores_j"]),
            "total_terms": list(TOTAL_TERMS) if total is not None else []}


def rankable_groups(totals: dict[str, dict[str, Any]]) -> dict[tuple[str, ...], list[str]]:
    """Targets grouped by the terms their total contains (``total_terms``), each group cheapest
    first; a target whose total is unknown, or that does not say what its total contains, is in
    no group. Only totals within one group may be compared or ranked."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, energy in totals.items():
        terms = tuple(sorted(energy.get("total_terms") or ()))
        if energy.get("total_j") is None or not terms:
            continue
        groups.setdefault(terms, []).append(name)
    return {k: sorted(names, key=lambda n: totals[n]["total_j"]) for k, names in groups.items()}


def rank_by_total(totals: dict[str, dict[str, Any]]) -> list[str]:
    """Targets ordered by total energy, cheapest first. A BiospikeError when a total is unknown or
    the totals do not contain the same terms: such totals are not comparable, and no ranking of
    them is produced."""
    groups = rankable_groups(totals)
    ranked = [n for names in groups.values() for n in names]
    unlike = sorted(set(totals) - set(ranked))
    if unlike or len(groups) > 1:
        detail = "; ".join(f"{' + '.join(k)}: {', '.join(v)}" for k, v in groups.items())
        raise BiospikeError("energy totals are not like for like and cannot be ranked"
                            + (f": unknown or unstated terms for {', '.join(unlike)}" if unlike else "")
                            + (f"; groups {detail}" if len(groups) > 1 else ""))
    return ranked


def finite(x: float) -> float | None:
    """``x`` as a float, or None when it is None, NaN or infinite (JSON has no inf)."""
    return None if x is None or not math.isfinite(x) else float(x)


def as_float_dict(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with numpy scalars turned into Python floats (JSON-able)."""
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in d.items()}
