"""Accounting: biospike's epsilon (Opacus PRV/RDP) against Google's dp-accounting, calibration,
and the reductions of the adaptive schemes to one noise multiplier."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike.errors import BiospikeError
from biospike.privacy import accounting
from biospike.privacy.dp import DPSettings, calibrate

pytest.importorskip("dp_accounting")

CASES = [  # (noise multiplier, sample rate, steps, delta): demo-like and textbook settings
    (4.5, 64 / 720, 165, 1e-5),
    (1.84, 64 / 720, 165, 1e-5),
    (1.0, 64 / 720, 165, 1e-5),
    (1.1, 256 / 60000, 60 * 235, 1e-5),
    (2.0, 4 / 14, 60, 1 / 14 / 10),
]


@pytest.mark.parametrize("z,q,steps,delta", CASES)
def test_prv_epsilon_matches_dp_accounting_pld_within_5_percent(z, q, steps, delta):
    ours = accounting.epsilon([(z, q, steps)], delta, "prv")
    google = accounting.dp_accounting_epsilon([(z, q, steps)], delta, "pld")
    assert ours > 0
    assert abs(ours - google) <= 0.05 * google, (ours, google)


@pytest.mark.parametrize("z,q,steps,delta", CASES)
def test_rdp_epsilon_matches_dp_accounting_rdp_within_5_percent(z, q, steps, delta):
    ours = accounting.epsilon([(z, q, steps)], delta, "rdp")
    google = accounting.dp_accounting_epsilon([(z, q, steps)], delta, "rdp")
    assert abs(ours - google) <= 0.05 * google, (ours, google)


def test_heterogeneous_history_composes():
    hist = [(2.0, 0.05, 100), (1.5, 0.1, 50)]
    ours = accounting.epsilon(hist, 1e-5, "prv")
    google = accounting.dp_accounting_epsilon(hist, 1e-5, "pld")
    assert abs(ours - google) <= 0.05 * google
    assert ours > accounting.epsilon(hist[:1], 1e-5, "prv")


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("kind", ["prv", "rdp"])
def test_calibrated_multiplier_spends_at_most_the_target(target, kind):
    q, steps = 64 / 720, 165
    z = accounting.noise_multiplier_for(target, 1e-5, q, steps, kind)
    eps = accounting.epsilon([(z, q, steps)], 1e-5, kind)
    assert target - 0.02 <= eps <= target
    # a slightly smaller multiplier overspends: the search is tight
    assert accounting.epsilon([(z * 0.97, q, steps)], 1e-5, kind) > eps


def test_calibrate_reports_the_accountant_epsilon_of_the_parameters_used():
    s = DPSettings.from_config({"epochs": 5, "batch_size": 50, "adaptive_clipping": {"count_budget_share": 0.1}})
    cal = calibrate(3.0, 1000, s)
    assert cal["sample_rate"] == pytest.approx(0.05)
    assert cal["steps"] == 5 * 20
    assert cal["epsilon"] == pytest.approx(accounting.epsilon([(cal["noise_multiplier"], 0.05, 100)], 1e-5, "prv"))
    assert cal["epsilon"] <= 3.0
    # the count query takes its share: 1/z^2 = 1/z_grad^2 + 1/(2 sigma_b)^2, with (2 sigma_b)^-2 = rho / z^2
    z, zg, sb = cal["noise_multiplier"], cal["gradient_noise_multiplier"], cal["count_noise_std"]
    assert z ** -2 == pytest.approx(zg ** -2 + (2 * sb) ** -2)
    assert (2 * sb) ** -2 == pytest.approx(0.1 * z ** -2)


def test_delta_one_over_n_and_errors():
    assert accounting.resolve_delta("1/n", 200) == pytest.approx(1 / 200)
    assert accounting.resolve_delta(1e-6, 200) == 1e-6
    with pytest.raises(BiospikeError):
        accounting.resolve_delta("1/m", 10)
    with pytest.raises(BiospikeError):
        accounting.resolve_delta(1.5, 10)
    with pytest.raises(BiospikeError):
        accounting.noise_multiplier_for(1000.0, 1e-5, 0.1, 10)
    with pytest.raises(BiospikeError, match="too small"):
        accounting.gradient_multiplier(2.0, 0.9)


@settings(max_examples=50, deadline=None)
@given(z=st.floats(0.3, 20), sigma_b=st.floats(0.3, 200))
def test_gradient_and_combined_multipliers_are_inverse(z, sigma_b):
    if 2 * sigma_b <= z * (1 + 1e-9):
        with pytest.raises(BiospikeError):
            accounting.gradient_multiplier(z, sigma_b)
        return
    zg = accounting.gradient_multiplier(z, sigma_b)
    assert zg >= z
    assert accounting.combined_multiplier(zg, sigma_b) == pytest.approx(z, rel=1e-9)


def test_no_noise_is_infinite_epsilon_and_empty_history_is_zero():
    assert accounting.epsilon([(0.0, 0.1, 10)], 1e-5) == math.inf
    assert accounting.epsilon([], 1e-5) == 0.0


def test_effective_multiplier_formula():
    c = np.array([1.0, 2.0, 0.5])
    s = np.array([2.0, 1.0, 4.0])
    assert accounting.effective_multiplier(c, s) == pytest.approx((0.25 + 4 + 1 / 64) ** -0.5)
