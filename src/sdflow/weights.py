"""Where pretrained network weights (metric and perceptual-loss backbones) are found.

Nothing is downloaded. A file is looked up, in this order, in:

1. an explicit directory (``weights_dir=`` / ``--weights``), or an explicit file path;
2. the directory named by the environment variable ``SDFLOW_WEIGHTS``;
3. the user cache directory ``$XDG_CACHE_HOME/sdflow/weights`` (default
   ``~/.cache/sdflow/weights``).

A missing file raises :class:`WeightsNotFoundError` naming the file and every place looked in.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdflow.errors import SDFlowError

ENV_VAR = "SDFLOW_WEIGHTS"

#: The weight files the package knows, by role (names as distributed in ``shared/weights``).
WEIGHT_FILES: dict[str, str] = {
    "alexnet": "alexnet_features_imagenet.safetensors",
    "vgg16": "vgg16_features_imagenet.safetensors",
    "lpips_alex": "lpips_v0.1_alex_lin.safetensors",
    "lpips_vgg": "lpips_v0.1_vgg_lin.safetensors",
}


class WeightsNotFoundError(SDFlowError):
    """A pretrained weight file is in none of the places searched."""


def cache_dir() -> Path:
    """The user cache directory for weights (XDG_CACHE_HOME or ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sdflow" / "weights"


def search_dirs(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """The directories searched, in order."""
    dirs = []
    if weights_dir is not None:
        dirs.append(Path(weights_dir))
    env = os.environ.get(ENV_VAR)
    if env:
        dirs.append(Path(env))
    dirs.append(cache_dir())
    return dirs


def find_weights(name: str, weights_dir: str | os.PathLike | None = None) -> Path:
    """The path of weight file ``name`` (a key of :data:`WEIGHT_FILES` or a file name).

    ``weights_dir`` may also be the path of the file itself.
    """
    filename = WEIGHT_FILES.get(name, name)
    if weights_dir is not None and Path(weights_dir).is_file():
        return Path(weights_dir)
    dirs = search_dirs(weights_dir)
    for d in dirs:
        candidate = d / filename
        if candidate.is_file():
            return candidate
    looked = "\n".join(f"  - {d / filename}" for d in dirs)
    raise WeightsNotFoundError(
        f"weight file {filename!r} not found. Looked in:\n{looked}\n"
        f"Put {filename} (from the project's shared/weights folder) into {cache_dir()}, "
        f"or point {ENV_VAR} (or --weights) at a directory that holds it.")
