"""Membership-inference metrics: ROC, AUC, TPR at low FPR, balanced accuracy, bootstrap CIs,
and the check of a measured ROC against the ceiling a claimed (epsilon, delta) implies.

Convention everywhere: ``labels`` is True for members, a higher score means "more likely a
member". Pure numpy/scipy (no torch), so the workflow can import it at parse time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

# FPRs at which TPR is reported; a TPR at FPR f needs at least ceil(1/f) non-members, otherwise a
# single false positive already exceeds f and the number says nothing (reported "not estimable").
FPR_TARGETS = (0.01, 0.001)

__all__ = ["CEILING_FPR_GRID", "FPR_TARGETS", "aggregate_by_group", "best_balanced_accuracy", "bootstrap",
           "clopper_pearson", "dp_ceiling_check", "dp_tpr_ceiling", "evaluate_scores", "fpr_key", "min_nonmembers_for",
           "percentile_ci", "roc_auc", "roc_curve", "roc_table", "strongest_attack_test", "tpr_at_fpr"]


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if labels.all() or not labels.any():
        raise ValueError("need at least one member and one non-member")
    return labels, scores


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full ROC (every distinct threshold): ``fpr, tpr, thresholds`` with thresholds decreasing
    and a first point (0, 0) at threshold +inf; a point at threshold t predicts "member" for
    score >= t. Equal to ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``."""
    labels, scores = _check(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last_of_run]
    fps = (last_of_run + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return fpr, tpr, np.r_[np.inf, s[last_of_run]]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC = P(score of a member > score of a non-member) + P(tie) / 2."""
    labels, scores = _check(labels, scores)
    ranks = stats.rankdata(scores)  # average ranks: ties count one half
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target_fpr: float) -> float:
    """Highest TPR among thresholds whose FPR does not exceed ``target_fpr`` (Carlini et al.)."""
    ok = fpr <= target_fpr + 1e-12
    return float(tpr[ok].max())


def best_balanced_accuracy(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """max over thresholds of (TPR + TNR) / 2."""
    return float(np.max((tpr + 1.0 - fpr) / 2.0))


def min_nonmembers_for(target_fpr: float) -> int:
    """Fewest non-members, ceil(1 / ``target_fpr``), for which a TPR at that FPR is estimable."""
    return math.ceil(1.0 / target_fpr - 1e-9)


def fpr_key(target_fpr: float) -> str:
    """0.01 -> 'tpr_at_1pct_fpr', 0.001 -> 'tpr_at_0.1pct_fpr'."""
    return f"tpr_at_{target_fpr * 100:g}pct_fpr"


def _point_metrics(labels: np.ndarray, scores: np.ndarray, fpr_targets: Sequence[float]) -> dict[str, float]:
    fpr, tpr, _ = roc_curve(labels, scores)
    out = {"auc": roc_auc(labels, scores), "balanced_accuracy": best_balanced_accuracy(fpr, tpr)}
    for f in fpr_targets:
        out[fpr_key(f)] = tpr_at_fpr(fpr, tpr, f)
    return out


def bootstrap(
    labels: np.ndarray,
    scores: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    n_resamples: int,
    rng: np.random.Generator,
    clusters: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Resample members and non-members separately (their counts stay fixed) and evaluate
    ``statistic`` on each resample. With ``clusters`` (e.g. the subject of every window) whole
    clusters are resampled: windows of one subject share their membership and are correlated,
    so resampling windows one by one would give intervals that are too narrow."""
    labels, scores = _check(labels, scores)
    if clusters is None:
        clusters = np.arange(labels.size)
    clusters = np.asarray(clusters)
    draws: dict[str, list[float]] = {}
    # per side: the windows of each cluster, as one index array plus run offsets
    sides = []
    for side in (True, False):
        sel = np.flatnonzero(labels == side)
        ids, inverse = np.unique(clusters[sel], return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(ids)))]
        sides.append((sel[order], starts, len(ids)))
    for _ in range(n_resamples):
        parts = []
        for flat, starts, n_clusters in sides:
            pick = rng.integers(0, n_clusters, size=n_clusters)
            if n_clusters == len(flat):  # one window per cluster: plain resampling
                parts.append(flat[pick])
            else:
                parts.extend(flat[starts[c]:starts[c + 1]] for c in pick)
        idx = np.concatenate(parts)
        for key, value in statistic(labels[idx], scores[idx]).items():
            draws.setdefault(key, []).append(value)
    return {k: np.asarray(v) for k, v in draws.items()}


