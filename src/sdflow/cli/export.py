"""``sdflow export``: a model in a form others can load.

Each ``--format`` is one function in :data:`FORMATS` that takes the parsed arguments,
writes the export and returns the line to print; adding a format is adding one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from sdflow.errors import SDFlowError
from sdflow.export import export_folder
from sdflow.model_folder import CARD_NAME, CONFIG_NAME, OPENMODELDB_NAME, WEIGHTS_NAME


def _export_folder(args: argparse.Namespace) -> str:
    folder = export_folder(args.model, args.out, overwrite=args.overwrite,
                           license=args.license)
    return (f"wrote {folder.path}: {CONFIG_NAME}, {OPENMODELDB_NAME}, {WEIGHTS_NAME} (sha256 "
            f"{folder.sha256[:12]}), {CARD_NAME}; load it with sdflow.load(DIR) or "
            "--model DIR")


def _export_onnx(args: argparse.Namespace) -> str:
    from pathlib import Path

    from sdflow import registry
    from sdflow.export.onnx import ExportError, export_onnx
    from sdflow.imageio import read_image

    if Path(args.out).exists() and not args.overwrite:
        raise ExportError(f"{args.out} exists; pass --overwrite to replace it")
    model = registry.load(args.model, task=args.task)
    check = read_image(args.check_image).rgb if args.check_image else None
    print(f"sdflow export: tracing the {args.task} graph of {args.model} to ONNX and "
          "verifying it with onnxruntime (about a minute on 2 CPU cores)...",
          flush=True)
    result = export_onnx(model, args.out, args.task, check_image=check, tau=args.tau)
    inputs = "image only" if args.tau is not None else "inputs as docs/model.md says"
    return f"wrote {args.out} ({args.task} graph, {inputs}); {result.line()}"


#: ``--format`` name -> the function that writes it.
FORMATS: dict[str, Callable[[argparse.Namespace], str]] = {
    "folder": _export_folder,
    "onnx": _export_onnx,
}


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="write a model in a form others can load",
        description="Export a model. folder: config.json + model.safetensors (the checkpoint, "
        "byte-identical to the source file) + a generated README.md model card; "
        "sdflow.load(DIR) and --model DIR read it back after checking its sha256. onnx: the "
        "prepared SR (or DS) graph with dynamic batch/height/width, image in [0, 1], "
        "verified against PyTorch with onnxruntime (needs the onnx extra).")
    p.add_argument("model", metavar="MODEL",
                   help="a registered model name, a checkpoint file or a model folder")
    p.add_argument("--format", default="folder", choices=sorted(FORMATS),
                   help="what to write (default: folder)")
    p.add_argument("-o", "--out", required=True, metavar="PATH",
                   help="output folder (folder) or file (onnx)")
    p.add_argument("--task", choices=("sr", "ds"), default="sr",
                   help="onnx: the SR graph (default) or, for SDFlow, the downscaling graph")
    p.add_argument("--tau", type=float, default=None, metavar="T",
                   help="onnx, SR of SDFlow: bake the sampling in, so the graph takes the "
                   "image alone (what chaiNNer-style runners feed): 0 = the mode, > 0 = noise "
                   "drawn in the graph (default: image and noise inputs)")
    p.add_argument("--check-image", metavar="IMG",
                   help="onnx: a real image to verify the graph on against PyTorch (default: "
                   "a synthetic pattern)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output: the model files of a non-empty folder "
                   "(other files in it are left alone), or the .onnx file")
    p.add_argument("--license", default=None, metavar="TEXT",
                   help="licence stated in the model card (default: the registry's for a "
                   "registered model, the source folder's for a folder, else none)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        message = FORMATS[args.format](args)
    except (SDFlowError, OSError) as exc:
        print(f"sdflow export: error: {exc}", file=sys.stderr)
        return 1
    print(message)
    return 0
