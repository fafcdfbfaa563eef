"""Empirical privacy audit in one training run (Steinke, Nasr, Jagielski, NeurIPS 2023).

``m`` canaries (out-of-distribution spike windows with random labels, or public windows with a
wrong label) are each included in the training set independently with probability 1/2 (each
canary is its own privacy unit). After training, every canary is scored (log-odds the model gives
its canary label); the auditor guesses "in" for the ``k+`` highest scores, "out" for the ``k-``
lowest and abstains on the rest. If training is (eps, delta)-DP, the number of correct guesses V
among the r = k+ + k- guesses satisfies (Steinke et al., Thm. 5.2 / their Algorithm 2 and the
appendix code)

    P[V >= v] <= P[Binomial(r, e^eps / (1 + e^eps)) >= v] + 2 m delta * alpha(v),
    alpha(v) = max_{1 <= i <= v} P[v > Binomial(r, q) >= v - i] / i,

so the largest eps for which this p-value is below 1 - confidence is a lower bound on the true
epsilon at that confidence. Several (k+, k-) choices are tried with a Bonferroni correction (the
p-value threshold is divided by the number of choices), so picking the best is still valid; the
choices are fixed before the scores are seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

__all__ = ["ACTIVE_FRACTION", "CANARY_KINDS", "audit_from_scores", "canary_scores", "epsilon_lower_bound",
           "make_canaries", "p_value", "run_audit"]

CANARY_KINDS = ("ood", "mislabelled")
ACTIVE_FRACTION = 0.3  # share of channels a canary drives


def p_value(m: int, r: int, v: int, eps: float, delta: float) -> float:
    """Upper bound on P[>= v correct of r guesses] for an (eps, delta)-DP algorithm, m canaries."""
    if not 0 <= v <= r <= m:
        raise ValueError(f"need 0 <= v <= r <= m, got v={v}, r={r}, m={m}")
    if eps < 0 or not 0 <= delta <= 1:
        raise ValueError("need eps >= 0 and delta in [0, 1]")
    q = 1.0 / (1.0 + math.exp(-eps))
    beta = float(stats.binom.sf(v - 1, r, q))  # P[Bin(r, q) >= v]
    alpha, cum = 0.0, 0.0
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q) if v > 0 else np.zeros(0)
    for i in range(1, v + 1):
        cum += float(pmf[i - 1])  # P[v > Bin >= v - i]
        alpha = max(alpha, cum / i)
    return min(1.0, beta + alpha * delta * 2 * m)


def epsilon_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95,
                        eps_max: float = 50.0, iters: int = 40) -> float:
    """Largest eps with p_value(eps) < 1 - confidence (0 if even eps = 0 is not rejected)."""
    level = 1.0 - confidence
    if r == 0 or p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(m, r, v, hi, delta) < level:
        lo, hi = hi, hi * 2
        if hi > eps_max:
            return lo
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if p_value(m, r, v, mid, delta) < level:
            lo = mid
        else:
            hi = mid
    return lo


def audit_from_scores(scores: np.ndarray, included: np.ndarray, delta: float, confidence: float = 0.95,
                      guess_fractions: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5)) -> dict:
    """Best Bonferroni-corrected lower bound over (k+, k-) guess counts.

    k+ ("in" for the highest scores) and k- ("out" for the lowest) each range over 0 and
    round(f m / 2) for f in ``guess_fractions``; asymmetric choices matter: with few classes, a
    non-member canary's random label often agrees with the model by chance, so "in" guesses are
    noisy while "out" guesses (confident disagreement) can be nearly always right.
    """
    scores = np.asarray(scores, dtype=float)
    included = np.asarray(included, dtype=bool)
    m = len(scores)
    order = np.argsort(-scores, kind="stable")  # highest score first
    sizes = sorted({0} | {max(1, int(round(f * m / 2))) for f in guess_fractions if f > 0})
    pairs = [(kp, km) for kp in sizes for km in sizes if 0 < kp + km <= m]
    corrected = 1.0 - (1.0 - confidence) / max(1, len(pairs))
    trials = []
    for kp, km in pairs:
        guess_in, guess_out = order[:kp], order[m - km:]
        v = int(included[guess_in].sum() + (~included[guess_out]).sum())
        trials.append({"k_plus": kp, "k_minus": km, "guesses": kp + km, "correct": v,
                       "epsilon_lower_bound": epsilon_lower_bound(m, kp + km, v, delta, corrected)})
    best = max(trials, key=lambda t: t["epsilon_lower_bound"]) if trials else None
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(included, scores)) if 0 < included.sum() < m else float("nan")
    return {"m": m, "n_included": int(included.sum()), "confidence": confidence, "delta": delta,
            "bonferroni_choices": len(pairs), "trials": trials,
            "epsilon_lower_bound": best["epsilon_lower_bound"] if best else 0.0, "best": best, "canary_auc": auc}


def make_canaries(n: int, x_like: np.ndarray, n_classes: int, kind: str, rng: np.random.Generator,
                  x_public: np.ndarray | None = None, y_public: np.ndarray | None = None,
                  rate_factor: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` canary windows shaped like ``x_like`` (N, T, C) with labels.

    ``ood``: Poisson spike counts on a random ~30 % of the channels, each channel at a random
    intensity averaging ``rate_factor`` x the data's mean count per step, silent elsewhere (unlike
    any real window), with a uniformly random label.
    ``mislabelled``: public windows (never trained on otherwise) with a label that is not theirs.
    """
    _, steps, channels = x_like.shape
    if kind == "ood":
        # each canary: a random ~30 % of the channels fire Poisson counts, each at its own random
        # intensity (mean rate_factor x the data's mean count per channel and step), the others are
        # silent. What distinguishes canaries is their per-channel *rate profile*: a network that
        # integrates over time cannot tell i.i.d. trains at one common rate apart, and canaries
        # weaker than the data leave the hidden layer silent (all canaries then score the same).
        mean = float(np.asarray(x_like[: min(len(x_like), 512)], dtype=float).mean())
        active = rng.random((n, 1, channels)) < ACTIVE_FRACTION
        active[np.arange(n), 0, rng.integers(0, channels, n)] = True  # at least one channel
        lam = rate_factor * max(mean, 1e-3) * 2.0 * rng.random((n, 1, channels)) * active
        x = np.minimum(rng.poisson(np.broadcast_to(lam, (n, steps, channels))), 255).astype(np.uint8)
        y = rng.integers(0, n_classes, n)
    elif kind == "mislabelled":
        if x_public is None or len(x_public) < n:
            raise ValueError(f"mislabelled canaries need >= {n} public windows, got {0 if x_public is None else len(x_public)}")
        pick = rng.choice(len(x_public), size=n, replace=False)
        x = np.asarray(x_public[pick])
        y = (np.asarray(y_public)[pick] + rng.integers(1, n_classes, n)) % n_classes
    else:
        raise ValueError(f"unknown canary kind {kind!r} (expected one of {CANARY_KINDS})")
    return x, y.astype(np.int64)


