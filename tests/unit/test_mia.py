"""Attack functions on synthetic scores, where the right answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from biospike.attacks import mia
from biospike.attacks.metrics import roc_auc
from biospike.attacks.references import keep_seed, reference_keep


def test_phi_is_logit_of_true_class_probability():
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3, size=(50, 4))
    labels = rng.integers(0, 4, size=50)
    p = special.softmax(logits, axis=1)[np.arange(50), labels]
    np.testing.assert_allclose(mia.true_class_prob(logits, labels), p, rtol=1e-10)
    np.testing.assert_allclose(mia.logit_confidence(logits, labels), np.log(p / (1 - p)), rtol=1e-8)
    # stable where p -> 1 (log(p/(1-p)) in floating point would be inf)
    big = np.array([[60.0, 0.0]])
    assert mia.logit_confidence(big, np.array([0]))[0] == pytest.approx(60.0)


def test_signals_average_over_queries():
    logits = np.array([[[2.0, 0.0]], [[0.0, 0.0]]])  # 2 queries, 1 example
    s = mia.signals_from_logits(logits, np.array([0]))
    assert s.prob[0] == pytest.approx((special.expit(2.0) + 0.5) / 2)
    assert s.phi[0] == pytest.approx(1.0)


def test_keep_masks_balanced_and_deterministic_by_seed():
    a = mia.keep_masks(101, 4, seed=3)
    assert a.shape == (4, 101) and a.dtype == bool
    np.testing.assert_array_equal(a.sum(axis=0), 2)  # every candidate IN for exactly K/2 models
    np.testing.assert_array_equal(a, mia.keep_masks(101, 4, seed=3))
    assert not np.array_equal(a, mia.keep_masks(101, 4, seed=4))
    # the workflow's keep masks: seeded by (root seed, dataset, encoding, kind)
    k1 = reference_keep(7, "demo_eeg", "delta", "snn", 60, 4)
    np.testing.assert_array_equal(k1, reference_keep(7, "demo_eeg", "delta", "snn", 60, 4))
    assert not np.array_equal(k1, reference_keep(7, "demo_eeg", "delta", "ann", 60, 4))
    assert keep_seed(7, "demo_eeg", "delta", "snn") != keep_seed(8, "demo_eeg", "delta", "snn")
    # each model trains on about half the candidates
    assert 0.49 < k1.mean(axis=1).min() and k1.mean(axis=1).max() < 0.51
    odd = mia.keep_masks(40, 3, seed=1)  # odd K: every example still has an IN and an OUT model
    assert (odd.sum(axis=0) >= 1).all() and (odd.sum(axis=0) <= 2).all()


def test_keep_masks_by_subject_keep_subjects_whole():
    groups = np.repeat(np.array(["s3", "s1", "s2", "s0", "s4", "s5"]), 7)
    keep = mia.keep_masks(groups.size, 4, seed=5, groups=groups)
    np.testing.assert_array_equal(keep.sum(axis=0), 2)
    for g in np.unique(groups):
        cols = keep[:, groups == g]
        assert (cols == cols[:, :1]).all()  # all windows of a subject share their status
    np.testing.assert_array_equal(keep, mia.keep_masks(groups.size, 4, seed=5, groups=groups))
    # each model trains on half the subjects
    assert all(len(np.unique(groups[row])) == 3 for row in keep)
    with pytest.raises(ValueError, match="one entry per candidate"):
        mia.keep_masks(5, 4, seed=0, groups=groups)


def test_thinning_drops_the_requested_fraction():
    rng = np.random.default_rng(1)
    x = (rng.random((200, 50, 8)) < 0.3).astype(np.uint8)
    y = mia.thin_spikes(x, 0.1, rng)
    assert y.dtype == np.uint8
    assert np.all(y <= x)
    assert y.sum() / x.sum() == pytest.approx(0.9, abs=0.01)
    np.testing.assert_array_equal(mia.thin_spikes(x, 0.0, rng), x)


def _gaussian_world(n=2000, k=8, shift=1.0, seed=0, per_example_sd=2.0):
    """Per-example difficulty mu_i; IN models see phi ~ N(mu_i + shift, 0.5), OUT ~ N(mu_i, 0.5).
    Target: members are the first half."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(scale=per_example_sd, size=n)
    keep = mia.keep_masks(n, k, seed + 1)
    ref_phi = mu + shift * keep + rng.normal(scale=0.5, size=(k, n))
    member = np.arange(n) < n // 2
    target_phi = mu + shift * member + rng.normal(scale=0.5, size=n)
    return target_phi, ref_phi, keep, member


@pytest.mark.parametrize("fixed", [True, False])
def test_lira_beats_global_threshold_when_examples_differ_in_difficulty(fixed):
    target_phi, ref_phi, keep, member = _gaussian_world()
    auc_loss = roc_auc(member, target_phi)  # a global threshold on phi (LOSS-like)
    auc_on = roc_auc(member, mia.lira_online(target_phi, ref_phi, keep, fixed))
    auc_off = roc_auc(member, mia.lira_offline(target_phi, ref_phi, keep, fixed))
    assert auc_on > auc_loss + 0.1
    assert auc_off > auc_loss + 0.1
    assert auc_on > 0.8


def test_lira_at_chance_when_members_are_indistinguishable():
    target_phi, ref_phi, keep, member = _gaussian_world(shift=0.0, seed=5)
    for scores in (mia.lira_online(target_phi, ref_phi, keep, True), mia.lira_offline(target_phi, ref_phi, keep, True)):
        assert abs(roc_auc(member, scores) - 0.5) < 0.04


