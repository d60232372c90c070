"""The proxy-loop numbers of a model on validation crops (docs/training.md, ablation table).

    python benchmarks/proxy_eval.py MODEL [MODEL ...] [--data ../shared/data/RealSR_x4/val]
        [--crop 64] [--limit 20]

On the centre ``--crop`` LR crops of the aligned pairs (the crops training validation
uses): SR at tau 0 PSNR (Y, shave 4) and block ratio, and for models that downscale, DS at
tau 0 (component drawn per image from a fixed seed) PSNR against the real LR (Y, no shave)
and blur index; bicubic's values on the same crops first.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import sdflow
from sdflow.imageio import image_to_tensor, tensor_to_image
from sdflow.metrics import blur_index, imresize_uint8, psnr
from sdflow.metrics.artefacts import block_ratio
from sdflow.training.data import load_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--data", default="../shared/data/RealSR_x4/val")
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    pairs = load_pairs(args.data, 4, args.crop, args.limit)
    rows = [[psnr(imresize_uint8(p.lr, scale=4), p.hr, shave=4),
             block_ratio(imresize_uint8(p.lr, scale=4)),
             psnr(imresize_uint8(p.hr, scale=0.25), p.lr, shave=0),
             blur_index(imresize_uint8(p.hr, scale=0.25))] for p in pairs]
    real_blur = np.mean([blur_index(p.lr) for p in pairs])
    print(f"{len(pairs)} pairs, LR crop {args.crop}; real LR blur index {real_blur:.3f}")
    print(f"{'model':48s} {'SR PSNR':>8s} {'block':>6s} {'DS PSNR':>8s} {'DS blur':>8s}")
    print(f"{'bicubic':48s} " + " ".join(f"{v:8.3f}" for v in np.mean(rows, axis=0)))
    for name in args.models:
        model = sdflow.load(name)
        rows = []
        with torch.no_grad():
            for i, p in enumerate(pairs):
                sr = tensor_to_image(model(image_to_tensor(p.lr)))  # tau 0 SR (forward)
                row = [psnr(sr, p.hr, shave=4), block_ratio(sr)]
                if callable(getattr(model, "downscale", None)):
                    ds = tensor_to_image(model.downscale(image_to_tensor(p.hr), 0.0,
                                                         generator=torch.Generator()
                                                         .manual_seed(i)))
                    row += [psnr(ds, p.lr, shave=0), blur_index(ds)]
                else:
                    row += [float("nan")] * 2
                rows.append(row)
        its = model.checkpoint_info.extra.get("iterations", "?")
        print(f"{name[-40:] + f' ({its} it)':48s} "
              + " ".join(f"{v:8.3f}" for v in np.mean(rows, axis=0)))


if __name__ == "__main__":
    main()
