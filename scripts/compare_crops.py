"""Side-by-side crops. SR: LR (nearest) | bicubic | each model at tau 0 | ground truth.
Downscaling (``--task ds``): HR | bicubic x1/4 | each model at each ``--taus`` | real LR.

    python scripts/compare_crops.py --models sdflow-lite-realsr-x4 da-iccv21-realsr-x4 \
        --images Canon_033 Nikon_035 --crop 96 --out docs/figures/sr_comparison.png
    python scripts/compare_crops.py --task ds --models gaussian-fit-realsr-x4 \
        sdflow-lite-realsr-x4 --taus 0 0.8 --crop 128 --out docs/figures/ds_comparison.png

Each crop is the most textured ``--crop`` x ``--crop`` HR square of the image (the rule
``sdflow eval --crop`` uses), shown at ``--zoom`` with nearest-neighbour enlargement so the
pixels stay visible. The model runs on the LR crop plus 16 LR pixels of context per side.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from sdflow import registry
from sdflow.errors import SDFlowError
from sdflow.evaluation.runner import pick_crop
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.metrics import imresize_uint8, psnr
from sdflow.models.base import LatentModel

CONTEXT = 16  # LR pixels of context around the crop


def _sr_crop(model, lr: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """SR of the LR region around the HR crop box ``(top, left, size)``, cut to the box."""
    s = model.scale
    t0, l0 = max(0, top // s - CONTEXT), max(0, left // s - CONTEXT)
    t1 = min(lr.shape[0], (top + size) // s + CONTEXT)
    l1 = min(lr.shape[1], (left + size) // s + CONTEXT)
    with torch.no_grad():
        out = tensor_to_image(model(image_to_tensor(lr[t0:t1, l0:l1])))  # tau 0 SR (forward)
    y, x = top - t0 * s, left - l0 * s
    return out[y:y + size, x:x + size]


def _ds_crop(model, hr: np.ndarray, top: int, left: int, size: int, tau: float) -> np.ndarray:
    """Downscaling (seed 0) of the HR region around the crop box plus 64 HR pixels of
    context (aligned to 8), cut to the LR box."""
    s, c = model.scale, 4 * CONTEXT
    t0, l0 = max(0, (top - c) // 8 * 8), max(0, (left - c) // 8 * 8)
    t1, l1 = min(hr.shape[0], top + size + c), min(hr.shape[1], left + size + c)
    with torch.no_grad():
        out = tensor_to_image(model.downscale(image_to_tensor(hr[t0:t1, l0:l1]), tau, seed=0))
    y, x = (top - t0) // s, (left - l0) // s
    return out[y:y + size // s, x:x + size // s]


def _ds_panels(models, taus, lr: np.ndarray, hr: np.ndarray, top: int, left: int,
               size: int, stem: str) -> list[tuple[str, np.ndarray]]:
    """HR | bicubic | models | real LR, every panel at the HR crop's size (LR panels
    enlarged 4x, nearest)."""
    def up(img: np.ndarray) -> np.ndarray:
        return img.repeat(4, axis=0).repeat(4, axis=1)

    real = lr[top // 4:(top + size) // 4, left // 4:(left + size) // 4]
    bicubic = imresize_uint8(hr[top:top + size, left:left + size], scale=0.25)
    panels = [("HR", hr[top:top + size, left:left + size]),
              (f"bicubic {psnr(bicubic, real, shave=0):.2f} dB", up(bicubic))]
    for name, model in models:
        for tau in taus if is_stochastic_ds(model) else [0.0]:
            out = _ds_crop(model, hr, top, left, size, tau)
            tag = f" t{tau:g}" if is_stochastic_ds(model) else ""
            panels.append((f"{name}{tag} {psnr(out, real, shave=0):.2f} dB", up(out)))
    panels.append((f"real LR ({stem})", up(real)))
    return panels


def is_stochastic_ds(model) -> bool:
    """Whether to show a downscaler at every ``--taus``: a learned flow (gaussian-fit's tau
    only scales its fitted white noise, which is shown at tau 0)."""
    return isinstance(model, LatentModel)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font) -> None:
    x, y = xy
    box = draw.textbbox((x, y), text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 255), font=font)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("sr", "ds"), default="sr")
    ap.add_argument("--taus", nargs="+", type=float, default=[0.0],
                    help="ds: temperatures of the stochastic downscalers (seed 0)")
    ap.add_argument("--models", nargs="+", default=registry.available(),
                    help="registered names or checkpoint paths")
    ap.add_argument("--labels", nargs="+", default=None,
                    help="panel labels for --models (default: the names)")
    ap.add_argument("--data", default="../shared/data/RealSR_x4/val")
    ap.add_argument("--images", nargs="+", default=["Canon_033", "Nikon_035"])
    ap.add_argument("--crop", type=int, default=96, help="HR crop side")
    ap.add_argument("--zoom", type=int, default=2)
    ap.add_argument("--out", default="docs/figures/sr_comparison.png")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        ap.error("give one --labels entry per --models entry")
    models = [(label, registry.load(name)) for label, name in
              zip(labels, args.models, strict=True)]
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 13)
    except OSError:
        font = ImageFont.load_default()
    rows = []
    for stem in args.images:
        lr = read_image(Path(args.data) / "LR" / f"{stem}.png").rgb
        hr = read_image(Path(args.data) / "HR" / f"{stem}.png").rgb
        top, left, size = pick_crop(hr, args.crop, 4)
        if args.task == "ds":
            rows.append(_ds_panels(models, args.taus, lr, hr, top, left, size, stem))
            continue
        box = (slice(top, top + size), slice(left, left + size))
        bicubic = imresize_uint8(lr, scale=4)[box]
        lr_near = lr[top // 4:(top + size) // 4, left // 4:(left + size) // 4]
        lr_near = lr_near.repeat(4, axis=0).repeat(4, axis=1)
        gt = hr[box]
        panels = [("LR (nearest)", lr_near), (f"bicubic {psnr(bicubic, gt, shave=4):.2f} dB",
                                               bicubic)]
        for name, model in models:
            out = _sr_crop(model, lr, top, left, size)
            panels.append((f"{name} {psnr(out, gt, shave=4):.2f} dB", out))
        panels.append((f"GT ({stem})", gt))
        rows.append(panels)
    side = args.crop * args.zoom
    gap = 4
    width = max(len(r) for r in rows) * (side + gap) - gap
    canvas = Image.new("RGB", (width, len(rows) * (side + gap) - gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, panels in enumerate(rows):
        for j, (text, img) in enumerate(panels):
            tile = Image.fromarray(img).resize((side, side), Image.NEAREST)
            x, y = j * (side + gap), i * (side + gap)
            canvas.paste(tile, (x, y))
            _label(draw, (x + 4, y + 3), text, font)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out, optimize=True)
    print(f"wrote {args.out} ({canvas.size[0]}x{canvas.size[1]})")


if __name__ == "__main__":
    try:
        main()
    except SDFlowError as exc:  # a missing or unreadable image or model: one line
        raise SystemExit(f"compare_crops: {exc}") from None
