"""Attack metrics against scikit-learn, CI behaviour, and the DP-ceiling check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from biospike.attacks import metrics as M


def _labels_scores(draw_labels, draw_scores):
    labels = np.asarray(draw_labels, dtype=bool)
    scores = np.asarray(draw_scores, dtype=float)
    return labels, scores


label_score_pairs = st.integers(4, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)),
        # few distinct values: many ties, the case where ROC implementations differ
        st.lists(st.sampled_from([-2.0, -0.5, 0.0, 0.1, 1.0, 3.0, 7.5]), min_size=n, max_size=n),
    )
)


@given(label_score_pairs)
@settings(max_examples=200, deadline=None)
def test_roc_and_auc_match_sklearn_with_ties(pair):
    labels, scores = _labels_scores(*pair)
    fpr, tpr, thr = M.roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])
    assert np.isinf(thr[0])
    assert M.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_on_continuous_scores_matches_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.random(3000) < 0.4
    scores = rng.normal(size=3000) + 0.7 * labels
    fpr, tpr, _ = M.roc_curve(labels, scores)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert M.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    # TPR at 1% FPR: the best TPR among sklearn's thresholds with FPR <= 1%
    expected = sk_tpr[sk_fpr <= 0.01].max()
    assert M.tpr_at_fpr(fpr, tpr, 0.01) == pytest.approx(expected)
    # balanced accuracy at the best threshold, by brute force over thresholds
    best = max(((scores >= t)[labels].mean() + (scores < t)[~labels].mean()) / 2 for t in np.unique(scores))
    assert M.best_balanced_accuracy(fpr, tpr) == pytest.approx(best)


def test_perfect_and_inverted_scores():
    labels = np.array([1, 1, 0, 0], bool)
    assert M.roc_auc(labels, np.array([2.0, 3, 0, 1])) == 1.0
    assert M.roc_auc(labels, np.array([0.0, 1, 2, 3])) == 0.0
    assert M.roc_auc(labels, np.zeros(4)) == 0.5


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="member"):
        M.roc_auc(np.ones(3, bool), np.arange(3.0))
    with pytest.raises(ValueError, match="NaN"):
        M.roc_auc(np.array([1, 0], bool), np.array([np.nan, 1.0]))


def test_low_fpr_not_estimable_below_1000_nonmembers():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(500, bool), np.zeros(999, bool)]
    scores = rng.normal(size=labels.size) + labels
    out = M.evaluate_scores(labels, scores, n_bootstrap=50, ci=0.95, seed=0)
    assert out["tpr_at_0.1pct_fpr"] == "not estimable"
    assert "999 non-members" in out["tpr_at_0.1pct_fpr_reason"]
    assert isinstance(out["tpr_at_1pct_fpr"], float)
    labels2 = np.r_[np.ones(500, bool), np.zeros(1000, bool)]
    out2 = M.evaluate_scores(labels2, rng.normal(size=labels2.size) + labels2, n_bootstrap=50, ci=0.95, seed=0)
    assert isinstance(out2["tpr_at_0.1pct_fpr"], float)
    assert len(out2["tpr_at_0.1pct_fpr_ci"]) == 2


def test_bootstrap_is_seeded_and_the_ci_brackets_the_estimate():
    rng = np.random.default_rng(2)
    labels = rng.random(400) < 0.5
    scores = rng.normal(size=400) + 0.8 * labels
    a = M.evaluate_scores(labels, scores, n_bootstrap=200, ci=0.95, seed=7)
    b = M.evaluate_scores(labels, scores, n_bootstrap=200, ci=0.95, seed=7)
    assert a == b
    lo, hi = a["auc_ci"]
    assert lo < a["auc"] < hi
    assert 0.05 < hi - lo < 0.2  # about 2 x 1.96 x sd of an AUC on 200 + 200 points


def test_cluster_bootstrap_is_wider_for_correlated_windows():
    """Windows of one subject share a subject effect: resampling subjects gives wider CIs."""
    rng = np.random.default_rng(3)
    n_subj, per = 20, 30
    subj = np.repeat(np.arange(n_subj), per)
    labels = np.repeat(np.arange(n_subj) < 10, per)
    scores = np.repeat(rng.normal(size=n_subj), per) + 0.1 * rng.normal(size=subj.size)
    iid = M.evaluate_scores(labels, scores, 300, 0.95, 0)
    clus = M.evaluate_scores(labels, scores, 300, 0.95, 0, clusters=subj)
    assert np.diff(clus["auc_ci"])[0] > 2 * np.diff(iid["auc_ci"])[0]
    assert clus["auc_ci"][0] < 0.5 < clus["auc_ci"][1]


def test_aggregate_by_group_means_and_rejects_mixed_groups():
    scores = np.array([1.0, 3.0, 0.0, 2.0])
    labels = np.array([1, 1, 0, 0], bool)
    mean, lab, ids = M.aggregate_by_group(scores, labels, np.array(["a", "a", "b", "b"]))
    np.testing.assert_allclose(mean, [2.0, 1.0])
    np.testing.assert_array_equal(lab, [True, False])
    assert ids.tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="both member and non-member"):
        M.aggregate_by_group(scores, labels, np.array(["a", "b", "b", "b"]))


# ---------------------------------------------------------------------------------------------
# DP ceiling
# ---------------------------------------------------------------------------------------------


def test_ceiling_formula():
    assert M.dp_tpr_ceiling(0.001, 1.0, 1e-5) == pytest.approx(np.e * 0.001 + 1e-5)
    assert M.dp_tpr_ceiling(0.5, 3.0, 0.0) == 1.0  # capped
    # docs/privacy.md, "Sources": eps = 1 -> TPR@0.1% FPR <= 0.27%; eps = 3 -> <= 2.0%
    assert M.dp_tpr_ceiling(0.001, 1.0, 0.0) == pytest.approx(0.0027, abs=1e-4)
    assert M.dp_tpr_ceiling(0.001, 3.0, 0.0) == pytest.approx(0.020, abs=1e-3)


def test_ceiling_check_fires_on_a_violation():
    """An attack that separates members perfectly cannot exist against eps = 1."""
    rng = np.random.default_rng(4)
    labels = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    scores = rng.normal(size=2000) + 4.0 * labels
    out = M.dp_ceiling_check(labels, scores, epsilon=1.0, delta=1e-5, ci=0.95)
    assert out["violated"]
    w = out["worst"]
    assert w["tpr_lower"] > w["ceiling"]
    assert w["ceiling"] == pytest.approx(min(1.0, np.e * w["fpr_upper"] + 1e-5))


def test_ceiling_check_quiet_on_a_compliant_attack():
    """Scores drawn from a mechanism that is eps-DP by construction (randomized response with
    e^eps odds) stay under the ceiling, up to sampling noise the check must tolerate."""
    rng = np.random.default_rng(5)
    eps = 1.0
    labels = np.r_[np.ones(3000, bool), np.zeros(3000, bool)]
    p_say_member = np.where(labels, np.exp(eps) / (1 + np.exp(eps)), 1 / (1 + np.exp(eps)))
    scores = (rng.random(labels.size) < p_say_member).astype(float) + 0.0
    out = M.dp_ceiling_check(labels, scores, epsilon=eps, delta=1e-5, ci=0.95)
    assert not out["violated"]
    # and an honest but tight attack: the point estimate at the threshold is close to the ceiling
    assert out["max_point_excess"]["excess"] < 0.05


def test_ceiling_bounds_spend_half_the_error_rate_on_each_side():
    """TPR from below and FPR from above at alpha/2 each (Bonferroni over m thresholds), so the
    two hold together at the stated confidence."""
    rng = np.random.default_rng(8)
    labels = np.r_[np.ones(400, bool), np.zeros(600, bool)]
    scores = rng.normal(size=1000) + 2.0 * labels
    out = M.dp_ceiling_check(labels, scores, epsilon=1.0, delta=1e-5, ci=0.9)
    alpha = (1 - 0.9) / (2 * out["n_thresholds_checked"])
    w = out["worst"]
    lo, _ = M.clopper_pearson(np.array([round(w["tpr"] * 400)]), 400, alpha)
    _, hi = M.clopper_pearson(np.array([round(w["fpr"] * 600)]), 600, alpha)
    assert w["tpr_lower"] == pytest.approx(float(lo[0])) and w["fpr_upper"] == pytest.approx(float(hi[0]))
    assert "alpha/2" in out["method"]


def test_ceiling_check_says_when_the_ceiling_never_binds():
    rng = np.random.default_rng(7)
    labels = rng.random(200) < 0.5
    out = M.dp_ceiling_check(labels, rng.normal(size=200), epsilon=12.0, delta=1e-5, ci=0.95)
    assert not out["violated"] and out["worst"] is None and "no attack can exceed" in out["note"]


def test_ceiling_check_quiet_on_random_scores():
    rng = np.random.default_rng(6)
    labels = rng.random(2000) < 0.5
    out = M.dp_ceiling_check(labels, rng.normal(size=2000), epsilon=0.5, delta=1e-5, ci=0.95)
    assert not out["violated"]


def _subject_world(shift: float, seed: int):
    """20 member and 20 non-member subjects x 40 windows; scores share a per-subject effect."""
    rng = np.random.default_rng(seed)
    n_subj, per = 40, 40
    subj = np.repeat(np.arange(n_subj), per)
    labels = np.repeat(np.arange(n_subj) < 20, per)
    scores = np.repeat(rng.normal(scale=1.5, size=n_subj), per) + 0.3 * rng.normal(size=subj.size) + shift * labels
    return labels, scores, subj


def test_clustered_ceiling_check_tolerates_subject_differences_but_catches_a_leak():
    """Without any membership effect, which subjects landed on which side still shifts the
    scores; per-window binomial bounds can mistake that for leakage, subject resampling must not."""
    false_alarms_binomial, false_alarms_clustered = 0, 0
    for seed in range(6):
        labels, scores, subj = _subject_world(0.0, seed)
        false_alarms_binomial += M.dp_ceiling_check(labels, scores, 0.5, 1e-5, 0.95)["violated"]
        check = M.dp_ceiling_check(labels, scores, 0.5, 1e-5, 0.95, clusters=subj, n_bootstrap=200, seed=seed)
        false_alarms_clustered += check["violated"]
        assert "cluster bootstrap (whole split units" in check["method"]
    assert false_alarms_clustered == 0
    assert false_alarms_binomial >= 1  # the reason the clustered check exists
    labels, scores, subj = _subject_world(6.0, 0)
    check = M.dp_ceiling_check(labels, scores, 0.5, 1e-5, 0.95, clusters=subj, n_bootstrap=200, seed=0)
    assert check["violated"]
    w = check["worst"]
    assert w["tpr_lower"] > w["ceiling"] and w["binding"]


def _attack_scores(labels, base, rng, n_attacks=8, leak=0.0):
    """n_attacks noisy views of the same per-window score; ``leak`` shifts one of them for members."""
    out = {f"a{i}": base + 0.5 * rng.normal(size=base.size) for i in range(n_attacks)}
    out["a0"] = out["a0"] + leak * labels
    return out


def test_strongest_attack_test_is_calibrated_by_units_not_windows():
    """No membership effect, but subject effects: the best of 8 attacks often looks like
    leakage window by window (p < 0.05), never after permuting whole subjects (p uniform)."""
    p_units, p_windows = [], []
    for seed in range(20):
        labels, base, subj = _subject_world(0.0, seed)
        sc = _attack_scores(labels, base, np.random.default_rng(seed))
        p_units.append(M.strongest_attack_test(labels, sc, subj, 200, seed)["p_value"])
        p_windows.append(M.strongest_attack_test(labels, sc, None, 200, seed)["p_value"])
    assert sum(p < 0.05 for p in p_units) <= 3  # ~1 expected of 20 at a 5% level
    assert sum(p < 0.05 for p in p_windows) >= 10  # the reason the units are permuted


def test_strongest_attack_test_finds_a_leak_and_names_the_attack():
    labels, base, subj = _subject_world(0.0, 0)
    sc = _attack_scores(labels, base, np.random.default_rng(0), leak=3.0)
    out = M.strongest_attack_test(labels, sc, subj, 500, 1)
    assert out["attack"] == "a0" and out["auc"] > out["null_auc_q95"] and out["p_value"] <= 2 / 501
    assert out["auc"] == pytest.approx(M.roc_auc(labels, sc["a0"]))
    assert out["n_units"] == {"members": 20, "nonmembers": 20}
    assert out == M.strongest_attack_test(labels, sc, subj, 500, 1)  # seeded


def test_strongest_attack_test_rejects_mixed_units_and_counts_labelings():
    labels = np.array([True, True, False, False])
    sc = {"a": np.array([0.9, 0.8, 0.1, 0.2])}
    with pytest.raises(ValueError, match="both members and non-members"):
        M.strongest_attack_test(labels, sc, np.array([0, 1, 1, 2]), 10, 0)
    out = M.strongest_attack_test(labels, sc, np.array([0, 0, 1, 1]), 50, 0)
    assert out["n_distinct_labelings"] == 2 and out["auc"] == 1.0
    assert out["p_value"] > 0.3  # two units: the observed labeling is one of two, never significant
