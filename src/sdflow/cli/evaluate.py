"""``sdflow eval``: score SR, downscaling, prediction folders or bicubic on paired data.

A thin layer over :mod:`sdflow.evaluation`: parse flags, run a mode, write
``metrics.csv``/``metrics.json`` (and the HTML report), print the table of means.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import torch

from sdflow.errors import SDFlowError
from sdflow.evaluation import (
    EvalOptions,
    EvalResult,
    default_taus,
    evaluate_bicubic,
    evaluate_ds,
    evaluate_folders,
    evaluate_sr,
    format_table,
    write_csv,
    write_json,
)
from sdflow.hardware import DEVICE_HELP, resolve_device
from sdflow.metrics.lpips import NETS
from sdflow.options import positive_int
from sdflow.progress import Progress
from sdflow.registry import DEFAULT_DS_BASELINE, default_model, load
from sdflow.weights import WeightsNotFoundError

CSV_NAME = "metrics.csv"
JSON_NAME = "metrics.json"


def _taus(text: str) -> list[float]:
    try:
        taus = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--tau takes comma-separated numbers, got {text!r}"
                                         ) from exc
    if not taus or any(t < 0 for t in taus):
        raise argparse.ArgumentTypeError(f"--tau needs numbers >= 0, got {text!r}")
    return taus


def _common(p: argparse.ArgumentParser, mode: str) -> None:
    p.add_argument("-o", "--out", default=f"runs/eval/{mode}",
                   help=f"folder for {CSV_NAME} and {JSON_NAME} (default: runs/eval/{mode})")
    p.add_argument("--report", metavar="DIR",
                   help="also write an HTML report (DIR/index.html); needs matplotlib")
    p.add_argument("--crop", type=positive_int, default=128,
                   help="size of the report crops in HR pixels (default 128)")
    p.add_argument("--color", choices=("y", "rgb"), default="y",
                   help="PSNR/SSIM on BT.601 Y (default) or on RGB")
    p.add_argument("--shave", type=int, default=None,
                   help="border pixels removed before PSNR/SSIM (default: the scale; 0 for "
                   "LR images in ds mode)")
    p.add_argument("--lpips", choices=(*NETS, "none"), default="alex",
                   help="LPIPS v0.1 backbone, or none (default alex)")
    p.add_argument("--weights", metavar="DIR",
                   help="folder of the LPIPS weight files (else $SDFLOW_WEIGHTS, else "
                   "~/.cache/sdflow/weights)")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help=f"{DEVICE_HELP} (default cpu: the published numbers)")
    p.add_argument("--threads", type=positive_int,
                   help="torch CPU threads (default: torch's choice; 1 helps on a machine "
                   "whose cores are busy)")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N pairs by name")
    p.add_argument("--quiet", action="store_true", help="no per-image progress on stderr")


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR",
                   help="a paired folder with LR/ and HR/ inside (e.g. RealSR_x4/val)")
    p.add_argument("--lr", metavar="DIR", help="LR folder (overrides DATA/LR)")
    p.add_argument("--hr", metavar="DIR", help="HR folder (overrides DATA/HR)")


def _sampling(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="a checkpoint (.safetensors) or a registered model name "
                   f"(default: {default_model('sr')} for sr, {default_model('ds')} for ds)")
    p.add_argument("--tau", type=_taus, default=None,
                   help="comma-separated temperatures (default 0,0.8; a deterministic "
                   "model such as da-iccv21 takes 0 only, and that is its default)")
    p.add_argument("--samples", type=positive_int, default=1,
                   help="samples per image and tau (SR at tau 0 is deterministic: one); "
                   "metrics are their mean, *_best the best of them (default 1)")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    p.add_argument("--save", metavar="DIR",
                   help="write the first sample of every tau as DIR/<method>_tau<t>/NAME.png")


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure SR/downscaling quality on paired data",
                       description="Score a model's super-resolution (sr) or downscaling "
                       "(ds), any folder of predictions (folders) or the bicubic baseline "
                       "(bicubic) against paired data. Writes per-image CSV and a JSON with "
                       "means and the protocol, and prints the means. Protocol: "
                       "docs/evaluation.md.")
    modes = p.add_subparsers(dest="mode", required=True, metavar="MODE")

    sr = modes.add_parser("sr", help="a model's SR of LR versus HR, per tau")
    _sampling(sr)
    _data(sr)
    _common(sr, "sr")

    ds = modes.add_parser("ds", help="a model's downscaling of HR versus the real LR")
    _sampling(ds)
    ds.add_argument("--baseline", action="append", metavar="MODEL",
                    help="another downscaler scored alongside bicubic at tau 0 (repeatable; "
                         "default: the registered gaussian-fit-realsr-x4, fitted to RealSR's "
                         "training folders; fit your own with sdflow fit-degradation; "
                         "'none' for bicubic only)")
    _data(ds)
    _common(ds, "ds")

    folders = modes.add_parser("folders", help="a prediction folder versus ground truth")
    folders.add_argument("--pred", required=True, metavar="DIR", help="predictions")
    folders.add_argument("--gt", required=True, metavar="DIR", help="ground truth")
    folders.add_argument("--lr", metavar="DIR", help="LR inputs, for LR-consistency")
    folders.add_argument("--scale", type=positive_int, default=4, help="SR scale (default 4)")
    folders.add_argument("--name", default="pred", help="method name in the outputs")
    _common(folders, "folders")

    bicubic = modes.add_parser("bicubic", help="the MATLAB-bicubic baseline")
    _data(bicubic)
    bicubic.add_argument("--scale", type=positive_int, default=4, help="SR scale (default 4)")
    bicubic.add_argument("--save", metavar="DIR",
                         help="write the bicubic images as DIR/bicubic/NAME.png")
    _common(bicubic, "bicubic")
    p.set_defaults(run=run)


def _dirs(args: argparse.Namespace) -> tuple[Path, Path]:
    lr = args.lr or (Path(args.data) / "LR" if args.data else None)
    hr = args.hr or (Path(args.data) / "HR" if args.data else None)
    if lr is None or hr is None:
        raise SDFlowError("give --data DIR (with LR/ and HR/ inside) or both --lr and --hr")
    return Path(lr), Path(hr)


class _EvalProgress:
    """The progress bar of ``sdflow sr`` for the images of an eval (on a terminal; one line
    per image elsewhere)."""

    def __init__(self) -> None:
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.bar is None:
            self.bar = Progress(total, sys.stderr)
        if self.bar.enabled:
            self.bar.image(done, message)
        else:
            print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _options(args: argparse.Namespace, progress: _EvalProgress | None = None) -> EvalOptions:
    return EvalOptions(
        color=args.color, shave=args.shave,
        lpips_net=None if args.lpips == "none" else args.lpips, weights_dir=args.weights,
        taus=getattr(args, "tau", None) or [0.0], samples=getattr(args, "samples", 1),
        seed=getattr(args, "seed", 0), device=str(resolve_device(args.device)),
        limit=args.limit,
        crop=args.crop if args.report else None, save_dir=getattr(args, "save", None),
        progress=None if args.quiet else progress)


def _evaluate(args: argparse.Namespace, options: EvalOptions) -> EvalResult:
    if args.mode == "folders":
        return evaluate_folders(args.pred, args.gt, options, lr_dir=args.lr, scale=args.scale,
                                method=args.name)
    lr_dir, hr_dir = _dirs(args)
    if args.mode == "bicubic":
        return evaluate_bicubic(lr_dir, hr_dir, options, scale=args.scale)
    device = options.device
    model = load(args.model, device=device, task="sr" if args.mode == "sr" else "ds")
    if args.tau is None:  # the model's own default: deterministic models have tau 0 only
        options = replace(options, taus=default_taus(model, args.mode))
    if args.mode == "sr":
        return evaluate_sr(model, lr_dir, hr_dir, options)
    names = args.baseline or [DEFAULT_DS_BASELINE]
    baselines = [load(name, device=device, task="ds") for name in names
                 if name.lower() != "none"]
    return evaluate_ds(model, hr_dir, lr_dir, options, baselines)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.report:
            from sdflow.evaluation.report import require_matplotlib

            require_matplotlib()
        bar = _EvalProgress()
        options = _options(args, bar)
        try:
            result = _evaluate(args, options)
        finally:
            bar.close()
        out = Path(args.out)
        csv_path = write_csv(result, out / CSV_NAME)
        json_path = write_json(result, out / JSON_NAME, csv_name=CSV_NAME)
        report_path = None
        if args.report:
            from sdflow.evaluation.report import write_report

            report_path = write_report(result, args.report)
    except WeightsNotFoundError as exc:  # LPIPS is the only weights eval needs
        print(f"sdflow eval: error: {exc} (or score without LPIPS: --lpips none)",
              file=sys.stderr)
        return 1
    except (SDFlowError, OSError, ValueError) as exc:
        print(f"sdflow eval: error: {exc}", file=sys.stderr)
        return 1
    protocol = result.info["protocol"]
    print(f"sdflow eval {result.mode}: {protocol['compared']}; "
          f"{result.info['dataset']['pairs']} images; PSNR/SSIM on "
          f"{'Y' if args.color == 'y' else 'RGB'}, shave {protocol['shave']}; LPIPS "
          f"{'-' if protocol['lpips'] is None else protocol['lpips']['net'] + ' v0.1'}")
    print(format_table(result))
    print(f"wrote {csv_path} and {json_path}" +
          (f"; report {report_path}" if report_path else ""))
    return 0
