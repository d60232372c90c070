"""sdflow: unpaired real-world super-resolution and realistic downscaling with normalizing flows.

``sdflow.load`` opens a model (registered name or checkpoint), ``sdflow.prepare`` returns a
copy prepared for fast inference; the image API
(:func:`super_resolve`, :func:`downscale`) runs one through the tiled pipeline of the
command line on a PIL image or numpy array; the models' own methods take tensors.
"""

from sdflow.checkpoint import save
from sdflow.inference.pipeline import downscale, super_resolve
from sdflow.models.prepare import prepare
from sdflow.registry import load  # a checkpoint path or a registered name
from sdflow.version import __version__

__all__ = ["__version__", "downscale", "load", "prepare", "save", "super_resolve"]
