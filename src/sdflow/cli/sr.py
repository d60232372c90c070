"""``sdflow sr``: super-resolve images (x4) with a flow model, several samples per image."""

from __future__ import annotations

import argparse

from sdflow.cli import _inference
from sdflow.models.sdflow import SR_DEFAULT_TAU


def register(sub) -> None:
    p = sub.add_parser(
        "sr", help="super-resolve images x4",
        description="Super-resolve images x4. Any size (tiled with one noise field per "
        "image), PNG/JPEG/WebP/BMP/TIFF, 8/16-bit, gray, alpha. Outputs are named like "
        "photo_sr_t0.80_s0.png below OUTDIR. Exit code 1 if any file failed.")
    _inference.add_arguments(p, "sr", SR_DEFAULT_TAU)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return _inference.run(args, "sr")
