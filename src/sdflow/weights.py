"""Where pretrained network weights (metric and perceptual-loss backbones) are found.

Nothing is downloaded. A file is looked up, in this order, in:

1. an explicit directory (``weights_dir=`` / ``--weights``), or an explicit file path;
2. the directory named by the environment variable ``SDFLOW_WEIGHTS``;
3. the user cache directory ``$XDG_CACHE_HOME/sdflow/weights`` (default
   ``~/.cache/sdflow/weights``).

A missing file raises :class:`WeightsNotFoundError` naming the file and every place looked
in; a file that is there but truncated, corrupt or of other networks raises
:class:`WeightsCorruptError` (:func:`load_weights_into`), each with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sdflow.errors import SDFlowError, first_line

if TYPE_CHECKING:
    from torch import Tensor, nn

ENV_VAR = "SDFLOW_WEIGHTS"

#: The weight files the package knows, by role (names as distributed in ``shared/weights``).
WEIGHT_FILES: dict[str, str] = {
    "alexnet": "alexnet_features_imagenet.safetensors",
    "vgg16": "vgg16_features_imagenet.safetensors",
    "lpips_alex": "lpips_v0.1_alex_lin.safetensors",
    "lpips_vgg": "lpips_v0.1_vgg_lin.safetensors",
}


class WeightsError(SDFlowError):
    """A pretrained weight file is missing or unusable."""


class WeightsNotFoundError(WeightsError):
    """A pretrained weight file is in none of the places searched."""


class WeightsCorruptError(WeightsError):
    """A pretrained weight file is there but truncated, corrupt or holds other weights."""


def user_cache(name: str) -> Path:
    """``$XDG_CACHE_HOME/sdflow/<name>`` (default ``~/.cache/sdflow/<name>``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sdflow" / name


def cache_dir() -> Path:
    """The user cache directory for weights (XDG_CACHE_HOME or ~/.cache)."""
    return user_cache("weights")


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
    looked = ", ".join(str(d / filename) for d in dirs)
    raise WeightsNotFoundError(
        f"weight file {filename!r} not found (looked for {looked}); put {filename} (from "
        f"the project's shared/weights folder) into {cache_dir()}, or point {ENV_VAR} (or "
        "--weights) at a directory that holds it")


def _replace_hint(path: Path) -> str:
    return (f"replace it with a fresh copy of {path.name} from the project's shared/weights "
            "folder")


def load_weight_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a safetensors weight file; an unreadable one (e.g. truncated by an
    interrupted copy) raises :class:`WeightsCorruptError` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        text = first_line(exc)
        raise WeightsCorruptError(f"{path}: not a readable safetensors weight file "
                                  f"({text}); {_replace_hint(path)}") from exc


def state_mismatch(model: nn.Module, state: dict[str, Tensor]) -> str:
    """One line on how ``state`` differs from ``model``'s state dict ('' when it fits)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    # a float16 or integer tensor in a float32 file loads silently and gives wrong pictures
    dtypes = [f"{k} {state[k].dtype} vs {v.dtype}" for k, v in expected.items()
              if k in state and state[k].dtype != v.dtype]
    parts = []
    for what, items in (("missing", missing), ("unexpected", unexpected),
                        ("other shape", shapes), ("other dtype", dtypes)):
        if items:
            more = f" and {len(items) - 1} more" if len(items) > 1 else ""
            parts.append(f"{len(items)} {what} (e.g. {items[0]}{more})")
    return ", ".join(parts)


def load_weights_into(module: nn.Module, path: str | os.PathLike,
                      key_map: Callable[[str], str] | None = None) -> None:
    """Load weight file ``path`` into ``module`` (all keys, same shapes; file keys renamed
    by ``key_map``), else raise :class:`WeightsCorruptError` saying how the file differs."""
    path = Path(path)
    state = load_weight_file(path)
    if key_map is not None:
        state = {key_map(k): v for k, v in state.items()}
    problem = state_mismatch(module, state)
    if problem:
        raise WeightsCorruptError(f"{path}: not the weights of this network ({problem}); "
                                  f"{_replace_hint(path)}")
    module.load_state_dict(state, strict=True)
