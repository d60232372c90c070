"""Options and the run function shared by ``sdflow sr`` and ``sdflow downscale`` (not a
command itself); the work is done by :mod:`sdflow.inference.batch`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sdflow import registry
from sdflow.checkpoint import model_config, read_info
from sdflow.errors import SDFlowError
from sdflow.imageio import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS
from sdflow.inference import batch, tiling
from sdflow.models import ARCHITECTURES
from sdflow.models.sdflow import DS_DEFAULT_TAU, SR_DEFAULT_TAU


def add_arguments(p: argparse.ArgumentParser, task: str, default_tau: float) -> None:
    unit = "LR" if task == "sr" else "HR"
    default_overlap = tiling.DEFAULT_SR_OVERLAP if task == "sr" else tiling.DEFAULT_DS_OVERLAP
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files, folders or glob patterns (quote them)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output folder; outputs keep each input's relative path")
    p.add_argument("--model", default=None,
                   help="a checkpoint path or a registered model name "
                   f"(registered: {', '.join(registry.available()) or 'none yet'}; "
                   f"default: {registry.default_model(task) or 'none, --model is required'})")
    p.add_argument("--tau", type=float, default=None,
                   help=f"sampling temperature (default {default_tau}; deterministic models "
                   "such as da-iccv21 take none)")
    p.add_argument("--samples", type=int, default=1, metavar="N",
                   help="samples per image (default 1)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (default: a random one, printed and stored in the "
                   "outputs' metadata); each image uses a generator seeded with it")
    if task == "ds":
        p.add_argument("--component", type=int, default=None, metavar="K",
                       help="mixture component (degradation mode) 0..15 (default: drawn "
                       "per image and sample)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice)")
    p.add_argument("--precision", default="fp32", choices=batch.PRECISIONS,
                   help="fp32 (default), or bf16: the condition networks in bfloat16, "
                   "the flows in fp32; faster on CPUs with AMX/AVX512-BF16, outputs within "
                   "1/255 of fp32 (docs/performance.md); recorded in the metadata")
    p.add_argument("--tile", type=int, default=None,
                   help=f"tile size in {unit} pixels; 0 = no tiling (default: chosen from "
                   "--max-memory)")
    p.add_argument("--tile-overlap", type=int, default=None,
                   help=f"context around each tile in {unit} pixels (default "
                   f"{default_overlap})")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget for the model, e.g. 2G or 512M (default: half of "
                   "the available memory); picks the tile size")
    p.add_argument("--format", default="png", choices=tuple(OUTPUT_FORMATS),
                   help="output format (default png; png and tiff keep 16 bits)")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (default 95)")
    p.add_argument("--uncertainty", action="store_true",
                   help="also write the per-pixel std across samples (needs --samples >= 2)"
                   ": a colour-mapped PNG and the raw values as 16-bit PNG")
    p.add_argument("--uncertainty-max", type=float, default=None, metavar="LEVELS",
                   help="colour scale top of the uncertainty map in 8-bit grey levels "
                   "(default: the map's 99.5th percentile)")
    p.add_argument("--recursive", "-r", action="store_true", help="include subfolders")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--dry-run", action="store_true",
                   help="list inputs and output names, write nothing")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger inputs (decompression-bomb guard; default "
                   f"{DEFAULT_MAX_PIXELS:,})")


def run(args: argparse.Namespace, task: str) -> int:
    verb = batch.TASK_NAMES[task]
    err = sys.stderr

    def fail(text: str, code: int = 2) -> int:
        print(f"sdflow {verb}: error: {text}", file=err)
        return code

    if args.samples < 1:
        return fail("--samples must be >= 1")
    if args.uncertainty and args.samples < 2:
        return fail("--uncertainty needs --samples 2 or more")
    if args.tau is not None and args.tau < 0:
        return fail("--tau must be >= 0")
    if args.tile is not None and args.tile < 0:
        return fail("--tile must be >= 0")
    if args.max_memory is not None:
        try:
            tiling.parse_memory(args.max_memory)
        except ValueError as exc:
            return fail(str(exc))
    try:
        resolved = registry.resolve(args.model, task)
        info = read_info(resolved.path)
        model_config(info, resolved.path)  # a bad config fails before any input is read
    except SDFlowError as exc:
        return fail(str(exc))
    arch = ARCHITECTURES.get(info.architecture)
    label = info.architecture
    if arch is not None and not getattr(arch.model_cls, "stochastic", True):
        if task == "ds" or not hasattr(arch.model_cls, "sr"):
            return fail(f"{label} cannot downscale; use an SDFlow model", 1)
        if args.tau not in (None, 0.0) or args.samples != 1 or args.uncertainty:
            return fail(f"{label} is deterministic: leave out --tau, --samples and "
                        "--uncertainty (one output per image)")
        args.tau = 0.0
    elif args.tau is None:
        args.tau = SR_DEFAULT_TAU if task == "sr" else DS_DEFAULT_TAU
    component = getattr(args, "component", None)
    k = int(info.config.get("mixture_components", 16))
    if component is not None and not 0 <= component < k:
        return fail(f"--component must be in 0..{k - 1}")
    outdir = Path(args.output)
    jobs, errors = batch.collect_inputs(args.inputs, args.recursive, exclude=outdir)
    for line in errors:
        print(f"{line}", file=err)
    options = batch.Options(
        task=task, tau=args.tau, samples=args.samples, seed=args.seed, component=component,
        tile=args.tile, tile_overlap=args.tile_overlap, max_memory=args.max_memory,
        format=args.format, quality=args.quality, overwrite=args.overwrite,
        dry_run=args.dry_run, uncertainty=args.uncertainty,
        uncertainty_max=args.uncertainty_max, max_pixels=args.max_pixels,
        recursive=args.recursive, precision=args.precision)
    if not args.dry_run:
        problem = batch.check_output_dir(outdir)
        if problem:
            return fail(problem, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, model_id = batch.open_model(resolved, args.device)
    except SDFlowError as exc:
        return fail(str(exc))
    summary = batch.run_batch(model, model_id, jobs, options, outdir, stream=err)
    return 1 if summary.failed or errors else 0
