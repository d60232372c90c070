"""The batch runner behind ``sdflow sr`` and ``sdflow downscale``: its options, and
per-image processing with one-line errors, atomic writes, progress and a summary. What it
runs on (:mod:`.inputs`), how outputs are named (:mod:`.naming`), what they record
(:mod:`.metadata`) and the output folder (:mod:`.folders`) live beside it. The CLI
modules only parse arguments.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from sdflow.atomic import DiskFullError
from sdflow.errors import Interrupted, SDFlowError, first_line, is_oom
from sdflow.hardware import cpu_features, resolve_device
from sdflow.imageio import (
    DEFAULT_MAX_PIXELS,
    OUTPUT_FORMATS,
    SIXTEEN_BIT_FORMATS,
    TEXT_FORMATS,
    ImageReadError,
    read_image,
    write_bytes,
    write_image,
)
from sdflow.inference import uncertainty
from sdflow.inference.folders import claim_output_folder, refuse_outputs_over_inputs
from sdflow.inference.inputs import Job
from sdflow.inference.metadata import (
    ModelIdentity,
    png_text,
    read_metadata,
    recorded_seed,
    sidecar_path,
)
from sdflow.inference.naming import (
    TASK_NAMES,
    output_format,
    output_names,
    planned_components,
    uncertainty_names,
)
from sdflow.inference.pipeline import process
from sdflow.inference.tiling import (
    MIN_DS_TILE,
    MIN_SR_TILE,
    model_device,
    parse_memory,
)
from sdflow.models.base import is_stochastic
from sdflow.models.prepare import PRECISIONS, prepare
from sdflow.options import flag
from sdflow.progress import Progress
from sdflow.seeding import image_generator, image_key, image_seed, new_seed
from sdflow.version import __version__

#: ``--ext`` values: ``auto`` keeps the input's format where it can be written, else PNG.
EXT_CHOICES = ("auto", *OUTPUT_FORMATS)


@dataclass
class Options:
    """What a batch of ``sdflow sr`` / ``sdflow downscale`` does; each flagged field is
    also the command's option (:mod:`sdflow.options` generates the flags)."""

    task: str  # "sr" or "ds"
    tau: float | None = flag(
        "--tau", default=None, metavar="T",
        help="sampling temperature (default {default_tau}; deterministic models such as "
        "da-iccv21 take none)")
    samples: int = flag("--samples", default=1, metavar="N",
                        help="samples per image (default 1)")
    seed: int | None = flag(
        "--seed", default=None,
        help="random seed (default: a random one, printed and stored in the outputs' "
        "metadata); each image draws its own stream from the seed and its path below the "
        "input folder, so a rerun of one image reproduces it")
    component: int | None = flag(
        "--component", default=None, metavar="K", only=("downscale",),
        help="mixture component (degradation mode) 0..15 (default: drawn per image and "
        "sample)")
    outscale: float | None = flag(
        "-s", "--outscale", default=None, metavar="S", only=("sr",),
        help="final scale of the output relative to the input, e.g. 2 or 3.5: the x4 result "
        "is resized to it (MATLAB bicubic, antialiased), as Real-ESRGAN's --outscale "
        "(default 4, no resize)")
    tile: int | None = flag(
        "-t", "--tile", default=None,
        help="tile size in {unit} pixels; 0 = no tiling (default: chosen from --max-memory)")
    tile_overlap: int | None = flag(
        "--tile-overlap", default=None,
        help="context around each tile in {unit} pixels (default {default_overlap})")
    max_memory: str | None = flag(
        "--max-memory", default=None, metavar="SIZE",
        help="memory budget for the model, e.g. 2G or 512M (default: half of the available "
        "memory); picks the tile size")
    ext: str = flag(
        "--ext", default="png", choices=EXT_CHOICES,
        help="output format: auto = the input's (PNG where it cannot be written), png "
        "(default), jpg, webp, tiff, bmp; png and tiff keep 16 bits, png keeps metadata in "
        "text chunks (a .json sidecar for the others)")
    suffix: str | None = flag(
        "--suffix", default=None,
        help="output name <input name>_<SUFFIX>.<ext> (_s<i> added per sample when there "
        "are several); --suffix '' keeps the input's own name, so `sdflow eval folders` "
        "pairs the outputs with ground truth (default: photo_sr_t0.80_s0.png, "
        "photo_ds_t0.80_k5.png: task, tau, sample, component)")
    quality: int = flag("--quality", default=95, help="JPEG/WebP quality (default 95)")
    strip_metadata: bool = flag(
        "--strip-metadata", default=False,
        help="do not copy the input's EXIF (camera, date, GPS, ...) to the outputs (it is "
        "copied by default, orientation normalised; ICC profiles are always kept)")
    uncertainty: bool = flag(
        "--uncertainty", default=False,
        help="also write the per-pixel std across samples (needs --samples >= 2): a "
        "colour-mapped PNG and the raw values as 16-bit PNG")
    uncertainty_max: float | None = flag(
        "--uncertainty-max", default=None, metavar="LEVELS",
        help="colour scale top of the uncertainty map in 8-bit grey levels (default: the "
        "map's 99.5th percentile)")
    recursive: bool = flag("-r", "--recursive", default=False, help="include subfolders")
    overwrite: bool = flag("--overwrite", default=False, help="replace existing outputs")
    dry_run: bool = flag("--dry-run", default=False,
                         help="list inputs and output names, write nothing")
    max_pixels: int = flag(
        "--max-pixels", default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger inputs (decompression-bomb guard; default "
        f"{DEFAULT_MAX_PIXELS:,})")
    precision: str = flag(
        "--precision", default="fp32", choices=PRECISIONS,
        help="fp32 (default), or bf16: the condition networks in bfloat16, the flows in "
        "fp32; faster on CPUs with AMX/AVX512-BF16, outputs within 1/255 of fp32 "
        "(docs/performance.md); recorded in the metadata")

    def __post_init__(self) -> None:
        """Refuse what would run but make no sense (ValueError naming the option)."""
        if self.task not in TASK_NAMES:
            raise ValueError(f"task must be one of {', '.join(TASK_NAMES)}, not {self.task!r}")
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau >= 0):
            raise ValueError(f"--tau must be a finite number >= 0, not {self.tau}")
        if self.samples < 1:
            raise ValueError("--samples must be >= 1")
        if self.uncertainty and self.samples < 2:
            raise ValueError("--uncertainty needs --samples 2 or more")
        if self.outscale is not None and not (math.isfinite(self.outscale)
                                              and 0 < self.outscale <= 16):
            raise ValueError(f"--outscale must be in (0, 16], not {self.outscale}")
        for name in ("tile", "tile_overlap"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        smallest = MIN_SR_TILE if self.task == "sr" else MIN_DS_TILE
        if self.tile is not None and 0 < self.tile < smallest:
            raise ValueError(f"--tile must be 0 (untiled) or at least {smallest} pixels: "
                             f"{self.tile} would run hundreds of times slower for nothing")
        if not 1 <= self.quality <= 100:
            raise ValueError("--quality must be in 1..100")
        if self.uncertainty_max is not None and not (math.isfinite(self.uncertainty_max)
                                                     and self.uncertainty_max > 0):
            raise ValueError("--uncertainty-max must be a finite number > 0")
        if self.max_pixels < 1:
            raise ValueError("--max-pixels must be >= 1")
        if self.max_memory is not None:
            parse_memory(self.max_memory)
        if self.suffix is not None and any(c in self.suffix for c in "/\\\0"):
            raise ValueError(f"--suffix {self.suffix!r}: no path separators in a suffix")
        if self.ext not in EXT_CHOICES:
            raise ValueError(f"--ext must be one of {', '.join(EXT_CHOICES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, "
                             f"not {self.precision!r}")


@dataclass
class Summary:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    hr_megapixels: float = 0.0
    messages: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self, verb: str) -> str:
        # a rate over less than half a megapixel would be start-up time, not speed
        rate = (f", {self.seconds / self.hr_megapixels:.2f} s per HR megapixel"
                if self.hr_megapixels >= 0.5 else "")
        return (f"sdflow {verb}: {self.done} done, {self.skipped} skipped, {self.failed} "
                f"failed in {self.seconds:.1f} s{rate}")






