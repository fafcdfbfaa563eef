"""Membership-inference attacks as pure functions on arrays of model outputs.

Threat model and design: docs/attacks.md. The attacker queries the target (and its own
reference models) for output scores (logits) and turns them into one score per example; a
higher score means "more likely a member". No torch here: the model queries live in
:mod:`biospike.attacks.references`.

Attacks
- LOSS (Yeom et al. 2018): score = log p(true class) = -cross-entropy loss.
- LiRA (Carlini et al., S&P 2022) on phi = log(p / (1 - p)) of the true class:
  online: log N(phi; mu_in, s_in) - log N(phi; mu_out, s_out) per example from IN and OUT
  reference models; offline: one-sided, log Pr[Z <= phi] with Z ~ N(mu_out, s_out).
  ``fixed_variance`` pools one variance over all examples (recommended for few references).
- RMIA (Zarifzadeh et al., ICML 2024): LR(x, z) = [p(x|theta)/Pr(x)] / [p(z|theta)/Pr(z)];
  score(x) = fraction of population samples z with LR(x, z) >= gamma. Offline,
  Pr(x) = (1+a)/2 * P_OUT(x) + (1-a)/2 from OUT reference models only; online, Pr(x) is the mean
  over all reference models (half of them trained on x).
- Input dropout (Guan et al. 2025) is a query augmentation: logits arrive with a leading query
  axis (n queries, each with a fraction p of input spikes dropped) and the per-query confidences
  are averaged before any attack, for the target and the reference models alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import special, stats

from biospike.registry import Registry

__all__ = ["ATTACKS", "ATTACK_FAMILIES", "Attack", "AttackInputs", "LEVELS", "OFFLINE_A_FALLBACK", "Signals",
           "attack_names", "keep_masks", "lira_offline", "lira_online", "logit_confidence", "loss_scores",
           "register_attack", "rmia_marginal", "rmia_scores", "run_attacks", "signals_from_logits", "thin_spikes",
           "true_class_prob", "tune_offline_a"]

LEVELS = ("window", "subject")
_SD_FLOOR = 1e-6
# RMIA's offline a when it cannot be tuned (fewer than 3 reference models); the value the RMIA
# authors' reference configuration uses for CIFAR-10.
OFFLINE_A_FALLBACK = 0.3


# --------------------------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Signals:
    """Per-example confidences of one model (or a stack of models on a leading axis)."""

    prob: np.ndarray  # mean over queries of p(true class)
    phi: np.ndarray  # mean over queries of log p/(1-p) of the true class

    def take(self, idx: np.ndarray) -> Signals:
        """The signals of examples ``idx`` (indexing the last, per-example axis)."""
        return Signals(self.prob[..., idx], self.phi[..., idx])


def _true_and_rest(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true-class logit and log-sum-exp of the other logits, shapes (..., N)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.shape[-1] < 2:
        raise ValueError("need at least two classes")
    if labels.shape != logits.shape[-2:-1]:
        raise ValueError(f"labels {labels.shape} do not match logits {logits.shape}")
    idx = np.broadcast_to(labels[:, None], (*logits.shape[:-1], 1))
    true = np.take_along_axis(logits, idx, axis=-1)[..., 0]
    others = logits.copy()
    np.put_along_axis(others, idx, -np.inf, axis=-1)
    return true, special.logsumexp(others, axis=-1)


def logit_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi = log(p / (1 - p)) of the true class, computed stably as z_y - logsumexp_{j!=y} z_j."""
    true, rest = _true_and_rest(logits, labels)
    return true - rest


