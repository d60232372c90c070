"""``sdflow make-pairs``: realistic (HR, LR) training pairs for any SR network."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from sdflow import registry
from sdflow.checkpoint import read_info
from sdflow.errors import SDFlowError
from sdflow.imageio import DEFAULT_MAX_PIXELS
from sdflow.inference import batch, tiling
from sdflow.inference.pairs import PairOptions, Shard, make_pairs
from sdflow.models import ARCHITECTURES
from sdflow.models.sdflow import DS_DEFAULT_TAU


def register(sub) -> None:
    p = sub.add_parser(
        "make-pairs", help="make (HR, realistic LR) training pairs from HR images",
        description="Downscale HR images with a model's learned degradations into training "
        "pairs for another SR network: OUT/HR/ and OUT/LR/ with identical file names (LR "
        "exactly HR/4; HR cropped at its top-left to a multiple of 4, never resized; PNG in "
        "the input's bit depth) and a manifest (OUT/manifest.tsv) of every pair. Reruns "
        "skip finished pairs. Exit code 1 if any image failed.")
    p.add_argument("inputs", nargs="+", metavar="HR_INPUT",
                   help="HR image files, folders or glob patterns (quote them)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder")
    p.add_argument("--model", default=None,
                   help="a checkpoint or registered model that downscales (default: "
                   f"{registry.default_model('ds') or 'none, --model is required'})")
    p.add_argument("--samples", type=int, default=1, metavar="K",
                   help="LR samples per HR image, one pair each (default 1)")
    p.add_argument("--tau", type=float, default=DS_DEFAULT_TAU,
                   help=f"sampling temperature (default {DS_DEFAULT_TAU})")
    p.add_argument("--seed", type=int, default=0,
                   help="seed (default 0); each image draws from its own stream derived "
                   "from the seed and its relative path")
    p.add_argument("--component", type=int, default=None, metavar="C",
                   help="mixture component (degradation mode) for every pair (default: "
                   "drawn per image and sample)")
    p.add_argument("--lr-crop", type=int, default=None, metavar="N",
                   help="cut each pair into aligned patches, N x N LR / 4N x 4N HR")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="process only slice I (0..N-1) of N of the sorted inputs; under "
                   "torchrun RANK/WORLD_SIZE are used when this is not given")
    p.add_argument("--overwrite", action="store_true", help="redo finished pairs")
    p.add_argument("-r", "--recursive", action="store_true", help="include subfolders")
    p.add_argument("--tile", type=int, default=None,
                   help="tile size in HR pixels; 0 = no tiling (default: from --max-memory)")
    p.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget for the model, e.g. 2G (default: half the available)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse larger inputs (default {DEFAULT_MAX_PIXELS:,})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def fail(text: str, code: int = 2) -> int:
        print(f"sdflow make-pairs: error: {text}", file=sys.stderr)
        return code

    try:
        shard = Shard.parse(args.shard) if args.shard else (Shard.from_environment() or Shard())
        options = PairOptions(tau=args.tau, samples=args.samples, seed=args.seed,
                              component=args.component, lr_crop=args.lr_crop,
                              tile=args.tile, max_memory=args.max_memory,
                              overwrite=args.overwrite, max_pixels=args.max_pixels,
                              shard=shard)
        if args.max_memory is not None:
            tiling.parse_memory(args.max_memory)
        if args.tile is not None and args.tile < 0:
            raise ValueError("--tile must be >= 0")
    except ValueError as exc:
        return fail(str(exc))
    try:
        resolved = registry.resolve(args.model, "ds")
        info = read_info(resolved.path)
    except SDFlowError as exc:
        return fail(str(exc))
    arch = ARCHITECTURES.get(info.architecture)
    if arch is None or not hasattr(arch.model_cls, "downscale"):
        return fail(f"{resolved.name} ({info.architecture}) cannot downscale; use an SDFlow "
                    "model", 1)
    k = int(info.config.get("mixture_components", 16))
    if args.component is not None and not 0 <= args.component < k:
        return fail(f"--component must be in 0..{k - 1}")
    outdir = Path(args.out)
    jobs, errors = batch.collect_inputs(args.inputs, args.recursive, exclude=outdir)
    for line in errors:
        print(line, file=sys.stderr)
    problem = batch.check_output_dir(outdir)
    if problem:
        return fail(problem, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, model_id = batch.open_model(resolved, args.device)
    except SDFlowError as exc:
        return fail(str(exc))
    summary = make_pairs(model, model_id, jobs, options, outdir)
    return 1 if summary.failed or errors else 0
