"""Model folders: a checkpoint as a folder others can load without knowing sdflow's format.

A folder holds three files:

- ``model.safetensors``: the sdflow checkpoint itself (a byte-identical copy when exported
  from a file, so its sha256 is the registry's), readable by any safetensors reader;
- ``config.json``: a readable record of what the weights are (architecture, config, scale,
  training data, licence, the sha256 of ``model.safetensors`` and the checkpoint's whole
  metadata record, evaluation and compute included);
- ``README.md``: a model card generated from ``config.json``.

:func:`export_folder` writes one, :func:`load_folder` (and ``sdflow.load(DIR)``,
``--model DIR``) reads it after checking the sha256 and that ``config.json`` agrees with the
metadata inside ``model.safetensors``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdflow.checkpoint import CheckpointInfo, file_sha256, read_info
from sdflow.checkpoint import load as load_checkpoint
from sdflow.checkpoint import save as save_checkpoint
from sdflow.errors import CheckpointError

FOLDER_FORMAT = "sdflow.model-folder"
FOLDER_FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
#: The files a folder is made of, in the order they are published: config.json last, so a
#: reader that finds it also finds the weights it describes.
FOLDER_FILES = (WEIGHTS_NAME, CARD_NAME, CONFIG_NAME)
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


@dataclass(frozen=True)
class _Source:
    """A checkpoint staged for export and what is known about it from where it came."""

    name: str
    license: str
    registered: str | None  # the registry name when the file is a registered model's


def _stage_weights(source: nn.Module | str | os.PathLike, dest: Path) -> _Source:
    """Put the checkpoint of ``source`` at ``dest``: a module is saved (keeping the
    provenance of the checkpoint it was loaded from), a file is copied byte for byte."""
    from sdflow import registry

    if isinstance(source, nn.Module):
        info = getattr(source, "checkpoint_info", None)
        saved = save_checkpoint(source, dest, trained_on=info.trained_on if info else "",
                                notes=info.notes if info else "",
                                extra=info.extra if info else None)
        return _Source(str(saved.extra.get("registered_name") or ""), "", None)
    if not str(source):
        raise ModelFolderError("no model given: pass a registered name, a checkpoint file or "
                               "a model folder")
    path = Path(source).expanduser()
    if path.is_dir() and is_model_folder(path):
        folder = verify_folder(path)
        shutil.copyfile(folder.weights_path, dest)
        expected = folder.sha256
        name, license = folder.name, str(folder.config.get("license", ""))
    else:
        resolved = registry.resolve(source)
        expected = registry.sha256_of(resolved)
        shutil.copyfile(resolved.path, dest)
        entry = resolved.entry
        name = entry.name if entry else ""
        license = entry.license if entry else ""
        if not name:
            name = str(read_info(dest).extra.get("registered_name") or resolved.path.stem)
    if file_sha256(dest, length=64) != expected:
        raise ModelFolderError(f"{source}: the file changed while it was being copied")
    entry = registry.MODELS.get(name)
    registered = name if entry is not None and entry.sha256.lower() == expected else None
    if registered and not license:
        license = entry.license
    return _Source(name, license, registered)


def _config_record(model: nn.Module, info: CheckpointInfo, sha256: str, size: int,
                   source: _Source, name: str, license: str) -> dict[str, Any]:
    from sdflow import __version__
    from sdflow.models import ARCHITECTURES

    arch = ARCHITECTURES[info.architecture]
    tasks = ["sr"] + (["ds"] if hasattr(arch.model_cls, "downscale") else [])
    return {
        "format": FOLDER_FORMAT,
        "format_version": FOLDER_FORMAT_VERSION,
        "name": name,
        "registered_name": source.registered,
        "architecture": info.architecture,
        "label": arch.label,
        "stochastic": bool(getattr(arch.model_cls, "stochastic", True)),
        "tasks": tasks,
        "scale": info.scale,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": info.config,
        "trained_on": info.trained_on,
        "license": license,
        "sdflow_version": info.sdflow_version,
        "exported_with": f"sdflow {__version__}",
        "weights": {"file": WEIGHTS_NAME, "sha256": sha256, "bytes": size},
        "metadata": json.loads(info.to_json()),
    }


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ModelFolderError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ModelFolderError(f"{out}: folder exists and is not empty; pass --overwrite "
                               "(overwrite=True) to replace the model files in it")


def _publish(staging: Path, out: Path) -> None:
    """Move the staged files into ``out``: a new folder appears at once (one rename); into
    an existing folder the files are replaced one by one, config.json last, so a reader
    never finds a config.json without its weights (during an overwrite it may find the old
    config.json with the new weights, which fails the sha256 check rather than loading)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(staging, 0o777 & ~mask)  # mkdtemp makes it owner-only
    if not out.exists():
        try:
            os.rename(staging, out)
            return
        except OSError:  # e.g. created meanwhile; fall back to moving the files
            out.mkdir(parents=True, exist_ok=True)
    for name in FOLDER_FILES:
        os.replace(staging / name, out / name)