def true_class_prob(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Softmax probability of the true class."""
    true, rest = _true_and_rest(logits, labels)
    return special.expit(true - rest)


def signals_from_logits(logits: np.ndarray, labels: np.ndarray) -> Signals:
    """``logits`` (..., Q, N, C): Q queries of N examples (Q = 1 without augmentation);
    confidences are averaged over the query axis."""
    logits = np.asarray(logits)
    if logits.ndim < 3:
        raise ValueError("logits must have a query axis: (..., Q, N, C)")
    return Signals(
        prob=true_class_prob(logits, labels).mean(axis=-2),
        phi=logit_confidence(logits, labels).mean(axis=-2),
    )


def thin_spikes(x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Drop each input spike independently with probability ``p`` (binomial thinning of counts)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout fraction must be in [0, 1), got {p}")
    return rng.binomial(np.asarray(x, dtype=np.int64), 1.0 - p).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# reference-model design
# --------------------------------------------------------------------------------------------


def keep_masks(n_candidates: int, n_models: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """(K, N) bool: which candidates each reference model trains on.

    Complementary pairs: models 2j and 2j+1 split a fresh random permutation of the candidates
    into two halves, so with an even K every candidate is IN for exactly K/2 models (every example
    has IN and OUT models, as in Carlini et al.'s balanced design) and every model trains on half
    of the candidates (no reference model gets an unusually small or large training set). With
    an odd K the last model takes a random half of its own. With ``groups`` (e.g. the subject of
    each window) whole groups are IN or OUT together, which matches a target whose members and
    non-members are split by subject.
    """
    if n_models < 1 or n_candidates < 1:
        raise ValueError("need at least one model and one candidate")
    if groups is None:
        inverse = np.arange(n_candidates)
    else:
        groups = np.asarray(groups)
        if groups.shape != (n_candidates,):
            raise ValueError(f"groups must have one entry per candidate ({n_candidates}), got {groups.shape}")
        _, inverse = np.unique(groups, return_inverse=True)
    n_units = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    keep = np.zeros((n_models, n_units), dtype=bool)
    for first in range(0, n_models, 2):
        perm = rng.permutation(n_units)
        half = perm[: n_units // 2] if rng.random() < 0.5 else perm[n_units // 2:]
        keep[first, half] = True
        if first + 1 < n_models:
            keep[first + 1] = ~keep[first]
    return keep[:, inverse]


# --------------------------------------------------------------------------------------------
# attacks
# --------------------------------------------------------------------------------------------


def loss_scores(target: Signals) -> np.ndarray:
    """LOSS / confidence threshold: log p(true class) (higher = lower loss = member)."""
    return np.log(np.clip(target.prob, 1e-300, None))


def _masked_moments(values: np.ndarray, mask: np.ndarray, fixed_variance: bool, side: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and standard deviation of ``values`` (K, N) over models where ``mask``."""
    count = mask.sum(axis=0)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} examples have no {side} reference model")
    mean = np.where(mask, values, 0.0).sum(axis=0) / count
    resid = np.where(mask, values - mean, 0.0)
    if fixed_variance:
        dof = int(count.sum() - count.size)
        if dof >= 1:
            sd = np.sqrt((resid**2).sum() / dof)  # pooled within-example spread
        else:  # one model per example: only the spread across examples is left
            sd = float(np.std(values[mask]))
        sd = np.full(mean.shape, max(float(sd), _SD_FLOOR))
    else:
        if (count < 2).any():
            raise ValueError(
                f"per-example variance needs >= 2 {side} reference models per example; "
                "use lira.fixed_variance: true with few reference models"
            )
        sd = np.maximum(np.sqrt((resid**2).sum(axis=0) / (count - 1)), _SD_FLOOR)
    return mean, sd


def lira_online(target_phi: np.ndarray, ref_phi: np.ndarray, keep: np.ndarray, fixed_variance: bool) -> np.ndarray:
    """Online LiRA: log-likelihood ratio of the IN and OUT Gaussians at the target's phi.

    ``ref_phi``, ``keep``: (K, N), keep[k, i] = reference model k trained on example i.
    """
    keep = np.asarray(keep, dtype=bool)
    mu_in, sd_in = _masked_moments(ref_phi, keep, fixed_variance, "IN")
    mu_out, sd_out = _masked_moments(ref_phi, ~keep, fixed_variance, "OUT")
    return stats.norm.logpdf(target_phi, mu_in, sd_in) - stats.norm.logpdf(target_phi, mu_out, sd_out)


def lira_offline(target_phi: np.ndarray, ref_phi: np.ndarray, keep: np.ndarray, fixed_variance: bool) -> np.ndarray:
    """Offline LiRA: one-sided test against the OUT Gaussian, log Pr[Z <= phi], Z ~ N(mu_out, s_out)."""
    keep = np.asarray(keep, dtype=bool)
    mu_out, sd_out = _masked_moments(ref_phi, ~keep, fixed_variance, "OUT")
    return stats.norm.logcdf(target_phi, mu_out, sd_out)


def rmia_marginal(ref_prob: np.ndarray, keep: np.ndarray, offline_a: float | None) -> np.ndarray:
    """Pr(x) from reference models: offline (``offline_a`` given) from OUT models only,
    (1+a)/2 * P_OUT + (1-a)/2; online (``offline_a`` None) the mean over all models."""
    if offline_a is None:
        return ref_prob.mean(axis=0)
    out = ~np.asarray(keep, dtype=bool)
    count = out.sum(axis=0)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} examples have no OUT reference model")
    p_out = np.where(out, ref_prob, 0.0).sum(axis=0) / count
    return (1.0 + offline_a) / 2.0 * p_out + (1.0 - offline_a) / 2.0


