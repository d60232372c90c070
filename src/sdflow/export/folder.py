"""Writing model folders (the format: :mod:`sdflow.model_folder`): the checkpoint, a
``config.json`` record and a generated model card, published with one rename."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from sdflow import registry
from sdflow.checkpoint import CheckpointInfo, compute_summary, file_sha256, read_info
from sdflow.checkpoint import load as load_checkpoint
from sdflow.checkpoint import save as save_checkpoint
from sdflow.model_folder import (
    CARD_NAME,
    CONFIG_NAME,
    FOLDER_FILES,
    FOLDER_FORMAT,
    FOLDER_FORMAT_VERSION,
    OPENMODELDB_NAME,
    WEIGHTS_NAME,
    ModelFolder,
    ModelFolderError,
    is_model_folder,
    verify_folder,
)
from sdflow.models.base import StochasticSR, SuperResolver, downscales
from sdflow.provenance import portable_evidence
from sdflow.version import __version__


@dataclass(frozen=True)
class _Source:
    """A checkpoint staged for export and what is known about it from where it came."""

    name: str
    license: str
    registered: str | None  # the registry name when the file is a registered model's


def _stage_weights(source: nn.Module | str | os.PathLike, dest: Path) -> _Source:
    """Put the checkpoint of ``source`` at ``dest``: a module is saved (keeping the
    provenance of the checkpoint it was loaded from), a file is copied byte for byte."""
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
    from sdflow.models import ARCHITECTURES

    arch = ARCHITECTURES[info.architecture]
    tasks = (["sr"] if issubclass(arch.model_cls, SuperResolver) else []) + \
        (["ds"] if downscales(model) else [])
    return {
        "format": FOLDER_FORMAT,
        "format_version": FOLDER_FORMAT_VERSION,
        "name": name,
        "registered_name": source.registered,
        "architecture": info.architecture,
        "label": arch.label,
        "stochastic": issubclass(arch.model_cls, StochasticSR),
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
        raise ModelFolderError(f"{out}: folder exists and is not empty; choose another "
                               "folder or replace the model files in it (sdflow export "
                               "--overwrite)")


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
    """Write a model folder (config.json, model.safetensors, README.md with Hugging Face
    front matter, openmodeldb.json) to ``out_dir``.

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
        (staging / OPENMODELDB_NAME).write_text(
            json.dumps(openmodeldb_record(record), indent=2) + "\n", encoding="utf-8")
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
        return [compute_summary(extra).capitalize() + "."]
    legs = compute.get("legs", [])
    lines = [f"Total: {compute_summary(extra)}.", ""]
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
    for run in portable_evidence(runs):
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


#: Licence texts of the registry (and of users) -> SPDX identifiers the Hub knows.
_SPDX = (("apache-2.0", "apache-2.0"), ("apache", "apache-2.0"), ("mit", "mit"),
         ("bsd-3", "bsd-3-clause"), ("cc-by-nc-sa-4.0", "cc-by-nc-sa-4.0"),
         ("cc-by-nc-4.0", "cc-by-nc-4.0"), ("cc-by-4.0", "cc-by-4.0"),
         ("cc0", "cc0-1.0"), ("gpl-3", "gpl-3.0"))


def spdx_license(text: str) -> str | None:
    """The SPDX identifier a licence text starts with (``"MIT (weights); ..."`` -> ``mit``),
    or None."""
    head = text.strip().lower().replace(" ", "-")
    return next((spdx for prefix, spdx in _SPDX if head.startswith(prefix)), None)


def _task_names(record: dict[str, Any]) -> list[str]:
    scale = record["scale"]
    return ([f"x{scale} super-resolution"] if "sr" in record.get("tasks", []) else []) + \
        ([f"/{scale} realistic downscaling"] if "ds" in record.get("tasks", []) else [])


