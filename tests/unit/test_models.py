"""Model building and checkpoints (SNN, ANN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biospike.errors import BiospikeError
from biospike.models import (
    auto_input_scale,
    build_model,
    load_checkpoint,
    make_arch,
    save_checkpoint,
)
from biospike.models.ann import _leaky


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_checkpoint_round_trip(tmp_path, kind):
    torch.manual_seed(0)
    model = build_model({"kind": kind, "n_in": 5, "n_hidden": [7, 6], "n_out": 3, "input_scale": 2.5})
    x = (torch.rand(3, 20, 5) < 0.4).float()
    save_checkpoint(tmp_path / "model.pt", model, {"class_names": ["a", "b", "c"]})
    loaded, meta = load_checkpoint(tmp_path / "model.pt")
    assert meta == {"class_names": ["a", "b", "c"]}
    assert not loaded.training
    model.eval()
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_checkpoint_without_impl_loads_with_fused_default(tmp_path):
    """Checkpoints written before the impl field existed still load."""
    model = build_model({"kind": "snn", "n_in": 2, "n_hidden": [3], "n_out": 2})
    payload = {"arch": {k: v for k, v in vars(model.arch).items() if k != "impl"}, "state_dict": model.state_dict(), "meta": {}}
    torch.save(payload, tmp_path / "old.pt")
    loaded, _ = load_checkpoint(tmp_path / "old.pt")
    assert loaded.arch.impl == "fused"


def test_bad_arch_and_checkpoint_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="impl"):
        build_model({"kind": "snn", "n_in": 2, "n_hidden": [3], "n_out": 2, "impl": "cuda"})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BiospikeError):
        load_checkpoint(tmp_path / "junk.pt")


def _leaky_loop(x: torch.Tensor, decay: float) -> torch.Tensor:
    state = torch.zeros(x.shape[0], x.shape[2], dtype=x.dtype)
    expected = []
    for t in range(x.shape[1]):
        state = decay * state + (1 - decay) * x[:, t]
        expected.append(state)
    return torch.stack(expected, dim=1)


@pytest.mark.parametrize("steps", [1, 7, 40, 64, 65, 130, 451])
@pytest.mark.parametrize("block", [1, 8, 64])
def test_ann_leaky_blocked_matmul_equals_recurrence(steps, block):
    """One block, whole blocks, a partial last block, and block 1 (a plain recurrence)."""
    x = torch.randn(3, steps, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(steps))
    torch.testing.assert_close(_leaky(x, 0.93, block=block), _leaky_loop(x, 0.93), rtol=0, atol=1e-12)


def test_ann_leaky_gradient_equals_recurrence_gradient():
    x = torch.randn(2, 150, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 150, 3, dtype=torch.float64)
    (g_blocked,) = torch.autograd.grad((_leaky(x, 0.9, block=32) * w).sum(), x)
    (g_loop,) = torch.autograd.grad((_leaky_loop(x, 0.9) * w).sum(), x)
    torch.testing.assert_close(g_blocked, g_loop, rtol=0, atol=1e-12)


def test_snn_hidden_biases_start_at_zero_and_ann_matches_sizes():
    snn = build_model({"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2})
    ann = build_model({"kind": "ann", "n_in": 4, "n_hidden": [8], "n_out": 2})
    assert torch.all(snn.fc[0].bias == 0)
    assert sum(p.numel() for p in snn.parameters()) == sum(p.numel() for p in ann.parameters())


@pytest.mark.parametrize("kind", ["snn", "ann"])
def test_auto_input_scale_defaults_are_the_train_settings_defaults(kind):
    """An arch without neuron settings gets the scale make_arch gives with default settings (the
    schema's train defaults, not the older dataclass defaults)."""
    x = (np.random.default_rng(0).random((12, 40, 5)) < 0.2).astype(np.float32)
    arch = make_arch(kind, 5, 2, 1e-3, {}, x_stats=x)
    assert auto_input_scale(x, {"kind": kind, "dt_s": 1e-3}) == arch["input_scale"]
