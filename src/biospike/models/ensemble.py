"""K networks of one recipe trained together: weights stacked along a model axis, one time loop.

A membership-inference attack needs many reference models (LiRA: 64-256) that differ only in
their training subset, initialisation and data order. Trained one by one, each pays the Python
and autograd overhead of every time step on a small batch; stacked, the K members' batches are
concatenated along the batch axis and every hidden layer's neuron dynamics run as one call
(:class:`biospike.models.fused.LIFScan` for the SNN, the blocked leaky filter for the ANN), whose
cost is dominated by arithmetic instead of overhead.

What stays per member, so that member k computes exactly what a lone network would (the test
compares both to float tolerance): its own ``nn.Linear`` product on its own rows (a view into the
stacked weight), its input and readout gains, its loss with its own class weights, and its Adam
state and step count (:class:`MaskedAdam` skips members that have no batch left in an epoch or
have stopped early). The neuron dynamics are row-wise, so concatenating rows changes nothing.

Members must share the dynamics (time constants, threshold, sizes); the gains may differ.
Recurrent SNNs step a recurrent weight inside the time loop and are not stackable here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ENSEMBLE_FORMAT", "MAX_STACK_ELEMENTS", "MEMBER_FIELDS", "MaskedAdam", "StackedNetwork", "load_members",
           "member_batches", "save_members", "stack_groups", "stackable"]

# per-member architecture fields that may differ (data-driven gains); everything else must match
MEMBER_FIELDS = ("input_scale", "output_scale")


def _arch_dict(model: nn.Module) -> dict[str, Any]:
    return dataclasses.asdict(getattr(model, "_module", model).arch)


def stackable(models: Sequence[nn.Module]) -> str | None:
    """None if ``models`` can train as one stack, else the reason they cannot."""
    if not models:
        return "no members"
    if any(getattr(m, "defense", None) is not None for m in models):
        return "members answer through a query-time defense (biospike.defenses), each with its own randomness"
    archs = [_arch_dict(m) for m in models]
    shared = [{k: v for k, v in a.items() if k not in MEMBER_FIELDS} for a in archs]
    if any(s != shared[0] for s in shared[1:]):
        return "members differ in more than their input and readout gains"
    if shared[0].get("recurrent"):
        return "recurrent SNN layers step their own weights inside the time loop"
    if shared[0].get("trainable"):
        return "learned per-neuron constants are each member's own (the stack shares one set of dynamics)"
    proto = models[0]
    if not (hasattr(proto, "hidden_layer") and hasattr(proto, "readout")):
        return f"{type(proto).__name__} exposes no row-wise hidden_layer/readout dynamics"
    return None


class StackedNetwork(nn.Module):
    """K networks with the same dynamics: ``fc{l}_weight`` (K, H_out, H_in), ``fc{l}_bias`` (K, H_out),
    ``out_weight``, ``out_bias``; the dynamics come from member 0 (a prototype with no trainable use)."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        reason = stackable(members)
        if reason is not None:
            raise ValueError(f"cannot stack these networks: {reason}")
        self.archs = [_arch_dict(m) for m in members]
        self.proto = members[0]
        self.n_layers = len(self.proto.fc)
        self.has_bias = self.proto.out.bias is not None
        for layer in range(self.n_layers):
            self.register_parameter(f"fc{layer}_weight", nn.Parameter(torch.stack([m.fc[layer].weight.detach() for m in members]).clone()))
            if self.has_bias:
                self.register_parameter(f"fc{layer}_bias", nn.Parameter(torch.stack([m.fc[layer].bias.detach() for m in members]).clone()))
        self.register_parameter("out_weight", nn.Parameter(torch.stack([m.out.weight.detach() for m in members]).clone()))
        if self.has_bias:
            self.register_parameter("out_bias", nn.Parameter(torch.stack([m.out.bias.detach() for m in members]).clone()))
        for p in self.proto.parameters():
            p.requires_grad_(False)
        self.input_scale = [float(a["input_scale"]) for a in self.archs]
        self.output_scale = [float(a.get("output_scale", 1.0)) for a in self.archs]
        # a temporal-kernel front end (models.snn.TemporalKernel) is a Linear on the delay line
        first = self.proto.fc[0]
        self.kernel = (first.kernel_steps, first.dilation) if hasattr(first, "delays_steps") else None

    def _fc_key(self, layer: int) -> str:
        """The lone network's state_dict prefix of hidden projection ``layer``."""
        return "fc.0.taps" if layer == 0 and self.kernel else f"fc.{layer}"

    @property
    def width(self) -> int:
        """The widest layer (hidden or readout): what sizes the stacked tensors."""
        return max([int(getattr(self, f"fc{layer}_weight").shape[1]) for layer in range(self.n_layers)]
                   + [int(self.out_weight.shape[1])])

    @property
    def n_members(self) -> int:
        """K, the number of stacked networks."""
        return len(self.archs)

    def _linear(self, name: str, k: int, h: torch.Tensor) -> torch.Tensor:
        bias = getattr(self, f"{name}_bias")[k] if self.has_bias else None
        return F.linear(h, getattr(self, f"{name}_weight")[k], bias)

    def forward_members(self, members: Sequence[int], xs: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """Per member k in ``members``, on its own windows ``xs[i]`` (B_k, T, C): readout voltages
        (B_k, T, O) and its hidden activity per layer, as the lone network's ``forward_trace``."""
        sizes = [int(x.shape[0]) for x in xs]
        h = [x * self.input_scale[k] for k, x in zip(members, xs, strict=True)]
        if self.kernel:
            from biospike.models.snn import delay_embed

            h = [delay_embed(hk, *self.kernel) for hk in h]
        hidden: list[list[torch.Tensor]] = [[] for _ in members]
        for layer in range(self.n_layers):
            current = torch.cat([self._linear(f"fc{layer}", k, hk) for k, hk in zip(members, h, strict=True)])
            h = list(self.proto.hidden_layer(current, layer).split(sizes))
            for i, hk in enumerate(h):
                hidden[i].append(hk)
        currents = []
        for k, hk in zip(members, h, strict=True):
            cur = self._linear("out", k, hk)
            if self.output_scale[k] != 1.0:
                cur = cur * self.output_scale[k]
            currents.append(cur)
        volts = list(self.proto.readout(torch.cat(currents)).split(sizes))
        return volts, hidden

    def member_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as a lone network's ``state_dict``."""
        state = {}
        for layer in range(self.n_layers):
            state[f"{self._fc_key(layer)}.weight"] = getattr(self, f"fc{layer}_weight")[k].detach().clone()
            if self.has_bias:
                state[f"{self._fc_key(layer)}.bias"] = getattr(self, f"fc{layer}_bias")[k].detach().clone()
        state["out.weight"] = self.out_weight[k].detach().clone()
        if self.has_bias:
            state["out.bias"] = self.out_bias[k].detach().clone()
        return state

    def load_member_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        """Set member k's weights from a lone network's ``state_dict`` (e.g. its best epoch)."""
        with torch.no_grad():
            for layer in range(self.n_layers):
                getattr(self, f"fc{layer}_weight")[k].copy_(state[f"{self._fc_key(layer)}.weight"])
                if self.has_bias:
                    getattr(self, f"fc{layer}_bias")[k].copy_(state[f"{self._fc_key(layer)}.bias"])
            self.out_weight[k].copy_(state["out.weight"])
            if self.has_bias:
                self.out_bias[k].copy_(state["out.bias"])

    def member(self, k: int) -> nn.Module:
        """Member k as a lone network (a copy), in eval mode."""
        from biospike.models import build_model

        model = build_model(self.archs[k])
        model.load_state_dict(self.member_state(k))
        return model.eval()


class MaskedAdam:
    """Adam over stacked (K, ...) parameters where each member keeps its own step count and only
    the members in ``active`` move. The arithmetic is torch's single-tensor Adam (the CPU default,
    ``torch.optim.adam._single_tensor_adam``) with Python-scalar bias corrections, run once per
    distinct step count among the active members, so a member computes what ``torch.optim.Adam``
    on its lone network would."""

    def __init__(self, params: Sequence[torch.Tensor], n_members: int, lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = float(lr), float(weight_decay), betas, float(eps)
        self.steps = [0] * n_members
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (as ``set_to_none=True``)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, active: Sequence[int]) -> None:
        """One Adam step for the members in ``active`` (their step counts advance); the others
        keep their weights and moments untouched."""
        beta1, beta2 = self.betas
        for k in active:
            self.steps[k] += 1
        by_step: dict[int, list[int]] = {}
        for k in active:
            by_step.setdefault(self.steps[k], []).append(k)
        for step, members in by_step.items():
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = self.lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            idx = torch.as_tensor(members)
            for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq, strict=True):
                if p.grad is None:
                    continue
                # the members' slices, updated with torch's ops in torch's order, then written back
                param, grad = p[idx], p.grad[idx]
                exp_avg, exp_avg_sq = m[idx], v[idx]
                if self.weight_decay != 0:
                    grad = grad.add(param, alpha=self.weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)
                p[idx] = param
                m[idx] = exp_avg
                v[idx] = exp_avg_sq