def rmia_scores(
    target_x: np.ndarray, ref_x: np.ndarray, keep_x: np.ndarray,
    target_z: np.ndarray, ref_z: np.ndarray, keep_z: np.ndarray,
    gamma: float, offline_a: float | None,
) -> np.ndarray:
    """RMIA: fraction of population samples z that x dominates, LR(x, z) >= gamma.

    ``target_*``: p(true class) under the target, (N,) and (M,); ``ref_*``/``keep_*``: (K, N) and
    (K, M) under the reference models.
    """
    ratio_x = target_x / np.clip(rmia_marginal(ref_x, keep_x, offline_a), 1e-30, None)
    ratio_z = np.sort(target_z / np.clip(rmia_marginal(ref_z, keep_z, offline_a), 1e-30, None))
    if ratio_z.size == 0:
        raise ValueError("RMIA needs at least one population sample z")
    # LR(x, z) >= gamma  <=>  ratio_z <= ratio_x / gamma
    return np.searchsorted(ratio_z, ratio_x / gamma, side="right") / ratio_z.size


def tune_offline_a(
    ref_x: np.ndarray, keep_x: np.ndarray, ref_z: np.ndarray, keep_z: np.ndarray,
    gamma: float, grid: Sequence[float] = tuple(np.round(np.linspace(0, 1, 11), 2)),
) -> tuple[float, dict[str, float]]:
    """Choose RMIA's offline ``a`` as the paper does, without touching the target: each reference
    model in turn plays the target (its keep mask is the ground truth), the others serve as
    references, and the ``a`` with the best mean AUC wins. Returns (a, {a: mean AUC})."""
    from biospike.attacks.metrics import roc_auc

    n_models = ref_x.shape[0]
    if n_models < 3:
        raise ValueError("tuning offline_a needs >= 3 reference models; set rmia.offline_a to a number")
    aucs: dict[str, float] = {}
    for a in grid:
        per_model = []
        for s in range(n_models):
            others = np.arange(n_models) != s
            ok_x = (~keep_x[others]).any(axis=0)  # examples with an OUT model among the others
            z_out = ~keep_z[s] & (~keep_z[others]).any(axis=0)  # z the surrogate never saw
            if ok_x.sum() < 2 or z_out.sum() < 1 or keep_x[s, ok_x].all() or not keep_x[s, ok_x].any():
                continue
            sc = rmia_scores(ref_x[s, ok_x], ref_x[others][:, ok_x], keep_x[others][:, ok_x],
                             ref_z[s, z_out], ref_z[others][:, z_out], keep_z[others][:, z_out], gamma, float(a))
            per_model.append(roc_auc(keep_x[s, ok_x], sc))
        if per_model:
            aucs[f"{float(a):g}"] = float(np.mean(per_model))
    if not aucs:
        raise ValueError("no reference model could serve as surrogate target for tuning offline_a")
    best = max(aucs, key=lambda k: (aucs[k], -float(k)))
    return float(best), aucs


# --------------------------------------------------------------------------------------------
# orchestration on arrays
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AttackInputs:
    """What an attack scores: the target's and the reference models' signals on the N target
    examples x (with the (K, N) keep masks) and on RMIA's population samples z."""

    target_x: Signals
    refs_x: Signals
    keep_x: np.ndarray
    target_z: Signals
    refs_z: Signals
    keep_z: np.ndarray


@dataclasses.dataclass(frozen=True)
class Attack:
    """One membership-inference attack variant (a ROC file and a row of every attack table).

    ``family`` is the ``attack.attacks`` entry that switches it on, ``enabled(cfg)`` its own
    switch inside the family's settings; ``score(inputs, cfg, details)`` returns one score per
    target example (higher = more likely a member) and may record what it tuned in ``details``."""

    name: str
    family: str
    score: Callable[[AttackInputs, Mapping[str, Any], dict], np.ndarray]
    enabled: Callable[[Mapping[str, Any]], bool] = lambda cfg: True  # noqa: ARG005
    description: str = ""


ATTACKS: Registry[Attack] = Registry("attack")


