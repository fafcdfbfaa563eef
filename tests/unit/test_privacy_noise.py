"""DP-SGD's noise is secret: the replay attack that recovers membership from a seeded run fails
against the default; the secret sampler is a standard normal; the audit's randomness is its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from biospike.privacy.dp import DPSettings, dp_train
from biospike.privacy.noise import SecretNoise, SeededNoise, noise_source

torch.set_num_threads(1)

ARCH = {"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "dt_s": 1e-3, "input_scale": 6.0,
        "tau_mem_s": 5e-3, "tau_syn_s": 2e-3}


def _task(n=61, steps=12, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    rate = np.where(y[:, None, None] == 0, [0.5, 0.5, 0.05, 0.05], [0.05, 0.05, 0.5, 0.5])
    return (rng.random((n, steps, 4)) < rate).astype(np.uint8), y


def _train(x, y, noise: str, seed: int = 5):
    settings = DPSettings.from_config({"epochs": 2, "batch_size": 16, "noise": noise,
                                       "adaptive_noise": {"enabled": False}})
    res = dp_train(ARCH, x, y, np.arange(len(x)).astype(str), x[:0], y[:0], settings, 4.0, seed, progress=False)
    return res


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_replay_attack_recovers_membership_from_a_seeded_run_and_fails_against_secret_noise():
    """The attacker holds the released model, its recorded seed and every training record but
    one candidate x, and replays training on D and on D + {x}."""
    x, y = _task()
    d_x, d_y = x[:-1], y[:-1]  # D; the candidate x is the last window, a member of the released set
    released = _train(x, y, "seeded")
    assert released.privacy["replayable"] is True and released.privacy["valid_for_release"] is False
    replay_in, replay_out = _train(x, y, "seeded"), _train(d_x, d_y, "seeded")
    assert _same(replay_in.model, released.model)  # D + {x} reproduces the weights bit for bit: x is a member
    assert not _same(replay_out.model, released.model)
    # with secret noise (the default) neither hypothesis reproduces the release
    secret = _train(x, y, "secret")
    assert secret.privacy["replayable"] is False and secret.privacy["valid_for_release"] is True
    assert "os.urandom" in secret.privacy["noise_source"]
    assert not _same(_train(x, y, "seeded").model, secret.model)
    assert not _same(_train(d_x, d_y, "seeded").model, secret.model)
    assert not _same(_train(x, y, "secret").model, secret.model)  # not even itself


def test_secret_normal_is_standard_normal_and_never_repeats():
    noise = SecretNoise()
    z = noise.normal((200_000,)).numpy().astype(np.float64)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert stats.kstest(z[:20_000], "norm").pvalue > 1e-3
    assert not torch.equal(noise.normal((64,)), noise.normal((64,)))
    assert not torch.equal(SecretNoise().normal((64,)), SecretNoise().normal((64,)))
    counts = np.array([noise.scalar_normal(2.0) for _ in range(2000)])
    assert abs(counts.std() - 2.0) < 0.15
    picks = noise.sampler_rng.choice(np.arange(10), size=4)
    assert len(set(picks.tolist())) == 4 and 0 < noise.sampler_rng.random(1000).mean() < 1


def test_seeded_noise_is_reproducible_and_says_so():
    a, b = SeededNoise(3), SeededNoise(3)
    assert torch.equal(a.normal((5, 3)), b.normal((5, 3)))
    assert a.record()["replayable"] is True
    with pytest.raises(ValueError, match="privacy.noise"):
        noise_source("urandom", 0)


def test_audit_canaries_draw_from_their_own_stream(monkeypatch):
    """The canaries and their inclusion bits come from a stream of their own, not the one the
    (replayable) trainer samples batches from; before, both were np.random.default_rng(seed)."""
    from biospike.config import derive_seed
    from biospike.models import build_model
    from biospike.privacy import audit, dp

    seen = {}

    def fake_dp_train(arch, x, y, units, xv, yv, settings, epsilon, seed, **kw):
        seen["seed"] = seed
        return dp.DPResult(build_model(arch), [], 1, {"epsilon": epsilon, "delta": 1e-5}, 0.0)

    monkeypatch.setattr(dp, "dp_train", fake_dp_train)
    x, y = _task(n=80)
    settings = DPSettings.from_config({"noise": "seeded", "audit": {"n_canaries": 64}})
    out = audit.run_audit(ARCH, x, y, np.arange(80).astype(str), x[:0], y[:0], settings, 4.0, 11)
    # the canary stream, replicated: it decided which canaries were included
    canary_seed = derive_seed(11, "audit", "canaries")
    rng = np.random.default_rng(canary_seed)
    audit.make_canaries(64, x, 2, "ood", rng, rate_factor=2.0)
    assert int((rng.random(64) < 0.5).sum()) == out["n_included"]
    # and the trainer (whose seeded sampler is np.random.default_rng(its seed)) got another seed
    assert seen["seed"] not in (11, canary_seed)