def metadata_record(options: Options, model_id: ModelIdentity, job: Job, info, seed: int,
                    result) -> dict:
    return {
        "software": f"sdflow {__version__}",
        "sdflow_version": __version__,
        "task": TASK_NAMES[options.task],
        "tau": round(info.tau, 6),
        "tau_requested": options.tau,
        "retries": info.retries,
        "seed": seed,
        "image_seed": image_seed(seed, image_key(job.rel)),
        "sample": info.index,
        "samples": options.samples,
        "component": "mix" if options.task == "ds" and info.component is None
        else info.component,
        "model": model_id.name,
        "model_sha256": model_id.sha256,
        "source": str(job.rel).encode("utf-8", "surrogateescape").decode("utf-8",
                                                                          "backslashreplace"),
        "tile": result.tile,
        "tile_overlap": result.overlap,
        "bit_depth": result.bit_depth,
        "precision": options.precision,
        "outscale": options.outscale if options.task == "sr" else None,
    }


def _write_output(path: Path, arr, record: dict, fmt: str, options: Options, icc,
                  exif: bytes | None = None) -> list[Path]:
    written = []
    if fmt in TEXT_FORMATS:
        written.append(write_image(path, arr, overwrite=options.overwrite,
                                   pnginfo=png_text(record), quality=options.quality,
                                   icc_profile=icc, exif=exif))
    else:
        written.append(write_image(path, arr, overwrite=options.overwrite,
                                   quality=options.quality, icc_profile=icc, exif=exif))
        data = (json.dumps(record, indent=2) + "\n").encode()
        written.append(write_bytes(sidecar_path(path), data, overwrite=True))
    return written


