"""``sdflow fit-degradation``: the ``gaussian-fit`` baseline downscaler from unpaired folders."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sdflow.checkpoint import save
from sdflow.errors import SDFlowError
from sdflow.imageio import ImageReadError, read_image, to_uint8
from sdflow.metrics.degradation_fit import fit_gaussian_degradation
from sdflow.models import GaussianDownscaler, GaussianFitConfig
from sdflow.training.data import list_images

#: At most this many images of each side are measured (evenly spread over the sorted list).
MAX_IMAGES = 200


def register(sub) -> None:
    p = sub.add_parser(
        "fit-degradation", help="fit a Gaussian blur + noise downscaler to unpaired folders",
        description="Fit the gaussian-fit downscaler: the Gaussian blur (before bicubic "
        "x1/scale) and white noise at which downscaled HR images have the real LR images' "
        "mean blur index and noise sigma, and the colour blur at which they have its colour "
        "detail. The folders may show different scenes (unpaired). "
        "The result works wherever a downscaler does: sdflow downscale / make-pairs / "
        "eval ds --model FILE.")
    p.add_argument("--lr-dir", action="append", required=True, metavar="DIR",
                   help="real LR images (repeatable)")
    p.add_argument("--hr-dir", action="append", required=True, metavar="DIR",
                   help="HR images, other scenes allowed (repeatable)")
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="output .safetensors file")
    p.add_argument("--scale", type=int, default=4, choices=(2, 4, 8))
    p.add_argument("--no-noise", action="store_true",
                   help="fit the blur only (noise 0)")
    p.add_argument("--same-colour-blur", action="store_true",
                   help="blur colour as much as brightness (no colour sigma; the fit of "
                        "files made before 2026-12-07)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.add_argument("--trained-on", default="",
                   help="what the folders are, for the metadata (default: their folder names)")
    p.set_defaults(run=run)


def _read_all(dirs: list[str], err) -> list[np.ndarray]:
    paths = list_images(dirs)
    if len(paths) > MAX_IMAGES:
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, MAX_IMAGES).round().astype(int)]
    images = []
    for path in paths:
        try:
            rgb = read_image(path).rgb
        except ImageReadError as exc:
            print(f"skipped: {exc}", file=err)
            continue
        images.append(to_uint8(rgb))
    return images


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"sdflow fit-degradation: error: {out} exists; pass --overwrite to replace it",
              file=err)
        return 1
    start = time.perf_counter()
    try:
        lr = _read_all(args.lr_dir, err)
        hr = _read_all(args.hr_dir, err)
        fit = fit_gaussian_degradation(lr, hr, scale=args.scale,
                                       fit_colour=not args.same_colour_blur)
        model = GaussianDownscaler(GaussianFitConfig(
            scale=args.scale, sigma=fit.sigma, noise=0.0 if args.no_noise else fit.noise,
            colour_sigma=None if args.same_colour_blur else fit.colour_sigma))
        trained_on = args.trained_on or ("LR: " + ", ".join(Path(d).name for d in args.lr_dir)
                                         + "; HR: " + ", ".join(Path(d).name
                                                                for d in args.hr_dir))
        seconds = time.perf_counter() - start
        threads = torch.get_num_threads()
        compute = {"kind": "fit", "seconds": round(seconds, 1), "device": "cpu",
                   "threads_per_process": threads, "total_iterations": 0,
                   "total_hours": round(seconds / 3600, 4),
                   "total_cpu_hours": round(seconds * threads / 3600, 4)}
        save(model, out, trained_on=trained_on,
             notes="gaussian-fit: blur, colour blur and noise fitted by unpaired statistics "
                   "(blur index, colour detail, noise sigma); sdflow fit-degradation",
             extra={"fit": fit.to_dict(), "compute": compute})
    except (SDFlowError, OSError, ValueError) as exc:
        print(f"sdflow fit-degradation: error: {exc}", file=err)
        return 1
    print(f"real LR: blur index {fit.real_blur:.3f}, noise {fit.real_noise:.2f} "
          f"({fit.lr_images} images); bicubic x1/{args.scale}: blur {fit.bicubic_blur:.3f}")
    print(f"fitted: sigma {fit.sigma:.3f} HR pixels (blur {fit.fitted_blur:.3f}, noise "
          f"{fit.fitted_noise:.2f}), added noise {model.config.noise:.2f} grey levels")
    colour = "the same as the brightness" if args.same_colour_blur else \
        f"sigma {fit.colour_sigma:.3f} HR pixels"
    print(f"colour: {colour} (colour detail {fit.fitted_colour:.4f}, real LR "
          f"{fit.real_colour:.4f})")
    print(f"wrote {out}")
    return 0
