"""Where SDFlow's 4x4 block artefact comes from (docs/training.md, "The 4x4 block artefact").

    python benchmarks/block_artefact.py MODEL [--limit 6] [--kernel 5]
    python benchmarks/block_artefact.py --init [--kernels 0 3 5]

MODEL: on the centre 64x64 LR crops of the first ``--limit`` val pairs, block ratio and PSNR
(Y, shave 4) of (1) the HR decoded from its own content at the HF flow's mode (z_h' = 0),
(2) SR of the real LR at tau 0, (3) bicubic, and of the same two decodes with z_h replaced by
a least-squares linear prediction from the ``--kernel`` neighbourhood of z_c fitted on
train/HR crops (no HF flow); plus the energy of the HF mode against the true details.
--init: the same decode of the HR's own content for an *untrained* lite model (Haar init,
ActNorm and predictor data-initialised on 30 train/HR crops) for each predictor kernel.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import sdflow
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.metrics import imresize, imresize_uint8, psnr
from sdflow.metrics.artefacts import block_ratio
from sdflow.models import SDFlow, SDFlowConfig
from sdflow.models.init import apply_init
from sdflow.training.data import load_pairs

DATA = Path("../shared/data/RealSR_x4")


def train_crops(size: int, per_image: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    crops = []
    for f in sorted((DATA / "train/HR").iterdir()):
        img = image_to_tensor(read_image(f).rgb)
        h, w = img.shape[2:]
        for _ in range(per_image):
            i = int(torch.randint(0, h - size + 1, (1,), generator=gen)) // 4 * 4
            j = int(torch.randint(0, w - size + 1, (1,), generator=gen)) // 4 * 4
            crops.append(img[:, :, i:i + size, j:j + size])
    return torch.cat(crops)


def _neighbourhoods(z_c: torch.Tensor, k: int) -> torch.Tensor:
    p = k // 2
    cols = F.unfold(F.pad(z_c, (p,) * 4, mode="reflect"), k)
    cols = torch.cat([cols, torch.ones_like(cols[:, :1])], 1)
    return cols.permute(0, 2, 1).reshape(-1, cols.shape[1]).double()


def _decode_own_content(model, hr: torch.Tensor) -> np.ndarray:
    z_c = model.content_from_hr(hr)
    zeros = torch.zeros(1, model.config.hf_channels, *z_c.shape[2:])
    return tensor_to_image(model.sr_decode(z_c, model.hr_flow.hf.cond_net(z_c), zeros))


@torch.no_grad()
def trained(args) -> None:
    model = sdflow.load(args.model)
    x = train_crops(128, 4)
    z, _ = model.hr_flow.encode_levels(x)
    zc, zh = z[:, :3], z[:, 3:]
    solution = torch.linalg.lstsq(_neighbourhoods(zc, args.kernel),
                                  zh.flatten(2).permute(0, 2, 1).reshape(-1, 45).double()
                                  ).solution

    def linear(z_c: torch.Tensor) -> np.ndarray:
        pred = (_neighbourhoods(z_c, args.kernel) @ solution).float()
        z_h = pred.T.reshape(1, 45, *z_c.shape[2:])
        return tensor_to_image(model.hr_flow.decode_levels(torch.cat([z_c, z_h], 1)))

    rows = []
    for p in load_pairs(DATA / "val", 4, 64, args.limit):
        lr, hr = image_to_tensor(p.lr), image_to_tensor(p.hr)
        z_own = model.content_from_hr(hr)
        z, _ = model.hr_flow.encode_levels(hr)
        mode, _ = model.hr_flow.hf.inverse(torch.zeros_like(z[:, 3:]), z_own)
        outs = [_decode_own_content(model, hr), tensor_to_image(model.sr(lr, 0.0)),
                imresize_uint8(p.lr, scale=4), linear(z_own),
                linear(model.content_from_lr(lr))]
        rows.append([v for o in outs for v in (block_ratio(o), psnr(o, p.hr, shave=4))]
                    + [float(mode.pow(2).mean()), float(z[:, 3:].pow(2).mean())])
    m = np.mean(rows, axis=0)
    names = ["own content, HF mode", "SR of real LR, tau 0", "bicubic of real LR",
             f"own content, linear {args.kernel}x{args.kernel} prediction",
             f"real LR content, linear {args.kernel}x{args.kernel} prediction"]
    print(f"{len(rows)} val crops (64x64 LR); block ratio / PSNR")
    for i, name in enumerate(names):
        print(f"  {name:44s} {m[2 * i]:7.2f}  {m[2 * i + 1]:6.2f} dB")
    print(f"  E|HF mode|^2 {m[-2]:.4f}, E|z_h|^2 {m[-1]:.4f}")


@torch.no_grad()
def at_init(args) -> None:
    x = train_crops(96, 1)
    pairs = load_pairs(DATA / "val", 4, 64, args.limit)
    for k in args.kernels:
        cfg = dataclasses.replace(SDFlowConfig.preset("lite"), hf_predictor_kernel=k)
        model = apply_init(SDFlow(cfg), "haar")
        model.initialize_actnorm(x, imresize(x, scale=0.25))
        rows = []
        for p in pairs:
            out = _decode_own_content(model, image_to_tensor(p.hr))
            rows.append([block_ratio(out), psnr(out, p.hr, shave=4)])
        m = np.mean(rows, axis=0)
        print(f"kernel {k}: block ratio {m[0]:.2f}, PSNR {m[1]:.2f} dB "
              f"({len(rows)} val crops, untrained, HR's own content at z_h' = 0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--init", action="store_true")
    ap.add_argument("--kernels", type=int, nargs="+", default=[0, 3, 5])
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.init:
        at_init(args)
    elif args.model:
        trained(args)
    else:
        ap.error("give a MODEL or --init")


if __name__ == "__main__":
    main()
