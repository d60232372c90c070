"""Does a model's downscaling look like the real LR domain? Measured on the *training*
folders, unpaired (prints figures; not a test).

    python benchmarks/ds_realism.py MODEL [MODEL ...] [--data ../shared/data/RealSR_x4/train]
        [--crop 256] [--tau 0 0.8]

The HR images of ``train/HR`` (centre ``--crop`` crops) are downscaled x1/4 by bicubic and
by each model (per image seed, components drawn); their blur index and noise sigma
(``sdflow.metrics.degradation``) are compared with those of the real LR images of
``train/LR`` (centre crops of ``--crop / 4``), which show other scenes: what is compared is
the degradation's statistics, not pixels, so no pairing and no validation image is used.
The printed gap is the generated mean minus the real mean (0 = the real domain's value);
`band_ratio` is the mean high-band energy (0.25-0.5 cycles/pixel) over the real LR's (1 = the same),
`colour_ratio` the same for the colour detail (fine Cb/Cr energy over fine Y energy: above 1 =
colour sharper or noisier than the real camera's).
This is the recipe-selection signal for downscaling (docs/training.md): it needs no
``val/`` data, so choosing on it does not tune on the validation set. For each model it also
prints where the degradation is (:func:`where_the_degradation_is`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import sdflow
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.metrics import blur_index, imresize_uint8
from sdflow.metrics.degradation import colour_detail, high_band_energy, noise_sigma
from sdflow.models.base import LatentModel
from sdflow.training.data import list_images


def centre(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(img[top:top + side, left:left + side])


def stats(images: list[np.ndarray]) -> dict[str, float]:
    return {"blur": round(float(np.mean([blur_index(i) for i in images])), 4),
            "noise": round(float(np.mean([noise_sigma(i) for i in images])), 3),
            "band": round(float(np.mean([high_band_energy(i) for i in images])), 5),
            "colour": round(float(np.mean([colour_detail(i) for i in images])), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/RealSR_x4/train"))
    ap.add_argument("--crop", type=int, default=256, help="HR crop side (multiple of 8)")
    ap.add_argument("--tau", type=float, nargs="+", default=[0.0, 0.8])
    args = ap.parse_args()
    hr = [centre(read_image(p).rgb, args.crop) for p in list_images([args.data / "HR"])]
    lr = [centre(read_image(p).rgb, args.crop // 4) for p in list_images([args.data / "LR"])]
    real = stats(lr)
    print(json.dumps({"what": "real LR", "images": len(lr), **real}), flush=True)

    def row(name: str, images: list[np.ndarray]) -> None:
        s = stats(images)
        print(json.dumps({"what": name, **s, "blur_gap": round(s["blur"] - real["blur"], 4),
                          "noise_gap": round(s["noise"] - real["noise"], 3),
                          "band_ratio": round(s["band"] / real["band"], 3),
                          "colour_ratio": round(s["colour"] / real["colour"], 3)}), flush=True)

    row("bicubic x1/4", [imresize_uint8(h, scale=0.25) for h in hr])
    for name in args.models:
        model = sdflow.prepare(sdflow.load(name))
        for tau in args.tau:
            out = []
            with torch.no_grad():
                for i, h in enumerate(hr):
                    y = model.downscale(image_to_tensor(h), tau, seed=i)
                    out.append(tensor_to_image(y))
            row(f"{name} tau {tau}", out)
        if isinstance(model, LatentModel):  # a flow: where does the degradation sit?
            where_the_degradation_is(name, model, hr, lr, row)


@torch.no_grad()
def where_the_degradation_is(name: str, model, hr: list[np.ndarray], lr: list[np.ndarray],
                             row) -> None:
    """The content latents decoded alone through f_LR: the real LR's ``f_LR^-1(E(y))`` and
    the HR's ``f_LR^-1(z_c^x)``. If the real LR's content is as blurred as the real LR, the
    blur sits in the content and z_d = f_LR(y) - E(y) cannot carry it to a downscaling;
    printed with the mean |z_d| of the real LR (in [-1, 1] units)."""
    lr_content, z_d = [], []
    for y in (image_to_tensor(i) for i in lr):
        z_lr, _ = model.lr_flow(y)
        z_c = model.content_from_lr(y)
        lr_content.append(tensor_to_image(model.lr_flow.inverse(z_c)[0]))
        z_d.append(float((z_lr - z_c).abs().mean()))
    hr_content = [tensor_to_image(model.lr_flow.inverse(model.content_from_hr(
        image_to_tensor(h)))[0]) for h in hr]
    row(f"{name}: real LR content alone", lr_content)
    row(f"{name}: HR content alone", hr_content)
    print(json.dumps({"what": f"{name}: real LR mean |z_d|", "z_d": round(
        float(np.mean(z_d)), 4)}), flush=True)


if __name__ == "__main__":
    main()
