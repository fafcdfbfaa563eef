"""biospike: biosignals to spiking neural networks, privacy-hardened, attacked, and costed on edge hardware."""

__version__ = "0.1.0"
