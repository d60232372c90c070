"""Provenance without local paths. What sdflow writes for others to read (exported models,
model cards, model-folder JSON) names data by what it is and runs by their name, never by
where they sat on the machine that wrote them."""

from __future__ import annotations

import copy
import os
from pathlib import PurePath
from typing import Any


def data_name(path: str | os.PathLike) -> str:
    """A data folder by what it is: its path below the nearest ancestor folder named
    ``data`` (``../shared/data/RealSR_x4/train/LR`` -> ``RealSR_x4/train/LR``), else, for
    an absolute path or one that climbs with ``..``, its last two components
    (``/home/me/photos/hr`` -> ``photos/hr``). A plain relative name is kept, so the
    function is idempotent."""
    pure = PurePath(path)
    parts = [p for p in pure.parts if p not in ("", ".", "..") and p != pure.anchor]
    if "data" in parts[:-1]:
        below = len(parts) - 1 - parts[::-1].index("data")
        return "/".join(parts[below + 1:])
    if pure.is_absolute() or ".." in pure.parts:
        return "/".join(parts[-2:])
    return "/".join(parts)


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.endswith((".safetensors", ".pt"))


def portable_train_config(config: dict[str, Any]) -> dict[str, Any]:
    """A training config (``TrainConfig.to_dict()``) with its local paths replaced: data
    folders by :func:`data_name`, the run folder by its name, the weights folder dropped,
    an ``init_from`` file by its file name (a registered name stays)."""
    out = copy.deepcopy(config)
    data = out.get("data") or {}
    for key in ("lr_dirs", "hr_dirs"):
        if data.get(key):
            data[key] = [data_name(d) for d in data[key]]
    if data.get("val_dir"):
        data["val_dir"] = data_name(data["val_dir"])
    run = out.get("run") or {}
    if run.get("out_dir"):
        run["out_dir"] = PurePath(run["out_dir"]).name
    if "weights_dir" in run:
        run["weights_dir"] = None
    if run.get("init_from") and _looks_like_path(str(run["init_from"])):
        run["init_from"] = PurePath(str(run["init_from"])).name
    return out


def portable_evidence(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``sdflow eval`` records (as kept in a model's metadata) with their dataset folders
    named by :func:`data_name`."""
    out = copy.deepcopy(runs)
    for run in out:
        dataset = run.get("dataset") or {}
        for key in ("lr_dir", "hr_dir"):
            if dataset.get(key):
                dataset[key] = data_name(dataset[key])
    return out
