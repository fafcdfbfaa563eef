"""Where DP-SGD's randomness comes from: the Gaussian noise and the Poisson sampling of units.

The guarantee needs both to be unknown to the attacker. If they came from the run seed (written
into every output), anyone holding the released model and the other training records could retrain
on D and on D + {x} and see which one reproduces the weights bit for bit: membership of x is then
certain, whatever epsilon says (tests/unit/test_privacy_noise.py runs that replay attack).

- :class:`SecretNoise` (default, ``privacy.noise: secret``): every draw reads the operating
  system's CSPRNG (``os.urandom``); nothing is seeded, nothing is stored, a run cannot be
  replayed. Gaussian samples are made in float64 by Box-Muller from 53-bit uniforms, and each
  released sample is the sum of four draws divided by two (same variance), the defence of
  Holohan & Braghin (2021) against floating-point attacks on the sampler (Mironov 2012;
  Jin et al. 2022), which is also what Opacus' ``secure_mode`` does, there with torchcsprng.
- :class:`SeededNoise` (``privacy.noise: seeded``, research only): a generator seeded from the
  run seed, bitwise reproducible. Its ``privacy.json`` says ``replayable: true`` and its epsilon is
  marked "not valid for release" everywhere.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

__all__ = ["NOISE_MODES", "NoiseSource", "SecretNoise", "SeededNoise", "noise_source"]

NOISE_MODES = ("secret", "seeded")


class _UrandomRNG:
    """The two calls the Poisson sampler makes (``random``, ``choice`` without replacement),
    answered from ``os.urandom``."""

    def random(self, n: int) -> np.ndarray:
        return _uniform53(n)

    def choice(self, a: np.ndarray, size: int, replace: bool = False) -> np.ndarray:
        if replace:
            raise ValueError("only sampling without replacement is supported")
        a = np.asarray(a)
        return a[np.argsort(_uniform53(len(a)), kind="stable")[:size]]


def _uniform53(n: int) -> np.ndarray:
    """n uniforms in (0, 1) with 53 random bits each, from the OS CSPRNG."""
    bits = np.frombuffer(os.urandom(8 * int(n)), dtype=np.uint64) >> np.uint64(11)
    return (bits.astype(np.float64) + 0.5) / float(1 << 53)


class NoiseSource:
    """Gaussian noise and sampling randomness of one DP-SGD run."""

    mode: str = ""
    replayable: bool = False
    description: str = ""
    sampler_rng: object = None

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal samples (float32, CPU) of ``shape``."""
        raise NotImplementedError

    def scalar_normal(self, std: float) -> float:
        """One N(0, std^2) sample (the adaptive clipping count)."""
        raise NotImplementedError

    def record(self) -> dict:
        """For privacy.json: the source's description, mode, whether it is replayable, and
        ``valid_for_release`` (only a non-replayable source's epsilon is)."""
        return {"noise_source": self.description, "noise_mode": self.mode, "replayable": self.replayable,
                "valid_for_release": not self.replayable}


class SecretNoise(NoiseSource):
    """Every draw from ``os.urandom`` (the OS CSPRNG): never seeded, not replayable (the default)."""

    mode = "secret"
    replayable = False
    description = ("os.urandom (the OS CSPRNG) for every Gaussian draw and every Poisson sampling decision; "
                   "Gaussians by Box-Muller in float64, each the sum of 4 draws / 2 (Holohan & Braghin 2021); "
                   "never seeded, nothing stored")

    def __init__(self) -> None:
        self.sampler_rng = _UrandomRNG()

    @staticmethod
    def _gaussian(n: int) -> np.ndarray:
        u1, u2 = _uniform53(n), _uniform53(n)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal samples (float32, CPU) of ``shape``, each (sum of 4 Box-Muller draws) / 2."""
        n = int(np.prod(shape)) if len(shape) else 1
        total = sum(self._gaussian(n) for _ in range(4)) / 2.0
        return torch.as_tensor(total.reshape(shape), dtype=torch.float32)

    def scalar_normal(self, std: float) -> float:
        """One N(0, std^2) sample, ``std`` x (sum of 4 Box-Muller draws) / 2."""
        return float(std * sum(self._gaussian(1)[0] for _ in range(4)) / 2.0)


class SeededNoise(NoiseSource):
    """The noise stream of a seeded generator: bitwise reproducible, hence replayable."""

    mode = "seeded"
    replayable = True
    description = ("torch.Generator and numpy PCG64 seeded from the run seed (privacy.noise: seeded): "
                   "bitwise reproducible, so anyone with the outputs can replay training - NOT valid for release")

    def __init__(self, seed: int) -> None:
        self.sampler_rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(int(self.sampler_rng.integers(2**62)))

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normal samples (float32, CPU) of ``shape`` from the seeded generator."""
        return torch.randn(shape, generator=self.generator)

    def scalar_normal(self, std: float) -> float:
        """One N(0, std^2) sample from the seeded generator."""
        return float(torch.normal(0.0, std, (1,), generator=self.generator))


def noise_source(mode: str, seed: int) -> NoiseSource:
    """The noise source of ``privacy.noise`` (``seed`` is used only by the replayable mode)."""
    if mode == "secret":
        return SecretNoise()
    if mode == "seeded":
        return SeededNoise(seed)
    raise ValueError(f"privacy.noise must be one of {NOISE_MODES}, got {mode!r}")