def export_folder(model_or_path: nn.Module | str | os.PathLike, out_dir: str | os.PathLike,
                  *, overwrite: bool = False, license: str | None = None,
                  name: str | None = None) -> ModelFolder:
    """Write a model folder (config.json, model.safetensors, README.md) to ``out_dir``.

    ``model_or_path``: a registered name, a checkpoint file, another model folder, or a
    model (saved fresh, keeping the provenance of the checkpoint it was loaded from). The
    licence defaults to the registry's for a registered model and to the source folder's;
    ``name`` to the registered name, else the file's stem. A non-empty ``out_dir`` is
    refused unless ``overwrite`` (which replaces the three files and leaves others alone).
    Everything is written in a temporary folder beside ``out_dir`` first, so a failed
    export leaves nothing behind. Returns the written folder, verified.
    """
    out = Path(out_dir).expanduser()
    _check_target(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name or 'model'}.", suffix=".export",
                                    dir=out.parent))
    try:
        weights = staging / WEIGHTS_NAME
        source = _stage_weights(model_or_path, weights)
        info = read_info(weights)
        model = load_checkpoint(weights)  # proves the weights load, counts the parameters
        sha256 = file_sha256(weights, length=64)
        record = _config_record(model, info, sha256, weights.stat().st_size, source,
                                name or source.name or out.resolve().name,
                                source.license if license is None else license)
        (staging / CARD_NAME).write_text(model_card(record), encoding="utf-8")
        (staging / CONFIG_NAME).write_text(json.dumps(record, indent=2) + "\n",
                                           encoding="utf-8")
        _check_target(out, overwrite)  # again: something may have appeared meanwhile
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return verify_folder(out)


# --------------------------------------------------------------------------- model card

#: Metric columns of the card's evaluation tables: (key in the means, header, format).
_METRICS = (("psnr", "PSNR (dB)", ".2f"), ("ssim", "SSIM", ".4f"), ("lpips", "LPIPS", ".4f"),
            ("block", "block", ".2f"), ("lr_psnr", "LR-consistency (dB)", ".2f"),
            ("noise_gen", "noise σ", ".2f"), ("blur_gen", "blur", ".3f"))
_MODES = {"sr": "super-resolution of `LR/` against `HR/`",
          "ds": "downscaling of `HR/` against the real `LR/`"}


