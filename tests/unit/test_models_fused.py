"""The fused LIF/LI scans against norse's own step functions: forward and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from norse.torch.functional.leaky_integrator import LIParameters, LIState, li_feed_forward_step
from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters, lif_feed_forward_step

from biospike.errors import BiospikeError
from biospike.models import build_model, make_arch
from biospike.models.fused import SURROGATES, LIFScan, LIScan, lif_constants
from biospike.models.snn import NORSE_SURROGATES

DT_S = 1e-3


def _lif_params(dtype: torch.dtype, v_reset: float = 0.0, v_leak: float = 0.0, method: str = "super",
                alpha: float = 100.0) -> LIFParameters:
    t = lambda v: torch.as_tensor(v, dtype=dtype)  # noqa: E731
    return LIFParameters(tau_syn_inv=t(1 / 5e-3), tau_mem_inv=t(1 / 20e-3), v_leak=t(v_leak), v_th=t(1.0),
                         v_reset=t(v_reset), method=method, alpha=torch.as_tensor(alpha))


def _norse_lif(cur: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    zeros = cur.new_zeros(cur.shape[0], cur.shape[2])
    state = LIFFeedForwardState(v=zeros + p.v_leak, i=zeros)
    out = []
    for t in range(cur.shape[1]):
        z, state = lif_feed_forward_step(cur[:, t], state, p, DT_S)
        out.append(z)
    return torch.stack(out, dim=1)


def _norse_li(cur: torch.Tensor, p: LIParameters) -> torch.Tensor:
    zeros = cur.new_zeros(cur.shape[0], cur.shape[2])
    state = LIState(v=zeros, i=zeros)
    out = []
    for t in range(cur.shape[1]):
        v, state = li_feed_forward_step(cur[:, t], state, p, DT_S)
        out.append(v)
    return torch.stack(out, dim=1)


def _fused_lif(cur: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, DT_S)
    return LIFScan.apply(cur, a_mem, a_syn_neg, p.v_leak, p.v_th, p.v_reset, p.method, float(p.alpha))


def _stepped_lif(cur: torch.Tensor, p: LIFParameters, spike_fn) -> torch.Tensor:
    """norse's ``lif_feed_forward_step`` written out, with any autograd spike function: the
    reference for the surrogates norse lacks (checked against norse itself below)."""
    v = cur.new_zeros(cur.shape[0], cur.shape[2]) + p.v_leak
    i = cur.new_zeros(cur.shape[0], cur.shape[2])
    out = []
    for t in range(cur.shape[1]):
        i_jump = i + cur[:, t]
        v_decayed = v + DT_S * p.tau_mem_inv * ((p.v_leak - v) + i_jump)
        i = i_jump + -DT_S * p.tau_syn_inv * i_jump
        z = spike_fn(v_decayed - p.v_th)
        v = (1 - z) * v_decayed + z * p.v_reset
        out.append(z)
    return torch.stack(out, dim=1)


def _forward_backward(fn, cur: torch.Tensor, upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = cur.clone().requires_grad_()
    z = fn(x)
    (z * upstream).sum().backward()
    return z.detach(), x.grad


def _spiking_input(dtype: torch.dtype, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(6, 50, 12, generator=gen, dtype=dtype) + 0.3, torch.randn(6, 50, 12, generator=gen, dtype=dtype)


def _assert_same(out: tuple, ref: tuple) -> None:
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], ref[1], rtol=1e-6, atol=1e-6 * max(1.0, float(ref[1].abs().max())))
    assert 0.0 < float(ref[0].mean()) < 1.0 and float(ref[1].abs().max()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", NORSE_SURROGATES)
def test_fused_surrogates_equal_norse(dtype, method):
    """Every norse surrogate in the fused kernel: spikes and input gradients equal norse's own step
    function with that ``method`` (at the surrogate's default alpha and at another one)."""
    cur, upstream = _spiking_input(dtype, seed=len(method))
    for alpha in (SURROGATES[method].default_alpha, 0.7):
        p = _lif_params(dtype, method=method, alpha=alpha)
        _assert_same(_forward_backward(lambda x: _fused_lif(x, p), cur, upstream),  # noqa: B023
                     _forward_backward(lambda x: _norse_lif(x, p), cur, upstream))  # noqa: B023


def test_stepped_reference_equals_norse():
    """The written-out step (the reference for snnTorch's surrogates) is norse's step."""
    from norse.torch.functional.superspike import super_fn

    cur, upstream = _spiking_input(torch.float32, seed=5)
    p = _lif_params(torch.float32)
    ref = _forward_backward(lambda x: _norse_lif(x, p), cur, upstream)
    out = _forward_backward(lambda x: _stepped_lif(x, p, lambda u: super_fn(u, p.alpha)), cur, upstream)
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=0)
    torch.testing.assert_close(out[1], ref[1], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("method", "factory"), [("atan", "atan"), ("fast_sigmoid", "fast_sigmoid")])
