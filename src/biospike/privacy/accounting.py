"""Privacy accounting: epsilon from Opacus' accountants, never by hand.

Every mechanism biospike runs per training step is, after the reductions proved in
``docs/privacy.md``, one Poisson-subsampled Gaussian mechanism with a single noise multiplier
``z`` on a query whose per-unit contribution has whitened L2 norm <= 1. This module turns
(z, sample rate, steps) into epsilon with Opacus' PRV or RDP accountant, finds z for a target
epsilon, and holds the small algebra that reduces the adaptive schemes to that one z:

* adaptive clipping (Andrew et al. 2021, Thm. 1): gradient multiplier ``z_grad`` and count noise
  ``sigma_b`` on a count of sensitivity 1/2 compose to ``z = (z_grad^-2 + (2 sigma_b)^-2)^-1/2``;
* adaptive noise allocation: groups with clip bounds ``C_k`` and noise std ``sigma_k`` are one
  Gaussian mechanism with ``z_eff = (sum_k C_k^2 / sigma_k^2)^-1/2``.

An independent cross-check with Google's ``dp-accounting`` (optional dependency) is offered by
:func:`dp_accounting_epsilon`; the tests require agreement within 5 %.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from biospike.errors import BiospikeError

__all__ = ["ACCOUNTANTS", "MAX_TARGET_EPSILON", "RDP_ORDERS", "Segment", "combined_multiplier",
           "dp_accounting_epsilon", "effective_multiplier", "epsilon", "gradient_multiplier", "noise_multiplier_for",
           "resolve_delta"]

ACCOUNTANTS = ("prv", "rdp")
MAX_TARGET_EPSILON = 64.0

# (noise multiplier, sample rate, steps): the accountant's history format
Segment = tuple[float, float, int]

# RDP orders: Opacus' defaults extended upwards, so small epsilons (large z) are not limited by
# the largest order; the dp-accounting cross-check uses the same orders.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)) + list(range(64, 257, 8))


def resolve_delta(delta: float | str, n_units: int) -> float:
    """``delta`` from config: a number, or ``"1/n"`` (n = privacy units in the training set)."""
    if isinstance(delta, str):
        if delta.replace(" ", "") != "1/n":
            raise BiospikeError(f"privacy.delta must be a number or '1/n', got {delta!r}")
        if n_units < 1:
            raise BiospikeError("privacy.delta = '1/n' needs at least one training unit")
        return 1.0 / n_units
    value = float(delta)
    if not 0.0 < value < 1.0:
        raise BiospikeError(f"privacy.delta must be in (0, 1), got {value}")
    return value


def _accountant(kind: str):
    from opacus.accountants import PRVAccountant, RDPAccountant

    if kind == "prv":
        return PRVAccountant()
    if kind == "rdp":
        return RDPAccountant()
    raise BiospikeError(f"unknown accountant {kind!r} (expected one of {ACCOUNTANTS})")


def epsilon(history: Sequence[Segment], delta: float, accountant: str = "prv") -> float:
    """Epsilon spent by the composition of Poisson-subsampled Gaussian segments.

    ``history`` lists (noise multiplier, sample rate, steps); a multiplier of 0 (no noise) or
    an empty history returns inf / 0.
    """
    segments = [(float(z), float(q), int(n)) for z, q, n in history if int(n) > 0]
    if not segments:
        return 0.0
    if any(z <= 0.0 for z, _, _ in segments):
        return math.inf
    acc = _accountant(accountant)
    acc.history = segments
    return float(acc.get_epsilon(delta=delta, **_accountant_kwargs(accountant)))


def _accountant_kwargs(accountant: str) -> dict:
    return {"alphas": RDP_ORDERS} if accountant == "rdp" else {}


def noise_multiplier_for(target_epsilon: float, delta: float, sample_rate: float, steps: int,
                         accountant: str = "prv", tolerance: float = 0.01) -> float:
    """The smallest multiplier (to ``tolerance`` in epsilon) whose epsilon is <= the target.

    Opacus' ``get_noise_multiplier`` bisects from above, so the result never overshoots the
    target epsilon.
    """
    from opacus.accountants.utils import get_noise_multiplier

    if not 0 < target_epsilon <= MAX_TARGET_EPSILON:
        # beyond this the PRV accountant's discretisation domain explodes (minutes, GBs) and the
        # guarantee is meaningless anyway: the non-private snn is the reference for that regime
        raise BiospikeError(f"target epsilon must be in (0, {MAX_TARGET_EPSILON:g}], got {target_epsilon}")
    if not 0.0 < sample_rate <= 1.0:
        raise BiospikeError(f"sample rate must be in (0, 1], got {sample_rate}")
    try:
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                           sample_rate=sample_rate, steps=int(steps),
                                           accountant=accountant, epsilon_tolerance=tolerance,
                                           **_accountant_kwargs(accountant)))
    except ValueError as exc:
        raise BiospikeError(f"no noise multiplier reaches epsilon {target_epsilon} at delta "
                            f"{delta:g} with {steps} steps at sample rate {sample_rate:.4g}: {exc}") from None


def gradient_multiplier(z_total: float, count_noise_std: float) -> float:
    """Andrew et al. Thm. 1: the gradient multiplier left once the clipped-count query (noise
    ``sigma_b`` on a sensitivity-1/2 count) takes its share of the total multiplier ``z``:
    ``z_grad = (z^-2 - (2 sigma_b)^-2)^(-1/2)``. Needs ``2 sigma_b > z``."""
    if count_noise_std <= 0:
        return z_total
    rest = z_total ** -2 - (2.0 * count_noise_std) ** -2
    if rest <= 0:
        raise BiospikeError(
            f"adaptive clipping: the count noise sigma_b = {count_noise_std:.4g} is too small for the "
            f"total noise multiplier {z_total:.4g} (need 2 sigma_b > z); raise "
            "privacy.adaptive_clipping.count_budget_share or the expected batch size")
    return rest ** -0.5


def combined_multiplier(z_grad: float, count_noise_std: float | None) -> float:
    """Inverse of :func:`gradient_multiplier`: the single multiplier of (gradient, count)."""
    if not count_noise_std:
        return z_grad
    return (z_grad ** -2 + (2.0 * count_noise_std) ** -2) ** -0.5


def effective_multiplier(clip_bounds: Sequence[float], noise_stds: Sequence[float]) -> float:
    """``z_eff = (sum_k C_k^2 / sigma_k^2)^(-1/2)`` for per-group clip bounds and noise stds."""
    if len(clip_bounds) != len(noise_stds) or len(clip_bounds) == 0:
        raise ValueError("one noise std per clip bound, at least one group")
    total = 0.0
    for c, s in zip(map(float, clip_bounds), map(float, noise_stds), strict=True):
        if c < 0 or s <= 0:
            raise ValueError(f"clip bounds must be >= 0 and noise stds > 0 (got C={c}, sigma={s})")
        total += (c / s) ** 2
    return math.inf if total == 0 else total ** -0.5


def dp_accounting_epsilon(history: Sequence[Segment], delta: float, kind: str = "pld") -> float:
    """Independent epsilon from Google's ``dp-accounting`` (``pld`` or ``rdp``), add/remove
    adjacency like Opacus. Raises ImportError if the package is missing."""
    import dp_accounting
    from dp_accounting import pld, rdp

    events = [
        dp_accounting.SelfComposedDpEvent(
            dp_accounting.PoissonSampledDpEvent(float(q), dp_accounting.GaussianDpEvent(float(z))), int(n))
        for z, q, n in history if int(n) > 0
    ]
    if not events:
        return 0.0
    if kind == "pld":
        acc = pld.PLDAccountant(value_discretization_interval=1e-3)
    elif kind == "rdp":
        acc = rdp.RdpAccountant(orders=RDP_ORDERS)
    else:
        raise ValueError(f"unknown dp-accounting kind {kind!r}")
    acc.compose(dp_accounting.ComposedDpEvent(events))
    return float(acc.get_epsilon(delta))
