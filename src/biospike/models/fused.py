"""Fused time loops for the parameter-free neuron dynamics (LIF hidden layers, LI readout).

norse steps a neuron with ~15 small autograd ops per time step, so a (B, T, H) layer builds a
graph of 15 T nodes and training time goes to Python and autograd overhead, not arithmetic.
Here the whole time loop of one layer is one ``torch.autograd.Function``: the forward runs the
recurrence without building a graph (TorchScript, to drop the interpreter overhead too) and keeps
the pre-reset voltages; the backward is the hand-written adjoint of the same recurrence.

The arithmetic repeats norse 1.1.0's ``lif_feed_forward_step`` / ``li_feed_forward_step``
operation by operation, in the same order, so forward values and gradients equal norse's in
float32 and float64 (tests/unit/test_models_fused.py checks both against norse itself).

The spike's surrogate derivative is chosen from :data:`SURROGATES` (``train.surrogate``), each
written in its reference's operation order: norse's five (``super``, ``triangle``, ``tanh``,
``circ``, ``heavi_erfc``) and snnTorch's ``atan`` and ``fast_sigmoid``, which norse lacks. The
tests compare each with its reference's own autograd function.

These functions own no weights: they sit between ``nn.Linear`` layers, so Opacus' hooks still see
each Linear's activations and backprops per sample (docs/design.md, known traps).
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

__all__ = ["SURROGATES", "ALIFScan", "LIFScan", "LIScan", "Surrogate", "lif_constants", "surrogate_alpha", "surrogate_code"]


@dataclasses.dataclass(frozen=True)
class Surrogate:
    """A surrogate derivative of the spike threshold: its code in the kernel, the default of its
    sharpness ``alpha`` (the reference's own), its formula (``x = v - v_th``, ``g`` the incoming
    gradient) and where the formula comes from."""

    code: int
    default_alpha: float
    formula: str
    reference: str


SURROGATES: dict[str, Surrogate] = {
    "super": Surrogate(0, 100.0, "g / (|x| + 1)^2 (alpha unused, as in norse)",
                       "norse SuperSpike (Zenke & Ganguli 2018)"),
    "fast_sigmoid": Surrogate(1, 25.0, "g / (alpha |x| + 1)^2", "snnTorch surrogate.fast_sigmoid (slope = alpha)"),
    "atan": Surrogate(2, 2.0, "alpha / 2 / (1 + (pi / 2 alpha x)^2) g",
                      "snnTorch surrogate.atan (Fang et al. 2021)"),
    "triangle": Surrogate(3, 0.3, "g alpha max(0, 1 - |x|)", "norse triangle (Esser et al. 2016; Bellec et al. 2020)"),
    "tanh": Surrogate(4, 100.0, "g (1 - tanh(alpha x)^2)", "norse heavi_tanh"),
    "circ": Surrogate(5, 100.0, "g (1 / (2 sqrt(alpha^2 + x^2)) - x^2 / (2 (alpha^2 + x^2)^1.5)) 2 alpha",
                      "norse heavi_circ"),
    "heavi_erfc": Surrogate(6, 100.0, "2 exp(-(alpha x)^2) / sqrt(pi) g", "norse heavi_erfc"),
}


def surrogate_code(name: str) -> int:
    """The kernel's code of surrogate ``name``; an unknown name is an error listing the menu."""
    try:
        return SURROGATES[name].code
    except KeyError:
        raise ValueError(f"unknown surrogate {name!r} (expected one of {', '.join(SURROGATES)})") from None


def surrogate_alpha(name: str, alpha: float | None) -> float:
    """``alpha``, or the surrogate's own default when it is None."""
    surrogate_code(name)
    return float(SURROGATES[name].default_alpha if alpha is None else alpha)


