"""Spike encoders: send-on-delta (:mod:`.delta`), Gaussian population (:mod:`.population`) and a
Bernoulli/Poisson rate baseline (:mod:`.rate`); :mod:`.timebase` relates them to the SNN step and
:mod:`.stage` runs one of them on a windows.h5 (``biospike encode``, :mod:`.cli`) or on arrays
(:func:`.stage.encode_signals`)."""

__all__ = ["cli", "delta", "population", "rate", "stage", "timebase"]
