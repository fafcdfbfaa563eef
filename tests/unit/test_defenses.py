"""Query-time defenses (biospike.defenses): the perturbations, the defended model, its variant
stage, the plan's variants and the adaptive attack."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from biospike import defenses as D
from biospike.errors import BiospikeError
from biospike.models import load_checkpoint, predict_logits
from biospike.models.ann import ANN, ANNArch
from biospike.models.snn import SNN, SNNArch
from biospike.targets import parse
from tests.unit.test_train import _run, _write


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _snn(hidden=(16,)) -> SNN:
    torch.manual_seed(0)
    return SNN(SNNArch(n_in=6, n_hidden=list(hidden), n_out=3, dt_s=1e-3, input_scale=8.0)).eval()


def _x(n=8, steps=40, channels=6, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.poisson(0.4, (n, steps, channels)).astype(np.float32))


@settings(max_examples=25, deadline=None)
@given(p=st.floats(0.0, 0.95), seed=st.integers(0, 2**31 - 1))
def test_thinning_only_deletes_spikes_at_rate_p(p, seed):
    x = torch.as_tensor(np.random.default_rng(seed).poisson(2.0, (20, 50, 4)).astype(np.float32))
    out = D.thin_counts(x, p, _gen(seed))
    assert (out <= x).all() and (out >= 0).all() and torch.equal(out, out.round())
    kept = float(out.sum() / x.sum())
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / float(x.sum())) + 1e-9


@settings(max_examples=25, deadline=None)
@given(j=st.integers(0, 5), seed=st.integers(0, 2**31 - 1))
def test_jitter_keeps_counts_and_moves_at_most_j_steps(j, seed):
    x = torch.zeros(3, 30, 2)
    x[0, 10, 0] = 3.0
    x[1, 0, 1] = 1.0
    x[2] = torch.as_tensor(np.random.default_rng(seed).poisson(1.0, (30, 2)).astype(np.float32))
    out = D.jitter_steps(x, j, _gen(seed))
    torch.testing.assert_close(out.sum(dim=1), x.sum(dim=1))  # per window and channel
    where = torch.nonzero(out[0, :, 0]).flatten()
    assert len(where) == 1 and abs(int(where[0]) - 10) <= j  # one entry moves as a whole
    assert int(torch.nonzero(out[1, :, 1]).flatten()[0]) <= j  # clipped at the window's start
    if j == 0:
        assert torch.equal(out, x)


def test_input_dropout_changes_outputs_as_configured_and_is_off_when_off():
    net, x = _snn(), _x()
    base = net(x)
    off = D.defended(net, {"name": "input_dropout", "p": 0.0, "jitter_steps": 0}, seed=1)
    torch.testing.assert_close(off(x), base)
    on = D.defended(net, {"name": "input_dropout", "p": 0.5, "jitter_steps": 1}, seed=1)
    first, second = on(x), on(x)
    assert not torch.allclose(first, base) and not torch.allclose(first, second)  # fresh noise per query
    again = D.defended(net, {"name": "input_dropout", "p": 0.5, "jitter_steps": 1}, seed=1)
    torch.testing.assert_close(again(x), first)  # seeded: reproducible
    # the defended network sees about half the input spikes
    _, hidden_on = on.forward_trace(x)
    _, hidden_off = net.forward_trace(x)
    assert hidden_on[0].sum() < hidden_off[0].sum()
    assert D.defended(net, None, seed=1) is net


def test_threshold_noise_scales_each_windows_thresholds():
    net, x = _snn((16, 8)), _x()
    base = net(x)
    assert torch.allclose(D.defended(net, {"name": "threshold_noise", "sd": 0.0}, seed=2)(x), base)
    noisy = D.defended(net, {"name": "threshold_noise", "sd": 0.5}, seed=2)
    assert not torch.allclose(noisy(x), base)
    # a uniform threshold scale s is the network with v_th s: the hook changes exactly the thresholds
    scaled = SNN(SNNArch(**{**net.arch.__dict__, "v_th": 1.3}))
    scaled.load_state_dict(net.state_dict())
    ones = [torch.full((len(x), h), 1.3) for h in net.arch.n_hidden]
    torch.testing.assert_close(net.forward_trace(x, ones)[0], scaled.forward_trace(x)[0])
    with pytest.raises(BiospikeError, match="spiking model"):
        D.defended(ANN(ANNArch(n_in=6, n_hidden=[8], n_out=3)), {"name": "threshold_noise", "sd": 0.1}, seed=0)
    alif = SNN(SNNArch(n_in=6, n_hidden=[8], n_out=3, neuron="alif"))
    with pytest.raises(BiospikeError, match="adaptive-threshold"):
        D.defended(alif, {"name": "threshold_noise", "sd": 0.1}, seed=0)(x)


def test_defense_spec_from_the_target_name():
    assert D.defense_spec(parse("qdropsnn_p0.25"), {"jitter_steps": 2}) == {"name": "input_dropout", "p": 0.25,
                                                                            "jitter_steps": 2}
    assert D.defense_spec(parse("qthrconverted_sd0.1"), {}) == {"name": "threshold_noise", "sd": 0.1}
    with pytest.raises(BiospikeError, match="not a query-time defense"):
        D.defense_spec(parse("snn"), {})
    t = parse("qdropann_p0.5")
    assert t.kind.name == "ann" and t.reference_groups() == ["ann"]  # the base kind's references
    assert "query-time defense" in t.nir_refusal({})


def test_defended_models_do_not_stack():
    from biospike.models.ensemble import stackable

    nets = [D.defended(_snn(), {"name": "input_dropout", "p": 0.2}, seed=k) for k in range(2)]
    assert "defense" in stackable(nets)


def test_variant_stage_records_the_defense_and_measures_through_it(tmp_path):
    spikes_path, windows_path = _write(tmp_path)
    params = {"epochs": 3, "hidden": [16]}
    base = tmp_path / "ds" / "enc" / "snn"
    assert _run(spikes_path, windows_path, base, "snn", params) == 0
    out = tmp_path / "ds" / "enc" / "qdropsnn_p0.6"
    with pytest.raises(BiospikeError, match="--from snn="):
        _run(spikes_path, windows_path, out, "qdropsnn_p0.6", params)
    extra = ["--from", f"snn={base / 'model.pt'}"]
    assert _run(spikes_path, windows_path, out, "qdropsnn_p0.6", params, extra=extra) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    base_metrics = json.loads((base / "metrics.json").read_text())
    assert metrics["defense"]["name"] == "input_dropout" and metrics["defense"]["p"] == 0.6
    # measured through the defense: 60 % fewer input spikes reach the network
    ratio = metrics["spikes_per_inference"]["input"] / base_metrics["spikes_per_inference"]["input"]
    assert ratio == pytest.approx(1.0, abs=1e-9)  # input counted before the defense (what the sensor sends);
    # the defense itself shows in the hidden activity
    assert metrics["spikes_per_inference"]["hidden"] < base_metrics["spikes_per_inference"]["hidden"]
    plain, meta = load_checkpoint(out / "model.pt")
    assert meta["defense"] == {"name": "input_dropout", "p": 0.6, "jitter_steps": 0} and meta["base"] == "snn"
    base_net, _ = load_checkpoint(base / "model.pt")
    for k, v in base_net.state_dict().items():
        torch.testing.assert_close(plain.state_dict()[k], v)  # the base weights, not retrained
    wrapped, _ = D.load_defended(out / "model.pt", seed=0)
    x = np.asarray(_read_spikes(spikes_path))[:16]
    assert isinstance(wrapped, D.Defended) and not np.allclose(predict_logits(wrapped, x), predict_logits(plain, x))


def _read_spikes(path):
    from biospike.store import read_spikes

    return read_spikes(path).spikes


def test_plan_makes_one_variant_per_value_and_kind():
    import yaml

    from biospike.config import validate_config
    from biospike.plan import build_plan
    from tests.workflow.helpers import TINY

    cfg = yaml.safe_load(TINY.read_text())
    cfg["train"]["models"] = ["snn", "ann", "classical"]
    cfg["defense"] = {"input_dropout": [0.1, 0.3], "threshold_noise": [0.2], "kinds": ["snn", "ann"]}
    cfg["attack"]["targets"] = ["snn", "qdrop*", "qthr*"]
    plan = build_plan(validate_config(cfg), kinds={h: "neuromorphic" for h in cfg["deploy"]["targets"]})
    dp = next(iter(plan.values()))
    assert {"qdropsnn_p0.1", "qdropsnn_p0.3", "qdropann_p0.1", "qdropann_p0.3", "qthrsnn_sd0.2"} <= set(dp.targets)
    assert "qthrann_sd0.2" not in dp.targets  # threshold noise needs spiking neurons
    assert dp.references["qdropsnn_p0.1"] == ["snn"] and "qdropsnn_p0.1" not in dp.reference_groups
    cfg["deploy"]["models"] = ["snn", "qthrsnn_sd0.2"]  # the chip runs the base network, not the defense
    with pytest.raises(BiospikeError, match="query-time defense is not part of the exported graph"):
        build_plan(validate_config(cfg), kinds={h: "neuromorphic" for h in cfg["deploy"]["targets"]})
    cfg["deploy"]["models"] = ["snn"]
    cfg["defense"]["kinds"] = ["classical"]
    with pytest.raises(BiospikeError, match="defense.kinds"):
        build_plan(validate_config(cfg), kinds={h: "neuromorphic" for h in cfg["deploy"]["targets"]})