def register_attack(attack: Attack, replace: bool = False) -> Attack:
    """Register ``attack`` in :data:`ATTACKS` (the attack stage, tables and figures pick it up)."""
    return ATTACKS.register(attack, replace)


def _rmia(inputs: AttackInputs, cfg: Mapping[str, Any], details: dict, online: bool) -> np.ndarray:
    rmia = cfg.get("rmia", {})
    gamma = float(rmia.get("gamma", 2.0))
    offline_a: float | None = None
    if not online:
        a = rmia.get("offline_a", "auto")
        if a == "auto":
            a, table = tune_offline_a(inputs.refs_x.prob, inputs.keep_x, inputs.refs_z.prob, inputs.keep_z, gamma)
            details["rmia_offline_a_auc"] = table
        details["rmia_offline_a"] = float(a)
        offline_a = float(a)
    return rmia_scores(inputs.target_x.prob, inputs.refs_x.prob, inputs.keep_x, inputs.target_z.prob,
                       inputs.refs_z.prob, inputs.keep_z, gamma, offline_a)


def _fixed(cfg: Mapping[str, Any]) -> bool:
    return bool(cfg.get("lira", {}).get("fixed_variance", True))


for _attack in (
    Attack("loss", "loss", lambda i, cfg, d: loss_scores(i.target_x),  # noqa: ARG005
           description="LOSS threshold on the target's loss (Yeom et al. 2018); no reference models"),
    Attack("lira_online", "lira", lambda i, cfg, d: lira_online(i.target_x.phi, i.refs_x.phi, i.keep_x, _fixed(cfg)),  # noqa: ARG005
           enabled=lambda cfg: bool(cfg.get("lira", {}).get("online", True)),
           description="LiRA with IN and OUT Gaussians (Carlini et al. 2022)"),
    Attack("lira_offline", "lira", lambda i, cfg, d: lira_offline(i.target_x.phi, i.refs_x.phi, i.keep_x, _fixed(cfg)),  # noqa: ARG005
           enabled=lambda cfg: bool(cfg.get("lira", {}).get("offline", True)),
           description="LiRA, one-sided test against the OUT Gaussian"),
    Attack("rmia", "rmia", lambda i, cfg, d: _rmia(i, cfg, d, online=False),
           description="RMIA with offline reference models (Zarifzadeh et al. 2024)"),
    Attack("rmia_online", "rmia", lambda i, cfg, d: _rmia(i, cfg, d, online=True),
           enabled=lambda cfg: bool(cfg.get("rmia", {}).get("online", False)),
           description="RMIA with IN and OUT reference models"),
):
    register_attack(_attack)

ATTACK_FAMILIES = tuple(dict.fromkeys(a.family for a in ATTACKS))


def attack_names(cfg: Mapping[str, Any], families: Sequence[str] | None = None) -> list[str]:
    """The attack variants a config runs, in registration order (also the roc.csv names).

    ``families`` (default ``cfg["attacks"]``) picks among the registered families (loss, lira,
    rmia); with input dropout enabled every variant is also run on the dropout queries, suffixed
    ``_dropout``.
    """
    families = list(cfg.get("attacks", ATTACK_FAMILIES) if families is None else families)
    unknown = set(families) - set(ATTACK_FAMILIES)
    if unknown:
        raise ValueError(f"unknown attacks {sorted(unknown)} (known: {list(ATTACK_FAMILIES)})")
    names = [a.name for a in ATTACKS if a.family in families and a.enabled(cfg)]
    if cfg.get("input_dropout", {}).get("enabled", False):
        names += [f"{n}_dropout" for n in names]
    return names


def run_attacks(
    names: Sequence[str],
    target_x: Signals, refs_x: Signals, keep_x: np.ndarray,
    target_z: Signals, refs_z: Signals, keep_z: np.ndarray,
    cfg: Mapping[str, Any],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Scores of every named attack (without the ``_dropout`` suffix: the caller passes dropout
    signals for those) on the N target examples x; z are RMIA's population samples.
    Returns (scores by name, details such as the tuned offline ``a``)."""
    inputs = AttackInputs(target_x, refs_x, keep_x, target_z, refs_z, keep_z)
    details: dict[str, Any] = {}
    scores: dict[str, np.ndarray] = {}
    for name in names:
        attack = ATTACKS.get(name)
        if attack is None:
            raise ValueError(f"unknown attack {name!r}")
        scores[name] = attack.score(inputs, cfg, details)
        if np.isnan(scores[name]).any():
            raise ValueError(f"attack {name} produced NaN scores")
    return scores, details
