"""``biospike simulate``: map, quantize and simulate a model on an edge target -> ``{target}.json``.

Spiking targets take the NIR graph (``--nir``); the float reference is the NIR graph simulated in
float mode (bit-identical to the torch model, tests/unit/test_nir_roundtrip.py). The MCU target
takes the same-size ANN checkpoint (``--model``): dense multiply-accumulates per inference.
:func:`simulate_model` does the same from a model and arrays (no files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from biospike.deploy.hardware import (
    TOTAL_TERMS,
    HardwareProfile,
    compute_per_inference_s,
    compute_step_s,
    edp_js,
    energy_j,
    energy_terms,
    load_profile,
    step_time_s,
    xylo_cycles_per_step,
)
from biospike.errors import BiospikeError
from biospike.metrics import balanced_accuracy, finite

__all__ = ["SIMULATION_KEYS", "ann_macs_per_step", "average_power_w", "cli", "compute_latency", "evaluate_mcu_target",
           "evaluate_snn_target", "fidelity", "mcu_energy_j", "simulate_model", "simulate_stage", "skipped_result",
           "time_course"]

# the deploy settings that change a simulation (the rest say what to simulate)
SIMULATION_KEYS = ("early_exit", "max_test_windows", "real_time", "calibration_windows")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _accuracies(y: np.ndarray, pred: np.ndarray) -> tuple[float | None, float | None]:
    """(accuracy, balanced accuracy) of predicted labels; None without windows. Balanced accuracy
    (mean recall over the classes present) is the score to read on imbalanced sets such as ECG."""
    if not len(y):
        return None, None
    return float(np.mean(pred == y)), balanced_accuracy(y, pred)


def time_course(readout: np.ndarray, y: np.ndarray, scale: float, dt_step_s: float, confidence: float | None) -> dict[str, Any]:
    """Accuracy and balanced accuracy as functions of elapsed steps (logits = running mean of the
    readout), latency to the first correct classification, and the confidence early exit (softmax
    of running-mean logits)."""
    steps = readout.shape[1]
    running = np.cumsum(readout, axis=1) / np.arange(1, steps + 1)[None, :, None]
    pred = running.argmax(axis=2)  # (B, T)
    correct = pred == y[:, None]
    acc = correct.mean(axis=0)
    ever = correct.any(axis=1)
    first = np.where(ever, correct.argmax(axis=1), -1)
    final = float(acc[-1])
    reach = np.flatnonzero(acc >= final - 0.01)
    out: dict[str, Any] = {
        "accuracy_by_step": [round(float(a), 5) for a in acc],
        "balanced_accuracy_by_step": [round(balanced_accuracy(y, pred[:, t]), 5) for t in range(steps)] if len(y) else [],
        "step_s": dt_step_s,
        "first_correct_step_mean": float(first[ever].mean() + 1) if ever.any() else None,
        "first_correct_latency_s": float((first[ever].mean() + 1) * dt_step_s) if ever.any() else None,
        "never_correct_fraction": float(1.0 - ever.mean()),
        "steps_to_final_accuracy_within_1pp": int(reach[0] + 1) if reach.size else steps,
    }
    if confidence is not None:
        prob = _softmax(running * scale)
        confident = prob.max(axis=2) >= confidence
        exit_step = np.where(confident.any(axis=1), confident.argmax(axis=1), steps - 1)
        exit_pred = pred[np.arange(len(y)), exit_step]
        exit_acc, exit_bal = _accuracies(y, exit_pred)
        out["early_exit"] = {
            "confidence": confidence,
            "accuracy": exit_acc,
            "balanced_accuracy": exit_bal,
            "exit_step_mean": float(exit_step.mean() + 1) if len(y) else None,
            "exited_early_fraction": float(confident.any(axis=1).mean()) if len(y) else None,
        }
        out["_exit_step"] = exit_step
    return out


def fidelity(float_trace, int_trace, scale: float, compare_values: bool = True) -> dict[str, Any]:
    """How closely the quantized simulation follows the float one: spike agreement per hidden
    layer, argmax agreement and correlation of the logits (integer readout times ``scale``);
    without ``compare_values`` (a spike-count readout, another quantity than the float model's
    mean voltage) no logit error is reported, only agreement and correlation."""
    per_layer = {}
    for name, ref in float_trace.spikes.items():
        got = int_trace.spikes[name]
        per_layer[name] = {
            "spike_agreement": float(np.mean((got > 0) == (ref > 0))),
            "spike_count_ratio": float(got.sum() / ref.sum()) if ref.sum() else None,
            "float_rate": float(ref.mean()),
            "quantized_rate": float(got.mean()),
        }
    f_logits = float_trace.logits
    q_logits = int_trace.logits * scale
    agree = float(np.mean(f_logits.argmax(1) == q_logits.argmax(1))) if len(f_logits) else None
    denom = np.abs(f_logits).max() or 1.0
    corr = float(np.corrcoef(f_logits.ravel(), q_logits.ravel())[0, 1]) if f_logits.size > 1 and q_logits.std() > 0 else None
    return {
        "spike_agreement": float(np.mean([v["spike_agreement"] for v in per_layer.values()])) if per_layer else None,
        "layers": per_layer,
        "output_argmax_agreement": agree,
        "logit_correlation": corr,
        "logit_max_abs_error_relative": float(np.abs(f_logits - q_logits).max() / denom)
        if f_logits.size and compare_values else None,
    }


def _per_inference(counts: dict[str, np.ndarray], stop: np.ndarray | None = None) -> dict[str, float]:
    out = {}
    for key, arr in counts.items():
        if stop is None:
            out[key] = float(arr.sum(axis=1).mean()) if len(arr) else 0.0
        else:
            mask = np.arange(arr.shape[1])[None, :] <= stop[:, None]
            out[key] = float((arr * mask).sum(axis=1).mean()) if len(arr) else 0.0
    return out


def _work_per_step(profile: HardwareProfile, qnet, trace, x: np.ndarray, per_inf: dict[str, float], steps: int) -> dict[str, float]:
    work = {"events": (per_inf["input_events"] + per_inf["spikes"]) / max(steps, 1), "macs": 0.0, "cycles": 0.0}
    if profile.latency_model == "cycles":
        net = qnet.net
        n_hidden = sum(p.size for p in net.hidden)
        p_in = float(np.mean(x > 0)) if x.size else 0.0
        hid = [trace.spikes[p.name] for p in net.hidden]
        p_hid = float(np.mean(np.concatenate([h.reshape(-1, h.shape[2]) > 0 for h in hid], axis=1))) if hid else 0.0
        rec = [qnet.weight_ints[pr.name] for pr in net.projections if pr.src != "input" and pr.dst != net.readout]
        fanout = sum(np.count_nonzero(w) for w in rec) / max(n_hidden, 1)
        work["cycles"] = xylo_cycles_per_step(net.n_in, n_hidden, net.pop(net.readout).size, p_in, p_hid, fanout)
        work["p_in"], work["p_hidden"], work["hidden_fanout_avg"] = p_in, p_hid, fanout
    return work


SIMULATION_CHUNK = 64  # windows per simulation call: the progress display's unit


def _simulate_in_chunks(simulate, net: Any, x: np.ndarray, desc: str) -> Any:
    """``simulate(net, x)`` over chunks of windows (each window's simulation is independent), with
    a progress display that estimates the time left; the traces joined along the window axis."""
    from biospike.deploy.simulator import Trace
    from biospike.progress import progress

    if len(x) <= SIMULATION_CHUNK:
        return simulate(net, x)
    traces = []
    with progress(total=len(x), desc=desc) as bar:
        for lo in range(0, len(x), SIMULATION_CHUNK):
            traces.append(simulate(net, x[lo:lo + SIMULATION_CHUNK]))
            bar.update(min(SIMULATION_CHUNK, len(x) - lo))
    return Trace(spikes={k: np.concatenate([t.spikes[k] for t in traces]) for k in traces[0].spikes},
                 readout=np.concatenate([t.readout for t in traces]),
                 saturations=sum(t.saturations for t in traces))


def evaluate_snn_target(net, profile: HardwareProfile, x: np.ndarray, y: np.ndarray, x_calib: np.ndarray,
                        cfg: dict[str, Any]) -> dict[str, Any]:
    """Quantize, map and simulate ``net`` (from NIR) on a neuromorphic ``profile``; all metrics."""
    from biospike.deploy.mapping import map_network
    from biospike.deploy.quantize import calibration_bounds, quantize_network
    from biospike.deploy.simulator import (
        count_events,
        events_by_layer,
        simulate_float,
        simulate_int,
    )

    if profile.neuron_model.get("readout") == "spikes" and not len(x_calib):
        raise BiospikeError(f"{profile.name!r} decodes spike counts, whose offset and threshold come from calibration "
                            "windows: pass x_calib (simulate_model) or keep deploy.calibration_windows > 0")
    qnet = quantize_network(net, profile, calibration_bounds(net, x_calib) if len(x_calib) else None)
    mapping = map_network(net, profile, qnet.weight_ints)
    f_trace = _simulate_in_chunks(simulate_float, net, x, f"simulate float on {profile.name}")
    q_trace = _simulate_in_chunks(simulate_int, qnet, x, f"simulate {profile.name} (integer)")
    readout_q = qnet.pops[net.readout]
    # a spike-count readout's logit (spikes per step) times its threshold is its drive per step
    spike_count = readout_q.get("readout") == "spike_count"
    readout_lsb = readout_q["sigma"] * (float(np.max(readout_q["threshold"])) if spike_count else 1.0)
    counts = count_events(net, q_trace, x, weights=qnet.weight_ints, dest_cores=mapping.dest_packets,
                          hidden_delay=bool(qnet.neuron_model["hidden_delay"]), splitters=mapping.splitters)
    steps = x.shape[1]
    dt = net.dt_s
    per_inf = _per_inference(counts)
    work = _work_per_step(profile, qnet, q_trace, x, per_inf, steps)
    step_s, how = step_time_s(profile, dt, cfg["real_time"], work)
    window_s = steps * dt
    latency_s = steps * step_s
    ee = cfg["early_exit"]
    course = time_course(q_trace.readout, y, readout_lsb, step_s, ee["confidence"] if ee["enabled"] else None)
    exit_step = course.pop("_exit_step", None)
    f_acc, f_bal = _accuracies(y, f_trace.logits.argmax(1))
    q_acc, q_bal = _accuracies(y, q_trace.logits.argmax(1))
    # static energy over the inference's on-time (the window in real-time mode), whole chip and
    # the share of the cores the mapping uses
    energy = energy_j(profile, per_inf["syn_events"], per_inf["neuron_updates"], per_inf["routed"], latency_s,
                      cycles=work["cycles"] * steps, cores_used=mapping.cores_used)
    fast_step, _ = compute_step_s(profile, work)
    compute_s = compute_per_inference_s(profile, work, steps)
    # the same inference run back to back at the chip's own speed: static power over the compute
    # latency only, the energy the energy-delay product is taken on
    fast = None if compute_s is None else energy_j(
        profile, per_inf["syn_events"], per_inf["neuron_updates"], per_inf["routed"], compute_s,
        cycles=work["cycles"] * steps, cores_used=mapping.cores_used)
    result: dict[str, Any] = {
        "model": "snn",
        "fits": mapping.fits,
        "reasons": mapping.reasons,
        "cores_used": mapping.cores_used,
        "mapping": mapping.details,
        "accuracy": {"float": f_acc, "quantized": q_acc, "n_windows": int(len(y))},
        "balanced_accuracy": {"float": f_bal, "quantized": q_bal, "n_windows": int(len(y))},
        "fidelity": fidelity(f_trace, q_trace, readout_lsb, compare_values=not spike_count),
        "readout": {"decoding": "spike_count" if spike_count else "membrane_mean",
                    "threshold_int": int(np.max(readout_q["threshold"])) if spike_count else None,
                    "offset_int_per_step": int(readout_q["readout_offset"]) if spike_count else None},
        "quantization": {**qnet.summary(), "state_saturations": q_trace.saturations},
        "per_inference": {"syn_events": per_inf["syn_events"], "neuron_updates": per_inf["neuron_updates"],
                          "spikes": per_inf["spikes"], "routed_packet_hops": per_inf["routed"],
                          "input_events": per_inf["input_events"]},
        "latency": {"steps": steps, "dt_s": dt, "window_s": window_s, "step_s": step_s, "how": how,
                    "per_inference_s": latency_s, "work_per_step": work, "real_time": cfg["real_time"],
                    **compute_latency(fast_step, compute_s, window_s)},
        "energy": {**energy, "per_inference_j": energy["total_j"], "terms": energy_terms(profile)},
        "per_layer": _per_layer(profile, events_by_layer(net, q_trace, x, weights=qnet.weight_ints,
                                                         dest_cores=mapping.dest_packets,
                                                         hidden_delay=bool(qnet.neuron_model["hidden_delay"]))),
        "accuracy_vs_time": course,
    }
    _derived(result, energy, window_s, per_inf["spikes"], compute_s, None if fast is None else fast["total_j"])
    if exit_step is not None:
        per_exit = _per_inference(counts, exit_step)
        t_exit = (float(exit_step.mean()) + 1) * step_s
        e_exit = energy_j(profile, per_exit["syn_events"], per_exit["neuron_updates"], per_exit["routed"], t_exit,
                          cycles=work["cycles"] * (float(exit_step.mean()) + 1), cores_used=mapping.cores_used)
        result["early_exit"] = {**course["early_exit"], "time_to_decision_s": t_exit,
                                "energy_per_inference_j": e_exit["total_j"], "dynamic_j": e_exit["dynamic_j"],
                                "static_j": e_exit["static_j"], "syn_events": per_exit["syn_events"]}
        result["latency"]["time_to_decision_s"] = t_exit
    else:
        result["latency"]["time_to_decision_s"] = latency_s
    return result


def _per_layer(profile: HardwareProfile, layers: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Each layer's counts per inference with the dynamic energy they cost on ``profile``
    (None where the constant is unknown; a chip priced per clock cycle has no per-layer split)."""
    out = {}
    for name, c in layers.items():
        if c["kind"] == "projection":
            e = energy_j(profile, c["syn_events"], 0.0, c["routed"], 0.0)
            out[name] = {**c, "synaptic_j": e["synaptic_j"], "routing_j": e["routing_j"]}
        else:
            e = energy_j(profile, 0.0, c["neuron_updates"], 0.0, 0.0)
            out[name] = {**c, "neuron_j": e["neuron_j"]}
    return out


def compute_latency(compute_step_s: float | None, compute_per_inference_s: float | None,
                    window_s: float) -> dict[str, float | bool | None]:
    """Compute latency apart from the real-time window: the chip's own time per step and per
    inference (None when it publishes none), and their ratio to the window (below 1: the chip
    keeps up with real time and idles for the rest of each window)."""
    return {"compute_step_s": compute_step_s, "compute_per_inference_s": compute_per_inference_s,
            "compute_fraction_of_window": (None if compute_per_inference_s is None or window_s <= 0
                                           else compute_per_inference_s / window_s),
            "compute_latency_known": compute_per_inference_s is not None}


def average_power_w(dynamic_j: float | None, static_w: float | None, chips: int, window_s: float,
                    static_fraction: float = 1.0) -> float | None:
    """Average power with one inference per window: its dynamic energy spread over the window
    plus the static power of the chips for ``static_fraction`` of the time (1: a neuromorphic chip
    stays powered; an MCU sleeps only while not computing, its run-mode figure covering the rest);
    None when either part is unknown."""
    if dynamic_j is None or static_w is None or window_s <= 0:
        return None
    return dynamic_j / window_s + static_w * chips * static_fraction


def _derived(result: dict[str, Any], energy: dict[str, Any], window_s: float, spikes: float,
             compute_latency_s: float | None, compute_total_j: float | None, static_fraction: float = 1.0) -> None:
    """Power, throughput and the per-spike and energy-delay figures from a result's energy."""
    total_j = energy["total_j"]
    result["power"] = {
        "average_at_real_time_w": average_power_w(energy["dynamic_j"], energy["static_power_w"], energy["chips"], window_s,
                                                  static_fraction),
        "static_w": energy["static_power_w"],
        "static_power_known": energy["static_power_w"] is not None,
    }
    # as fast as the chip computes (back-to-back inferences), independent of the real-time setting
    result["throughput"] = {
        "inferences_per_s": 1.0 / compute_latency_s if compute_latency_s else None,
        "compute_latency_s": compute_latency_s,
        "keeps_up_with_real_time": None if compute_latency_s is None else compute_latency_s <= window_s * (1 + 1e-9),
    }
    # EDP on the compute latency: the window is set by the input, not by the chip
    result["energy"]["total_at_compute_latency_j"] = compute_total_j
    result["energy"]["edp_compute_js"] = edp_js(compute_total_j, compute_latency_s)
    result["energy"]["per_spike_j"] = total_j / spikes if total_j is not None and spikes > 0 else None


def ann_macs_per_step(arch) -> float:
    """Dense MACs of the ANN baseline per time step: every Linear, plus 2 MACs per leaky unit."""
    sizes = [arch.n_in, *arch.n_hidden, arch.n_out]
    linear = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return float(linear + 2 * (sum(arch.n_hidden) + arch.n_out))


def evaluate_mcu_target(model, profile: HardwareProfile, x: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> dict[str, Any]:
    """The same-size ANN on an MCU: dense MACs per inference x energy per MAC (+ sleep power)."""
    import copy

    import torch

    arch = model.arch
    v = profile.values
    steps = x.shape[1]
    dt = float(arch.dt_s)
    macs = ann_macs_per_step(arch) * steps
    xt = torch.as_tensor(np.asarray(x, np.float32))
    with torch.no_grad():
        f_logits = model(xt).numpy()
        qmodel = copy.deepcopy(model)
        for mod in qmodel.modules():
            if isinstance(mod, torch.nn.Linear):  # symmetric per-layer int8 weights (CMSIS-NN q7 style)
                scale = mod.weight.abs().max() / 127.0
                if scale > 0:
                    mod.weight.copy_(torch.round(mod.weight / scale).clamp(-127, 127) * scale)
        q_logits = qmodel(xt).numpy()
    f_acc, f_bal = _accuracies(y, f_logits.argmax(1))
    q_acc, q_bal = _accuracies(y, q_logits.argmax(1))
    step_macs = ann_macs_per_step(arch)
    step_s, how = step_time_s(profile, dt, cfg["real_time"], {"macs": step_macs, "cycles": 0, "events": 0})
    compute_step, _ = compute_step_s(profile, {"macs": step_macs, "cycles": 0, "events": 0})
    compute_s = macs * v["cycles_per_mac"] / v["clock_hz"]
    latency_s = steps * step_s if cfg["real_time"] else compute_s
    window_s = steps * dt
    energy = mcu_energy_j(macs * v["cycles_per_mac"], v["energy_per_cycle_j"], v.get("sleep_power_w"), compute_s, latency_s)
    n_params = sum(p.numel() for p in model.parameters())
    reasons = []
    if "flash_bytes" in v and n_params > v["flash_bytes"]:
        reasons.append(f"does not fit: flash (int8 weights) needs {n_params} bytes, target has {v['flash_bytes']}")
    state_bytes = 4 * (arch.n_in + sum(arch.n_hidden) * 2 + arch.n_out * 2)
    if "ram_bytes" in v and state_bytes > v["ram_bytes"]:
        reasons.append(f"does not fit: RAM (float32 state) needs {state_bytes} bytes, target has {v['ram_bytes']}")
    keeps_up = step_macs * v["cycles_per_mac"] / v["clock_hz"] <= dt
    if cfg["real_time"] and not keeps_up:
        reasons.append(f"does not fit: real-time compute per step needs {step_macs * v['cycles_per_mac'] / v['clock_hz']:.3g} s, "
                       f"time step is {dt:g} s")
    result: dict[str, Any] = {
        "model": "ann",
        "fits": not reasons,
        "reasons": reasons,
        "cores_used": 1,
        "accuracy": {"float": f_acc, "quantized": q_acc,
                     "quantized_note": "int8 weights (per-layer symmetric), float activations",
                     "n_windows": int(len(y))},
        "balanced_accuracy": {"float": f_bal, "quantized": q_bal, "n_windows": int(len(y))},
        "fidelity": {"output_argmax_agreement": float(np.mean(f_logits.argmax(1) == q_logits.argmax(1))) if len(y) else None},
        "per_inference": {"macs": macs, "params": n_params},
        "latency": {"steps": steps, "dt_s": dt, "window_s": window_s, "step_s": step_s, "how": how,
                    "per_inference_s": latency_s, "time_to_decision_s": latency_s, "real_time": cfg["real_time"],
                    **compute_latency(compute_step, compute_s, window_s)},
        "energy": {**energy, "per_inference_j": energy["total_j"], "terms": energy_terms(profile),
                   "note": "dynamic: run-mode energy per cycle, which includes the core's static share while "
                           "computing; static: sleep power for the rest of the on-time"},
    }
    # back to back the MCU never sleeps: the run-mode energy is all there is
    _derived(result, energy, window_s, 0.0, compute_s, energy["dynamic_j"],
             static_fraction=max(window_s - compute_s, 0.0) / window_s if window_s > 0 else 0.0)
    return result


def mcu_energy_j(cycles: float, energy_per_cycle_j: float, sleep_power_w: float | None, compute_s: float,
                 on_time_s: float) -> dict[str, Any]:
    """An MCU's energy for one inference: run-mode energy of its clock cycles (dynamic; the
    published run-mode figure includes the core's static share while computing) and sleep power
    for the rest of the on-time (static). One core: its share is the whole chip."""
    active_j = cycles * energy_per_cycle_j
    idle_s = max(on_time_s - compute_s, 0.0)
    static_j = 0.0 if idle_s == 0.0 else None if sleep_power_w is None else sleep_power_w * idle_s
    total_j = None if static_j is None else active_j + static_j
    return {"active_j": active_j, "dynamic_j": active_j, "dynamic_priced_j": active_j, "static_power_w": sleep_power_w,
            "static_time_s": idle_s, "cores_used": 1, "cores": 1, "chips": 1, "used_core_fraction": 1.0,
            "static_j": static_j, "static_used_cores_j": static_j, "total_j": total_j, "total_used_cores_j": total_j,
            "total_terms": list(TOTAL_TERMS) if total_j is not None else []}


def simulate_model(model, profile: HardwareProfile | str | Path | dict[str, Any], x: np.ndarray, y: np.ndarray,
                   x_calib: np.ndarray | None = None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cost a trained model on one edge target from arrays (no files): the record of
    ``{target}.json`` without its provenance, test-window selection and hardware summary.

    A neuromorphic profile runs an SNN (exported to NIR in memory, quantized, mapped, simulated);
    an MCU profile runs the same-size ANN.

    Parameters
    ----------
    model : a trained SNN or ANN (``train.fit(...).model`` or ``models.load_checkpoint``).
    profile : a :class:`HardwareProfile`, its dict, a profile YAML path, or the name of one in
        ``config/hardware/`` (``loihi2``, ``xylo_audio2``, ``cortex_m4``, ...).
    x, y : (N, T, C) spike counts and (N,) class indices of the windows to simulate.
    x_calib : training windows that size the integer state ranges (default: none, weights only).
    settings : the config's ``deploy`` section (``early_exit``, ``real_time``; schema defaults).
    """
    from biospike.config import section_settings
    from biospike.deploy.hardware import resolve_profile

    cfg_all = section_settings("deploy", settings)
    cfg = {k: cfg_all[k] for k in SIMULATION_KEYS}
    profile = resolve_profile(profile)
    x = np.asarray(x)
    y = np.asarray(y, dtype=np.int64)
    if x.ndim != 3 or len(x) != len(y):
        raise BiospikeError(f"x must be (windows, steps, channels) with one label per window, got {x.shape} and {y.shape}")
    arch = getattr(getattr(model, "_module", model), "arch", None)
    kind = getattr(arch, "kind", None)
    if profile.kind == "mcu":
        if kind != "ann":
            raise BiospikeError(f"the MCU target {profile.name!r} runs the ANN baseline, not a {kind!r} model")
        return {"target": profile.name, "kind": profile.kind, **finite(evaluate_mcu_target(model, profile, x, y, cfg))}
    if kind != "snn":
        raise BiospikeError(f"the neuromorphic target {profile.name!r} runs a spiking model (kind 'snn'), not {kind!r}")
    from biospike.deploy.nir_export import export_nir
    from biospike.deploy.simulator import network_from_nir

    net = network_from_nir(export_nir(model))
    calib = np.zeros((0, *x.shape[1:]), dtype=x.dtype) if x_calib is None else np.asarray(x_calib)
    result = evaluate_snn_target(net, profile, x, y, calib, cfg)
    from biospike.deploy.neurobench import neurobench_metrics

    result["neurobench"] = neurobench_metrics(model, x, y)
    return {"target": profile.name, "kind": profile.kind, **finite(result), "calibration_windows": int(len(calib))}


def _select(idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    idx = np.sort(np.asarray(idx, np.int64))
    if n is None or len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))


def _checkpoint_name(model_path: str) -> str | None:
    """The target name a checkpoint recorded (``meta["model"]``, else its network kind)."""
    import torch

    try:
        payload = torch.load(model_path, map_location="cpu", weights_only=True)
        return payload.get("meta", {}).get("model") or payload.get("arch", {}).get("kind")
    except Exception:  # noqa: BLE001 -- an unreadable checkpoint is reported where it is loaded
        return None


def _nir_refusal_of(model) -> str | None:
    """Why the model's network cannot be exported to NIR (None: it can)."""
    from biospike.deploy.nir_export import nir_refusal

    return nir_refusal(model.arch) if getattr(model.arch, "kind", None) == "snn" else None


def skipped_result(reason: str) -> dict[str, Any]:
    """The deploy record of a model the edge stage does not run: it does not fit, for ``reason``;
    every number is unknown (the report keeps only fits and reasons of such a record)."""
    return {"fits": False, "model": "snn", "skipped": reason, "reasons": [reason],
            "accuracy": {"float": None, "quantized": None}, "balanced_accuracy": {"float": None, "quantized": None},
            "energy": {"per_inference_j": None, "dynamic_j": None, "static_j": None, "total_j": None}}


def simulate_stage(ctx: Any, model_path: str, nir_path: str | None, spikes_path: str,
                   hardware_path: str) -> dict[str, Any]:
    """The ``simulate`` stage: files in, the ``{target}.json`` record out (a seeded subset of the
    test split, ``deploy.max_test_windows``; calibration on training windows)."""
    from biospike.models import load_checkpoint
    from biospike.store import provenance, read_spikes

    cfg = {k: ctx["deploy"][k] for k in SIMULATION_KEYS}
    profile = load_profile(hardware_path)
    spikes = read_spikes(spikes_path)
    names = {"dataset": ctx.name("dataset", spikes.dataset), "encoding": ctx.name("encoding", spikes.encoding),
             "target": ctx.name("target", _checkpoint_name(model_path))}
    # one seed per model, not per hardware: every target sees the same test and calibration windows
    seed = ctx.derive_seed("simulate", names["dataset"], names["encoding"], names["target"])
    test = spikes.splits.get("test")
    if test is None:
        raise BiospikeError("spikes file has no test split", spikes_path)
    idx = _select(test, cfg["max_test_windows"], seed)
    x = spikes.spikes[idx]
    y = spikes.labels[idx]
    inputs = [model_path, spikes_path, hardware_path]
    model, _ = load_checkpoint(model_path)  # once: the refusal, the MCU run and NeuroBench read it
    refusal = _nir_refusal_of(model) if profile.kind != "mcu" else None
    if refusal:
        result = skipped_result(f"not exported to NIR: {refusal}")
    elif profile.kind == "mcu":
        if model.arch.kind != "ann":
            raise BiospikeError(f"the MCU target {profile.name!r} runs the ANN baseline: pass an ANN model.pt", model_path)
        result = evaluate_mcu_target(model, profile, x, y, cfg)
    else:
        from biospike.deploy.nir_export import read_nir
        from biospike.deploy.simulator import network_from_nir

        if not nir_path:
            raise BiospikeError(f"target {profile.name!r} needs --nir (the exported model.nir)")
        inputs.append(nir_path)
        net = network_from_nir(read_nir(nir_path))
        if abs(net.dt_s - spikes.dt_s) > 1e-12:
            raise BiospikeError(f"NIR dt_s {net.dt_s} differs from the spikes' dt_s {spikes.dt_s}", nir_path)
        if net.n_in != x.shape[2]:
            raise BiospikeError(f"NIR graph has {net.n_in} inputs, spikes have {x.shape[2]} channels", nir_path)
        train = spikes.splits.get("train", np.zeros(0, np.int64))
        calib = _select(train, cfg["calibration_windows"], seed + 1)
        result = evaluate_snn_target(net, profile, x, y, spikes.spikes[calib], cfg)
        result["calibration_windows"] = int(len(calib))
        from biospike.deploy.neurobench import neurobench_metrics

        result["neurobench"] = neurobench_metrics(model, x, y)
    result = {
        "target": profile.name,
        "title": profile.title,
        "kind": profile.kind,
        **result,
        "test_windows": {"selected": int(len(idx)), "of": int(len(test))},
        "settings": cfg,
        "hardware": profile.summary(),
        "provenance": provenance({"deploy": ctx["deploy"], **names}, inputs=inputs, seed=seed),
    }
    return finite(result)


def cli(argv: list[str], prog: str = "biospike simulate") -> int:
    """``biospike simulate``: parse ``argv``, run :func:`simulate_stage`, write the JSON; exit code."""
    from biospike.cliutil import load_context, stage_parser
    from biospike.config import seed_everything
    from biospike.store import write_json

    parser = stage_parser(prog, "Map, quantize and simulate a model on an edge-target profile.", sections=("deploy",),
                          names=("dataset", "encoding", "target"))
    parser.add_argument("--model", required=True, help="model.pt (the SNN, or the ANN for an MCU profile)")
    parser.add_argument("--nir", help="model.nir exported from the SNN (spiking targets)")
    parser.add_argument("--spikes", required=True, help="spikes.h5 of the dataset/encoding")
    parser.add_argument("--hardware", required=True, help="config/hardware/<target>.yaml")
    parser.add_argument("--output", required=True, help="<target>.json to write")
    args = parser.parse_args(argv)
    ctx = load_context(args)
    seed_everything(ctx.root_seed(), threads=args.threads)
    for path in (args.model, args.spikes, args.hardware):
        if not Path(path).is_file():
            raise BiospikeError("file not found", path)
    result = simulate_stage(ctx, args.model, args.nir, args.spikes, args.hardware)
    write_json(args.output, result)
    acc, bal = result["accuracy"]["quantized"], result["balanced_accuracy"]["quantized"]
    total = result["energy"]["per_inference_j"]
    print(f"{prog}: {result['target']}: fits={result['fits']} quantized accuracy={acc} balanced accuracy={bal} "
          f"energy/inference={'unknown' if total is None else f'{total:.3g} J'} -> {args.output}")
    return 0
