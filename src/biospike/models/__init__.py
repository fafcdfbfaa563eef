"""Models: norse SNN and its same-size non-spiking baseline; building and checkpoints.

A checkpoint (``model.pt``) is a dict ``{"arch": {...}, "state_dict": ..., "meta": {...}}``;
``arch["kind"]`` says which class rebuilds it, so every later stage (privacy, attacks, export,
simulation) loads any model with :func:`load_checkpoint`.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biospike.errors import BiospikeError
from biospike.models.ann import ANN, ANNArch
from biospike.models.snn import SNN, SNNArch

__all__ = ["ANN", "ANNArch", "SNN", "SNNArch", "build_model", "load_checkpoint", "save_checkpoint"]


def build_model(arch: dict[str, Any]) -> nn.Module:
    kind = arch.get("kind", "snn")
    if kind == "snn":
        return SNN(SNNArch.from_dict(arch))
    if kind == "ann":
        return ANN(ANNArch.from_dict(arch))
    raise ValueError(f"unknown model kind {kind!r} (expected 'snn' or 'ann')")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any] | None = None) -> None:
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