@torch.no_grad()
def canary_scores(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 256) -> np.ndarray:
    """log p(y|x) - log(1 - p(y|x)) for each canary, centred per canary label: higher = more likely
    trained on."""
    from biospike.models import predict_logits  # batched, on the trainer's device, eval mode

    model.eval()
    logits = torch.as_tensor(predict_logits(model, x, batch)).double()
    logp = torch.log_softmax(logits, dim=1)
    own = logp[torch.arange(len(y)), torch.as_tensor(y)]
    rest = torch.logsumexp(logp.masked_fill(torch.nn.functional.one_hot(torch.as_tensor(y), logits.shape[1]).bool(),
                                            -math.inf), dim=1)
    scores = (own - rest).numpy()
    # centre within each canary label: a model that maps all out-of-distribution inputs to one class
    # would otherwise rank canaries by label, not membership (uses labels only, never inclusion)
    y = np.asarray(y)
    for c in np.unique(y):
        scores[y == c] -= scores[y == c].mean()
    return scores


def run_audit(arch: dict, x_train: np.ndarray, y_train: np.ndarray, units: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, settings, epsilon: float | None, seed: int,
              x_public: np.ndarray | None = None, y_public: np.ndarray | None = None,
              class_weight: np.ndarray | None = None, nonprivate_fit=None, progress: bool = False,
              device: str | torch.device = "cpu") -> dict:
    """Insert canaries (each its own privacy unit, included with probability 1/2), train, score,
    and bound epsilon from below.

    The audited model is the **last** iterate (``select: last``), where memorisation is strongest;
    the released model (best validation epoch) is another iterate under the same accounting.
    ``epsilon`` None audits a non-private recipe: ``nonprivate_fit(arch, x, y, x_val, y_val, seed)
    -> model`` (the stage passes ``train.fit``). ``settings`` is a :class:`~biospike.privacy.dp.DPSettings`
    (its ``audit`` section sets the canaries); its delta is resolved on the augmented unit count. ``device`` is where DP training runs (the
    non-private recipe follows its own ``train.device`` inside ``nonprivate_fit``).
    """
    import dataclasses

    from biospike.privacy import accounting
    from biospike.privacy.dp import dp_train

    cfg = settings.audit
    settings = dataclasses.replace(settings, select="last")
    from biospike.config import derive_seed

    # the canaries and their inclusion bits draw from their own stream, never the trainer's (whose
    # noise and sampling are secret anyway unless privacy.noise: seeded)
    rng = np.random.default_rng(derive_seed(seed, "audit", "canaries"))
    train_seed = derive_seed(seed, "audit", "train")
    m = int(cfg["n_canaries"])
    n_classes = int(arch["n_out"])
    xc, yc = make_canaries(m, x_train, n_classes, cfg["canary"], rng, x_public, y_public, float(cfg["rate_factor"]))
    included = rng.random(m) < 0.5
    x_aug = np.concatenate([np.asarray(x_train), xc[included]])
    y_aug = np.concatenate([np.asarray(y_train, dtype=np.int64), yc[included]])
    units_aug = np.concatenate([np.asarray(units).astype(str),
                                np.array([f"canary{i}" for i in np.flatnonzero(included)], dtype=str)])
    n_units = len(np.unique(units_aug))
    public = {"x_public": x_public, "y_public": y_public} if x_public is not None and len(x_public) else {}
    if epsilon is None:
        if nonprivate_fit is None:
            raise ValueError("auditing a non-private recipe needs nonprivate_fit (e.g. train.fit)")
        model = nonprivate_fit(arch, x_aug, y_aug, x_val, y_val, train_seed)
        claimed = None
        delta = accounting.resolve_delta(settings.delta, n_units)
    else:
        res = dp_train(arch, x_aug, y_aug, units_aug, x_val, y_val, settings, epsilon, train_seed,
                       class_weight=class_weight, progress=progress, desc=f"audit eps{epsilon:g}", device=device,
                       **public)
        model, claimed, delta = res.model, res.privacy["epsilon"], res.privacy["delta"]
    scores = canary_scores(model, xc, yc)
    result = audit_from_scores(scores, included, delta, float(cfg["confidence"]))
    return {
        "claimed_epsilon": claimed, "target_epsilon": epsilon, "privacy_unit": settings.unit,
        "n_training_units": n_units,
        "method": "one-run audit (Steinke, Nasr & Jagielski, NeurIPS 2023), black-box canary log-odds scores",
        "canary": {k: cfg[k] for k in ("n_canaries", "canary", "rate_factor")},
        "audited_iterate": "last" if epsilon is not None else None, **result,
        "consistent": None if claimed is None else bool(result["epsilon_lower_bound"] <= claimed),
        "scores": {"included": scores[included].tolist(), "excluded": scores[~included].tolist()},
    }
