"""Training data: unpaired LR/HR crops and paired validation images.

Every random choice of a training sample (image, crop position, flip, rotation,
dequantisation noise) comes from a generator seeded by ``(seed, iteration, index)``, where
``index`` is the sample's position in the *global* batch. A batch therefore depends only on
its iteration number: a resumed run sees exactly the batches the uninterrupted run would
have seen, whatever the number of data-loader workers, and N processes with batch B see the
same samples as one process with batch N*B.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from sdflow.imageio import IMAGE_EXTENSIONS, ImageReadError, read_image, to_uint8
from sdflow.value_range import to_signed

log = logging.getLogger(__name__)


def list_images(dirs: Sequence[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Image files (by extension) under ``dirs``, sorted, each directory must exist."""
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: image folder not found (relative paths start at "
                                    f"{Path.cwd()}); check --lr-dir / --hr-dir")
        pattern = d.rglob("*") if recursive else d.glob("*")
        files += sorted(p for p in pattern if p.suffix.lower() in IMAGE_EXTENSIONS
                        and p.is_file() and not p.name.startswith("."))
    return files


@dataclass
class PoolReport:
    """What an :class:`ImagePool` found: printed at the start of training."""

    name: str
    dirs: list[str]
    loaded: int = 0
    pixels: int = 0
    smallest: tuple[int, int] | None = None  # (height, width)
    unreadable: list[str] = field(default_factory=list)
    too_small: list[str] = field(default_factory=list)

    def lines(self, crop: int) -> list[str]:
        out = [f"{self.name}: {self.loaded} images, {self.pixels / 1e6:.1f} Mpx from "
               f"{', '.join(self.dirs)}"]
        if self.smallest:
            out.append(f"  smallest {self.smallest[1]}x{self.smallest[0]} vs crop {crop}x{crop}")
        for path in self.unreadable:
            out.append(f"  skipped (unreadable): {path}")
        for path in self.too_small:
            out.append(f"  skipped (smaller than the crop): {path}")
        return out


class ImagePool:
    """The decoded 8-bit RGB images of some folders, kept in memory. Unreadable files and
    images smaller than ``min_size`` are skipped with a warning."""

    def __init__(self, dirs: Sequence[str | os.PathLike], min_size: int, name: str):
        self.report = PoolReport(name, [str(d) for d in dirs])
        self.images: list[np.ndarray] = []
        self.paths: list[Path] = []
        for path in list_images(dirs):
            try:
                img = read_image(path)
            except ImageReadError as exc:
                log.warning("skipping %s", exc)
                self.report.unreadable.append(str(path))
                continue
            rgb = img.rgb
            rgb = to_uint8(rgb)  # 16-bit sources: train on their 8-bit rounding
            h, w = rgb.shape[:2]
            if h < min_size or w < min_size:
                log.warning("skipping %s: %dx%d is smaller than the crop %d", path, w, h,
                            min_size)
                self.report.too_small.append(str(path))
                continue
            self.images.append(rgb)
            self.paths.append(path)
            self.report.pixels += h * w
            if self.report.smallest is None or h * w < np.prod(self.report.smallest):
                self.report.smallest = (h, w)
        self.report.loaded = len(self.images)
        if not self.images:
            raise ValueError(f"{name}: no usable images in {', '.join(map(str, dirs))} "
                             f"(need at least {min_size}x{min_size} pixels)")
        # Sample images in proportion to their number of crop positions, so every pixel
        # is about equally likely to be seen, whatever the image sizes.
        weights = np.array([(im.shape[0] - min_size + 1) * (im.shape[1] - min_size + 1)
                            for im in self.images], dtype=np.float64)
        self.cumulative = np.cumsum(weights / weights.sum())

    def __len__(self) -> int:
        return len(self.images)

    def random_crop(self, rng: np.random.Generator, size: int, flips: bool,
                    rot90: bool) -> np.ndarray:
        idx = min(int(np.searchsorted(self.cumulative, rng.random())), len(self.images) - 1)
        img = self.images[idx]
        top = int(rng.integers(0, img.shape[0] - size + 1))
        left = int(rng.integers(0, img.shape[1] - size + 1))
        crop = img[top : top + size, left : left + size]
        if flips and rng.random() < 0.5:
            crop = crop[:, ::-1]
        if flips and rng.random() < 0.5:
            crop = crop[::-1]
        if rot90:
            crop = np.rot90(crop, int(rng.integers(0, 4)))
        return np.ascontiguousarray(crop)


