"""Finding and pairing image files for evaluation, and reading them as 8-bit RGB."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdflow.errors import SDFlowError
from sdflow.imageio import IMAGE_EXTENSIONS, read_image


class DatasetError(SDFlowError):
    """An evaluation folder is missing, empty or does not pair up."""


@dataclass(frozen=True)
class Pair:
    """Two files of one image (e.g. prediction and ground truth) that share a name."""

    name: str  # file name without extension
    first: Path
    second: Path


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files of ``folder`` by name without extension (hidden files are skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if path.stem in found:
            raise DatasetError(f"{folder}: two images named {path.stem!r} "
                               f"({found[path.stem].name}, {path.name}); keep one")
        found[path.stem] = path
    if not found:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)})")
    return found


def pair_folders(first: str | os.PathLike, second: str | os.PathLike,
                 limit: int | None = None) -> list[Pair]:
    """Pair the images of two folders by name; every image must have its counterpart.

    Pairs are sorted by name; ``limit`` keeps the first ``limit`` of them.
    """
    a, b = list_images(first), list_images(second)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        lines = []
        if only_a:
            lines.append(f"in {first} but not in {second}: {', '.join(only_a[:5])}"
                         + (f" and {len(only_a) - 5} more" if len(only_a) > 5 else ""))
        if only_b:
            lines.append(f"in {second} but not in {first}: {', '.join(only_b[:5])}"
                         + (f" and {len(only_b) - 5} more" if len(only_b) > 5 else ""))
        raise DatasetError("images are paired by file name (without extension), and these "
                           "have no counterpart:\n  " + "\n  ".join(lines))
    pairs = [Pair(name, a[name], b[name]) for name in sorted(a)]
    if limit is not None:
        if limit < 1:
            raise DatasetError(f"limit must be >= 1, got {limit}")
        pairs = pairs[:limit]
    return pairs


def read_rgb8(path: Path) -> np.ndarray:
    """An image as 8-bit RGB ``H x W x 3`` (alpha ignored); 16-bit images are refused,
    since the metrics are defined on 8-bit images."""
    img = read_image(path)
    if img.rgb.dtype != np.uint8:
        raise DatasetError(f"{path}: a {img.bit_depth}-bit image; evaluation works on 8-bit "
                           "images, convert it first")
    return img.rgb


def count_images(folder: str | os.PathLike) -> int:
    return len(list_images(folder))
