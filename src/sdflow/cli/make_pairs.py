"""``sdflow make-pairs``: realistic (HR, LR) training pairs for any SR network."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from sdflow import registry
from sdflow.atomic import DiskFullError
from sdflow.checkpoint import read_info
from sdflow.cli._inference import DOWNSCALERS_HINT, NO_DOWNSCALING_PART, sampling_tau
from sdflow.errors import OutputIsInputError, SDFlowError
from sdflow.hardware import DEVICE_HELP
from sdflow.inference import batch, folders
from sdflow.inference.inputs import collect_inputs
from sdflow.inference.pairs import PairOptions, Shard, make_pairs
from sdflow.models import ARCHITECTURES
from sdflow.models.base import Downscaler, downscales
from sdflow.options import add_flags, from_args, positive_int


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
    p.add_argument("-n", "--model", default=None,
                   help="a checkpoint or registered model that downscales (default: "
                   f"{registry.default_model('ds') or 'none, --model is required'})")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="process only slice I (0..N-1) of N of the sorted inputs; under "
                   "torchrun RANK/WORLD_SIZE are used when this is not given")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help=f"{DEVICE_HELP} (default auto)")
    p.add_argument("--threads", type=positive_int, default=None, help="CPU threads for PyTorch")
    add_flags(p, PairOptions, "make-pairs")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    def fail(text: str, code: int = 2) -> int:
        print(f"sdflow make-pairs: error: {text}", file=sys.stderr)
        return code

    try:
        shard = Shard.parse(args.shard) if args.shard else (Shard.from_environment() or Shard())
        options = from_args(PairOptions, args, "make-pairs", shard=shard)
    except ValueError as exc:
        return fail(str(exc))
    try:
        resolved = registry.resolve(args.model, "ds")
        info = read_info(resolved.path)
    except SDFlowError as exc:
        return fail(str(exc))
    arch = ARCHITECTURES.get(info.architecture)
    if arch is None or not issubclass(arch.model_cls, Downscaler):
        return fail(f"{resolved.name} ({info.architecture}) cannot downscale; "
                    f"{DOWNSCALERS_HINT}", 1)
    try:
        tau = sampling_tau(arch, info.architecture, "ds", options.tau, options.samples,
                           component=options.component)
    except ValueError as exc:
        return fail(str(exc))
    options = dataclasses.replace(options, tau=tau)
    k = int(info.config.get("mixture_components", 1))  # 1: no mixture (gaussian-fit)
    if options.component is not None and not 0 <= options.component < k:
        return fail(f"--component must be in 0..{k - 1}")
    outdir = Path(args.out)
    jobs, errors = collect_inputs(args.inputs, options.recursive, exclude=outdir)
    for line in errors:
        print(line, file=sys.stderr)
    problem = folders.check_output_dir(outdir)
    if problem:
        return fail(problem, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        model, model_id = batch.open_model(resolved, args.device)
    except SDFlowError as exc:
        return fail(str(exc))
    if not downscales(model):
        return fail(f"{resolved.name}: {NO_DOWNSCALING_PART}", 1)
    try:
        summary = make_pairs(model, model_id, jobs, options, outdir)
    except OutputIsInputError as exc:
        return fail(str(exc))
    except (folders.FolderBusyError, DiskFullError) as exc:
        return fail(str(exc), 1)
    return 1 if summary.failed or errors else 0