def to_model_range(crop: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
    """uint8 ``H x W x 3`` -> float ``[3, H, W]`` in [-1, 1]; with ``rng``, uniform
    dequantisation: each value moves uniformly within its 8-bit bin (width 2/255)."""
    v = crop.astype(np.float32)
    if rng is not None:
        v = v + rng.random(v.shape, dtype=np.float32) - 0.5
    return to_signed(torch.from_numpy(v / 255.0)).permute(2, 0, 1).contiguous()


def sample_rng(seed: int, iteration: int, index: int, stream: int) -> np.random.Generator:
    # iteration -1 is the ActNorm init batch
    return np.random.default_rng(np.random.SeedSequence([seed, iteration + 1, index, stream]))


class UnpairedDataset(Dataset):
    """Independent random crops of unpaired LR and HR images (HR crop = scale x LR crop).

    Indexed by ``(iteration, index)`` keys from :class:`IterationSampler`; returns
    ``{"lr": [3, c, c], "hr": [3, s*c, s*c]}`` in [-1, 1].
    """

    def __init__(self, lr_dirs: Sequence[str | os.PathLike], hr_dirs: Sequence[str | os.PathLike],
                 lr_crop: int, scale: int = 4, flips: bool = True, rot90: bool = True,
                 dequantize: bool = True, seed: int = 0):
        if lr_crop < 8 or lr_crop % 2:
            raise ValueError(f"lr_crop must be even and >= 8 (the flows squeeze the LR crop "
                             f"and downscaling needs HR crops divisible by 8), got {lr_crop}")
        self.lr_crop, self.hr_crop = lr_crop, lr_crop * scale
        self.lr = ImagePool(lr_dirs, self.lr_crop, "LR (real, unpaired)")
        self.hr = ImagePool(hr_dirs, self.hr_crop, "HR (unpaired)")
        self.flips, self.rot90, self.dequantize = flips, rot90, dequantize
        self.seed = seed

    def report_lines(self) -> list[str]:
        return self.lr.report.lines(self.lr_crop) + self.hr.report.lines(self.hr_crop)

    def __len__(self) -> int:  # nominal: sampling is infinite
        return max(len(self.lr), len(self.hr))

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        iteration, index = key
        out = {}
        for stream, (name, pool, size) in enumerate((("lr", self.lr, self.lr_crop),
                                                     ("hr", self.hr, self.hr_crop))):
            rng = sample_rng(self.seed, iteration, index, stream)
            crop = pool.random_crop(rng, size, self.flips, self.rot90)
            out[name] = to_model_range(crop, rng if self.dequantize else None)
        return out


class IterationSampler(Sampler):
    """Yields the keys of batch after batch, endlessly: ``[(it, o), ..., (it, o + B - 1)]``
    for ``it = start, start + 1, ...``, where ``o = rank * B`` is this process's offset in
    the global batch."""

    def __init__(self, batch_size: int, start_iteration: int = 0, rank: int = 0,
                 replay: int = 0):
        self.batch_size = batch_size
        self.start = start_iteration
        self.offset = rank * batch_size
        self.replay = replay  # added to the key's iteration: a rollback's replay differs

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        it = self.start
        while True:
            yield [(it + self.replay, self.offset + i) for i in range(self.batch_size)]
            it += 1


@dataclass
class PairedImage:
    name: str
    lr: np.ndarray  # uint8 H x W x 3
    hr: np.ndarray  # uint8 sH x sW x 3


def load_pairs(root: str | os.PathLike, scale: int = 4, lr_crop: int | None = None,
               limit: int | None = None, lr_sub: str = "LR", hr_sub: str = "HR"
               ) -> list[PairedImage]:
    """Aligned LR/HR pairs from ``root/LR`` and ``root/HR`` matched by file name, optionally
    centre-cropped (LR ``lr_crop``, HR ``scale * lr_crop``)."""
    root = Path(root)
    lr_files = {p.stem: p for p in list_images([root / lr_sub], recursive=False)}
    hr_files = {p.stem: p for p in list_images([root / hr_sub], recursive=False)}
    names = sorted(set(lr_files) & set(hr_files))
    if not names:
        raise ValueError(f"{root}: no LR/HR pairs with matching names in {lr_sub}/ and {hr_sub}/")
    pairs = []
    for name in names[:limit]:
        lr, hr = read_image(lr_files[name]).rgb, read_image(hr_files[name]).rgb
        if hr.shape[0] != scale * lr.shape[0] or hr.shape[1] != scale * lr.shape[1]:
            raise ValueError(f"{name}: HR {hr.shape[1]}x{hr.shape[0]} is not {scale}x the LR "
                             f"{lr.shape[1]}x{lr.shape[0]}")
        if lr_crop is not None and min(lr.shape[:2]) > lr_crop:
            top, left = (lr.shape[0] - lr_crop) // 2, (lr.shape[1] - lr_crop) // 2
            lr = lr[top : top + lr_crop, left : left + lr_crop]
            hr = hr[scale * top : scale * (top + lr_crop), scale * left : scale * (left + lr_crop)]
        pairs.append(PairedImage(name, np.ascontiguousarray(lr), np.ascontiguousarray(hr)))
    return pairs
