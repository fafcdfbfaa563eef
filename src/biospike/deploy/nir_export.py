"""Export a trained :class:`~biospike.models.snn.SNN` to the Neuromorphic Intermediate Representation.

norse 1.1.0's ``to_nir`` is not used: it writes scalar parameters (``nir.write`` then fails),
divides time constants by 1e3 with the default dt, exports LI readouts and recurrent cells as
empty nodes (docs/design.md, known traps). This module builds the graph from NIR's node classes.

Graph (names are stable; the simulator relies on the node types and edges only)::

    input -> [scale] -> fc0 (Affine|Linear) -> lif0 (CubaLIF) [<-> rec0 (Linear)] -> fc1 -> lif1 ...
          -> out (Affine|Linear) -> readout (CubaLI) -> output

A temporal-kernel front end (the tconv kind) adds, per tap of delay k > 0 steps,
``[scale] -> delay0_d<k> (Delay, k dt seconds) -> fc0_d<k> (Linear) -> lif0``; fc0 is the tap of
delay 0 and holds the bias. NIR's Conv1d convolves along an axis of one step's input, not over
time, so a causal kernel over time is written as these delayed projections: the same sum.

How norse's discrete update maps onto NIR's continuous CubaLIF
---------------------------------------------------------------
NIR (nir.CubaLIF)::

    tau_syn dI/dt = -I + w_in * S
    tau_mem dv/dt = (v_leak - v) + r * I          spike when v > v_threshold, then v = v_reset

norse's ``lif_feed_forward_step`` with step ``dt`` and input ``x_t`` (the Linear's output)::

    I_t = I_{t-1} + x_t                            (current jump first)
    v_t = v_{t-1} + dt/tau_mem * (v_leak - v_{t-1} + I_t)
    I_t <- I_t - dt/tau_syn * I_t                  (decay after use)
    z_t = [v_t - v_th > 0];  v_t <- v_reset where z_t

Writing J_t for the jumped current, J_t = (1 - dt/tau_syn) J_{t-1} + x_t, which is the forward
Euler step of the NIR synapse equation when the input S is held for one step and
``w_in = tau_syn / dt``; the membrane step is the forward Euler step of the NIR membrane
equation with ``r = 1``, evaluated with the already-updated current (synapse first, membrane
second). The same convention is used by snnTorch's NIR export (``w_in = tau_syn / dt``).
Time constants are stored in seconds, as float64, exactly as configured; ``dt`` is stored in
the graph metadata (``dt_s``) because NIR nodes are continuous-time. The LI readout is a
``nir.CubaLI`` with the same mapping; the model's logits are the mean over time of its voltage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from biospike.errors import BiospikeError
from biospike.store import SCHEMA_VERSION

__all__ = ["DISCRETISATION", "FORMAT", "IMPORTERS", "cli", "export_nir", "for_importer", "graph_metadata", "nir_refusal",
           "read_nir", "write_nir"]

FORMAT = "biospike-snn-nir/1"
DISCRETISATION = (
    "forward Euler, step dt_s; synaptic current updated first (I_t = (1 - dt/tau_syn) I_{t-1} "
    "+ (w_in dt/tau_syn) S_t), membrane second with the new current (v_t = v_{t-1} + dt/tau_mem "
    "(v_leak - v_{t-1} + r I_t)); spike if v_t > v_threshold, then v_t = v_reset"
)


def _arr(value: float, n: int) -> np.ndarray:
    """Per-neuron float64 array: nir.write fails on scalar datasets."""
    return np.full(n, float(value), dtype=np.float64)


def _weights(linear) -> tuple[np.ndarray, np.ndarray | None]:
    w = linear.weight.detach().cpu().numpy().astype(np.float32)
    b = None if linear.bias is None else linear.bias.detach().cpu().numpy().astype(np.float32)
    return w, b


def nir_refusal(arch: Any) -> str | None:
    """Why NIR cannot express an SNN architecture (None: it can). An adaptive threshold has no
    NIR node: exporting its weights into LIF nodes would be a silently different network."""
    if getattr(arch, "neuron", "lif") != "lif":
        from biospike.kinds import MODEL_KINDS

        reason = MODEL_KINDS["alif"].nir_refusal if arch.neuron == "alif" else None
        return f"hidden neuron {arch.neuron!r}: " + (reason or "no NIR node expresses it")
    return None


def export_nir(model, channel_names: list[str] | None = None, class_names: list[str] | None = None,
               extra_metadata: dict[str, Any] | None = None):
    """Build the NIR graph of ``model`` (an SNN, possibly wrapped by Opacus). Returns ``nir.NIRGraph``."""
    import nir

    snn = getattr(model, "_module", model)
    arch = getattr(snn, "arch", None)
    if arch is None or getattr(arch, "kind", None) != "snn":
        raise BiospikeError("only spiking models (arch kind 'snn') can be exported to NIR")
    refusal = nir_refusal(arch)
    if refusal:
        raise BiospikeError(f"cannot export to NIR: {refusal}")
    dt_s = float(arch.dt_s)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([arch.n_in]))}
    edges: list[tuple[str, str]] = []
    prev = "input"
    if float(arch.input_scale) != 1.0:
        nodes["scale"] = nir.Scale(scale=_arr(arch.input_scale, arch.n_in))
        edges.append(("input", "scale"))
        prev = "scale"

    def projection(name: str, linear, gain: float = 1.0, weight=None, with_bias: bool = True) -> None:
        w, b = _weights(linear)
        if weight is not None:  # one tap of a temporal kernel: its own (H, C) block
            w = weight.detach().cpu().numpy().astype(np.float32)
        if not with_bias:
            b = None
        if gain != 1.0:  # the model scales this projection's output: fold it into the weights
            w = (w * np.float32(gain)).astype(np.float32)
            b = None if b is None else (b * np.float32(gain)).astype(np.float32)
        nodes[name] = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)

    # per-neuron constants: the arch's, or the learned ones (train.trainable)
    constants = snn.neuron_constants() if hasattr(snn, "neuron_constants") else None
    for layer, fc in enumerate(snn.fc):
        width = fc.out_features
        if hasattr(fc, "delays_steps"):  # a temporal kernel: tap k is input -> Delay(k d dt) -> Linear -> lif
            for k, delay in enumerate(fc.delays_steps):
                name = f"fc{layer}" if delay == 0 else f"fc{layer}_d{delay}"
                projection(name, fc, weight=fc.tap_weight(k), with_bias=delay == 0)  # the bias: once, undelayed
                if delay == 0:
                    edges.append((prev, name))  # its edge to lif is every layer's, below
                else:
                    delay_node = f"delay{layer}_d{delay}"
                    nodes[delay_node] = nir.Delay(delay=_arr(delay * dt_s, arch.n_in))
                    edges += [(prev, delay_node), (delay_node, name), (name, f"lif{layer}")]
        else:
            projection(f"fc{layer}", fc)
            edges.append((prev, f"fc{layer}"))
        c = constants[layer] if constants else {"tau_syn_s": _arr(arch.tau_syn_s, width),
                                                "tau_mem_s": _arr(arch.tau_mem_s, width), "v_th": _arr(arch.v_th, width)}
        nodes[f"lif{layer}"] = nir.CubaLIF(
            tau_syn=np.asarray(c["tau_syn_s"], dtype=np.float64),
            tau_mem=np.asarray(c["tau_mem_s"], dtype=np.float64),
            r=_arr(1.0, width),
            v_leak=_arr(arch.v_leak, width),
            v_threshold=np.asarray(c["v_th"], dtype=np.float64),
            v_reset=_arr(arch.v_reset, width),
            w_in=np.asarray(c["tau_syn_s"], dtype=np.float64) / dt_s,
            metadata={"role": "hidden", "layer": layer},
        )
        edges.append((f"fc{layer}", f"lif{layer}"))
        if snn.rec is not None:
            nodes[f"rec{layer}"] = nir.Linear(weight=_weights(snn.rec[layer])[0])
            edges += [(f"lif{layer}", f"rec{layer}"), (f"rec{layer}", f"lif{layer}")]
        prev = f"lif{layer}"

    projection("out", snn.out, float(getattr(arch, "output_scale", 1.0)))
    n_out = snn.out.out_features
    nodes["readout"] = nir.CubaLI(
        tau_syn=_arr(arch.readout_tau_syn_s, n_out),
        tau_mem=_arr(arch.readout_tau_mem_s, n_out),
        r=_arr(1.0, n_out),
        v_leak=_arr(0.0, n_out),
        w_in=_arr(arch.readout_tau_syn_s / dt_s, n_out),
        metadata={"role": "readout"},
    )
    nodes["output"] = nir.Output(output_type=np.array([n_out]))
    edges += [(prev, "out"), ("out", "readout"), ("readout", "output")]

    metadata = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,  # biospike's output schema (docs/outputs.md)
        "dt_s": dt_s,
        "discretisation": DISCRETISATION,
        "readout": "logits = mean over time steps of the CubaLI voltage",
        "channel_names": json.dumps(list(channel_names or [])),
        "class_names": json.dumps(list(class_names or [])),
        "arch": json.dumps({k: v for k, v in vars(arch).items()}, default=str),
    }
    for key, value in (extra_metadata or {}).items():
        metadata[key] = value if isinstance(value, (int, float, str)) else json.dumps(value, default=str)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


# Peer importers and what their variant of the graph changes (docs/hardware.md, "NIR in other
# tools"; tests/unit/test_nir_interop.py runs each importer on it).
IMPORTERS = {
    "norse": "input Scale as a diagonal Linear (norse.torch.from_nir has no Scale); load with "
             "from_nir(graph, dt=<dt_s>); norse drops the CubaLI readout: its output is the last projection",
    "snntorch": "input Scale as a diagonal Linear; readout removed (import_from_nir has no CubaLI): the output "
                "is the last projection, metadata 'readout_removed' holds the readout; time axis rescaled to "
                "snnTorch's fixed step of 1e-4 s; w_in and r re-split (r = tau_mem/dt, w_in = tau_syn/tau_mem), "
                "the same continuous network",
    "rockpool": "input Scale as a diagonal Linear; readout removed (from_nir refuses CubaLI); time constants "
                "chosen so that rockpool's exponential decays equal our forward-Euler ones, r = tau_mem/dt - 1 "
                "(rockpool infers dt from it), incoming rows scaled for its decayed-current update; rockpool's "
                "LIFTorch resets by subtraction (ours to v_reset), so spikes agree until some neuron fires twice",
}
SNNTORCH_DT_S = 1e-4  # snnTorch 1.0's import_from_nir hard-codes this step


def _rows_scaled(node, factor: np.ndarray):
    """An Affine/Linear node whose output rows are multiplied by ``factor`` (one per output)."""
    import nir

    w = (np.asarray(node.weight, np.float64) * factor[:, None]).astype(np.float32)
    if isinstance(node, nir.Affine):
        return nir.Affine(weight=w, bias=(np.asarray(node.bias, np.float64) * factor).astype(np.float32))
    return nir.Linear(weight=w)


def _recurrence_as_subgraphs(nodes: dict, edges: list) -> tuple[dict, list]:
    """Each ``lif <-> rec`` cycle as one 4-node sub-graph (input, CubaLIF, Linear, output): the form
    rockpool's from_nir maps to a recurrent LIFTorch (a flat cycle it runs a whole sequence late)."""
    import nir

    nodes, edges = dict(nodes), list(edges)
    for lif, rec in [(a, b) for a, b in edges if (b, a) in edges and isinstance(nodes.get(a), nir.CubaLIF)]:
        width = np.array([nodes[lif].tau_mem.size])
        nodes[lif] = nir.NIRGraph(
            nodes={"input": nir.Input(input_type=width), "lif": nodes[lif], "rec": nodes.pop(rec),
                   "output": nir.Output(output_type=width)},
            edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")])
        edges = [e for e in edges if e not in ((lif, rec), (rec, lif))]
    return nodes, edges


def for_importer(graph, importer: str):
    """The graph of :func:`export_nir` in the conventions a peer's NIR importer expects.

    NIR nodes are continuous-time; each importer discretises them its own way and supports a
    subset of nodes (``IMPORTERS`` says what each variant changes). The variant is the same
    network as far as the importer's neuron allows; where it cannot be (a node the importer lacks,
    a different reset), the change is recorded in the variant's metadata and in docs/hardware.md,
    never hidden. Returns a new ``nir.NIRGraph``; ``graph`` is not modified.
    """
    import nir

    if importer not in IMPORTERS:
        raise BiospikeError(f"unknown NIR importer {importer!r}; choose one of {sorted(IMPORTERS)}")
    meta = graph_metadata(graph)
    if "importer" in meta:
        raise BiospikeError(f"this graph is already the {meta['importer']!r} variant; convert the plain export")
    if meta.get("format") != FORMAT:
        raise BiospikeError(f"not a biospike NIR graph (format {meta.get('format')!r}, expected {FORMAT!r})")
    delays = [name for name, node in graph.nodes.items() if isinstance(node, nir.Delay)]
    if delays:  # norse 1.1, snnTorch 1.0 and rockpool 3.1 map no nir.Delay node (tested)
        raise BiospikeError(f"{importer}'s NIR importer has no Delay node, and this graph's temporal kernel needs "
                            f"{len(delays)} ({', '.join(delays[:3])}{', ...' if len(delays) > 3 else ''}); "
                            "only biospike's simulator reads it")
    dt_s = float(meta["dt_s"])
    nodes = dict(graph.nodes)
    edges = list(graph.edges)
    new_meta = dict(graph.metadata or {})
    new_meta["importer"] = importer
    new_meta["importer_convention"] = IMPORTERS[importer]
    # not our graph any more: the simulator must not take it for one, and its parameters follow
    # the importer's discretisation, not ours
    new_meta["format"] = f"{FORMAT}+{importer}"
    new_meta["discretisation"] = f"as {importer}'s importer discretises NIR; see importer_convention"
    for name, node in list(nodes.items()):
        if isinstance(node, nir.Scale):  # exact: one non-zero product per row
            nodes[name] = nir.Linear(weight=np.diag(np.asarray(node.scale, np.float32)))
    if importer != "norse":
        readout = nodes.pop("readout")
        new_meta["readout_removed"] = json.dumps({
            "node": "CubaLI", "tau_syn_s": readout.tau_syn.tolist(), "tau_mem_s": readout.tau_mem.tolist(),
            "r": readout.r.tolist(), "w_in": readout.w_in.tolist(), "dt_s": dt_s,
            "logits": "mean over time steps of the CubaLI voltage driven by the output (the last projection)"})
        edges = [e for e in edges if "readout" not in e] + [("out", "output")]
    for name, node in list(nodes.items()):
        if not isinstance(node, nir.CubaLIF):
            continue
        tau_mem, tau_syn = np.asarray(node.tau_mem, np.float64), np.asarray(node.tau_syn, np.float64)
        if importer in ("snntorch", "rockpool") and not (np.allclose(node.v_leak, 0) and np.allclose(node.v_reset, 0)):
            raise BiospikeError(f"the {importer} importer needs v_leak = v_reset = 0 (layer {name!r} has "
                                f"{float(np.mean(node.v_leak))}, {float(np.mean(node.v_reset))})")
        if importer == "snntorch":
            # tau dv/dt = -v + r I with I scaled by 1/c and r by c is the same network; snnTorch
            # needs r = tau_mem/dt and, with its fixed step, time constants in units of 1e-4 s.
            c = tau_mem / dt_s
            k = SNNTORCH_DT_S / dt_s
            nodes[name] = nir.CubaLIF(tau_syn=tau_syn * k, tau_mem=tau_mem * k, r=np.asarray(node.r) * c,
                                      v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset,
                                      w_in=np.asarray(node.w_in) / c, metadata=dict(node.metadata or {}))
        elif importer == "rockpool":
            # rockpool: I = beta (I + W x); v = alpha v + I, with alpha = exp(-dt/tau_mem). Ours:
            # J = (1 - dt/tau_syn) J + W x; v = v + dt/tau_mem (J - v). Equal decays need
            # tau' = -dt / ln(1 - dt/tau), equal membranes rows of W times (dt/tau_mem)/(1 - dt/tau_syn).
            if np.any(dt_s >= tau_mem) or np.any(dt_s >= tau_syn):
                raise BiospikeError(f"the rockpool variant needs every time constant longer than dt = {dt_s:g} s "
                                    f"(layer {name!r}: a decay of 1 - dt/tau = 0 has no exponential equivalent)")
            tau_mem_r = -dt_s / np.log1p(-dt_s / tau_mem)
            tau_syn_r = -dt_s / np.log1p(-dt_s / tau_syn)
            factor = (dt_s / tau_mem) / (1.0 - dt_s / tau_syn)
            for src, dst in edges:
                if dst == name:
                    nodes[src] = _rows_scaled(nodes[src], factor)
            nodes[name] = nir.CubaLIF(tau_syn=tau_syn_r, tau_mem=tau_mem_r, r=tau_mem_r / dt_s - 1.0,
                                      v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset,
                                      w_in=node.w_in, metadata=dict(node.metadata or {}))
    if importer == "rockpool":
        nodes, edges = _recurrence_as_subgraphs(nodes, edges)
    if importer == "snntorch":
        new_meta["dt_s"] = SNNTORCH_DT_S
        new_meta["source_dt_s"] = dt_s
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=new_meta)


