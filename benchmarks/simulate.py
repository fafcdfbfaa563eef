"""Edge-simulator throughput beside the peers doing the same job on the same inputs.

Network: Linear(16, 128) -> LIF -> Linear(128, 64) -> LIF -> Linear(64, 4) -> LI readout
(random weights scaled for a few % hidden firing), T = 250 steps of 1 ms (an EMG window),
Bernoulli input spikes (p = 0.1 per channel and step). One thread for numpy/BLAS and torch.

Rows (synaptic events = presynaptic spikes x non-zero fan-out, the quantity the energy model prices):
- integer simulation on the Loihi profile (ours: ``simulate_int`` + ``count_events``) vs the float
  torch model's inference (biospike SNN, fused norse dynamics) and NeuroBench's
  ``SynapticOperations`` hooks counting the same events, all expressed as synaptic events/s;
- Xylo-mode integer simulation vs the bit-accurate ``xylosim`` (same spikes, tested), events/s;
- float NIR simulation (ours, bit-exact to torch) vs the torch model, windows/s.

Writes results/bench/simulate.json. Run: ``/tmp/venv/bin/python benchmarks/simulate.py [--quick]``.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: set before numpy loads BLAS

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, best_time_s, have, parser, report, row  # noqa: E402

from biospike.deploy.hardware import load_profile  # noqa: E402
from biospike.deploy.nir_export import export_nir  # noqa: E402
from biospike.deploy.quantize import calibration_bounds, quantize_network  # noqa: E402
from biospike.deploy.simulator import count_events, network_from_nir, simulate_float, simulate_int  # noqa: E402
from biospike.models import build_model  # noqa: E402

N_IN, HIDDEN, N_OUT, STEPS = 16, [128, 64], 4, 250


def build(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model({"kind": "snn", "n_in": N_IN, "n_hidden": HIDDEN, "n_out": N_OUT, "input_scale": 2.0})
    with torch.no_grad():
        model.fc[0].weight.mul_(3.0)
        model.fc[1].weight.mul_(6.0)
    return model.eval()


def xylosim_run(qnet, x: np.ndarray) -> None:
    """Our Xylo-mode network loaded into xylosim and run window by window (as the test does)."""
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    from test_deploy_xylosim import to_xylosim

    for b in range(len(x)):
        layer, _keep = to_xylosim(qnet)
        layer.evolve([[int(c) for c in r] for r in x[b]])


def main() -> None:
    args = parser("simulate", __doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    n_windows = 64 if args.quick else 256
    repeat = 2 if args.quick else 4
    model = build()
    net = network_from_nir(export_nir(model))
    x = (np.random.default_rng(0).random((n_windows, STEPS, N_IN)) < 0.1).astype(np.uint8)
    xt = torch.as_tensor(x, dtype=torch.float32)
    loihi = load_profile(REPO / "config" / "hardware" / "loihi.yaml")
    xylo = load_profile(REPO / "config" / "hardware" / "xylo_audio2.yaml")
    bounds = calibration_bounds(net, x[:16])
    q_loihi = quantize_network(net, loihi, bounds)
    q_xylo = quantize_network(net, xylo, bounds)

    trace = simulate_int(q_loihi, x)
    events = float(count_events(net, trace, x, q_loihi.weight_ints)["syn_events"].sum())
    rates = {k: round(float(v.mean()), 4) for k, v in trace.spikes.items()}
    t_int = best_time_s(lambda: count_events(net, simulate_int(q_loihi, x), x, q_loihi.weight_ints), repeat)
    t_float = best_time_s(lambda: simulate_float(net, x), repeat)

    def torch_forward():
        with torch.no_grad():
            model(xt)

    t_torch = best_time_s(torch_forward, repeat)
    f_trace = simulate_float(net, x)
    f_events = float(count_events(net, f_trace, x)["syn_events"].sum())

    t_nb = None
    if have("neurobench"):
        from neurobench.metrics.workload import SynapticOperations
        from neurobench.models import TorchModel

        def neurobench_count():
            nb_model = TorchModel(model)
            nb_model.register_hooks()
            with torch.no_grad():
                preds = nb_model(xt)
            SynapticOperations()(nb_model, preds, (xt, torch.zeros(len(x))))
            nb_model.cleanup_hooks()

        t_nb = best_time_s(neurobench_count, 1 if args.quick else 2)

    x_xylo = x[: max(8, n_windows // 8)]
    xy_trace = simulate_int(q_xylo, x_xylo)
    xy_events = float(count_events(net, xy_trace, x_xylo, q_xylo.weight_ints, hidden_delay=True)["syn_events"].sum())
    t_xy = best_time_s(lambda: count_events(net, simulate_int(q_xylo, x_xylo), x_xylo, q_xylo.weight_ints,
                                            hidden_delay=True), repeat)
    t_xylosim = best_time_s(lambda: xylosim_run(q_xylo, x_xylo), 1) if have("xylosim") else None

    rows = [
        row("integer simulation, Loihi profile", "synaptic events/s", events / t_int,
            {"torch float model (inference)": f_events / t_torch,
             "neurobench SynapticOperations": None if t_nb is None else f_events / t_nb},
            windows=n_windows, steps=STEPS, hidden_rates=rates, events=events),
        row("integer simulation, Xylo profile", "synaptic events/s", xy_events / t_xy,
            {"xylosim (bit-accurate Xylo)": None if t_xylosim is None else xy_events / t_xylosim},
            windows=len(x_xylo)),
        row("float NIR simulation (bit-exact to torch)", "windows/s", n_windows / t_float,
            {"torch float model (inference)": n_windows / t_torch}),
        row("integer simulation, Loihi profile", "windows/s", n_windows / t_int,
            {"torch float model (inference)": n_windows / t_torch}),
    ]
    report(rows, args.out)
    target = 20e6
    print(f"integer simulator: {events / t_int / 1e6:.1f} M synaptic events/s on one core "
          f"({'meets' if events / t_int >= target else 'BELOW'} the 20 M/s target); hidden rates {rates}")


if __name__ == "__main__":
    main()
