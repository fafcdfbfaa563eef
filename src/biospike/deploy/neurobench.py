"""NeuroBench's metrics, computed by the ``neurobench`` package on our trained SNNs.

NeuroBench (Yik et al. 2025, "The NeuroBench framework for benchmarking neuromorphic computing
algorithms and systems", Nature Communications) defines its metrics through hooks: connection
layers (``nn.Linear``, ``nn.Conv*``) for synaptic operations and connection sparsity, and
"activation modules" (snnTorch neurons, ReLU, ...) for activation sparsity. Our SNN's neuron
dynamics are functions called from its forward pass, not modules, so no activation hook would
see them. :class:`NeuroBenchView` is the same network with each hidden layer's dynamics as a
module (:class:`HiddenDynamics`, registered with NeuroBench as an activation module); it shares
the SNN's own ``nn.Linear`` objects (the first one copied with the input gain folded in, as on a
chip, so that input spikes stay binary) and computes the SNN's logits (test). Nothing of NeuroBench is
re-implemented or patched here: its ``Benchmark`` runs its metric classes on the view.

What NeuroBench reports, and under which of its names:

* ``Footprint`` (bytes of parameters and buffers), ``ConnectionSparsity`` (fraction of zero
  weights over its connection layers), ``ParameterCount``;
* ``ActivationSparsity`` (fraction of zero outputs over every hidden layer, step and window) and
  ``ActivationSparsityByLayer``;
* ``SynapticOperations``: ``Dense`` (every weight every call), ``Effective_MACs`` (non-zero
  products for non-binary inputs) and ``Effective_ACs`` (for binary inputs: spikes), per window.

Not computed: NeuroBench's ``MembraneUpdates`` counts the membrane changes of snnTorch neurons
stepped one time step per call (its hook reads their ``mem`` attribute); our layers process a
whole window per call and hold no such attribute, so it would report 0. The simulator's neuron
updates (neurons x steps) are the equivalent count and stand beside it, named as ours.

The package is optional (``pip install --no-deps neurobench``: its metrics need only torch and
snnTorch, while its full dependency list pulls torchaudio and a CUDA build of torch); without it
:func:`neurobench_metrics` returns why it did not run.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["HiddenDynamics", "NeuroBenchView", "neurobench_metrics"]


class HiddenDynamics(nn.Module):
    """One hidden layer's neuron dynamics as a module: current (B, T, H) -> spikes (B, T, H)."""

    def __init__(self, snn: nn.Module, layer: int) -> None:
        super().__init__()
        self.layer = int(layer)
        # a plain attribute (a bound method), not a submodule: the SNN's parameters are counted once
        self.step = snn.hidden_layer

    def forward(self, current: torch.Tensor) -> torch.Tensor:
        """The layer's spikes over all steps."""
        return self.step(current, self.layer)


class NeuroBenchView(nn.Module):
    """The SNN as NeuroBench sees it: its Linear layers (shared, not copied), a
    :class:`HiddenDynamics` per hidden layer, its readout; ``forward`` returns its logits."""

    def __init__(self, snn: nn.Module) -> None:
        super().__init__()
        fc = list(snn.fc)
        if float(snn.arch.input_scale) != 1.0:
            # the input gain folded into the first layer's weights (as the NIR export and the chips
            # do): NeuroBench then sees spikes, not scaled spikes, and counts their accumulates
            # as ACs; a copy, so the SNN itself is untouched
            first = copy.deepcopy(fc[0])
            with torch.no_grad():
                first.weight.mul_(float(snn.arch.input_scale))
            fc[0] = first
        self.fc = nn.ModuleList(fc)
        self.dynamics = nn.ModuleList(HiddenDynamics(snn, layer) for layer in range(len(snn.fc)))
        self.out = snn.out
        self.rec = snn.rec
        # learned per-neuron constants (train.trainable) are parameters of the network too: held
        # here so that NeuroBench's footprint and parameter count include them
        self.learned_dynamics = getattr(snn, "dynamics", None)
        self.arch = snn.arch
        self.readout = snn.readout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, O) of spike counts ``x`` (B, T, C), as the SNN computes them."""
        if self.rec is not None:
            raise ValueError("recurrent layers step their own weights inside the dynamics; not viewed")
        h = x
        for fc, dyn in zip(self.fc, self.dynamics, strict=True):
            h = dyn(fc(h))
        current = self.out(h)
        if self.arch.output_scale != 1.0:
            current = current * self.arch.output_scale
        return self.readout(current).mean(dim=1)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def neurobench_metrics(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> dict[str, Any]:
    """NeuroBench's metrics of an SNN on windows ``x`` (N, T, C) with labels ``y``, under its
    names, from its ``Benchmark``; or ``{"status": "not run", "reason": ...}`` where the package
    is missing or cannot view the model (a recurrent SNN)."""
    try:
        from neurobench.benchmarks import Benchmark
        from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
        from neurobench.metrics.workload import (
            ActivationSparsity,
            ActivationSparsityByLayer,
            ClassificationAccuracy,
            SynapticOperations,
        )
        from neurobench.models import TorchModel
    except ImportError as err:
        return {"status": "not run", "reason": f"neurobench is not installed ({err}); pip install --no-deps neurobench"}
    import importlib.metadata

    snn = getattr(model, "_module", model)
    if getattr(snn, "rec", None) is not None:
        return {"status": "not run", "reason": "recurrent layers step their weights inside the time loop: "
                                               "NeuroBench's per-call hooks would count them once per window"}
    view = NeuroBenchView(snn).eval()
    data = torch.utils.data.TensorDataset(torch.as_tensor(np.asarray(x), dtype=torch.float32),
                                          torch.as_tensor(np.asarray(y), dtype=torch.int64))
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    nb_model = TorchModel(view)
    nb_model.add_activation_module(HiddenDynamics)
    bench = Benchmark(nb_model, loader, [], [lambda logits: logits.argmax(dim=-1)],
                      [[Footprint, ConnectionSparsity, ParameterCount],
                       [ClassificationAccuracy, ActivationSparsity, ActivationSparsityByLayer, SynapticOperations]])
    with torch.no_grad():
        results = bench.run(quiet=True)
    by_layer = results.get("ActivationSparsityByLayer") or {}
    return {"status": "ok", "package": f"neurobench {importlib.metadata.version('neurobench')}",
            "n_windows": int(len(x)),
            "metrics": _jsonable(results),
            # NeuroBench names its layers by module path; ours are the hidden layers in order
            "activation_sparsity_by_hidden_layer": [_jsonable(v) for v in by_layer.values()],
            "not_computed": {"MembraneUpdates": "needs snnTorch neurons stepped per time step (their mem attribute); "
                                                "the simulator's neuron_updates count the same updates"}}