def write_nir(path: str | Path, graph) -> None:
    """``nir.write`` through a temporary file renamed into place (never a half-written file)."""
    import nir

    from biospike.store import atomic_path

    with atomic_path(path) as tmp:
        nir.write(tmp, graph)


def read_nir(path: str | Path):
    """``nir.read`` with a clear error; returns the graph."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise BiospikeError("NIR file not found", path)
    try:
        return nir.read(path)
    except (OSError, KeyError, ValueError, AssertionError) as exc:
        raise BiospikeError(f"not a readable NIR graph ({exc})", path) from None


def graph_metadata(graph) -> dict[str, Any]:
    """Decode the graph metadata written by :func:`export_nir` (h5py returns bytes)."""
    out: dict[str, Any] = {}
    for key, value in (graph.metadata or {}).items():
        if isinstance(value, bytes):
            value = value.decode("utf8")
        if isinstance(value, np.generic):
            value = value.item()
        if key in ("channel_names", "class_names", "arch") and isinstance(value, str):
            value = json.loads(value)
        out[key] = value
    return out


def cli(argv: list[str], prog: str = "biospike export") -> int:
    """``biospike export``: a trained SNN checkpoint -> model.nir; returns the exit code."""
    from biospike.cliutil import load_context, stage_parser
    from biospike.models import load_checkpoint
    from biospike.store import provenance

    parser = stage_parser(prog, "Export a trained SNN checkpoint (model.pt) to NIR (model.nir).",
                          names=("dataset", "encoding", "target"))
    parser.add_argument("--model", required=True, help="model.pt of a trained SNN")
    parser.add_argument("--output", required=True, help="model.nir to write")
    parser.add_argument("--for-importer", choices=sorted(IMPORTERS), default=None,
                        help="write the variant a peer's NIR importer reads (docs/hardware.md, 'NIR in other tools'); "
                             "default: biospike's own graph, which the edge simulator reads")
    args = parser.parse_args(argv)
    ctx = load_context(args)
    model, meta = load_checkpoint(args.model)
    if getattr(model.arch, "kind", None) != "snn":
        raise BiospikeError("NIR export needs a spiking model (arch kind 'snn')", args.model)
    if refusal := nir_refusal(model.arch):
        raise BiospikeError(f"cannot export to NIR: {refusal}", args.model)
    prov = provenance({"names": dict(ctx.names)}, inputs=[args.model], seed=ctx.seed)
    graph = export_nir(
        model,
        channel_names=meta.get("channel_names"),
        class_names=meta.get("class_names"),
        extra_metadata={"provenance": prov},
    )
    if args.for_importer:
        graph = for_importer(graph, args.for_importer)
    write_nir(args.output, graph)
    print(f"{prog}: wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return 0
