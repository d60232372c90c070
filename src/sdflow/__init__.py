"""sdflow: unpaired real-world super-resolution and realistic downscaling with normalizing flows."""

__version__ = "0.1.0"

from sdflow.checkpoint import save  # noqa: E402
from sdflow.registry import load  # noqa: E402  (a checkpoint path or a registered name)

__all__ = ["__version__", "load", "save"]
