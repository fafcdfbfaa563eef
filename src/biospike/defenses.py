"""Query-time defenses: an already trained model answers every query through a random perturbation.

A defense is a lever with ``stage: query`` (:mod:`biospike.kinds`): its variant of a trained kind
(``qdropsnn_p0.2``, ``qthrsnn_sd0.1``) is the base kind's weights with the defense recorded in the
checkpoint (``meta["defense"]``), so every stage that loads it answers through the defense. No
model is trained again, and the attacker's reference models are the base kind's: the threat model's
attacker knows the defense and wraps its references in it (the adaptive attack); the same
references without it give the non-adaptive number beside it (docs/attacks.md).

- ``input_dropout`` (lever ``qdrop``): stochastic spike encoding at query time. Each input spike
  is deleted with probability ``p`` (binomial thinning of the counts); with ``jitter_steps`` j > 0
  each step's surviving spikes of a channel then move together by ``d ~ U{-j..j}`` steps, clipped
  at the window's edges.
- ``threshold_noise`` (lever ``qthr``): noisy firing thresholds during inference. Per query window
  every hidden LIF neuron fires at ``v_th (1 + sd e)``, ``e ~ N(0, 1)``, floored at
  ``MIN_THRESHOLD_FRACTION v_th`` so that no threshold reaches zero.

The variant's train stage is :func:`biospike.train.defended_stage`.

Randomness: each defended model owns a ``torch.Generator``; the target's is seeded from the run
seed and the target name, so results reproduce, and the attacker's references get seeds of their
own. A deployed defense must draw from a secret source instead (a replayed perturbation is no
perturbation): :func:`defended` takes ``seed=None`` for OS entropy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from biospike.errors import BiospikeError

__all__ = ["DEFENSES", "MIN_THRESHOLD_FRACTION", "Defended", "defended", "defense_spec", "jitter_steps", "load_defended",
           "thin_counts"]

# the defenses and the setting their lever's value is
DEFENSES = {"input_dropout": "p", "threshold_noise": "sd"}
MIN_THRESHOLD_FRACTION = 0.05


def thin_counts(x: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Delete each spike of the counts ``x`` independently with probability ``p``."""
    if not 0.0 <= p < 1.0:
        raise BiospikeError(f"input dropout p must be in [0, 1), got {p}")
    if p == 0.0:
        return x
    return torch.binomial(x.double(), torch.full_like(x, 1.0 - p, dtype=torch.float64), generator=generator).to(x.dtype)


def jitter_steps(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Move each (window, step, channel) entry of ``x`` (B, T, C) by a uniform shift in
    [-max_shift, max_shift] steps, clipped at the window's edges (spike counts are kept)."""
    if max_shift < 0:
        raise BiospikeError(f"jitter_steps must be >= 0, got {max_shift}")
    if max_shift == 0:
        return x
    steps = x.shape[1]
    shift = torch.randint(-max_shift, max_shift + 1, x.shape, generator=generator)
    where = (torch.arange(steps).view(1, steps, 1) + shift).clamp(0, steps - 1)
    return torch.zeros_like(x).scatter_add_(1, where.to(x.device), x)


class Defended(nn.Module):
    """A trained model that answers through a query-time defense. ``_module`` is the model (the
    wrapper convention of Opacus, which the checkpoint writer and the firing statistics follow)."""

    def __init__(self, model: nn.Module, spec: Mapping[str, Any], generator: torch.Generator) -> None:
        super().__init__()
        self._module = model
        self.defense = dict(spec)
        self.generator = generator
        if self.defense["name"] not in DEFENSES:
            raise BiospikeError(f"unknown defense {self.defense['name']!r} (known: {', '.join(DEFENSES)})")
        if self.defense["name"] == "threshold_noise" and not hasattr(model, "lif_layer"):
            raise BiospikeError(f"threshold noise needs a spiking model, not {type(model).__name__}")

    @property
    def arch(self) -> Any:
        """The defended model's architecture."""
        return self._module.arch

    def forward_trace(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The model's readout trace and hidden activity on ``x`` (B, T, C), through the defense."""
        spec = self.defense
        if spec["name"] == "input_dropout":
            cpu = x.detach().cpu()
            cpu = jitter_steps(thin_counts(cpu, float(spec["p"]), self.generator), int(spec.get("jitter_steps", 0)),
                               self.generator)
            return self._module.forward_trace(cpu.to(x.device))
        widths = self._module.arch.n_hidden
        scales = [(1.0 + float(spec["sd"]) * torch.randn(len(x), h, generator=self.generator,
                                                          dtype=torch.float64)).clamp_min(MIN_THRESHOLD_FRACTION)
                  for h in widths]
        return self._module.forward_trace(x, [s.to(x.device, x.dtype) for s in scales])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, O) through the defense: the readout averaged over the T steps."""
        return self.forward_trace(x)[0].mean(dim=1)


def defended(model: nn.Module, spec: Mapping[str, Any] | None, seed: int | None) -> nn.Module:
    """``model`` answering through the defense ``spec`` (None: ``model`` itself), its randomness
    from ``seed`` (None: OS entropy, never stored)."""
    if not spec:
        return model
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return Defended(getattr(model, "_module", model), spec, generator).eval()


def defense_spec(target: Any, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The defense of a query-lever target (``targets.parse(...)``) with the ``defense`` settings."""
    if target.lever is None or target.lever.stage != "query":
        raise BiospikeError(f"{target.name} is not a query-time defense variant")
    name = (target.lever.values or "").partition(".")[2]  # its values key is the defense's: defense.input_dropout
    if name not in DEFENSES:
        raise BiospikeError(f"lever {target.lever.name!r} names no defense of biospike.defenses")
    spec = {"name": name, DEFENSES[name]: float(target.value)}
    if name == "input_dropout":
        spec["jitter_steps"] = int(settings.get("jitter_steps", 0))
        if not 0.0 <= spec["p"] < 1.0:
            raise BiospikeError(f"{target.name}: input dropout p must be in [0, 1)")
    elif spec["sd"] < 0:
        raise BiospikeError(f"{target.name}: threshold noise sd must be >= 0")
    return spec


def load_defended(path: str | Path, seed: int | None) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`biospike.models.load_checkpoint`, answering through the checkpoint's defense if it
    records one (``meta["defense"]``), its randomness from ``seed``."""
    from biospike.models import load_checkpoint

    model, meta = load_checkpoint(path)
    return defended(model, meta.get("defense"), seed), meta