def test_fused_surrogates_equal_snntorch(dtype, method, factory):
    """snnTorch's ATan and fast sigmoid (which norse lacks) in the fused kernel equal snnTorch's own
    autograd functions inside the same LIF step."""
    surrogate = pytest.importorskip("snntorch.surrogate")
    cur, upstream = _spiking_input(dtype, seed=11)
    for alpha in (SURROGATES[method].default_alpha, 5.0):
        p = _lif_params(dtype, method=method, alpha=alpha)
        spike_fn = getattr(surrogate, factory)(alpha)
        ref = _forward_backward(lambda x: _stepped_lif(x, p, lambda u: spike_fn(u).to(u.dtype)),  # noqa: B023
                                cur, upstream)
        _assert_same(_forward_backward(lambda x: _fused_lif(x, p), cur, upstream), ref)  # noqa: B023


def test_surrogates_differ_and_default_alpha_is_the_references():
    """Each surrogate gives its own gradient (the choice reaches the kernel), and an unset alpha
    takes the reference's default."""
    cur, upstream = _spiking_input(torch.float64, seed=2)
    grads = {}
    for method, sg in SURROGATES.items():
        p = _lif_params(torch.float64, method=method, alpha=sg.default_alpha)
        grads[method] = _forward_backward(lambda x: _fused_lif(x, p), cur, upstream)[1]  # noqa: B023
        consts = lif_constants(p.tau_mem_inv, p.tau_syn_inv, DT_S)
        _, unset = _forward_backward(lambda x: LIFScan.apply(x, *consts, p.v_leak, p.v_th, p.v_reset, method, None),  # noqa: B023
                                     cur, upstream)
        torch.testing.assert_close(unset, grads[method], rtol=1e-4, atol=1e-8)  # alpha 0.3 went through float32
    names = list(grads)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert not torch.allclose(grads[names[a]], grads[names[b]]), (names[a], names[b])
    arch = make_arch("snn", 4, 2, 1e-3, {"surrogate": "atan", "input_scale": 1.0})
    assert arch["surrogate_alpha"] == 2.0
    assert make_arch("snn", 4, 2, 1e-3, {"surrogate": "atan", "surrogate_alpha": 4.0,
                                         "input_scale": 1.0})["surrogate_alpha"] == 4.0


def test_snntorch_surrogates_need_the_fused_feed_forward_kernel():
    for extra in ({"impl": "norse"}, {"recurrent": True}):
        with pytest.raises(BiospikeError, match="fused kernel only"):
            build_model({"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "surrogate": "atan", **extra})
    assert build_model({"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "surrogate": "atan"}).fused


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("scale", "offset", "v_reset", "spiking"),
                         [(1.0, 0.3, 0.0, True), (3.0, 0.5, 0.0, True), (0.5, 1.0, -0.2, True), (0.05, 0.0, 0.0, False)])
def test_lif_scan_equals_norse_forward_and_gradient(dtype, scale, offset, v_reset, spiking):
    gen = torch.Generator().manual_seed(int(scale * 10 + offset * 100))
    cur = torch.randn(8, 60, 16, generator=gen, dtype=dtype) * scale + offset
    upstream = torch.randn(8, 60, 16, generator=gen, dtype=dtype)
    p = _lif_params(dtype, v_reset=v_reset)
    grads, outs = [], []
    for fn in (_norse_lif, _fused_lif):
        x = cur.clone().requires_grad_()
        z = fn(x, p)
        (z * upstream).sum().backward()
        outs.append(z.detach())
        grads.append(x.grad)
    assert (0.0 < outs[0].mean() < 1.0) == spiking  # spikes and resets, or the silent regime
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-6 * max(1.0, float(grads[0].abs().max())))
    assert grads[0].abs().max() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_li_scan_equals_norse_forward_and_gradient(dtype):
    gen = torch.Generator().manual_seed(3)
    cur = torch.randn(4, 50, 3, generator=gen, dtype=dtype)
    upstream = torch.randn(4, 50, 3, generator=gen, dtype=dtype)
    p = LIParameters(tau_syn_inv=torch.as_tensor(1 / 5e-3, dtype=dtype), tau_mem_inv=torch.as_tensor(1 / 20e-3, dtype=dtype),
                     v_leak=torch.as_tensor(0.0, dtype=dtype))
    a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, DT_S)
    x1, x2 = cur.clone().requires_grad_(), cur.clone().requires_grad_()
    v1 = _norse_li(x1, p)
    v2 = LIScan.apply(x2, a_mem, a_syn_neg, p.v_leak)
    (v1 * upstream).sum().backward()
    (v2 * upstream).sum().backward()
    torch.testing.assert_close(v2, v1, rtol=0, atol=1e-6)
    torch.testing.assert_close(x2.grad, x1.grad, rtol=0, atol=1e-6)


def test_li_scan_gradcheck_float64():
    """The readout's hand-written backward is the exact adjoint of its forward (finite differences;
    the LIF scan's gradient is a surrogate by design, so it is checked against norse instead)."""
    gen = torch.Generator().manual_seed(0)
    cur = torch.randn(2, 12, 3, generator=gen, dtype=torch.float64).requires_grad_()
    p = _lif_params(torch.float64)
    a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, DT_S)
    assert torch.autograd.gradcheck(lambda c: LIScan.apply(c, a_mem, a_syn_neg, p.v_leak), (cur,))


