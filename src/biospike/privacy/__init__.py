"""Differential privacy for the networks: DP-SGD training (:mod:`.dp`, :mod:`.optimizer`, per-sample
gradients in :mod:`.grad_sample`, noise in :mod:`.noise`), adaptive clipping and noise allocation
(:mod:`.adaptive`), epsilon accounting (:mod:`.accounting`), the one-run canary audit
(:mod:`.audit`) and the ``biospike harden`` / ``privacy-table`` stages (:mod:`.cli`)."""

__all__ = ["accounting", "adaptive", "audit", "cli", "dp", "grad_sample", "noise", "optimizer"]
