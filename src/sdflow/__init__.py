"""sdflow: unpaired real-world super-resolution and realistic downscaling with normalizing flows."""

__version__ = "0.1.0"

from sdflow.checkpoint import load, save  # noqa: E402

__all__ = ["__version__", "load", "save"]
