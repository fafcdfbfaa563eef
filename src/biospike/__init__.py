"""biospike: biosignals to spiking neural networks, privacy-hardened, attacked, and costed on edge hardware."""

# The one place the version lives (pyproject.toml reads it: [tool.setuptools.dynamic]). PEP 440:
# X.Y.Z for a release, tagged vX.Y.Z; X.Y.Z.devN between releases (CHANGELOG.md, "Releases").
__version__ = "0.2.0.dev0"

__all__ = ["__version__"]
