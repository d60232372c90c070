"""``sdflow downscale``: realistic LR images (/4) from HR images, with the degradation
sampled from the model's mixture prior."""

from __future__ import annotations

import argparse

from sdflow.cli import _inference
from sdflow.models.sampling import DS_DEFAULT_TAU


def register(sub) -> None:
    p = sub.add_parser(
        "downscale", help="downscale images /4 with realistic degradations",
        description="Downscale images /4 to realistic LR images: the degradation comes "
        "from one mixture component per image (--component fixes it) at temperature "
        "--tau. Outputs are named like photo_ds_t0.80_k5.png below OUTDIR. Exit code 1 if "
        "any file failed.")
    _inference.add_arguments(p, "ds", DS_DEFAULT_TAU)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _inference.run(args, "ds")
