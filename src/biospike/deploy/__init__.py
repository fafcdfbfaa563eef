"""Edge targets: NIR export (:mod:`.nir_export`), hardware profiles and the cost model
(:mod:`.hardware`), quantization (:mod:`.quantize`), mapping onto cores (:mod:`.mapping`), float and
integer simulation (:mod:`.simulator`) and the ``simulate`` stage (:mod:`.cli`,
:func:`.cli.simulate_model` from arrays)."""

__all__ = ["cli", "hardware", "mapping", "nir_export", "quantize", "simulator"]
