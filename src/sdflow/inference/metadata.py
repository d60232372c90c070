"""What every output records about how it was made (PNG text chunks, or a JSON sidecar for
formats without them), and reading it back: the skip check and seed continuation of
reruns compare with it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sdflow.version import __version__

META_PREFIX = "sdflow:"


@dataclass
class ModelIdentity:
    name: str
    sha256: str


def png_text(record: dict) -> dict[str, str]:
    """A metadata record as PNG text chunks: ``Software`` plus ``sdflow:<key>`` each."""
    text = {"Software": record.get("software", f"sdflow {__version__}")}
    for key, value in record.items():
        if key != "software" and value is not None:
            text[META_PREFIX + key] = str(value)
    return text


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The sdflow metadata of an output: its PNG text chunks, or its sidecar JSON."""
    path = Path(path)
    side = sidecar_path(path)
    if side.is_file():
        return {k: str(v) for k, v in json.loads(side.read_text()).items()}
    from PIL import Image

    with Image.open(path) as img:
        text = dict(getattr(img, "text", {}) or {})
    return {k[len(META_PREFIX):]: v for k, v in text.items() if k.startswith(META_PREFIX)}


def recorded_seed(paths: list[Path]) -> int | None:
    """The run seed recorded in the first of ``paths`` that has one."""
    for path in paths:
        try:
            return int(read_metadata(path)["seed"])
        except (OSError, KeyError, ValueError):
            continue
    return None

