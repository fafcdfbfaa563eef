"""Per-sample gradients of the networks under DP-SGD.

Opacus' ``GradSampleModule`` (hooks mode, batch first, summed loss) computes them for every
``nn.Linear`` that sees all time steps at once on (B, T, C): each sample is one row of the batch
axis, so its gradient is summed over its time steps and clipping is per sample, never per
(sample, step). The optional recurrent Linear runs once per step on (B, H); Opacus would handle
it (accumulating over the T calls) but slowly, so :class:`StepwiseLinearGrads` stores each call's
input and output gradient and forms the per-sample gradient in one einsum after the backward
pass. Both are checked against one-sample-at-a-time gradients in the tests.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StepwiseLinearGrads", "finalize_grad_samples", "grad_sample_module"]


class StepwiseLinearGrads:
    """Per-sample gradients of ``nn.Linear`` layers that are called once per time step (the SNN's
    recurrent weights), computed in one batched product after the backward pass.

    Opacus' hooks handle such a layer correctly (its per-sample gradient is accumulated over the
    T calls, tested) but run an einsum and an accumulation of a (B, H, H) tensor per call; here
    each call only stores its input and, via a tensor hook, its output gradient, and
    :meth:`finalize` sets ``weight.grad_sample = sum_t g_t^T a_t`` per sample in one einsum.
    """

    def __init__(self, modules: list[nn.Linear]) -> None:
        self.modules = modules
        self.inputs: dict[int, list[torch.Tensor]] = {id(m): [] for m in modules}
        self.grads: dict[int, dict[int, torch.Tensor]] = {id(m): {} for m in modules}
        self.handles = [m.register_forward_hook(self._forward_hook) for m in modules]

    def _forward_hook(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if not (module.training and torch.is_grad_enabled() and output.requires_grad):
            return
        acts = self.inputs[id(module)]
        acts.append(inputs[0].detach())
        store, call = self.grads[id(module)], len(acts) - 1

        def keep(grad: torch.Tensor) -> None:
            store[call] = grad.detach()

        output.register_hook(keep)

    def finalize(self) -> None:
        """Set ``grad_sample`` of every tracked parameter from the stored calls; clear them."""
        for m in self.modules:
            acts, grads = self.inputs[id(m)], self.grads[id(m)]
            if acts:
                a = torch.stack(acts)  # (T, B, in)
                zero = a.new_zeros(a.shape[1], m.out_features)
                g = torch.stack([grads.get(t, zero) for t in range(len(acts))])
                m.weight.grad_sample = torch.einsum("tbo,tbi->boi", g, a)
                if m.bias is not None:
                    m.bias.grad_sample = g.sum(dim=0)
            acts.clear()
            grads.clear()

    def close(self) -> None:
        """Remove the forward hooks from the tracked layers."""
        for h in self.handles:
            h.remove()


def grad_sample_module(model: nn.Module) -> nn.Module:
    """Opacus ``GradSampleModule`` (hooks mode, batch first, summed loss) around the SNN; the
    recurrent Linears, if any, are left to :class:`StepwiseLinearGrads` (``gsm.stepwise``)."""
    from opacus import GradSampleModule

    from biospike.errors import BiospikeError

    if getattr(getattr(model, "arch", None), "trainable", None):
        # their per-sample gradients come from inside the fused time loop, which Opacus' hooks on
        # Linear layers cannot see: clipping would silently leave them out of the guarantee
        raise BiospikeError("DP-SGD cannot train learned per-neuron constants (train.trainable): their per-sample "
                            "gradients are not computed; set train.trainable: [] for DP targets")
    rec = list(getattr(model, "rec", None) or [])
    for m in rec:  # Opacus skips modules without trainable parameters when adding its hooks
        m.requires_grad_(False)
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    for m in rec:
        m.requires_grad_(True)
    gsm.stepwise = StepwiseLinearGrads(rec) if rec else None
    return gsm


def finalize_grad_samples(gsm: nn.Module) -> None:
    """Call after ``backward()``: completes ``grad_sample`` of the stepwise (recurrent) layers."""
    stepwise = getattr(gsm, "stepwise", None)
    if stepwise is not None:
        stepwise.finalize()