def _model_index(record: dict[str, Any], extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Hugging Face ``model-index`` results from the recorded ``sdflow eval`` means: one
    result per (eval run, method of this model, tau)."""
    results = []
    for run in portable_evidence(extra.get("evidence") or []):
        mode = run.get("mode")
        data = run.get("dataset") or {}
        dirs = [d for d in (data.get("lr_dir"), data.get("hr_dir")) if d]
        where = os.path.commonpath(dirs) if len(dirs) == 2 else (dirs[0] if dirs else "?")
        for row in run.get("means") or []:
            if row.get("method") != record["architecture"]:  # bicubic, gaussian-fit baselines
                continue
            metrics = [{"type": key, "name": header, "value": round(float(row[key]), 4)}
                       for key, header, _ in _METRICS if row.get(key) is not None]
            task = ("super-resolution" if mode == "sr" else "realistic downscaling")
            results.append({
                "task": {"type": "image-to-image",
                         "name": f"{task}, {row.get('method')} tau {row.get('tau'):g}"},
                "dataset": {"name": where, "type": where.split("/")[0]},
                "metrics": metrics})
    return [{"name": record["name"], "results": results}] if results else []


def front_matter(record: dict[str, Any]) -> str:
    """The YAML header the Hugging Face Hub reads from a README.md (licence, library,
    pipeline tag, tags, model-index with the recorded metrics)."""
    import yaml

    meta = record.get("metadata") or {}
    extra = meta.get("extra") or {}
    license_text = record.get("license") or ""
    spdx = spdx_license(license_text)
    data: dict[str, Any] = {"license": spdx or "other"}
    if spdx is None:
        data["license_name"] = "see-the-licence-section" if license_text else "unknown"
    data.update({
        "library_name": "sdflow",
        "pipeline_tag": "image-to-image",
        "tags": ["sdflow", record["architecture"], f"x{record['scale']}",
                 *(["super-resolution"] if "sr" in record.get("tasks", []) else []),
                 *(["image-downscaling"] if "ds" in record.get("tasks", []) else []),
                 *(["normalizing-flow"] if record["architecture"] == "sdflow" else [])],
    })
    index = _model_index(record, extra)
    if index:
        data["model-index"] = index
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{text}---\n"


def openmodeldb_record(record: dict[str, Any]) -> dict[str, Any]:
    """The model in OpenModelDB's schema (name, licence, tags, architecture, scale,
    resources with size and sha256, training and dataset notes)."""
    meta = record.get("metadata") or {}
    extra = meta.get("extra") or {}
    compute = extra.get("compute") or {}
    config = (extra.get("train_config") or {})
    data = config.get("data") or {}
    crop = data.get("lr_crop")
    return {
        "name": record["name"],
        "author": "sdflow",
        "license": spdx_license(record.get("license") or "") or record.get("license") or None,
        "tags": ["photo", "realistic", *(["restoration"] if "sr" in record.get("tasks", [])
                                        else []), record["architecture"]],
        "description": meta.get("notes") or record.get("label") or "",
        "date": str(meta.get("created") or "")[:10] or None,
        "architecture": record["architecture"],
        "size": [f"{record['parameters'] / 1e6:.2f}M parameters"],
        "scale": record["scale"],
        "inputChannels": 3,
        "outputChannels": 3,
        "resources": [{"platform": "pytorch", "type": "safetensors",
                       "size": record["weights"]["bytes"],
                       "sha256": record["weights"]["sha256"], "urls": []}],
        "trainingIterations": compute.get("total_iterations"),
        "trainingBatchSize": data.get("batch_size"),
        "trainingHRSize": crop * record["scale"] if crop else None,
        "trainingOTF": False,
        "dataset": record.get("trained_on") or None,
        "tasks": _task_names(record),
    }


def model_card(record: dict[str, Any]) -> str:
    """The README.md of a model folder, from its config.json record: a YAML front matter for
    the Hugging Face Hub, then the card."""
    meta = record.get("metadata") or {}
    extra = meta.get("extra") or {}
    name, scale = record["name"], record["scale"]
    does = []
    if "sr" in record.get("tasks", []):
        does.append(f"x{scale} super-resolution of real photos"
                    + (" (stochastic: samples at a temperature tau; tau 0 is deterministic)"
                       if record.get("stochastic") else " (deterministic)"))
    if "ds" in record.get("tasks", []):
        does.append(f"realistic /{scale} downscaling (HR to LR with the "
                    + ("learned camera degradation)" if "sr" in record.get("tasks", [])
                       else "fitted camera degradation)"))
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
    return front_matter(record) + "\n" + "\n".join(lines).rstrip() + "\n"


def _how_to_load(record: dict[str, Any]) -> list[str]:
    tasks = record.get("tasks", [])
    sr_call = ("sdflow.super_resolve(model, Image.open(\"photo.png\"), tau=0.0)"
               if record.get("stochastic") else
               "sdflow.super_resolve(model, Image.open(\"photo.png\"))")
    if "sr" in tasks:
        python = [f"sr = {sr_call}  # a PIL image, x{record['scale']}",
                  "sr.save(\"photo_sr.png\")"]
    else:
        python = ["lr = sdflow.downscale(model, Image.open(\"clean.png\"))  # a PIL image, "
                  f"/{record['scale']}", "lr.save(\"clean_lr.png\")"]
    lines = [
        "## How to load", "",
        "With sdflow installed (or a checkout's `src/` on `PYTHONPATH`); each of these checks "
        f"the sha256 recorded in `{CONFIG_NAME}` first:", "",
        "```python", "import sdflow", "from PIL import Image", "",
        "model = sdflow.load(\"path/to/this/folder\")  # eval mode", *python, "```", "",
        "```bash",
    ]
    if "sr" in tasks:
        lines.append("sdflow sr photo.png -o out/ --model path/to/this/folder")
    if "ds" in tasks:
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


__all__ = ["export_folder", "front_matter", "model_card", "openmodeldb_record", "spdx_license"]