# Elements of the largest per-layer tensor (rows x steps x width) one stacked call may build. Kept
# under glibc's largest heap allocation (32 MB of float32 = 8M elements, with room for the
# backward's copies): bigger tensors are mmap'ed and unmapped on every call, and the page faults
# cost more system time than stacking saves.
MAX_STACK_ELEMENTS = 4_000_000


def stack_groups(members: Sequence[int], rows: Sequence[int], steps: int, width: int,
                 max_elements: int = MAX_STACK_ELEMENTS) -> list[list[int]]:
    """``members`` (with ``rows`` windows each) in consecutive groups whose concatenated
    (rows, steps, width) tensor stays within ``max_elements``; a member alone may exceed it."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for k, n in zip(members, rows, strict=True):
        cost = int(n) * int(steps) * int(width)
        if current and size + cost > max_elements:
            groups.append(current)
            current, size = [], 0
        current.append(k)
        size += cost
    if current:
        groups.append(current)
    return groups


def member_batches(n_windows: int, batch_size: int) -> int:
    """Batches per epoch of a member with ``n_windows`` training windows."""
    return math.ceil(n_windows / batch_size)


ENSEMBLE_FORMAT = "biospike-ensemble/1"


def save_members(path: Any, models: Sequence[nn.Module], metas: Sequence[dict], extra: dict[str, Any] | None = None) -> None:
    """One file for K networks of one architecture family: their weights stacked along a model
    axis (``state[name]`` is (K, ...)), each member's architecture and meta, and ``extra``
    tensors (e.g. the reference models' (K, N) keep masks). Written atomically."""
    from biospike.store import atomic_path

    plains = [getattr(m, "_module", m) for m in models]
    states = [{k: v.detach().cpu() for k, v in p.state_dict().items()} for p in plains]
    if any(set(s) != set(states[0]) or any(s[n].shape != states[0][n].shape for n in s) for s in states[1:]):
        raise ValueError("members of one ensemble file must have the same parameter names and shapes")
    payload = {"format": ENSEMBLE_FORMAT, "archs": [dataclasses.asdict(p.arch) for p in plains],
               "state": {name: torch.stack([s[name] for s in states]) for name in states[0]},
               "metas": list(metas), "extra": dict(extra or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_members(path: Any) -> tuple[list[nn.Module], list[dict], dict[str, Any]]:
    """(models in eval mode, metas, extra) of a :func:`save_members` file; a clear error otherwise."""
    import pickle
    from pathlib import Path

    from biospike.errors import BiospikeError
    from biospike.models import build_model

    path = Path(path)
    if not path.is_file():
        raise BiospikeError("ensemble file not found", path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != ENSEMBLE_FORMAT:
            raise KeyError(f"format {payload.get('format')!r}, expected {ENSEMBLE_FORMAT!r}")
        models = []
        for k, arch in enumerate(payload["archs"]):
            model = build_model(arch)
            model.load_state_dict({name: t[k] for name, t in payload["state"].items()})
            models.append(model.eval())
    except (RuntimeError, KeyError, ValueError, EOFError, TypeError, AttributeError, pickle.UnpicklingError) as exc:
        raise BiospikeError(f"not a valid biospike ensemble file ({exc})", path) from None
    return models, list(payload["metas"]), dict(payload.get("extra", {}))
