"""Export a trained :class:`~biospike.models.snn.SNN` to the Neuromorphic Intermediate Representation.

norse 1.1.0's ``to_nir`` is not used: it writes scalar parameters (``nir.write`` then fails),
divides time constants by 1e3 with the default dt, exports LI readouts and recurrent cells as
empty nodes (docs/design.md, known traps). This module builds the graph from NIR's node classes.

Graph (names are stable; the simulator relies on the node types and edges only)::

    input -> [scale] -> fc0 (Affine|Linear) -> lif0 (CubaLIF) [<-> rec0 (Linear)] -> fc1 -> lif1 ...
          -> out (Affine|Linear) -> readout (CubaLI) -> output

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

__all__ = ["DISCRETISATION", "FORMAT", "cli", "export_nir", "graph_metadata", "nir_refusal", "read_nir", "write_nir"]

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

    def projection(name: str, linear, gain: float = 1.0) -> None:
        w, b = _weights(linear)
        if gain != 1.0:  # the model scales this projection's output: fold it into the weights
            w = (w * np.float32(gain)).astype(np.float32)
            b = None if b is None else (b * np.float32(gain)).astype(np.float32)
        nodes[name] = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)

    # per-neuron constants: the arch's, or the learned ones (train.trainable)
    constants = snn.neuron_constants() if hasattr(snn, "neuron_constants") else None
    for layer, fc in enumerate(snn.fc):
        width = fc.out_features
        projection(f"fc{layer}", fc)
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
        edges += [(prev, f"fc{layer}"), (f"fc{layer}", f"lif{layer}")]
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
    write_nir(args.output, graph)
    print(f"{prog}: wrote {args.output} ({len(graph.nodes)} nodes, {len(graph.edges)} edges)")
    return 0
