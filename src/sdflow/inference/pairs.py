"""Realistic (HR, LR) training pairs for other SR networks (``sdflow make-pairs``).

Each HR image is cropped (never resized) to a multiple of the model's scale at its top-left
corner, so that its LR is exactly HR / scale, and downscaled ``samples`` times by a model
that has a downscaling direction. ``OUT/HR/`` and ``OUT/LR/`` get files of identical names
(``<stem>.png``, ``<stem>_s<k>.png`` when there are several samples, ``..._p<j>.png`` for
``lr_crop`` patches), PNG in the source's bit depth; a manifest records every pair.

Randomness is per image (:mod:`sdflow.seeding`, by relative path), so a pair set is a
function of the seed and does not depend on sharding or on what else is in the batch. A
pair is written LR first, then HR, then its manifest row; a failure removes what it
wrote, and a rerun skips pairs whose files and manifest row exist.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from sdflow.errors import Interrupted
from sdflow.imageio import DEFAULT_MAX_PIXELS, LoadedImage, read_image, write_image
from sdflow.inference.batch import per_file
from sdflow.inference.folders import claim_output_folder, refuse_outputs_over_inputs
from sdflow.inference.inputs import Job
from sdflow.inference.metadata import ModelIdentity
from sdflow.inference.naming import fit_name
from sdflow.inference.pipeline import process
from sdflow.inference.tiling import MIN_DS_TILE, parse_memory
from sdflow.models.base import StochasticDS
from sdflow.models.prepare import prepare
from sdflow.models.sampling import DS_DEFAULT_TAU, default_tau
from sdflow.options import flag
from sdflow.progress import Progress
from sdflow.seeding import image_generator, image_key, image_seed

MANIFEST_FIELDS = ("pair", "source", "model", "model_sha256", "tau", "tau_used", "seed",
                   "image_seed", "component", "hr_box", "lr_box")


@dataclass(frozen=True)
class Shard:
    """Slice ``index`` of ``count`` (0-based): every ``count``-th input, from ``index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: write I/N, e.g. 0/4 (I from 0 to N-1)") \
                from None
        return cls(i, n)

    @classmethod
    def from_environment(cls) -> Shard | None:
        """torchrun's ``RANK`` / ``WORLD_SIZE``, when set."""
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None or world is None:
            return None
        return cls(int(rank), int(world))

    def take(self, jobs: list[Job]) -> list[Job]:
        ordered = sorted(jobs, key=lambda j: j.rel.as_posix())
        return ordered[self.index :: self.count]

    @property
    def manifest_name(self) -> str:
        return "manifest.tsv" if self.count == 1 else \
            f"manifest.shard-{self.index}-of-{self.count}.tsv"


@dataclass
class PairOptions:
    """What ``sdflow make-pairs`` does; each flagged field is also the command's option."""

    tau: float | None = flag("--tau", default=None, metavar="T",
                             help=f"sampling temperature (default {DS_DEFAULT_TAU}; a "
                             "deterministic downscaler such as da-iccv21 takes none)")
    samples: int = flag("--samples", default=1, metavar="K",
                        help="LR samples per HR image, one pair each (default 1)")
    seed: int = flag("--seed", default=0,
                     help="seed (default 0); each image draws from its own stream derived "
                     "from the seed and its relative path")
    component: int | None = flag(
        "--component", default=None, metavar="C",
        help="mixture component (degradation mode) for every pair (default: drawn per "
        "image and sample)")
    lr_crop: int | None = flag(
        "--lr-crop", default=None, metavar="N",
        help="cut each pair into aligned patches, N x N LR / 4N x 4N HR")
    tile: int | None = flag(
        "-t", "--tile", default=None,
        help="tile size in HR pixels; 0 = no tiling (default: from --max-memory)")
    max_memory: str | None = flag(
        "--max-memory", default=None, metavar="SIZE",
        help="memory budget for the model, e.g. 2G (default: half the available)")
    recursive: bool = flag("-r", "--recursive", default=False, help="include subfolders")
    overwrite: bool = flag("--overwrite", default=False, help="redo finished pairs")
    max_pixels: int = flag("--max-pixels", default=DEFAULT_MAX_PIXELS,
                           help=f"refuse larger inputs (default {DEFAULT_MAX_PIXELS:,})")
    shard: Shard = field(default_factory=Shard)  # --shard or torchrun's ranks (the CLI)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("--samples must be >= 1")
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau >= 0):
            raise ValueError(f"--tau must be a finite number >= 0, got {self.tau}")
        if self.lr_crop is not None and self.lr_crop < 1:
            raise ValueError("--lr-crop must be >= 1")
        if self.tile is not None and not (self.tile == 0 or self.tile >= MIN_DS_TILE):
            raise ValueError(f"--tile must be 0 (untiled) or at least {MIN_DS_TILE} pixels")
        if self.max_memory is not None:
            parse_memory(self.max_memory)
        if self.max_pixels < 1:
            raise ValueError("--max-pixels must be >= 1")