def test_lira_per_example_variance_needs_two_models_per_side():
    target_phi, ref_phi, keep, _ = _gaussian_world(k=2)
    with pytest.raises(ValueError, match="fixed_variance"):
        mia.lira_online(target_phi, ref_phi, keep, fixed_variance=False)
    mia.lira_online(target_phi, ref_phi, keep, fixed_variance=True)  # pooled variance works


def test_lira_online_matches_closed_form_likelihood_ratio():
    """Per-example Gaussians with known moments: the score is the log likelihood ratio."""
    ref_phi = np.array([[1.0], [3.0], [-1.0], [1.0]])
    keep = np.array([[True], [True], [False], [False]])
    score = mia.lira_online(np.array([2.0]), ref_phi, keep, fixed_variance=False)[0]
    from scipy import stats

    expected = stats.norm.logpdf(2.0, 2.0, np.sqrt(2.0)) - stats.norm.logpdf(2.0, 0.0, np.sqrt(2.0))
    assert score == pytest.approx(expected)


def _rmia_world(n=1500, m=800, k=4, boost=0.15, seed=0):
    """Probabilities of the true class; members get a boost under the target and under IN refs."""
    rng = np.random.default_rng(seed)
    base = special.expit(rng.normal(1.0, 1.5, size=n + m))
    keep = mia.keep_masks(n + m, k, seed + 1)
    ref = np.clip(base + boost * keep + rng.normal(0, 0.03, size=(k, n + m)), 1e-4, 1 - 1e-4)
    member = np.r_[np.arange(n) < n // 2, np.zeros(m, bool)]
    tgt = np.clip(base + boost * member + rng.normal(0, 0.03, size=n + m), 1e-4, 1 - 1e-4)
    x, z = np.arange(n), np.arange(n, n + m)
    return tgt[x], ref[:, x], keep[:, x], tgt[z], ref[:, z], keep[:, z], member[x]


@pytest.mark.parametrize("offline_a", [0.3, None])
def test_rmia_detects_members_and_scores_are_fractions(offline_a):
    tx, rx, kx, tz, rz, kz, member = _rmia_world()
    s = mia.rmia_scores(tx, rx, kx, tz, rz, kz, gamma=1.0, offline_a=offline_a)
    assert s.min() >= 0 and s.max() <= 1
    assert roc_auc(member, s) > 0.75
    assert roc_auc(member, s) > roc_auc(member, tx) + 0.05  # beats the raw confidence


def test_rmia_at_chance_without_signal_and_monotone_in_gamma():
    tx, rx, kx, tz, rz, kz, member = _rmia_world(boost=0.0, seed=3)
    s = mia.rmia_scores(tx, rx, kx, tz, rz, kz, gamma=1.0, offline_a=0.3)
    assert abs(roc_auc(member, s) - 0.5) < 0.05
    s2 = mia.rmia_scores(tx, rx, kx, tz, rz, kz, gamma=2.0, offline_a=0.3)
    assert np.all(s2 <= s)  # a larger gamma dominates fewer z


def test_rmia_fraction_of_population_dominated_by_hand():
    # ratios x: [2, 0.5]; ratios z: [0.5, 1, 4] (refs give Pr = 0.5 everywhere, online mode)
    rx = np.full((2, 2), 0.5)
    rz = np.full((2, 3), 0.5)
    keep_x, keep_z = np.zeros((2, 2), bool), np.zeros((2, 3), bool)
    s = mia.rmia_scores(np.array([1.0, 0.25]), rx, keep_x, np.array([0.25, 0.5, 2.0]), rz, keep_z, gamma=1.0, offline_a=None)
    np.testing.assert_allclose(s, [2 / 3, 1 / 3])


def test_offline_a_tuning_picks_from_the_grid():
    tx, rx, kx, tz, rz, kz, _ = _rmia_world(k=4)
    a, table = mia.tune_offline_a(rx, kx, rz, kz, gamma=1.0)
    assert 0.0 <= a <= 1.0 and f"{a:g}" in table
    assert table[f"{a:g}"] == max(table.values())
    assert max(table.values()) > 0.7  # surrogate targets are attackable in this world


def test_attack_names_follow_the_config():
    cfg = {"attacks": ["loss", "lira", "rmia"], "lira": {"online": True, "offline": False},
           "rmia": {"online": True}, "input_dropout": {"enabled": True}}
    assert mia.attack_names(cfg) == ["loss", "lira_online", "rmia", "rmia_online",
                                     "loss_dropout", "lira_online_dropout", "rmia_dropout", "rmia_online_dropout"]
    assert mia.attack_names(cfg, ["loss"]) == ["loss", "loss_dropout"]
    with pytest.raises(ValueError, match="unknown attacks"):
        mia.attack_names({"attacks": ["shadow"]})


def test_attack_settings_come_from_the_schema():
    """The attack stage's settings are the schema's: defaults filled, unknown keys refused."""
    from biospike.config import section_settings, validate_config
    from biospike.errors import BiospikeError

    cfg = validate_config({"seed": 1, "datasets": {"d": {"reader": "edf", "modality": "eeg", "path": "x",
                                                          "classes": ["a", "b"], "label_map": {}}}})
    assert cfg["attack"] == section_settings("attack", {})
    with pytest.raises(BiospikeError, match="attack/n_refs': unknown key"):
        section_settings("attack", {"n_refs": 3})
    with pytest.raises(BiospikeError, match="'shadow' is not allowed"):
        section_settings("attack", {"attacks": ["shadow"]})