def _pair(arch: dict) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    fused = build_model({**arch, "impl": "fused"})
    with torch.no_grad():
        for fc in fused.fc[1:]:
            fc.weight.mul_(4.0)  # deeper layers fire too
    reference = build_model({**arch, "impl": "norse"})
    reference.load_state_dict(fused.state_dict())
    return fused, reference


# the adaptive neuron (norse's LSNN step) needs a stronger drive to fire through its second layer
NEURONS = {"lif": {"input_scale": 4.0},
           "alif": {"input_scale": 8.0, "neuron": "alif", "tau_adapt_s": 0.03, "adapt_beta": 0.2}}


@pytest.mark.parametrize("neuron", list(NEURONS))
@pytest.mark.parametrize("hidden", [[16], [12, 8]])
def test_snn_fused_equals_norse_impl(hidden, neuron):
    arch = {"kind": "snn", "n_in": 6, "n_hidden": hidden, "n_out": 3, **NEURONS[neuron]}
    fused, reference = _pair(arch)
    assert fused.fused and not reference.fused and fused.arch.neuron == neuron
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(5, 40, 6, generator=gen) < 0.3).float()
    y = torch.tensor([0, 1, 2, 0, 1])
    results = []
    for model in (fused, reference):
        volts, spikes = model.forward_trace(x)
        loss = torch.nn.functional.cross_entropy(volts.mean(dim=1), y)
        loss.backward()
        results.append((volts.detach(), [s.detach() for s in spikes], {n: p.grad for n, p in model.named_parameters()}))
    (v1, s1, g1), (v2, s2, g2) = results
    assert all(s.mean() > 0 for s in s2)
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-6)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for name in g2:
        torch.testing.assert_close(g1[name], g2[name], rtol=0, atol=1e-6, msg=name)