def _surrogate_grad(g: torch.Tensor, x: torch.Tensor, kind: int, alpha: torch.Tensor) -> torch.Tensor:
    """``g`` times the surrogate derivative at ``x = v - v_th``, in the reference's operation order."""
    if kind == 0:
        return g / (x.abs() + 1.0).pow(2)
    if kind == 1:
        return g / (alpha * x.abs() + 1.0).pow(2)
    if kind == 2:
        return alpha / 2 / (1 + (1.5707963267948966 * alpha * x).pow(2)) * g
    if kind == 3:
        return g * alpha * torch.relu(1 - x.abs())
    if kind == 4:
        return g * (1 - (x * alpha).tanh().pow(2))
    if kind == 5:
        a2 = alpha.pow(2)
        return g * (-(x.pow(2) / (2 * (a2 + x.pow(2)).pow(1.5))) + 1 / (2 * (a2 + x.pow(2)).sqrt())) * 2 * alpha
    return (2 * torch.exp(-(alpha * x).pow(2))) / 1.7724539041519165 * g  # norse's float32 sqrt(pi)


def _lif_forward(cur: torch.Tensor, a_mem: torch.Tensor, a_syn_neg: torch.Tensor, v_leak: torch.Tensor,
                 v_th: torch.Tensor, v_reset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cur (B, T, H) -> spikes (T, B, H) and pre-reset voltages (T, B, H); state starts at v_leak, 0."""
    batch, steps, width = cur.shape
    zeros = torch.zeros(batch, width, dtype=cur.dtype, device=cur.device)
    v = zeros + v_leak
    i = zeros
    spikes = torch.empty(steps, batch, width, dtype=cur.dtype, device=cur.device)
    v_pre = torch.empty(steps, batch, width, dtype=cur.dtype, device=cur.device)
    for t in range(steps):
        i_new = i + cur[:, t]  # current jump first
        v_dec = v + a_mem * ((v_leak - v) + i_new)  # Euler step with the jumped current
        i = i_new + a_syn_neg * i_new
        z = torch.gt(v_dec - v_th, 0.0).to(cur.dtype)
        v = torch.where(z > 0, v_reset, v_dec)  # == (1 - z) v_dec + z v_reset for z in {0, 1}
        spikes[t] = z
        v_pre[t] = v_dec
    return spikes, v_pre


def _lif_backward(grad_z: torch.Tensor, spikes: torch.Tensor, v_pre: torch.Tensor, a_mem: torch.Tensor,
                  a_syn_neg: torch.Tensor, v_th: torch.Tensor, v_reset: torch.Tensor, kind: int,
                  alpha: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_lif_forward`: grad wrt spikes (B, T, H) -> grad wrt input current (B, T, H).

    The reset path is differentiated too (norse does not detach it); operation order follows
    autograd's on norse's graph so the float32 result is identical.
    """
    steps, batch, width = spikes.shape
    g_v = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_i = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_cur = torch.empty(batch, steps, width, dtype=grad_z.dtype, device=grad_z.device)
    for t in range(steps - 1, -1, -1):
        z = spikes[t]
        v_dec = v_pre[t]
        # v_new = (1 - z) v_dec + z v_reset; z = H(v_dec - v_th) with the surrogate's derivative
        g_z = grad_z[:, t] - g_v * v_dec + g_v * v_reset
        g_vdec = g_v * (1.0 - z) + _surrogate_grad(g_z, v_dec - v_th, kind, alpha)
        g_dv = g_vdec * a_mem
        g_inew = g_i + g_i * a_syn_neg + g_dv
        g_cur[:, t] = g_inew
        g_i = g_inew
        g_v = g_vdec - g_dv
    return g_cur


def _lif_backward_params(grad_z: torch.Tensor, cur: torch.Tensor, spikes: torch.Tensor, v_pre: torch.Tensor,
                         a_mem: torch.Tensor, a_syn_neg: torch.Tensor, v_leak: torch.Tensor, v_th: torch.Tensor,
                         v_reset: torch.Tensor, kind: int,
                         alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`_lif_backward` plus the gradients of per-neuron (trainable) ``a_mem``, ``a_syn_neg``
    and ``v_th``, each summed over batch and time into (B, H) (the caller reduces to the
    parameter's shape). The jumped currents are recomputed from ``cur`` by the forward's own ops."""
    steps, batch, width = spikes.shape
    i_new = torch.empty_like(v_pre)
    i = torch.zeros(batch, width, dtype=cur.dtype, device=cur.device)
    for t in range(steps):
        i_jump = i + cur[:, t]
        i_new[t] = i_jump
        i = i_jump + a_syn_neg * i_jump
    g_v = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_i = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_a_mem = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_a_syn = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_v_th = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_cur = torch.empty(batch, steps, width, dtype=grad_z.dtype, device=grad_z.device)
    for t in range(steps - 1, -1, -1):
        z = spikes[t]
        v_dec = v_pre[t]
        if t > 0:
            v_prev = torch.where(spikes[t - 1] > 0, v_reset, v_pre[t - 1])
        else:
            v_prev = torch.zeros_like(v_dec) + v_leak
        g_z = grad_z[:, t] - g_v * v_dec + g_v * v_reset
        g_x = _surrogate_grad(g_z, v_dec - v_th, kind, alpha)
        g_vdec = g_v * (1.0 - z) + g_x
        g_v_th = g_v_th - g_x
        g_a_mem = g_a_mem + g_vdec * ((v_leak - v_prev) + i_new[t])  # v_dec = v + a_mem ((v_leak - v) + i_new)
        g_a_syn = g_a_syn + g_i * i_new[t]  # i_next = i_new + a_syn_neg i_new
        g_dv = g_vdec * a_mem
        g_inew = g_i + g_i * a_syn_neg + g_dv
        g_cur[:, t] = g_inew
        g_i = g_inew
        g_v = g_vdec - g_dv
    return g_cur, g_a_mem, g_a_syn, g_v_th


def _alif_forward(cur: torch.Tensor, a_mem: torch.Tensor, a_syn_neg: torch.Tensor, a_adapt: torch.Tensor,
                  v_leak: torch.Tensor, v_th: torch.Tensor, v_reset: torch.Tensor,
                  beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adaptive LIF, norse's ``lsnn_feed_forward_step`` order: decay v (with the old current), i
    and the threshold b towards v_th, spike on v > b, reset v, raise b by beta, then add the input
    to i (so input at step t first moves v at step t + 1). State starts at v_leak, 0, v_th.
    cur (B, T, H) -> spikes, pre-reset voltages and pre-jump thresholds, each (T, B, H)."""
    batch, steps, width = cur.shape
    zeros = torch.zeros(batch, width, dtype=cur.dtype, device=cur.device)
    v = zeros + v_leak
    i = zeros
    b = zeros + v_th
    spikes = torch.empty(steps, batch, width, dtype=cur.dtype, device=cur.device)
    v_pre = torch.empty(steps, batch, width, dtype=cur.dtype, device=cur.device)
    b_pre = torch.empty(steps, batch, width, dtype=cur.dtype, device=cur.device)
    for t in range(steps):
        v_dec = v + a_mem * ((v_leak - v) + i)
        i_dec = i + a_syn_neg * i
        b_dec = b + a_adapt * (v_th - b)
        z = torch.gt(v_dec - b_dec, 0.0).to(cur.dtype)
        v = torch.where(z > 0, v_reset, v_dec)
        b = b_dec + z * beta
        i = i_dec + cur[:, t]
        spikes[t] = z
        v_pre[t] = v_dec
        b_pre[t] = b_dec
    return spikes, v_pre, b_pre


def _alif_backward(grad_z: torch.Tensor, spikes: torch.Tensor, v_pre: torch.Tensor, b_pre: torch.Tensor,
                   a_mem: torch.Tensor, a_syn_neg: torch.Tensor, a_adapt: torch.Tensor, v_reset: torch.Tensor,
                   beta: torch.Tensor, kind: int, alpha: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`_alif_forward`: grad wrt spikes (B, T, H) -> grad wrt input current. The
    gradient flows through the reset and through the adaptive threshold (as autograd on norse's
    step does); the spike's derivative is the surrogate ``kind``."""
    steps, batch, width = spikes.shape
    g_v = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_i = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_b = torch.zeros(batch, width, dtype=grad_z.dtype, device=grad_z.device)
    g_cur = torch.empty(batch, steps, width, dtype=grad_z.dtype, device=grad_z.device)
    for t in range(steps - 1, -1, -1):
        z = spikes[t]
        v_dec = v_pre[t]
        g_cur[:, t] = g_i  # i_new = i_dec + cur
        # b_new = b_dec + z beta; v_new = (1 - z) v_dec + z v_reset; z = H(v_dec - b_dec)
        g_z = grad_z[:, t] + g_b * beta - g_v * v_dec + g_v * v_reset
        g_x = _surrogate_grad(g_z, v_dec - b_pre[t], kind, alpha)
        g_vdec = g_v * (1.0 - z) + g_x
        g_bdec = g_b - g_x
        g_dv = g_vdec * a_mem  # v_dec = v + a_mem ((v_leak - v) + i), with the old i
        g_v = g_vdec - g_dv
        g_i = g_i + g_i * a_syn_neg + g_dv
        g_b = g_bdec - g_bdec * a_adapt
    return g_cur


def _li_forward(cur: torch.Tensor, a_mem: torch.Tensor, a_syn_neg: torch.Tensor, v_leak: torch.Tensor) -> torch.Tensor:
    """Leaky-integrator readout: cur (B, T, O) -> voltages (B, T, O); state starts at 0, 0."""
    batch, steps, width = cur.shape
    v = torch.zeros(batch, width, dtype=cur.dtype, device=cur.device)
    i = torch.zeros(batch, width, dtype=cur.dtype, device=cur.device)
    volts = torch.empty(batch, steps, width, dtype=cur.dtype, device=cur.device)
    for t in range(steps):
        i_jump = i + cur[:, t]
        v = v + a_mem * ((v_leak - v) + i_jump)
        i = i_jump + a_syn_neg * i_jump
        volts[:, t] = v
    return volts


def _li_backward(grad_v: torch.Tensor, a_mem: torch.Tensor, a_syn_neg: torch.Tensor) -> torch.Tensor:
    batch, steps, width = grad_v.shape
    g_v = torch.zeros(batch, width, dtype=grad_v.dtype, device=grad_v.device)
    g_i = torch.zeros(batch, width, dtype=grad_v.dtype, device=grad_v.device)
    g_cur = torch.empty_like(grad_v)
    for t in range(steps - 1, -1, -1):
        g_vt = grad_v[:, t] + g_v
        g_dv = g_vt * a_mem
        g_ij = g_i + g_i * a_syn_neg + g_dv
        g_cur[:, t] = g_ij
        g_i = g_ij
        g_v = g_vt - g_dv
    return g_cur


def _script(fn):
    """TorchScript the loop (3-4x less per-step overhead than Python); if TorchScript is gone
    (deprecated since torch 2.10), the plain Python function computes the same values."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)
    except Exception:
        return fn


_surrogate_grad = _script(_surrogate_grad)
_lif_forward_s = _script(_lif_forward)
_lif_backward_s = _script(_lif_backward)
_lif_backward_params_s = _script(_lif_backward_params)
_alif_forward_s = _script(_alif_forward)
_alif_backward_s = _script(_alif_backward)
_li_forward_s = _script(_li_forward)
_li_backward_s = _script(_li_backward)


class LIFScan(torch.autograd.Function):
    """``spikes = LIFScan.apply(current, a_mem, a_syn_neg, v_leak, v_th, v_reset[, surrogate, alpha])``,
    (B, T, H) both.

    ``a_mem = dt * tau_mem_inv`` and ``a_syn_neg = -dt * tau_syn_inv`` as 0-d tensors, computed the
    way norse computes them (see :func:`lif_constants`), or per neuron (H,); ``surrogate`` a name of
    :data:`SURROGATES` (default ``"super"``), ``alpha`` its sharpness (None: its default). When
    ``a_mem``, ``a_syn_neg`` or ``v_th`` require grad (trainable dynamics), their gradients are
    computed too, by the adjoint of the same recurrence.
    """

    @staticmethod
    def forward(ctx, current, a_mem, a_syn_neg, v_leak, v_th, v_reset, surrogate="super", alpha=None):
        """Spikes (B, T, H) of the whole time loop; saves spikes and pre-reset voltages for backward."""
        current = current.contiguous()
        spikes, v_pre = _lif_forward_s(current, a_mem, a_syn_neg, v_leak, v_th, v_reset)
        alpha_t = torch.as_tensor(surrogate_alpha(surrogate, None if alpha is None else float(alpha)),
                                  dtype=current.dtype, device=current.device)
        ctx.kind = surrogate_code(surrogate)
        ctx.params = any(ctx.needs_input_grad[k] for k in (1, 2, 4))
        kept = (current,) if ctx.params else ()
        ctx.save_for_backward(spikes, v_pre, a_mem, a_syn_neg, v_leak, v_th, v_reset, alpha_t, *kept)
        return spikes.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_spikes):
        """Gradient with respect to ``current`` (the surrogate adjoint) and, when they need it, the
        per-neuron ``a_mem``, ``a_syn_neg`` and ``v_th``; none for the other constants."""
        spikes, v_pre, a_mem, a_syn_neg, v_leak, v_th, v_reset, alpha, *kept = ctx.saved_tensors
        if not ctx.params:
            grad = _lif_backward_s(grad_spikes.contiguous(), spikes, v_pre, a_mem, a_syn_neg, v_th, v_reset,
                                   ctx.kind, alpha)
            return grad, None, None, None, None, None, None, None
        grad, g_a_mem, g_a_syn, g_v_th = _lif_backward_params_s(grad_spikes.contiguous(), kept[0], spikes, v_pre, a_mem,
                                                                a_syn_neg, v_leak, v_th, v_reset, ctx.kind, alpha)

        def reduce(g: torch.Tensor, like: torch.Tensor, needed: bool) -> torch.Tensor | None:
            return g.sum(dim=0).sum_to_size(like.shape) if needed else None

        need = ctx.needs_input_grad
        return (grad, reduce(g_a_mem, a_mem, need[1]), reduce(g_a_syn, a_syn_neg, need[2]), None,
                reduce(g_v_th, v_th, need[4]), None, None, None)


class ALIFScan(torch.autograd.Function):
    """``spikes = ALIFScan.apply(current, a_mem, a_syn_neg, a_adapt, v_leak, v_th, v_reset, beta[,
    surrogate, alpha])``, (B, T, H) both: the adaptive LIF of norse's LSNN (``a_adapt = dt /
    tau_adapt``; ``beta`` the threshold jump per spike), as :class:`LIFScan` does for the LIF."""

    @staticmethod
    def forward(ctx, current, a_mem, a_syn_neg, a_adapt, v_leak, v_th, v_reset, beta, surrogate="super", alpha=None):
        """Spikes (B, T, H); saves spikes, pre-reset voltages and thresholds for backward."""
        spikes, v_pre, b_pre = _alif_forward_s(current.contiguous(), a_mem, a_syn_neg, a_adapt, v_leak, v_th, v_reset,
                                               beta)
        alpha_t = torch.as_tensor(surrogate_alpha(surrogate, None if alpha is None else float(alpha)),
                                  dtype=current.dtype, device=current.device)
        ctx.kind = surrogate_code(surrogate)
        ctx.save_for_backward(spikes, v_pre, b_pre, a_mem, a_syn_neg, a_adapt, v_reset, beta, alpha_t)
        return spikes.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_spikes):
        """Gradient with respect to ``current``; none for the constants."""
        spikes, v_pre, b_pre, a_mem, a_syn_neg, a_adapt, v_reset, beta, alpha = ctx.saved_tensors
        grad = _alif_backward_s(grad_spikes.contiguous(), spikes, v_pre, b_pre, a_mem, a_syn_neg, a_adapt, v_reset,
                                beta, ctx.kind, alpha)
        return (grad,) + (None,) * 9


class LIScan(torch.autograd.Function):
    """``volts = LIScan.apply(current, a_mem, a_syn_neg, v_leak)``, (B, T, O) both."""

    @staticmethod
    def forward(ctx, current, a_mem, a_syn_neg, v_leak):
        """Membrane voltages (B, T, O) of the leaky integrator over the whole time loop."""
        ctx.save_for_backward(a_mem, a_syn_neg)
        return _li_forward_s(current.contiguous(), a_mem, a_syn_neg, v_leak)

    @staticmethod
    def backward(ctx, grad_volts):
        """Gradient with respect to ``current`` (the filter's adjoint); none for the constants."""
        a_mem, a_syn_neg = ctx.saved_tensors
        return _li_backward_s(grad_volts.contiguous(), a_mem, a_syn_neg), None, None, None


def lif_constants(tau_mem_inv: torch.Tensor, tau_syn_inv: torch.Tensor, dt_s: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(dt * tau_mem_inv, -dt * tau_syn_inv) evaluated exactly as norse's step functions do."""
    return dt_s * tau_mem_inv, -dt_s * tau_syn_inv
