"""Model folders: a checkpoint as a folder others can load without knowing sdflow's format.

A folder holds three files:

- ``model.safetensors``: the sdflow checkpoint itself (a byte-identical copy when exported
  from a file, so its sha256 is the registry's), readable by any safetensors reader;
- ``config.json``: a readable record of what the weights are (architecture, config, scale,
  training data, licence, the sha256 of ``model.safetensors`` and the checkpoint's whole
  metadata record, evaluation and compute included);
- ``README.md``: a model card generated from ``config.json``.

:func:`sdflow.export.export_folder` writes one (``sdflow export --format folder``);
:func:`load_folder` (and ``sdflow.load(DIR)``, ``--model DIR``) reads it after checking the
sha256 and that ``config.json`` agrees with the metadata inside ``model.safetensors``. This
module is the reading side, below the registry; writing needs the registry (names,
licences) and lives in :mod:`sdflow.export`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdflow.checkpoint import CheckpointInfo, file_sha256, read_info
from sdflow.checkpoint import load as load_checkpoint
from sdflow.errors import CheckpointError

FOLDER_FORMAT = "sdflow.model-folder"
FOLDER_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: The model described in OpenModelDB's model schema (what chaiNNer users browse).
OPENMODELDB_NAME = "openmodeldb.json"
#: The files a folder is made of, in the order they are published: config.json last, so a
#: reader that finds it also finds the weights it describes.
FOLDER_FILES = (WEIGHTS_NAME, CARD_NAME, OPENMODELDB_NAME, CONFIG_NAME)  # config.json last
#: Top-level fields of config.json that must equal the checkpoint's own metadata.
_CHECKED_FIELDS = ("architecture", "config", "scale", "sdflow_version", "trained_on")


class ModelFolderError(CheckpointError):
    """A model folder is missing, damaged, edited after export, or cannot be written."""


@dataclass(frozen=True)
class ModelFolder:
    """A verified model folder: its config.json record, the checkpoint's metadata and the
    sha256 of ``model.safetensors``."""

    path: Path
    config: dict[str, Any]
    info: CheckpointInfo
    sha256: str

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_NAME

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.resolve().name)


# --------------------------------------------------------------------------- reading


def _read_config(path: Path) -> dict[str, Any]:
    file = path / CONFIG_NAME
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder")
    if not file.is_file():
        raise ModelFolderError(f"{path}: a folder without {CONFIG_NAME}, not an sdflow model "
                               "folder (write one with `sdflow export MODEL -o DIR`)")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFolderError(f"{file}: not readable JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise ModelFolderError(f"{file}: not an sdflow model folder's config (format "
                               f"{found!r}, expected {FOLDER_FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FOLDER_FORMAT_VERSION:
        raise ModelFolderError(f"{file}: model folder format version {version!r} is not one "
                               f"this sdflow reads (up to {FOLDER_FORMAT_VERSION}); upgrade "
                               "sdflow")
    return config


def _disagreement(config: dict[str, Any], info: CheckpointInfo) -> str | None:
    """The first field where config.json and the checkpoint's own metadata differ, as text
    for an error message; None when they agree."""
    record = json.loads(info.to_json())
    for key in _CHECKED_FIELDS:
        if config.get(key) != record.get(key):
            mine, theirs = config.get(key), record.get(key)
            if isinstance(mine, dict) and isinstance(theirs, dict):
                keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                k = keys[0]
                return f"{key}.{k} (config.json: {mine.get(k)!r}, file: {theirs.get(k)!r})"
            return f"{key} (config.json: {mine!r}, file: {theirs!r})"
    stored = config.get("metadata")
    if not isinstance(stored, dict):
        return "metadata (config.json has no metadata record)"
    # Only the keys config.json holds: a newer sdflow may add fields to the record.
    for key, value in stored.items():
        if key in record and record[key] != value:
            return f"metadata.{key}"
    return None


def verify_folder(path: str | os.PathLike) -> ModelFolder:
    """Read and check a model folder: config.json is ours, ``model.safetensors`` has the
    sha256 config.json records, and its metadata agrees with config.json. Raises
    :class:`ModelFolderError` (one line) otherwise."""
    path = Path(path).expanduser()
    config = _read_config(path)
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelFolderError(f"{path}: {WEIGHTS_NAME} is missing")
    expected = str((config.get("weights") or {}).get("sha256", "")).lower()
    digest = file_sha256(weights, length=64)
    if digest != expected:
        raise ModelFolderError(f"{weights}: sha256 {digest} differs from the {expected or '(none)'}"
                               f" recorded in {CONFIG_NAME}; the weights were changed or damaged "
                               "after export (export the folder again)")
    try:
        info = read_info(weights)
    except CheckpointError as exc:
        raise ModelFolderError(f"{path}: {exc}") from exc
    problem = _disagreement(config, info)
    if problem is not None:
        raise ModelFolderError(f"{path}: {CONFIG_NAME} disagrees with the metadata inside "
                               f"{WEIGHTS_NAME} on {problem}; {CONFIG_NAME} was edited after "
                               "export (export the folder again)")
    return ModelFolder(path, config, info, digest)


def is_model_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with an sdflow model folder's config.json (nothing is
    verified; :func:`verify_folder` does that)."""
    try:
        _read_config(Path(path).expanduser())
    except ModelFolderError:
        return False
    return True


def load_folder(path: str | os.PathLike, device: str | torch.device = "cpu",
                dtype: torch.dtype | None = None) -> nn.Module:
    """Verify a model folder and load its model in eval mode (as :func:`sdflow.load`)."""
    folder = verify_folder(path)
    model = load_checkpoint(folder.weights_path, device=device, dtype=dtype or torch.float32)
    model.model_folder = str(folder.path)
    return model


# --------------------------------------------------------------------------- writing


__all__ = ["CARD_NAME", "CONFIG_NAME", "FOLDER_FILES", "FOLDER_FORMAT", "FOLDER_FORMAT_VERSION",
           "OPENMODELDB_NAME",
           "WEIGHTS_NAME", "ModelFolder", "ModelFolderError", "is_model_folder", "load_folder",
           "verify_folder"]