def test_recurrent_snn_steps_through_norse():
    model = build_model({"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "recurrent": True})
    assert not model.fused
    assert model(torch.ones(2, 10, 4)).shape == (2, 2)


@pytest.mark.parametrize("neuron", [{}, {"neuron": "alif", "adapt_beta": 0.3}])
def test_fused_snn_per_sample_gradients_under_opacus(neuron):
    """Opacus hooks mode: per-sample gradients of the fused model equal batch-size-1 gradients, with
    LIF and adaptive neurons alike (the scans own no weights)."""
    import warnings

    from opacus import GradSampleModule

    arch = {"kind": "snn", "n_in": 5, "n_hidden": [10, 6], "n_out": 3, "input_scale": 3.0, **neuron}
    torch.manual_seed(0)
    model = build_model(arch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
    gen = torch.Generator().manual_seed(2)
    x = (torch.rand(4, 25, 5, generator=gen) < 0.3).float()
    y = torch.tensor([0, 1, 2, 1])
    torch.nn.functional.cross_entropy(gsm(x), y, reduction="sum").backward()
    for b in range(len(x)):
        single = build_model(arch)
        single.load_state_dict(model.state_dict())
        torch.nn.functional.cross_entropy(single(x[b:b + 1]), y[b:b + 1], reduction="sum").backward()
        for (name, p), q in zip(model.named_parameters(), single.parameters(), strict=True):
            torch.testing.assert_close(p.grad_sample[b], q.grad, rtol=1e-5, atol=1e-6, msg=name)


# --- adaptive LIF (norse's LSNN feed-forward step) ---------------------------------------------


def _lsnn_params(dtype: torch.dtype, method: str = "super", alpha: float = 100.0):
    from norse.torch.functional.lsnn import LSNNParameters

    t = lambda v: torch.as_tensor(v, dtype=dtype)  # noqa: E731
    return LSNNParameters(tau_syn_inv=t(1 / 5e-3), tau_mem_inv=t(1 / 20e-3), tau_adapt_inv=t(1 / 0.05), v_leak=t(0.0),
                          v_th=t(1.0), v_reset=t(0.0), beta=t(0.4), method=method, alpha=torch.as_tensor(alpha))


def _norse_alif(cur: torch.Tensor, p) -> torch.Tensor:
    from norse.torch.functional.lsnn import LSNNFeedForwardState, lsnn_feed_forward_step

    zeros = cur.new_zeros(cur.shape[0], cur.shape[2])
    state = LSNNFeedForwardState(v=zeros + p.v_leak, i=zeros, b=zeros + p.v_th)
    out = []
    for t in range(cur.shape[1]):
        z, state = lsnn_feed_forward_step(cur[:, t], state, p, DT_S)
        out.append(z)
    return torch.stack(out, dim=1)


def _fused_alif(cur: torch.Tensor, p) -> torch.Tensor:
    from biospike.models.fused import ALIFScan

    a_mem, a_syn_neg = lif_constants(p.tau_mem_inv, p.tau_syn_inv, DT_S)
    return ALIFScan.apply(cur, a_mem, a_syn_neg, DT_S * p.tau_adapt_inv, p.v_leak, p.v_th, p.v_reset, p.beta,
                          p.method, float(p.alpha))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["super", "triangle", "heavi_erfc"])
def test_alif_scan_equals_norse_lsnn(dtype, method):
    """Adaptive LIF in the fused kernel: spikes and input gradients equal norse's LSNN step (the
    gradient flows through the reset and the adaptive threshold in both)."""
    gen = torch.Generator().manual_seed(7)
    cur = torch.randn(6, 80, 10, generator=gen, dtype=dtype) * 3 + 1.0
    upstream = torch.randn(6, 80, 10, generator=gen, dtype=dtype)
    p = _lsnn_params(dtype, method, SURROGATES[method].default_alpha)
    ref = _forward_backward(lambda x: _norse_alif(x, p), cur, upstream)
    _assert_same(_forward_backward(lambda x: _fused_alif(x, p), cur, upstream), ref)


def test_alif_threshold_adapts():
    """Under a constant drive the adaptive neuron fires less than the same LIF, and more so with a
    larger jump per spike: adaptation is there, and beta = 0 is a LIF with norse's LSNN timing."""
    cur = torch.full((1, 400, 1), 3.0, dtype=torch.float64)
    rates = []
    for beta in (0.0, 0.2, 1.0):
        p = _lsnn_params(torch.float64)._replace(beta=torch.as_tensor(beta, dtype=torch.float64))
        rates.append(float(_fused_alif(cur, p).mean()))
    assert rates[0] > rates[1] > rates[2] > 0


def test_alif_kind_builds_adaptive_snn_and_nir_refuses_it():
    from biospike.deploy.nir_export import export_nir
    from biospike.train import kind_settings

    assert kind_settings("alif", {"neuron": "lif"})["neuron"] == "alif"
    assert kind_settings("snn", {"neuron": "lif"})["neuron"] == "lif"
    arch = make_arch("snn", 4, 2, 1e-3, {**kind_settings("alif", {}), "input_scale": 1.0})
    assert arch["neuron"] == "alif" and arch["tau_adapt_s"] == 0.2
    with pytest.raises(BiospikeError, match="adaptive-threshold"):
        export_nir(build_model(arch))
    with pytest.raises(BiospikeError, match="tau_adapt_s"):
        make_arch("snn", 4, 2, 0.01, {"neuron": "alif", "tau_adapt_s": 0.005, "input_scale": 1.0})


# --- trainable dynamics: per-neuron a_mem, a_syn and v_th learned --------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["super", "atan"])
def test_lif_scan_per_neuron_constant_gradients_equal_norse_autograd(dtype, method):
    """Per-neuron (H,) constants that require grad: the scan's adjoint gives their gradients, equal
    to autograd through norse's step (the written-out step for atan, which norse lacks)."""
    from norse.torch.functional.superspike import super_fn

    width = 10
    gen = torch.Generator().manual_seed(4)
    cur = torch.randn(6, 80, width, generator=gen, dtype=dtype) * 2 + 0.5
    upstream = torch.randn(6, 80, width, generator=gen, dtype=dtype)

    def params():
        return [(1 / torch.linspace(0.01, 0.05, width, dtype=dtype)).requires_grad_(),
                (1 / torch.linspace(0.004, 0.02, width, dtype=dtype)).requires_grad_(),
                torch.linspace(0.8, 1.2, width, dtype=dtype).requires_grad_()]

    zero = torch.tensor(0.0, dtype=dtype)
    results = []
    for fused in (True, False):
        tm, ts, vth = params()
        p = LIFParameters(tau_syn_inv=ts, tau_mem_inv=tm, v_leak=zero, v_th=vth, v_reset=zero, method=method,
                          alpha=torch.as_tensor(SURROGATES[method].default_alpha))
        x = cur.clone().requires_grad_()
        if fused:
            z = LIFScan.apply(x, DT_S * tm, -DT_S * ts, zero, vth, zero, method, None)
        elif method == "super":
            z = _stepped_lif(x, p, lambda u: super_fn(u, p.alpha))  # noqa: B023
        else:
            surrogate = pytest.importorskip("snntorch.surrogate")
            spike_fn = surrogate.atan(SURROGATES[method].default_alpha)
            z = _stepped_lif(x, p, lambda u: spike_fn(u).to(u.dtype))  # noqa: B023
        (z * upstream).sum().backward()
        results.append([x.grad, tm.grad, ts.grad, vth.grad])
    # snnTorch's spike is float32, so its backward runs in float32 even for float64 inputs
    tol = 1e-12 if dtype == torch.float64 and method == "super" else 2e-6 if dtype == torch.float32 else 1e-4
    for got, ref in zip(*results, strict=True):
        assert float(ref.abs().max()) > 0
        torch.testing.assert_close(got, ref, rtol=tol, atol=tol * float(ref.abs().max()))


def test_trainable_snn_fused_equals_norse_and_keeps_constants_valid():
    arch = {"kind": "snn", "n_in": 6, "n_hidden": [16, 8], "n_out": 3, "input_scale": 6.0,
            "trainable": ["tau_mem", "tau_syn", "v_th"]}
    fused, reference = _pair(arch)
    gen = torch.Generator().manual_seed(1)
    x = (torch.rand(5, 40, 6, generator=gen) < 0.3).float()
    y = torch.tensor([0, 1, 2, 0, 1])
    grads = []
    for model in (fused, reference):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads.append({n: q.grad for n, q in model.named_parameters()})
    assert any(n.startswith("dynamics.1.") for n in grads[0])
    for name, g in grads[1].items():
        torch.testing.assert_close(grads[0][name], g, rtol=1e-5, atol=1e-6, msg=name)
        assert name.startswith("fc.1.bias") or float(g.abs().max()) > 0, name
    # whatever the raw values reach, every time constant stays above the step and thresholds positive
    with torch.no_grad():
        for p in fused.dynamics.parameters():
            p.copy_(torch.linspace(-60.0, 60.0, p.numel()))
    for c in fused.neuron_constants():
        assert (c["tau_mem_s"] > fused.arch.dt_s).all() and (c["tau_syn_s"] > fused.arch.dt_s).all()
        assert (c["v_th"] >= 0).all() and np.isfinite(c["v_th"]).all()


def test_trainable_dynamics_refused_where_they_cannot_be_right():
    from biospike.models.ensemble import stackable
    from biospike.privacy.grad_sample import grad_sample_module

    arch = {"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "trainable": ["v_th"]}
    model = build_model(arch)
    with pytest.raises(BiospikeError, match="DP-SGD cannot train learned per-neuron constants"):
        grad_sample_module(model)
    assert "per-neuron constants" in stackable([model, build_model(arch)])
    with pytest.raises(BiospikeError, match="covers LIF neurons"):
        build_model({**arch, "neuron": "alif"})
    with pytest.raises(BiospikeError, match="hidden layers 0..0"):
        build_model({**arch, "trainable_layers": [1]})


def test_trainable_time_constant_equal_to_the_step_starts_just_above_it():
    """tau = dt is a valid LIF (the state decays fully each step); learned, it starts a hair above
    dt (ECG at 20 ms steps with tau_syn = 20 ms)."""
    arch = {"kind": "snn", "n_in": 4, "n_hidden": [8], "n_out": 2, "dt_s": 0.02, "tau_syn_s": 0.02, "tau_mem_s": 0.05,
            "trainable": ["tau_mem", "tau_syn"]}
    c = build_model(arch).neuron_constants()[0]
    np.testing.assert_allclose(c["tau_syn_s"], 0.02 * (1 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(c["tau_mem_s"], 0.05, rtol=1e-5)