@dataclass
class PairSummary:
    written: int = 0  # pairs (or patches) written
    skipped: int = 0  # pairs already finished
    failed: int = 0  # input images that failed
    seconds: float = 0.0

    def line(self) -> str:
        return (f"sdflow make-pairs: {self.written} pairs written, {self.skipped} already "
                f"finished (skipped), {self.failed} image(s) failed in {self.seconds:.1f} s")


def hr_box(image: LoadedImage, scale: int) -> tuple[int, int, int, int]:
    """``(y0, x0, y1, x1)``: the largest top-left crop whose sides are multiples of
    ``scale``."""
    h, w = image.size
    return 0, 0, h - h % scale, w - w % scale


def _source_layout(image: LoadedImage, box: tuple[int, int, int, int]) -> np.ndarray:
    """The HR crop in the source's layout: gray stays gray, alpha is kept."""
    y0, x0, y1, x1 = box
    rgb = image.rgb[y0:y1, x0:x1]
    out = rgb[:, :, :1] if image.is_gray else rgb
    if image.alpha is not None:
        out = np.concatenate([out, image.alpha[y0:y1, x0:x1, None]], axis=2)
    return out[:, :, 0] if out.shape[2] == 1 else out


def _crop(arr: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    y0, x0, y1, x1 = box
    return np.ascontiguousarray(arr[y0:y1, x0:x1])


def patch_boxes(lr_h: int, lr_w: int, side: int) -> Iterator[tuple[int, int, int, int]]:
    """Non-overlapping ``side`` x ``side`` LR boxes in raster order (the remainder at the
    right and bottom edges is dropped)."""
    for y in range(0, lr_h - side + 1, side):
        for x in range(0, lr_w - side + 1, side):
            yield y, x, y + side, x + side


def pair_stem(rel: Path, sample: int, samples: int, patch: int | None) -> str:
    """The pair's relative path without ``.png``; a file name too long for the disk is
    shortened predictably (:func:`~sdflow.inference.naming.fit_name`)."""
    stem = rel.with_suffix("").name
    if samples > 1:
        stem += f"_s{sample}"
    if patch is not None:
        stem += f"_p{patch}"
    return (rel.parent / fit_name(stem, ".png")).with_suffix("").as_posix()


def manifest_text(name: str) -> str:
    """A name as manifest text: a file name that is not valid UTF-8 keeps its odd bytes as
    backslash escapes (the manifest is UTF-8)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["pair"]: row for row in csv.DictReader(f, delimiter="\t")}


class _Manifest:
    """Rows appended (and flushed) one by one, so a stopped run loses no finished pair."""

    def __init__(self, path: Path, overwrite: bool):
        self.path = path
        fresh = overwrite or not path.is_file()
        self.rows = {} if fresh else read_manifest(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w" if fresh else "a", newline="")
        self._writer = csv.DictWriter(self._file, MANIFEST_FIELDS, delimiter="\t",
                                      lineterminator="\n")
        if fresh:
            self._writer.writeheader()
            self._file.flush()

    def add(self, row: dict[str, str]) -> None:
        self._writer.writerow(row)
        self._file.flush()
        self.rows[row["pair"]] = row

    def close(self) -> None:
        self._file.close()


def make_pairs(model, model_id: ModelIdentity, jobs: list[Job], options: PairOptions,
               outdir: Path, stream: TextIO | None = None,
               progress_enabled: bool | None = None) -> PairSummary:
    """Downscale every job of this shard into (HR, LR) pairs under ``outdir``; errors are
    reported per file and the batch goes on."""
    stream = stream if stream is not None else sys.stderr
    if model.preparation is None:
        model = prepare(model)
    if options.tau is None:  # the model's default: 0.8, or 0 for a deterministic one
        options = dataclasses.replace(
            options, tau=default_tau(isinstance(model, StochasticDS), "ds"))
    start = time.monotonic()
    mine = options.shard.take(jobs)
    existing = [p for sub in ("HR", "LR") if (outdir / sub).is_dir()
                for p in (outdir / sub).rglob("*") if p.is_file()]
    refuse_outputs_over_inputs(existing + [outdir / options.shard.manifest_name],
                               [job.source for job in mine],
                               "make pairs into another folder (-o)")
    with claim_output_folder(outdir, f".{options.shard.manifest_name}.lock"):
        return _make_pairs(model, model_id, mine, len(jobs), options, outdir, stream,
                           progress_enabled, start)


def _make_pairs(model, model_id: ModelIdentity, mine: list[Job], total: int,
                options: PairOptions, outdir: Path, stream: TextIO,
                progress_enabled: bool | None, start: float) -> PairSummary:
    """make_pairs for this shard's jobs, with the output folder claimed."""
    summary = PairSummary()
    scale = int(model.scale)
    manifest = _Manifest(outdir / options.shard.manifest_name, options.overwrite)
    bar = Progress(len(mine), stream, enabled=progress_enabled)
    owners: dict[str, Path] = {}
    index = 0
    try:
        for index, job in enumerate(mine):
            bar.image(index, str(job.rel))
            stem = job.rel.with_suffix("").as_posix()
            if stem in owners:
                summary.failed += 1
                bar.message(f"{job.source}: failed: its pairs would overwrite those of "
                            f"{owners[stem]} (same name, other extension); rename one")
                continue
            owners[stem] = job.source
            _one_image(model, model_id, job, options, outdir, scale, manifest, summary, bar)
    except KeyboardInterrupt:  # a pair without its manifest row is redone by a rerun
        raise Interrupted(f"interrupted: {summary.written} pairs written, {len(mine) - index} "
                          "image(s) left; rerun the same command to continue (finished pairs "
                          "are skipped)") from None
    finally:
        manifest.close()
        bar.image(len(mine), "")
        bar.close()
    summary.seconds = time.monotonic() - start
    shard = options.shard
    where = f" (shard {shard.index}/{shard.count}: {len(mine)} of {total} inputs)" \
        if shard.count > 1 else ""
    print(summary.line() + where, file=stream)
    return summary


def _planned(job: Job, options: PairOptions, image_hw: tuple[int, int] | None, scale: int
             ) -> list[tuple[str, int, tuple[int, int, int, int] | None, int | None]]:
    """(pair name, sample, LR box or None, patch index or None) for every pair of ``job``;
    patches need the image size."""
    plans = []
    for k in range(options.samples):
        if options.lr_crop is None:
            plans.append((pair_stem(job.rel, k, options.samples, None), k, None, None))
            continue
        if image_hw is None:
            return []
        h, w = image_hw
        for j, box in enumerate(patch_boxes(h // scale, w // scale, options.lr_crop)):
            plans.append((pair_stem(job.rel, k, options.samples, j), k, box, j))
    return plans


def _finished(name: str, outdir: Path, manifest: _Manifest) -> bool:
    return manifest_text(name) in manifest.rows and (outdir / "HR" / f"{name}.png").is_file() and \
        (outdir / "LR" / f"{name}.png").is_file()


def _one_image(model, model_id: ModelIdentity, job: Job, options: PairOptions, outdir: Path,
               scale: int, manifest: _Manifest, summary: PairSummary, bar: Progress) -> None:
    # without patches the pair names are known before reading: a finished image is skipped
    # without decoding it
    if options.lr_crop is None and not options.overwrite:
        names = [p[0] for p in _planned(job, options, None, scale)]
        if all(_finished(n, outdir, manifest) for n in names):
            summary.skipped += len(names)
            bar.message(f"{job.source}: skipped: its {len(names)} pair(s) are finished "
                        "(in the manifest); pass --overwrite to redo them")
            return
    written: list[Path] = []
    with per_file(job.source, written, summary, bar):
        image = read_image(job.source, max_pixels=options.max_pixels)
        box = hr_box(image, scale)
        y0, x0, y1, x1 = box
        if y1 < 2 * scale or x1 < 2 * scale:
            raise ValueError(f"{image.size[1]}x{image.size[0]} is too small: an HR image "
                             f"needs at least {2 * scale}x{2 * scale} pixels")
        plans = _planned(job, options, (y1, x1), scale)
        if not plans:
            raise ValueError(f"the LR ({x1 // scale}x{y1 // scale}) is smaller than "
                             f"--lr-crop {options.lr_crop}")
        todo = [p for p in plans if options.overwrite or not _finished(p[0], outdir, manifest)]
        if not todo:
            summary.skipped += len(plans)
            bar.message(f"{job.source}: skipped: its {len(plans)} pair(s) are finished")
            return
        hr = _source_layout(image, box)
        cropped = LoadedImage(image.rgb[y0:y1, x0:x1],
                              None if image.alpha is None else image.alpha[y0:y1, x0:x1],
                              image.mode, image.path, image.icc_profile, image.kind,
                              None, image.notes)
        name = job.rel.as_posix()
        result = process(model, cropped, "ds", tau=options.tau, num_samples=options.samples,
                         generator=image_generator(options.seed, image_key(job.rel)),
                         component=options.component, tile=options.tile,
                         max_memory=options.max_memory, bit_depth=image.bit_depth,
                         progress=lambda d, t: bar.tile(d, t), message=bar.message)
        new = 0
        for pair, k, lr_box, _ in todo:
            lr = result.outputs[k]
            hr_part, hr_region = hr, box
            if lr_box is not None:
                ly0, lx0, ly1, lx1 = lr_box
                lr = _crop(lr, lr_box)
                hr_part = _crop(hr, (ly0 * scale, lx0 * scale, ly1 * scale, lx1 * scale))
                hr_region = (y0 + ly0 * scale, x0 + lx0 * scale, y0 + ly1 * scale,
                             x0 + lx1 * scale)
            lr_path, hr_path = outdir / "LR" / f"{pair}.png", outdir / "HR" / f"{pair}.png"
            for path, arr in ((lr_path, lr), (hr_path, hr_part)):
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(write_image(path, arr, overwrite=True,
                                           icc_profile=image.icc_profile))
            info = result.samples[k]
            manifest.add({
                "pair": manifest_text(pair), "source": manifest_text(name),
                "model": model_id.name,
                "model_sha256": model_id.sha256, "tau": f"{options.tau:g}",
                "tau_used": f"{info.tau:g}", "seed": str(options.seed),
                "image_seed": str(image_seed(options.seed, image_key(job.rel))),
                "component": "" if info.component is None else str(info.component),
                "hr_box": " ".join(map(str, hr_region)),
                "lr_box": " ".join(str(v // scale) for v in hr_region)})
            written.clear()  # this pair is complete: never removed on a later failure
            new += 1
        summary.written += new
        summary.skipped += len(plans) - len(todo)
        for note in dict.fromkeys(result.notes):
            bar.message(f"{job.source}: note: {note}")
