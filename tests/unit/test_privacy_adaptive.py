"""Adaptive noise allocation and adaptive clipping keep the accounted guarantee; subject-level
units are clipped once per subject."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus import GradSampleModule
from scipy.stats import norm

from biospike.models import build_model
from biospike.privacy import accounting
from biospike.privacy.adaptive import (
    Allocation,
    QuantileClipper,
    allocate,
    correlation_ratio,
    group_layout,
    neuron_blocks,
)
from biospike.privacy.dp import (
    DPSettings,
    _Sampler,
    dp_train,
    loss_sum,
    unit_index,
)
from biospike.privacy.optimizer import DPOptimizer

torch.set_num_threads(1)

ARCH = {"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "dt_s": 1e-3, "input_scale": 6.0,
        "tau_mem_s": 5e-3, "tau_syn_s": 2e-3}


def _task(n=160, steps=16, seed=0):
    """Two classes that differ in which half of the channels fires."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    rate = np.where(y[:, None, None] == 0, [0.5, 0.5, 0.05, 0.05], [0.05, 0.05, 0.5, 0.5])
    x = (rng.random((n, steps, 4)) < rate).astype(np.uint8)
    return x, y


shares = st.lists(st.floats(0.01, 10.0), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(clip=shares, data=st.data(), strength=st.floats(0, 1), z=st.floats(0.2, 20), c_total=st.floats(1e-3, 100))
def test_any_allocation_has_the_effective_multiplier_handed_to_the_accountant(clip, data, strength, z, c_total):
    k = len(clip)
    rel = data.draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))
    s = np.asarray(clip) / np.sum(clip)
    a = allocate(s, np.asarray(rel), strength)
    clip_k, sigma_k = Allocation(s, a).bounds(c_total, z)
    assert np.all(sigma_k > 0)
    assert np.sum(clip_k ** 2) == pytest.approx(c_total ** 2, rel=1e-9)
    assert accounting.effective_multiplier(clip_k, sigma_k) == pytest.approx(z, rel=1e-9)


def test_less_relevant_groups_get_more_noise_per_unit_of_clip_bound():
    s = np.full(4, 0.25)
    a = allocate(s, np.array([0.0, 0.1, 0.5, 0.9]), strength=0.8)
    clip_k, sigma_k = Allocation(s, a).bounds(1.0, 1.5)
    ratio = sigma_k / clip_k  # noise-to-signal bound of each group
    assert np.all(np.diff(ratio) < 0)
    # strength 0: every coordinate gets the same noise std (plain per-layer clipping)
    _, flat_sigma = Allocation(s, allocate(s, np.array([0.0, 0.1, 0.5, 0.9]), 0.0)).bounds(1.0, 1.5)
    assert np.allclose(flat_sigma, flat_sigma[0])


def _gaussian_delta(eps: float, mu: float) -> float:
    """Exact hockey-stick divergence of N(mu, 1) from N(0, 1) (Balle & Wang 2018)."""
    return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2))


def test_per_group_gaussian_equals_single_gaussian_with_z_eff():
    """The worst-case pair of the per-group mechanism (contribution v with ||v_k|| = C_k, noise
    N(0, diag sigma_k^2)) has exactly the privacy profile of N(1/z_eff, 1) vs N(0, 1)."""
    rng = np.random.default_rng(0)
    dims = [5, 3, 8]
    clip_k = np.array([0.7, 0.2, 1.3])
    sigma_k = np.array([1.1, 0.9, 2.5])
    z_eff = accounting.effective_multiplier(clip_k, sigma_k)
    v = np.concatenate([c * (u := rng.normal(size=d)) / np.linalg.norm(u) for c, d in zip(clip_k, dims, strict=True)])
    sig = np.concatenate([np.full(d, s) for s, d in zip(sigma_k, dims, strict=True)])
    mu2 = float(np.sum((v / sig) ** 2))
    assert mu2 == pytest.approx(z_eff ** -2)
    # Monte Carlo privacy loss L(x) = log p_v(x) / p_0(x) under x ~ N(v, diag sig^2)
    x = v + sig * rng.normal(size=(400_000, len(v)))
    loss = x @ (v / sig ** 2) - 0.5 * mu2
    for eps in (0.5, 1.0, 2.0):
        delta_mc = float(np.mean(np.maximum(0.0, 1.0 - np.exp(eps - loss))))
        assert delta_mc == pytest.approx(_gaussian_delta(eps, 1 / z_eff), abs=3e-3)
    # hence the accountant sees the same mechanism: same epsilon for the same (z_eff, q, steps)
    single = accounting.epsilon([(z_eff, 0.05, 200)], 1e-5)
    assert accounting.epsilon([(1.0 / math.sqrt(mu2), 0.05, 200)], 1e-5) == pytest.approx(single)


