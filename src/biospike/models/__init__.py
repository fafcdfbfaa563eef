"""Networks: the norse-dynamics SNN and its same-size non-spiking baseline; building, initialising,
checkpoints, devices.

Architectures are plain dicts (stored in every checkpoint); ``arch["kind"]`` says which network
class rebuilds it, so every later stage (privacy, attacks, export, simulation) loads any model
with :func:`load_checkpoint`. :func:`make_arch` builds one from shapes and the ``train`` settings
alone (no workflow file needed), :func:`init_model` builds and initialises it from one seed.

A checkpoint (``model.pt``) is ``{"arch": {...}, "state_dict": ..., "meta": {...}}``.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from biospike.device import resolve_device
from biospike.errors import BiospikeError
from biospike.models import ann, snn
from biospike.models.ann import ANN, ANNArch
from biospike.models.fused import surrogate_alpha
from biospike.models.snn import SNN, SNNArch

__all__ = ["ANN", "ANNArch", "NETWORKS", "SNN", "SNNArch", "ann", "auto_input_scale", "batches", "build_model",
           "check_time_constants", "count_parameters", "device_of", "ensemble", "fused", "init_model", "is_spiking",
           "load_checkpoint", "make_arch", "predict_logits", "resolve_device", "save_checkpoint", "snn"]

# network kind -> (module class, architecture class, module with auto_input_scale)
NETWORKS: dict[str, tuple[type[nn.Module], type, Any]] = {"snn": (SNN, SNNArch, snn), "ann": (ANN, ANNArch, ann)}


def _network(kind: str) -> tuple[type[nn.Module], type, Any]:
    try:
        return NETWORKS[kind]
    except KeyError:
        raise BiospikeError(f"unknown network kind {kind!r} (expected one of {', '.join(NETWORKS)})") from None


def build_model(arch: Mapping[str, Any]) -> nn.Module:
    """The network of ``arch["kind"]`` (default ``"snn"``) for an architecture dict, with torch's
    default initialisation from the global RNG (no data-driven step: :func:`init_model`). An unknown
    kind is an error, and so is an unknown key of an SNN architecture."""
    cls, arch_cls, _ = _network(arch.get("kind", "snn"))
    return cls(arch_cls.from_dict(dict(arch)))


def make_arch(kind: str, n_in: int, n_out: int, dt_s: float, settings: Mapping[str, Any] | None = None,
              x_stats: np.ndarray | None = None) -> dict[str, Any]:
    """Architecture dict of a ``kind`` network for ``n_in`` input channels, ``n_out`` classes and
    time step ``dt_s``, from the ``train`` settings (schema defaults for any missing key).

    ``input_scale: auto`` and the SNN's readout gain are computed from ``x_stats`` (N, T, C),
    spike counts of the windows the model will see (pass public windows when they must not depend
    on private data, e.g. for DP training); without ``x_stats`` ``auto`` is an error.
    """
    from biospike.config import section_settings

    cfg = section_settings("train", {k: v for k, v in (settings or {}).items()})
    _network(kind)
    arch: dict[str, Any] = {
        "kind": kind, "n_in": int(n_in), "n_hidden": [int(h) for h in cfg["hidden"]], "n_out": int(n_out),
        "dt_s": float(dt_s), "tau_mem_s": float(cfg["tau_mem_s"]), "readout_tau_mem_s": float(cfg["readout_tau_mem_s"]),
    }
    if kind == "snn":
        arch |= {"tau_syn_s": float(cfg["tau_syn_s"]), "v_th": float(cfg["v_th"]),
                 "readout_tau_syn_s": float(cfg["readout_tau_syn_s"]), "recurrent": bool(cfg["recurrent"]),
                 "surrogate": str(cfg["surrogate"]),
                 "surrogate_alpha": surrogate_alpha(str(cfg["surrogate"]), cfg["surrogate_alpha"]),
                 "impl": str(cfg["impl"]), "neuron": str(cfg["neuron"]), "trainable": list(cfg["trainable"]),
                 "trainable_layers": None if cfg["trainable_layers"] is None else list(cfg["trainable_layers"])}
        if arch["neuron"] == "alif":
            arch |= {"tau_adapt_s": float(cfg["tau_adapt_s"]), "adapt_beta": float(cfg["adapt_beta"])}
        if cfg["front_end"] == "temporal_kernel":
            arch |= {"kernel_steps": int(cfg["temporal_kernel"]["steps"]),
                     "kernel_dilation": int(cfg["temporal_kernel"]["dilation"])}
    check_time_constants(arch)
    scale = cfg["input_scale"]
    if scale == "auto":
        if x_stats is None:
            raise BiospikeError("train.input_scale 'auto' needs windows to compute it from (x_stats)")
        scale = auto_input_scale(x_stats, arch)
    arch["input_scale"] = float(scale)
    if kind == "snn" and x_stats is not None and len(x_stats):
        # the readout gain of init_model, measured once on a reference init (fixed seed, global RNG
        # untouched) so that any build_model(arch) gets it, e.g. the DP trainer's
        with torch.random.fork_rng():
            arch["output_scale"] = float(init_model(arch, x_stats, seed=0).arch.output_scale)
    return arch


def check_time_constants(arch: Mapping[str, Any]) -> None:
    """norse's forward-Euler step decays a state by (1 - dt/tau) per step: with dt > tau the state
    flips sign every step and grows (dt = 2 tau already oscillates forever), so refuse it."""
    dt_s = float(arch["dt_s"])
    keys = ("tau_mem_s", "tau_syn_s", "readout_tau_mem_s", "readout_tau_syn_s", "tau_adapt_s")
    bad = {k: arch[k] for k in keys if k in arch and dt_s > float(arch[k]) * (1 + 1e-9)}
    if bad:
        listed = ", ".join(f"train.{k}={v:g}" for k, v in bad.items())
        raise BiospikeError(
            f"the encoding's time step dt={dt_s:g} s is longer than {listed}: the Euler update of the "
            f"neurons is unstable when dt > tau; raise these time constants to at least {dt_s:g} s "
            f"(per dataset under datasets.<name>.train) or use a finer encode.dt_s")


def auto_input_scale(x: np.ndarray, arch: Mapping[str, Any] | Any, max_windows: int = 256) -> float:
    """The input gain ``input_scale: auto`` gives a ``arch["kind"]`` network on windows ``x``
    (see :func:`biospike.models.snn.auto_input_scale`); absent neuron settings take their defaults."""
    kind = arch.get("kind", "snn") if isinstance(arch, Mapping) else arch.kind
    return float(_network(kind)[2].auto_input_scale(x, arch, max_windows))


def init_model(arch: Mapping[str, Any], x_calib: np.ndarray, seed: int, max_windows: int = 256) -> nn.Module:
    """``build_model(arch)`` with torch seeded by ``derive_seed(seed, "init")``, then the network's
    own data-driven initialisation on ``x_calib`` (a few training windows; DP training passes public
    ones), which also sets the SNN's readout gain unless ``arch`` fixes ``output_scale``."""
    from biospike.config import derive_seed

    arch = dict(arch)
    output_scale = arch.pop("output_scale", None)
    torch.manual_seed(derive_seed(seed, "init"))
    if output_scale is not None:
        arch["output_scale"] = float(output_scale)
    model = build_model(arch)
    calibrate = getattr(model, "calibrate_", None)
    if calibrate is not None and len(x_calib):
        calibrate(x_calib, max_windows, output_scale=output_scale is None)
    return model