def percentile_ci(values: np.ndarray, ci: float) -> list[float]:
    """[low, high]: the central ``ci`` percentile interval of ``values`` (e.g. bootstrap draws)."""
    lo, hi = np.quantile(values, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return [float(lo), float(hi)]


def evaluate_scores(
    labels: np.ndarray,
    scores: np.ndarray,
    n_bootstrap: int,
    ci: float,
    seed: int,
    clusters: np.ndarray | None = None,
    fpr_targets: Sequence[float] = FPR_TARGETS,
) -> dict:
    """AUC, TPR at each target FPR, best balanced accuracy, with percentile bootstrap CIs.

    A TPR at FPR f is reported only with at least ceil(1/f) non-members; otherwise its value is
    the string "not estimable" and ``<key>_reason`` says why.
    """
    labels, scores = _check(labels, scores)
    n_mem, n_non = int(labels.sum()), int((~labels).sum())
    point = _point_metrics(labels, scores, fpr_targets)
    rng = np.random.default_rng(seed)
    draws = bootstrap(labels, scores, lambda y, s: _point_metrics(y, s, fpr_targets), n_bootstrap, rng, clusters)
    out: dict = {
        "n_members": n_mem,
        "n_nonmembers": n_non,
        "auc": point["auc"],
        "auc_ci": percentile_ci(draws["auc"], ci),
        "balanced_accuracy": point["balanced_accuracy"],
        "balanced_accuracy_ci": percentile_ci(draws["balanced_accuracy"], ci),
        "ci_level": ci,
        "n_bootstrap": n_bootstrap,
        "bootstrap_unit": "point" if clusters is None else "cluster",
    }
    for f in fpr_targets:
        key = fpr_key(f)
        need = min_nonmembers_for(f)
        if n_non >= need:
            out[key] = point[key]
            out[f"{key}_ci"] = percentile_ci(draws[key], ci)
        else:
            out[key] = "not estimable"
            out[f"{key}_reason"] = (
                f"{n_non} non-members: a TPR at {f:g} FPR needs at least {need} "
                "(one false positive would already exceed the target FPR)"
            )
    return out


def aggregate_by_group(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean score per group (subject-level membership); every group must be all member or all
    non-member. Returns (group scores, group labels, group ids), ids sorted."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    counts = np.bincount(inverse)
    mean = np.bincount(inverse, weights=scores) / counts
    member_frac = np.bincount(inverse, weights=labels.astype(float)) / counts
    mixed = ids[(member_frac > 0) & (member_frac < 1)]
    if mixed.size:
        raise ValueError(f"subjects with both member and non-member windows: {mixed[:5].tolist()}")
    return mean, member_frac == 1, ids


# --------------------------------------------------------------------------------------------
# DP ceiling
# --------------------------------------------------------------------------------------------


def dp_tpr_ceiling(fpr: np.ndarray | float, epsilon: float, delta: float) -> np.ndarray:
    """Largest TPR any attack can reach at ``fpr`` against an (epsilon, delta)-DP mechanism:
    TPR <= e^eps * FPR + delta (and, applied to the complement, 1 - FPR >= e^eps (1 - TPR) - ...;
    the first bound is the binding one at the low FPRs that matter)."""
    return np.minimum(1.0, np.exp(epsilon) * np.asarray(fpr, dtype=np.float64) + delta)


def clopper_pearson(k: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided (1 - alpha) exact binomial bounds: (lower bound, upper bound) of k/n."""
    k = np.asarray(k, dtype=np.float64)
    lower = np.where(k > 0, stats.beta.ppf(alpha, k, n - k + 1), 0.0)
    upper = np.where(k < n, stats.beta.ppf(1 - alpha, k + 1, n - k), 1.0)
    return lower, upper


# FPRs at which the clustered ceiling check compares a bootstrap lower bound of TPR with the ceiling
CEILING_FPR_GRID = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


def dp_ceiling_check(
    labels: np.ndarray, scores: np.ndarray, epsilon: float, delta: float, ci: float,
    clusters: np.ndarray | None = None, n_bootstrap: int = 500, seed: int = 0,
) -> dict:
    """Compare the measured ROC with the (epsilon, delta) ceiling TPR <= e^eps FPR + delta.

    Independent units (``clusters`` None): at every threshold TPR and FPR are binomial
    proportions; a violation is declared only when the lower Clopper-Pearson bound of TPR exceeds
    the ceiling at the upper bound of FPR, each bound at level alpha/2 and Bonferroni-corrected over
    the thresholds, so sampling noise alone fails the check with probability at most 1 - ci.

    Clustered units (windows grouped by their split unit: subject, or trial/block of
    single-subject data): windows of one unit are not independent trials, and member and
    non-member units differ by chance (which units the split drew), which a per-window binomial
    bound would mistake for leakage. The check then resamples whole units (members and
    non-members separately) and compares the lower bound of TPR at each FPR
    of :data:`CEILING_FPR_GRID` (those with at least 1/FPR non-members), Bonferroni-corrected over
    the grid, with the ceiling at that FPR.
    """
    if clusters is not None:
        return _ceiling_check_clustered(labels, scores, epsilon, delta, ci, clusters, n_bootstrap, seed)
    labels, scores = _check(labels, scores)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    fpr, tpr, thr = roc_curve(labels, scores)
    m = len(fpr)
    # two one-sided bounds per threshold (TPR from below, FPR from above), m thresholds: alpha/2
    # each, Bonferroni over m, so that all hold together with probability >= ci
    alpha = (1 - ci) / (2 * m)
    tpr_lo, _ = clopper_pearson(np.rint(tpr * n_pos), n_pos, alpha)
    _, fpr_hi = clopper_pearson(np.rint(fpr * n_neg), n_neg, alpha)
    ceiling_hi = dp_tpr_ceiling(fpr_hi, epsilon, delta)
    ceiling_point = dp_tpr_ceiling(fpr, epsilon, delta)
    excess = tpr_lo - ceiling_hi
    binding = ceiling_hi < 1.0  # where the ceiling is 1 nothing can exceed it
    out: dict = {
        "method": "Clopper-Pearson per threshold (independent units), TPR lower and FPR upper bound at alpha/2 each, "
                  "Bonferroni over thresholds",
        "epsilon": float(epsilon),
        "delta": float(delta),
        "ci_level": ci,
        "n_thresholds_checked": m,
        "n_thresholds_binding": int(binding.sum()),
        "violated": bool((excess[binding] > 0).any()),
        "ceiling_at": {fpr_key(f).replace("tpr_at_", ""): float(dp_tpr_ceiling(f, epsilon, delta)) for f in FPR_TARGETS},
    }
    if binding.any():
        # the threshold closest to (or furthest beyond) the ceiling, in lower-bound terms
        worst = int(np.flatnonzero(binding)[np.argmax(excess[binding])])
        out["worst"] = {
            "fpr": float(fpr[worst]), "fpr_upper": float(fpr_hi[worst]), "tpr": float(tpr[worst]),
            "tpr_lower": float(tpr_lo[worst]), "ceiling": float(ceiling_hi[worst]), "threshold": float(thr[worst]),
        }
    else:
        out["worst"] = None
        out["note"] = "the ceiling is 1 at every measured FPR: no attack can exceed it here"
    point_excess = tpr - ceiling_point
    top = int(np.argmax(point_excess))
    out["max_point_excess"] = {"excess": float(point_excess[top]), "fpr": float(fpr[top]), "tpr": float(tpr[top]),
                               "ceiling": float(ceiling_point[top])}
    return out


def _ceiling_check_clustered(
    labels: np.ndarray, scores: np.ndarray, epsilon: float, delta: float, ci: float,
    clusters: np.ndarray, n_bootstrap: int, seed: int,
) -> dict:
    labels, scores = _check(labels, scores)
    n_neg = int((~labels).sum())
    grid = [f for f in CEILING_FPR_GRID if n_neg >= min_nonmembers_for(f)]
    out: dict = {
        "method": f"cluster bootstrap (whole split units, {n_bootstrap} draws) of TPR at FPR in {grid}, Bonferroni over the grid",
        "epsilon": float(epsilon),
        "delta": float(delta),
        "ci_level": ci,
        "ceiling_at": {fpr_key(f).replace("tpr_at_", ""): float(dp_tpr_ceiling(f, epsilon, delta)) for f in FPR_TARGETS},
    }
    fpr, tpr, _ = roc_curve(labels, scores)
    ceiling_point = dp_tpr_ceiling(fpr, epsilon, delta)
    top = int(np.argmax(tpr - ceiling_point))
    out["max_point_excess"] = {"excess": float(tpr[top] - ceiling_point[top]), "fpr": float(fpr[top]),
                               "tpr": float(tpr[top]), "ceiling": float(ceiling_point[top])}
    if not grid:
        return out | {"violated": False, "worst": None, "points": [],
                      "note": f"{n_neg} non-members: too few for any FPR of the grid"}
    rng = np.random.default_rng(seed)

    def stat(y: np.ndarray, sc: np.ndarray) -> dict[str, float]:
        f_, t_, _ = roc_curve(y, sc)
        return {str(f): tpr_at_fpr(f_, t_, f) for f in grid}

    draws = bootstrap(labels, scores, stat, n_bootstrap, rng, clusters)
    alpha = (1 - ci) / len(grid)
    points = []
    for f in grid:
        ceiling = float(dp_tpr_ceiling(f, epsilon, delta))
        points.append({"fpr": f, "tpr": tpr_at_fpr(fpr, tpr, f), "tpr_lower": float(np.quantile(draws[str(f)], alpha)),
                       "ceiling": ceiling, "binding": ceiling < 1.0})
    binding = [p for p in points if p["binding"]]
    out["points"] = points
    out["violated"] = any(p["tpr_lower"] > p["ceiling"] for p in binding)
    out["worst"] = max(binding, key=lambda p: p["tpr_lower"] - p["ceiling"]) if binding else None
    if not binding:
        out["note"] = "the ceiling is 1 at every FPR of the grid: no attack can exceed it here"
    return out


def roc_table(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(n, 3) array fpr, tpr, threshold for ``roc.csv``."""
    fpr, tpr, thr = roc_curve(labels, scores)
    return np.column_stack([fpr, tpr, thr])


def strongest_attack_test(labels: np.ndarray, scores: dict[str, np.ndarray], clusters: np.ndarray | None,
                          n_permutations: int, seed: int) -> dict:
    """Permutation test of the strongest attack: the highest AUC over ``scores`` (attack name ->
    scores of the same windows) against its distribution when membership has no effect.

    Reporting the best of several attacks on one small sample is biased upward: with 8 attacks
    and a few dozen units the maximum AUC of attacks that learn nothing is often 0.55-0.6. Under
    the null (scores do not depend on membership, so member and non-member units are
    exchangeable) the member label can be permuted over whole units (``clusters``: subjects,
    trials or blocks; None = windows), keeping the number of member units; the maximum over the
    same attacks, recomputed per permutation, gives the null distribution. p = (1 + #{null >=
    observed}) / (1 + n_permutations). Every attack scores every window (one AUC per attack).
    """
    if not scores:
        raise ValueError("no attack scores")
    names = sorted(scores)
    checked = [_check(labels, scores[n]) for n in names]
    labels = checked[0][0]
    ranks = np.column_stack([stats.rankdata(s) for _, s in checked])  # (n, A)
    units = np.arange(labels.size) if clusters is None else np.asarray(clusters)
    if units.shape != labels.shape:
        raise ValueError("one cluster label per window")
    uniq, inverse = np.unique(units, return_inverse=True)
    inverse = inverse.reshape(-1)
    unit_label = np.zeros(len(uniq), dtype=bool)
    unit_label[inverse[labels]] = True
    if (unit_label[inverse] != labels).any():
        raise ValueError("a cluster holds both members and non-members")
    n_units, n_member_units = len(uniq), int(unit_label.sum())

    def aucs(window_labels: np.ndarray) -> np.ndarray:
        """(P, n) bool -> (P, A) AUC of every attack, from rank sums."""
        n_pos = window_labels.sum(axis=1, keepdims=True).astype(np.float64)
        n_neg = labels.size - n_pos
        return (window_labels.astype(np.float64) @ ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)

    observed = aucs(labels[None, :])[0]
    observed_auc, best = observed.max(), names[int(np.argmax(observed))]
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    chunk = max(1, min(n_permutations, 2_000_000 // max(labels.size, 1)))
    for lo in range(0, n_permutations, chunk):
        k = min(chunk, n_permutations - lo)
        perm_units = np.argsort(rng.random((k, n_units)), axis=1) < n_member_units  # k random unit labelings
        null[lo:lo + k] = aucs(perm_units[:, inverse]).max(axis=1)
    exceed = int((null >= observed_auc - 1e-12).sum())
    return {
        "method": f"max AUC over {len(names)} attacks vs {n_permutations} permutations of the member label "
                  f"over whole {'windows' if clusters is None else 'split units'}",
        "attack": best,
        "auc": float(observed_auc),
        "p_value": (1 + exceed) / (1 + n_permutations),
        "null_auc_mean": float(null.mean()),
        "null_auc_q95": float(np.quantile(null, 0.95)),
        "n_permutations": int(n_permutations),
        "n_units": {"members": n_member_units, "nonmembers": n_units - n_member_units},
        # few units allow few distinct labelings: the p-value cannot fall below ~1/count then
        "n_distinct_labelings": labelings if (labelings := math.comb(n_units, n_member_units)) <= 10**9 else None,
    }