def test_adaptive_noise_run_is_accounted_as_the_single_sigma_mechanism():
    x, y = _task()
    base = {"epochs": 2, "batch_size": 32, "lr": 0.5}
    plain = dp_train(ARCH, x[:100], y[:100], np.arange(100), x[100:130], y[100:130],
                     DPSettings.from_config({**base, "adaptive_noise": {"enabled": False}}), 3.0, 1, progress=False)
    adaptive = dp_train(ARCH, x[:100], y[:100], np.arange(100), x[100:130], y[100:130],
                        DPSettings.from_config({**base, "adaptive_noise": {"enabled": True, "groups": "neuron",
                                                                           "strength": 1.0}}),
                        3.0, 1, x_public=x[130:], y_public=y[130:], progress=False)
    pa, pp = adaptive.privacy, plain.privacy
    assert pa["noise_multiplier"] == pp["noise_multiplier"]
    assert pa["epsilon"] == pytest.approx(pp["epsilon"])
    assert pa["adaptive_noise"]["n_groups"] == 8 + 2
    for row in adaptive.history:  # every step used exactly z_eff = the accounted gradient multiplier
        assert row["z_eff_min"] == pytest.approx(pa["gradient_noise_multiplier"], rel=1e-9)
        assert row["z_eff_max"] == pytest.approx(pa["gradient_noise_multiplier"], rel=1e-9)
        assert row["noise_std_ratio_max_over_min"] > 1.0  # the allocation is not uniform
    assert pa["epsilon"] <= 3.0


def test_correlation_ratio():
    y = np.array([0, 0, 1, 1])
    assert correlation_ratio(np.array([[1.0], [1.0], [3.0], [3.0]]), y)[0] == pytest.approx(1.0)
    assert correlation_ratio(np.array([[1.0], [3.0], [1.0], [3.0]]), y)[0] == pytest.approx(0.0)
    assert correlation_ratio(np.zeros((4, 1)), y)[0] == 0.0


def test_quantile_clipper_tracks_the_median_without_noise():
    rng = np.random.default_rng(0)
    clipper = QuantileClipper(clip=10.0, target_quantile=0.5, lr_eta=0.2, count_noise_std=0.0, expected_units=64)
    for _ in range(400):
        norms = rng.lognormal(0.0, 0.5, 64)  # median 1
        clipper.update(int((norms <= clipper.clip).sum()), 64)
    assert clipper.clip == pytest.approx(1.0, rel=0.15)


def test_quantile_clipper_uses_the_public_denominator_and_centred_count():
    """b~ = (sum(b_i - 1/2) + noise) / m + 1/2 with m the expected batch size, not the realised one."""
    clipper = QuantileClipper(clip=1.0, target_quantile=0.5, lr_eta=1.0, count_noise_std=0.0, expected_units=100)
    frac = clipper.update(unclipped=30, n_units=40)
    assert frac == pytest.approx((30 - 20) / 100 + 0.5)


def test_subject_unit_contributes_at_most_c_whatever_its_window_count():
    torch.manual_seed(0)
    model = build_model(ARCH)
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    blocks = neuron_blocks(model)
    layout = group_layout(blocks, "flat")
    x, y = _task(n=44)
    xb, yb = torch.as_tensor(x).float(), torch.as_tensor(y)
    clip = torch.tensor([0.05])
    # subject 0 has 40 windows, subjects 1..4 one each
    local = np.array([0] * 40 + [1, 2, 3, 4])
    def clipped_unit_sum(xs, ys, units, n, per_subject):
        opt = DPOptimizer(torch.optim.SGD(model.parameters(), lr=0.0), gsm, blocks, layout, 1.0, 1.0, float(n),
                          torch.Generator(), per_subject=per_subject)
        return opt.clip_and_accumulate(loss_sum, xs, ys, units, n, clip)

    summed, _ = clipped_unit_sum(xb[:40], yb[:40], local[:40], 1, True)
    norm_one = float(torch.sqrt(sum(v.pow(2).sum() for v in summed.values())))
    assert norm_one <= 0.05 * (1 + 1e-5)
    # the same 40 windows as 40 window-level units would contribute up to 40 C
    summed_w, _ = clipped_unit_sum(xb[:40], yb[:40], np.arange(40), 40, False)
    assert float(torch.sqrt(sum(v.pow(2).sum() for v in summed_w.values()))) > 5 * norm_one
    # with all five subjects, removing subject 0 changes the sum by at most C
    full, _ = clipped_unit_sum(xb, yb, local, 5, True)
    rest, _ = clipped_unit_sum(xb[40:], yb[40:], local[40:] - 1, 4, True)
    diff = torch.sqrt(sum((full[k] - rest[k]).pow(2).sum() for k in full))
    assert float(diff) <= 0.05 * (1 + 1e-4)


def test_subject_sampler_draws_whole_subjects_at_the_subject_rate():
    subjects = np.array(["a"] * 30 + ["b"] * 5 + ["c"] * 1 + ["d"] * 12)
    unit_of, windows = unit_index(subjects)
    assert [len(w) for w in windows] == [30, 5, 1, 12]
    sampler = _Sampler(windows, q=0.25, cap=None, rng=np.random.default_rng(0))
    drawn = 0
    for _ in range(2000):
        idx, local, n = sampler.draw()
        drawn += n
        for j in range(n):  # every sampled subject comes with all its windows
            members = idx[local == j]
            assert len(set(unit_of[members])) == 1
            assert len(members) == len(windows[unit_of[members[0]]])
    assert drawn / (2000 * 4) == pytest.approx(0.25, abs=0.02)


def test_subject_level_run_records_subject_sampling():
    x, y = _task(n=120)
    subjects = np.array([f"s{i % 10}" for i in range(100)])
    res = dp_train(ARCH, x[:100], y[:100], subjects, x[100:], y[100:],
                   DPSettings.from_config({"unit": "subject", "subjects_per_batch": 2, "epochs": 2,
                                           "adaptive_noise": {"enabled": False}}), 8.0, 0, progress=False)
    p = res.privacy
    assert p["privacy_unit"] == "subject" and p["n_units"] == 10
    assert p["sample_rate"] == pytest.approx(0.2)
    assert p["steps"] == 2 * 5