# ---------------------------------------------------------------------------- running


def _fit_to_format(arr, fmt: str, alpha_ok: bool, notes: list[str]):
    """Drop what a format cannot store (alpha for JPEG)."""
    if not alpha_ok and arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = arr[:, :, :-1]
        notes.append(f"{fmt} has no alpha channel: alpha dropped (use --ext png)")
    return arr


#: What one input file can raise in a batch: reported in one line, and the batch goes on.
FILE_ERRORS = (ImageReadError, SDFlowError, ValueError, OSError, RuntimeError)


@contextlib.contextmanager
def per_file(source: Path, written: list[Path], summary, bar: Progress):
    """The work on one input of a batch: on a file error its partial outputs (``written``)
    are removed, ``summary.failed`` counts it, the failure is one line and the batch goes
    on; a full disk removes them too and stops the batch (every later file would fail)."""
    try:
        yield
    except DiskFullError:
        _discard(written)
        raise
    except FILE_ERRORS as exc:
        _discard(written)
        summary.failed += 1
        bar.message(failure_line(source, exc))


def _discard(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def failure_line(source: Path, exc: BaseException) -> str:
    """``SOURCE: failed: <first line of the error>`` (without the source repeated)."""
    text = first_line(exc)
    if is_oom(exc):  # the allocator's text names no option to change
        text = (f"out of memory ({text[:80]}); lower --samples or --max-memory (smaller "
                "tiles), or use a smaller image")
    prefix = f"{source}: "
    text = text[len(prefix):] if text.startswith(prefix) else text
    return f"{prefix}failed: {text}"


def _planned_names(model, job: Job, options: Options, fmt: str, seed: int, outdir: Path
                   ) -> tuple[list[Path], list[Path]]:
    """The output paths of one image (samples, then uncertainty maps if asked for)."""
    comps = planned_components(model, options.task, options.samples,
                               image_seed(seed, image_key(job.rel)), options.component)
    names = [outdir / n for n in output_names(job.rel, options.task, options.tau, comps, fmt,
                                              options.suffix, not is_stochastic(model,
                                                                                options.task))]
    extra = [outdir / n for n in uncertainty_names(job.rel, options.task, options.tau,
                                                   options.suffix)] \
        if options.uncertainty else []
    return names, extra


def made_otherwise(path: Path, options: Options, model_id: ModelIdentity) -> str | None:
    """What differs between how an existing output was made (its metadata) and this run:
    None when it is this run's (same model file, task, tau, outscale, precision)."""
    try:
        meta = read_metadata(path)
    except (OSError, ValueError):
        meta = {}
    if not meta.get("model_sha256"):
        return "something other than sdflow (no sdflow metadata)"
    if meta["model_sha256"] != model_id.sha256:
        return f"another model ({meta.get('model', '?')})"
    wanted = {"task": TASK_NAMES[options.task], "tau_requested": str(options.tau),
              "precision": options.precision,
              "outscale": None if options.outscale is None or options.task != "sr"
              else str(options.outscale)}
    for key, value in wanted.items():
        if meta.get(key) != value:
            return f"other settings ({key} {meta.get(key) or 'none'}, not {value or 'none'})"
    return None


def run_batch(model, model_id: ModelIdentity, jobs: list[Job], options: Options,
              outdir: Path, stream: TextIO | None = None, progress_enabled: bool | None = None
              ) -> Summary:
    """Process every job; errors are reported per file and the batch goes on. The output
    folder is claimed for the run (:func:`claim_output_folder`: FolderBusyError if another
    job holds it)."""
    if options.tau is None:
        raise ValueError("Options.tau must be resolved before running (the CLI picks the "
                         "model's default)")
    note = bf16_note(options.precision, model_device(model))
    if note:
        print(f"sdflow {TASK_NAMES[options.task]}: note: {note}",
              file=stream if stream is not None else sys.stderr)
    if model.preparation is None:
        model = prepare(model, precision=options.precision)
    elif model.preparation.precision != options.precision:
        raise ValueError(f"the model was prepared for {model.preparation.precision}, the "
                         f"batch asks for {options.precision}; prepare it again")
    if options.dry_run:
        return _run_batch(model, model_id, jobs, options, outdir, stream, progress_enabled)
    with claim_output_folder(outdir):
        return _run_batch(model, model_id, jobs, options, outdir, stream, progress_enabled)


def bf16_note(precision: str, device: torch.device) -> str | None:
    """A warning for ``--precision bf16`` on a CPU without bf16 matrix units, where the
    condition networks' bf16 convolutions are emulated (None when it does not apply)."""
    if precision != "bf16" or device.type != "cpu":
        return None
    cpu = cpu_features()
    if cpu.bf16_matrix_units:
        return None
    return (f"--precision bf16 on a CPU without bf16 matrix units ({cpu.describe()}; no "
            "AVX512-BF16 or AMX): PyTorch emulates bf16 there, which can be several times "
            "slower than fp32; use --precision fp32 on this machine")


def _run_batch(model, model_id: ModelIdentity, jobs: list[Job], options: Options,
               outdir: Path, stream: TextIO | None, progress_enabled: bool | None) -> Summary:
    from sdflow.imageio import ALPHA_FORMATS

    stream = stream if stream is not None else sys.stderr
    verb = TASK_NAMES[options.task]
    summary = Summary()
    seed = options.seed if options.seed is not None else new_seed()
    bar = Progress(len(jobs), stream, enabled=False if options.dry_run else progress_enabled)
    start = time.monotonic()

    # plan names first: collisions between inputs are errors, existing outputs skips
    plans = []
    owners: dict[Path, Path] = {}
    for job in jobs:
        fmt = output_format(options.ext, job.source)
        job_seed = seed
        names, extra = _planned_names(model, job, options, fmt, job_seed, outdir)
        if options.seed is None and not options.overwrite:
            # adding samples to an image's existing outputs: continue their random stream
            recorded = recorded_seed([p for p in names if p.exists()])
            if recorded is not None and recorded != seed:
                job_seed = recorded
                names, extra = _planned_names(model, job, options, fmt, job_seed, outdir)
        clash = next((owners[n] for n in names if n in owners), None)
        for n in names:
            owners.setdefault(n, job.source)
        plans.append((job, fmt, job_seed, names, extra, clash))

    refuse_outputs_over_inputs(
        (p for plan in plans for p in plan[3] + plan[4]), (job.source for job in jobs),
        "choose another output folder (-o) or --suffix")
    written: list[Path] = []
    index = 0
    try:
        for index, (job, fmt, job_seed, names, extra, clash) in enumerate(plans):
            bar.image(index, str(job.rel))
            if clash is not None:
                summary.failed += 1
                bar.message(f"{job.source}: failed: its outputs would overwrite those of {clash} "
                            "(same name, other extension); rename one or process it separately")
                continue
            targets = names + extra
            existing = [p for p in targets if p.exists()]
            if options.dry_run:
                state = " (exists: would be skipped)" if len(existing) == len(targets) and \
                    not options.overwrite else ""
                print(f"{job.source} -> {', '.join(str(p) for p in names)}{state}",
                      file=sys.stdout)
                summary.done += 1
                continue
            made = [p for p in names if p.exists()]
            why = made_otherwise(made[0], options, model_id) if made and \
                not options.overwrite else None
            if why:  # never skip, or add samples to, another model's or setting's outputs
                summary.failed += 1
                bar.message(f"{job.source}: failed: {made[0]} exists, made by {why}; use "
                            "another -o, a --suffix, or --overwrite to replace it")
                continue
            if existing and len(existing) == len(targets) and not options.overwrite:
                summary.skipped += 1
                bar.message(f"{job.source}: skipped: {existing[0]} exists; pass --overwrite to "
                            "replace it")
                continue
            written = []
            with per_file(job.source, written, summary, bar):
                image = read_image(job.source, max_pixels=options.max_pixels)
                depth = image.bit_depth if fmt in SIXTEEN_BIT_FORMATS else 8
                result = process(
                    model, image, options.task, tau=options.tau, num_samples=options.samples,
                    generator=image_generator(job_seed, image_key(job.rel)),
                    component=options.component,
                    tile=options.tile, tile_overlap=options.tile_overlap,
                    max_memory=options.max_memory, bit_depth=depth,
                    want_uncertainty=options.uncertainty,
                    outscale=options.outscale if options.task == "sr" else None,
                    progress=lambda d, t: bar.tile(d, t), message=bar.message)
                notes = list(result.notes)
                if job_seed != seed:
                    notes.append(f"continued with seed {job_seed}, the seed of its existing "
                                 "outputs (give --seed to choose)")
                if image.bit_depth == 16 and depth == 8:
                    notes.append(f"{fmt} stores 8 bits: the 16-bit result was rounded to "
                                 "8 bits (use --ext png or tiff to keep 16 bits)")
                new_samples = 0
                for info, arr, path in zip(result.samples, result.outputs, names, strict=True):
                    if path.exists() and not options.overwrite:
                        continue
                    arr = _fit_to_format(arr, fmt, fmt in ALPHA_FORMATS, notes)
                    record = metadata_record(options, model_id, job, info, job_seed, result)
                    written += _write_output(
                        path, arr, record, fmt, options, image.icc_profile,
                        None if options.strip_metadata else image.exif)
                    new_samples += 1
                if result.uncertainty is not None:
                    # derived from all samples: redone when a sample was added or a map is missing
                    if new_samples or options.overwrite or not all(p.exists() for p in extra):
                        written += _write_uncertainty(extra, result, options, model_id, job,
                                                      job_seed)
                for note in dict.fromkeys(notes):
                    bar.message(f"{job.source}: note: {note}")
                retried = [s for s in result.samples if s.retries]
                for s in retried:
                    bar.message(f"{job.source}: sample {s.index} used tau {s.tau:.3f} instead "
                                f"of {s.tau_requested:.2f} (non-finite values at higher tau)")
                summary.done += 1
                hr = image.size[0] * image.size[1] * (model.scale**2 if options.task == "sr"
                                                      else 1)
                summary.hr_megapixels += hr * options.samples / 1e6
    except KeyboardInterrupt:  # the image being written is removed: no half sets
        _discard(written)
        bar.close()
        raise Interrupted(f"interrupted: {summary.done} done, {summary.skipped} skipped, "
                          f"{summary.failed} failed, {len(plans) - index} left; rerun the "
                          "same command to continue (finished images are skipped)") from None

    bar.image(len(jobs), "")
    bar.close()
    summary.seconds = time.monotonic() - start
    seed_text = f"; seed {seed}" if is_stochastic(model, options.task) else ""
    if options.dry_run:
        print(f"sdflow {verb}: dry run, {len(jobs)} image(s) planned, nothing written"
              + seed_text, file=stream)
    else:
        print(summary.line(verb) + seed_text, file=stream)
    return summary


def _write_uncertainty(paths, result, options: Options, model_id: ModelIdentity, job: Job,
                       seed: int) -> list[Path]:
    """The two maps of one image, replacing older ones (they are derived from the samples,
    which the caller has just completed)."""
    colour_path, raw_path = paths
    u = result.uncertainty
    vmax = options.uncertainty_max or uncertainty.default_vmax(u)
    base = metadata_record(options, model_id, job, result.samples[0], seed, result)
    for key in ("sample", "tau", "retries", "bit_depth", "component"):
        base.pop(key, None)
    base.update({"kind": "uncertainty", "units": "8-bit grey levels",
                 "statistic": "per-pixel std across samples (unbiased), RMS over channels",
                 "taus": ",".join(f"{s.tau:.4f}" for s in result.samples)})
    colour = dict(base, colour_scale_max=f"{vmax:.4f}",
                  colour_map="viridis-like: dark blue 0 -> yellow colour_scale_max")
    raw = dict(base, raw_scale=f"value / {uncertainty.RAW_SCALE} = std in 8-bit grey levels")
    written = [write_image(colour_path, uncertainty.colormap(u, vmax), overwrite=True,
                           pnginfo=png_text(colour))]
    written.append(write_image(raw_path, uncertainty.raw16(u), overwrite=True,
                               pnginfo=png_text(raw)))
    return written


def open_model(resolved, device: str = "auto"):
    """``(model, identity)`` for a :class:`sdflow.registry.ResolvedModel`: its sha256
    checked, loaded on ``device`` (``auto``: see :func:`resolve_device`); raises
    :class:`SDFlowError` with a one-line message."""
    from sdflow import registry
    from sdflow.checkpoint import load

    target = resolve_device(device)
    identity = ModelIdentity(resolved.name, registry.sha256_of(resolved))
    return load(resolved.path, device=target), identity


__all__ = [
    "FILE_ERRORS",
    "Options",
    "Summary",
    "failure_line",
    "made_otherwise",
    "metadata_record",
    "open_model",
    "run_batch",
]