def is_spiking(model: nn.Module) -> bool:
    """True if ``model`` (or the module an Opacus wrapper holds) is an :class:`SNN`."""
    return isinstance(getattr(model, "_module", model), SNN)


def count_parameters(model: nn.Module) -> int:
    """Number of scalar parameters (weights and biases) of ``model``."""
    return sum(p.numel() for p in model.parameters())



def device_of(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def batches(x: np.ndarray, batch_size: int):
    """Consecutive float32 CPU tensors of up to ``batch_size`` rows of ``x``, in order (a generator)."""
    for lo in range(0, len(x), batch_size):
        yield torch.as_tensor(np.asarray(x[lo:lo + batch_size]), dtype=torch.float32)


def predict_logits(model: nn.Module, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits (N, n_out) float32 for spike counts x (N, T, C), in eval mode without gradients."""
    device = device_of(model)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for xb in batches(x, batch_size):
            out.append(model(xb.to(device)).float().cpu().numpy())
    model.train(was_training)
    if not out:
        plain = getattr(model, "_module", model)
        return np.zeros((0, int(plain.arch.n_out)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
    """Write ``model`` (its architecture dict and CPU weights; an Opacus wrapper's inner module)
    and ``meta`` to ``path`` atomically, readable by :func:`load_checkpoint`."""
    from biospike.store import atomic_path

    # Opacus wraps modules (GradSampleModule): save the plain module's weights.
    plain = getattr(model, "_module", model)
    payload = {
        "arch": dataclasses.asdict(plain.arch),
        "state_dict": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
        "meta": meta or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from ``model.pt``; returns (model in eval mode, meta)."""
    path = Path(path)
    if not path.is_file():
        raise BiospikeError("checkpoint not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(payload["arch"])
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, ValueError, EOFError, TypeError, pickle.UnpicklingError) as exc:
        raise BiospikeError(f"not a valid biospike checkpoint ({exc})", path) from None
    model.eval()
    return model, payload.get("meta", {})
