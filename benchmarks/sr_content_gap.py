"""Where SDFlow's tau = 0 SR loses fidelity: the HR decoder or the LR content extractor?

    python benchmarks/sr_content_gap.py MODEL [--data ../shared/data/RealSR_x4/val]
        [--crop 64] [--limit 20] [--sigmas 1.0 1.77 2.5]

On aligned val pairs (centre LR crops), PSNR (Y, shave 4) against the HR of:
  oracle  - the HR decoded from its *own* content z_c = f_HR(x) at z_h' = 0 (decoder bound),
  clean   - SR at tau = 0 of the MATLAB-bicubic x1/4 of the HR (E on clean LR),
  real    - SR at tau = 0 of the real LR (what users get),
  bicubic - bicubic x4 of the real LR,
and the mean squared distance between z_c = E(real LR) and the HR's own z_c.

``--sigmas`` adds, for each sigma (HR pixels), SR at tau = 0 of the 8-bit
``bicubic_down(G_sigma * HR)`` (a camera with that Gaussian blur) and bicubic x4 of the same LR:
a model that adapts to its input's blur keeps its gain over bicubic across sigmas; one tuned
to a single camera blur peaks at it (docs/training.md, "SDFlow's SR on its own pairs").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import sdflow
from sdflow.imageio import image_to_tensor, tensor_to_image
from sdflow.metrics import imresize_uint8, psnr
from sdflow.metrics.degradation_fit import degrade
from sdflow.training.data import load_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", default="../shared/data/RealSR_x4/val")
    ap.add_argument("--crop", type=int, default=64, help="LR centre crop (0 = full)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--sigmas", type=float, nargs="*", default=[],
                    help="also SR of Gaussian-blurred bicubic LR at these blurs (HR pixels)")
    args = ap.parse_args()
    model = sdflow.load(args.model)
    s = model.scale
    pairs = load_pairs(args.data, s, args.crop or None, args.limit)
    rows = []
    with torch.no_grad():
        for p in pairs:
            lr, hr = image_to_tensor(p.lr), image_to_tensor(p.hr)
            z_hr = model.content_from_hr(hr)
            z_lr = model.content_from_lr(lr)
            zeros = torch.zeros(1, model.config.hf_channels, *z_hr.shape[2:])
            oracle = model.sr_decode(z_hr, model.hr_flow.hf.cond_net(z_hr), zeros)
            clean = image_to_tensor(imresize_uint8(p.hr, scale=1 / s))
            swept = []
            for sigma in args.sigmas:
                low = tensor_to_image(degrade(hr, s, sigma))  # 8-bit, as a camera writes it
                swept += [psnr(tensor_to_image(model.sr(image_to_tensor(low), 0.0)), p.hr,
                               shave=s),
                          psnr(imresize_uint8(low, scale=s), p.hr, shave=s)]
            rows.append([
                psnr(tensor_to_image(oracle), p.hr, shave=s),
                psnr(tensor_to_image(model.sr(clean, 0.0)), p.hr, shave=s),
                psnr(tensor_to_image(model.sr(lr, 0.0)), p.hr, shave=s),
                psnr(imresize_uint8(p.lr, scale=s), p.hr, shave=s),
                float((z_hr - z_lr).pow(2).mean()),
                *swept,
            ])
    mean = np.mean(rows, axis=0)
    print(f"{len(pairs)} pairs from {args.data} (LR crop {args.crop or 'full'})")
    for name, value in zip(("oracle (own z_c)", "SR of clean LR", "SR of real LR",
                            "bicubic of real LR"), mean[:4], strict=True):
        print(f"  {name:20s} {value:6.2f} dB")
    print(f"  mse(E(real LR), z_c of HR) {mean[4]:.4f}")
    for i, sigma in enumerate(args.sigmas):
        sr_db, bic_db = mean[5 + 2 * i], mean[6 + 2 * i]
        print(f"  Gaussian sigma {sigma:4.2f}: SR {sr_db:6.2f} dB, bicubic {bic_db:6.2f} dB, "
              f"gain {sr_db - bic_db:+.2f}")


if __name__ == "__main__":
    main()