def _cell(value: Any, fmt: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and fmt:
        return format(value, fmt)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _compute_section(extra: dict[str, Any]) -> list[str]:
    compute = extra.get("compute")
    if not compute:
        its = extra.get("iterations")
        return [f"{its} iterations; no compute record." if its is not None
                else "Not recorded."]
    legs = compute.get("legs", [])
    total = f"{len(legs)} leg(s), {compute.get('total_iterations')} iterations"
    if compute.get("total_cpu_hours") is not None:
        total += f", {compute['total_cpu_hours']:.2f} CPU-hours"
    if compute.get("total_hours") is not None:
        total += f", {compute['total_hours']:.2f} h wall-clock"
    lines = [f"Total: {total}.", ""]
    if legs:
        lines += ["| leg | iterations | device | hours | CPU-hours | from | note |",
                  "|---|---|---|---|---|---|---|"]
        for i, leg in enumerate(legs, 1):
            lines.append(f"| {i} | {_cell(leg.get('iterations'))} | {_cell(leg.get('device'))}"
                         f" | {_cell(leg.get('hours'), '.2f')} | "
                         f"{_cell(leg.get('cpu_hours'), '.2f')} | "
                         f"{_cell(leg.get('init_from'))} | {_cell(leg.get('note'))} |")
    return lines


def _evaluation_section(extra: dict[str, Any]) -> list[str]:
    runs = extra.get("evidence") or []
    if not runs:
        return ["No evaluation is recorded in the checkpoint."]
    lines = ["Means over the pairs of each `sdflow eval` run recorded in the checkpoint. With "
             "`sdflow eval`'s defaults, PSNR/SSIM are on BT.601 Y with a 4-pixel shave in `sr` "
             "and none in `ds`, LPIPS is v0.1 AlexNet, and `block` is the 4x4-grid artefact "
             "ratio (1 = none); see sdflow's docs/evaluation.md. The record keeps the means, "
             "not the options."]
    for run in runs:
        data = run.get("dataset") or {}
        dirs = [d for d in (data.get("lr_dir"), data.get("hr_dir")) if d]
        where = os.path.commonpath(dirs) if len(dirs) == 2 else (dirs[0] if dirs else "?")
        mode = run.get("mode", "?")
        lines += ["", f"**`{mode}`** ({_MODES.get(mode, mode)}) on `{where}`, "
                  f"{data.get('pairs', '?')} pairs, seed {run.get('seed')}, "
                  f"{str(run.get('created') or '')[:10]}:", ""]
        means = run.get("means") or []
        cols = [m for m in _METRICS if any(row.get(m[0]) is not None for row in means)]
        lines.append("| method | tau | samples | " + " | ".join(c[1] for c in cols) + " |")
        lines.append("|---" * (3 + len(cols)) + "|")
        for row in means:
            cells = [_cell(row.get("method")), _cell(row.get("tau"), "g"),
                     _cell(row.get("samples"))]
            cells += [_cell(row.get(key), fmt) for key, _, fmt in cols]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def model_card(record: dict[str, Any]) -> str:
    """The README.md of a model folder, from its config.json record."""
    meta = record.get("metadata") or {}
    extra = meta.get("extra") or {}
    name, scale = record["name"], record["scale"]
    does = [f"x{scale} super-resolution of real photos"
            + (" (stochastic: samples at a temperature tau; tau 0 is deterministic)"
               if record.get("stochastic") else " (deterministic)")]
    if "ds" in record.get("tasks", []):
        does.append(f"realistic /{scale} downscaling (HR to LR with the learned camera "
                    "degradation)")
    license = record.get("license") or "not stated by whoever exported the model"
    lines = [
        f"# {name}", "",
        f"{record['label'] or record['architecture']}, x{scale}: a model folder exported by "
        f"{record.get('exported_with', 'sdflow')} (the checkpoint was written by sdflow "
        f"{record.get('sdflow_version')}).", "",
        "| | |", "|---|---|",
        f"| architecture | `{record['architecture']}`: {_cell(record['label'])} |",
        f"| parameters | {record['parameters']:,} |",
        f"| scale | x{scale} |",
        f"| does | {'; '.join(does)} |",
        f"| licence | {_cell(license)} |",
        f"| created | {_cell(meta.get('created'))} |",
        f"| `{WEIGHTS_NAME}` sha256 | `{record['weights']['sha256']}` |",
        "",
    ]
    if meta.get("notes"):
        lines += ["## Description", "", meta["notes"], ""]
    lines += ["## Training data", "", record.get("trained_on") or "Not recorded.", ""]
    if extra.get("train_config"):
        lines += ["The full training configuration is in `config.json` "
                  "(`metadata.extra.train_config`).", ""]
    lines += ["## Compute", "", *_compute_section(extra), ""]
    lines += ["## Evaluation", "", *_evaluation_section(extra), ""]
    lines += ["## Licence", "", license, ""]
    lines += _how_to_load(record)
    return "\n".join(lines).rstrip() + "\n"


def _how_to_load(record: dict[str, Any]) -> list[str]:
    sr_call = ("model.sr(Image.open(\"photo.png\").convert(\"RGB\"), tau=0.0)"
               if record.get("stochastic") else
               "model.sr(Image.open(\"photo.png\").convert(\"RGB\"))")
    lines = [
        "## How to load", "",
        "With sdflow installed (or a checkout's `src/` on `PYTHONPATH`); each of these checks "
        f"the sha256 recorded in `{CONFIG_NAME}` first:", "",
        "```python", "import sdflow", "from PIL import Image", "",
        "model = sdflow.load(\"path/to/this/folder\")  # eval mode",
        f"sr = {sr_call}  # a PIL image, x{record['scale']}",
        "sr.save(\"photo_sr.png\")", "```", "",
        "```bash", "sdflow sr photo.png -o out/ --model path/to/this/folder",
    ]
    if "ds" in record.get("tasks", []):
        lines.append("sdflow downscale hr_photo.png -o out/ --model path/to/this/folder")
    lines += ["sdflow info path/to/this/folder", "```", ""]
    registered = record.get("registered_name")
    if registered:
        entry = registered.replace("-", "_")
        lines += [f"The same weights are the registered model `{registered}`, also a "
                  "torch.hub entry of the sdflow repository (offline from a clone):", "",
                  "```python", "import torch", "",
                  f"model = torch.hub.load(\"path/to/sdflow\", \"{entry}\", source=\"local\")",
                  "```", ""]
    lines += [f"Without sdflow, `{WEIGHTS_NAME}` is a plain safetensors file (tensors named "
              f"as sdflow's `state_dict`; its header metadata key `sdflow` holds the record "
              f"that `{CONFIG_NAME}` repeats under `metadata`):", "",
              "```python", "from safetensors.torch import load_file", "",
              f"state_dict = load_file(\"path/to/this/folder/{WEIGHTS_NAME}\")", "```", ""]
    return lines


__all__ = ["CARD_NAME", "CONFIG_NAME", "FOLDER_FORMAT", "FOLDER_FORMAT_VERSION",
           "WEIGHTS_NAME", "ModelFolder", "ModelFolderError", "export_folder",
           "is_model_folder", "load_folder", "model_card", "verify_folder"]
