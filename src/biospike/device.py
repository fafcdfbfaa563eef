"""The torch device of ``train.device``, checked before a stage does any work. Its own module so
that a stage's context loader (:mod:`biospike.cliutil`) can check it without importing the models
(rule code versions follow imports: the encoder's must not change with the network code)."""

from __future__ import annotations

import torch

from biospike.errors import BiospikeError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> torch.device:
    """The torch device of ``train.device`` (``"cpu"`` or ``"cuda"``); an error if CUDA is asked
    for but not available, or for any other name."""
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise BiospikeError(
                f"train.device is 'cuda' but CUDA is not available to torch {torch.__version__} "
                f"(CPU-only build or no GPU visible); set train.device: cpu")
        return torch.device("cuda")
    raise BiospikeError(f"train.device must be 'cpu' or 'cuda', not {name!r}")
