"""Options and the run function shared by ``sdflow sr`` and ``sdflow downscale`` (not a
command itself); the work is done by :mod:`sdflow.inference.batch`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from sdflow import registry
from sdflow.atomic import DiskFullError
from sdflow.checkpoint import model_config, read_info
from sdflow.errors import OutputIsInputError, SDFlowError
from sdflow.hardware import DEVICE_HELP
from sdflow.inference import batch, folders, naming, tiling
from sdflow.inference.inputs import collect_inputs
from sdflow.inference.tiling import model_device
from sdflow.models import ARCHITECTURES
from sdflow.models.base import Downscaler, StochasticDS, StochasticSR, downscales
from sdflow.models.prepare import prepare
from sdflow.models.sampling import default_tau
from sdflow.options import add_flags, from_args, positive_int

#: What to tell a user whose model cannot downscale.
DOWNSCALERS_HINT = "use a model with a downscaling direction (sdflow, gaussian-fit, da-iccv21)"
NO_DOWNSCALING_PART = ("the file has no downscaling part (a da-iccv21 model exported by sdflow "
                       "0.1, before G_t was kept): it super-resolves only; export it again "
                       "from a run of this version, or " + DOWNSCALERS_HINT)


def sampling_tau(arch, label: str, task: str, tau: float | None, samples: int, *,
                 uncertainty: bool = False, component: int | None = None) -> float:
    """The temperature a batch command runs at: the one given, else the default of a
    stochastic model (SR 0.8, DS 0.8), and 0 for a deterministic direction (da-iccv21),
    which takes no --tau, --samples, --uncertainty or --component. Raises ValueError
    with the line to print."""
    stochastic = StochasticSR if task == "sr" else StochasticDS
    if arch is not None and not issubclass(arch.model_cls, stochastic):
        if tau not in (None, 0.0) or samples != 1 or uncertainty or component is not None:
            raise ValueError(f"{label} {'super-resolves' if task == 'sr' else 'downscales'} "
                             "deterministically: leave out --tau, --samples, --uncertainty "
                             "and --component (one output per image)")
        return 0.0
    if tau is None:
        return default_tau(True, task)
    return tau

def add_arguments(p: argparse.ArgumentParser, task: str, default_tau: float) -> None:
    command = naming.TASK_NAMES[task]
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="image files, folders or glob patterns (quote them)")
    p.add_argument("-i", "--input", action="append", default=[], dest="more_inputs",
                   metavar="INPUT", help="an input as an option (repeatable; Real-ESRGAN's "
                   "spelling), added to the positional ones")
    p.add_argument("-o", "--out", required=True, metavar="OUTDIR",
                   help="output folder; outputs keep each input's relative path")
    p.add_argument("-n", "--model", default=None,
                   help="a checkpoint path or a registered model name "
                   f"(registered: {', '.join(registry.available()) or 'none yet'}; "
                   f"default: {registry.default_model(task) or 'none, --model is required'})")
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help=f"{DEVICE_HELP} (default auto)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads for PyTorch (default: PyTorch's choice)")
    if task == "sr":
        p.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                       help="run the model in PyTorch (default) or through its exported "
                       "ONNX graph in ONNX Runtime on the CPU (exported once and cached; "
                       "needs the onnx extra); outputs within 1 grey level of each other")
    else:
        p.set_defaults(backend="torch")  # downscaling runs in PyTorch
    add_flags(p, batch.Options, command, {
        "unit": "LR" if task == "sr" else "HR", "default_tau": default_tau,
        "default_overlap": tiling.DEFAULT_SR_OVERLAP if task == "sr"
        else tiling.DEFAULT_DS_OVERLAP})


def run(args: argparse.Namespace, task: str) -> int:
    verb = naming.TASK_NAMES[task]
    err = sys.stderr

    def fail(text: str, code: int = 2) -> int:
        print(f"sdflow {verb}: error: {text}", file=err)
        return code

    inputs = list(args.inputs) + list(args.more_inputs)
    if not inputs:
        return fail("no input: give image files, folders or glob patterns (or -i INPUT)")
    try:
        options = from_args(batch.Options, args, verb, task=task)
    except ValueError as exc:
        return fail(str(exc))
    try:
        resolved = registry.resolve(args.model, task)
        info = read_info(resolved.path)
        model_config(info, resolved.path)  # a bad config fails before any input is read
    except SDFlowError as exc:
        return fail(str(exc))
    arch = ARCHITECTURES.get(info.architecture)
    if arch is not None and task == "ds" and not issubclass(arch.model_cls, Downscaler):
        return fail(f"{info.architecture} cannot downscale; {DOWNSCALERS_HINT}", 1)
    try:
        tau = sampling_tau(arch, info.architecture, task, options.tau, options.samples,
                           uncertainty=options.uncertainty,
                           component=getattr(options, "component", None))
    except ValueError as exc:
        return fail(str(exc))
    options = dataclasses.replace(options, tau=tau)
    k = int(info.config.get("mixture_components", 1))  # 1: no mixture (gaussian-fit)
    if options.component is not None and not 0 <= options.component < k:
        return fail(f"--component must be in 0..{k - 1}")
    outdir = Path(args.out)
    jobs, errors = collect_inputs(inputs, options.recursive, exclude=outdir)
    for line in errors:
        print(f"{line}", file=err)
    if not options.dry_run:
        problem = folders.check_output_dir(outdir)
        if problem:
            return fail(problem, 1)
    if args.threads:
        torch.set_num_threads(args.threads)
    backend = args.backend
    try:
        model, model_id = batch.open_model(resolved, args.device)
        if task == "ds" and not downscales(model):
            return fail(f"{resolved.name}: {NO_DOWNSCALING_PART}", 1)
        if backend == "onnxruntime":
            if options.precision != "fp32" or model_device(model).type != "cpu":
                return fail("--backend onnxruntime runs fp32 on the CPU: leave out "
                            "--precision and use --device cpu")
            from sdflow.export.onnxruntime_backend import onnxruntime_model

            model = onnxruntime_model(model, model_id.sha256,
                                      say=lambda text: print(f"sdflow {verb}: {text}",
                                                             file=err))
        else:
            model = prepare(model, precision=options.precision)
    except (SDFlowError, ValueError) as exc:
        return fail(str(exc))
    try:
        summary = batch.run_batch(model, model_id, jobs, options, outdir, stream=err)
    except OutputIsInputError as exc:
        return fail(str(exc))
    except (folders.FolderBusyError, DiskFullError) as exc:
        return fail(str(exc), 1)
    return 1 if summary.failed or errors else 0
