"""The downstream test of a degradation model (docs/evaluation.md).

A degradation model is judged, as in DeFlow and its successors, by how well an ordinary SR
network trained on its (HR, LR) pairs does on *real* LR photos. This module holds the
fixed parts of that test: one small SR network (:class:`DownstreamSR`, EDSR-baseline-like),
one training recipe (:class:`DownstreamConfig`: L1, Adam, fixed seed, a fixed number of
iterations) and the SR of a folder; ``benchmarks/downstream.py`` makes the pair sets and
prints the table. Only the pairs differ between the rows of that table.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.evaluation.data import pair_folders, read_rgb8
from sdflow.imageio import image_to_tensor, tensor_to_image, write_image


class _ResBlock(nn.Module):
    def __init__(self, channels: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.body(x)


class DownstreamSR(nn.Module):
    """x4 SR network of the EDSR-baseline kind (no batch norm): head conv, ``blocks``
    residual blocks with a long skip, two conv + pixel-shuffle x2 stages, tail conv, plus
    the bicubic upscale of the input (so it learns a residual). Images in [-1, 1]."""

    def __init__(self, channels: int = 64, blocks: int = 8, res_scale: float = 0.1):
        super().__init__()
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(_ResBlock(channels, res_scale) for _ in range(blocks)),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.up = nn.Sequential(nn.Conv2d(channels, 4 * channels, 3, padding=1),
                                nn.PixelShuffle(2),
                                nn.Conv2d(channels, 4 * channels, 3, padding=1),
                                nn.PixelShuffle(2))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.scale = 4

    def forward(self, y: Tensor) -> Tensor:
        f = self.head(y)
        f = f + self.body(f)
        base = F.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
        return base + self.tail(self.up(f))


@dataclass(frozen=True)
class DownstreamConfig:
    """The fixed training recipe of the downstream test (one for every row)."""

    iterations: int = 1500
    batch_size: int = 16
    lr_crop: int = 24
    lr: float = 2e-4
    seed: int = 0
    channels: int = 64
    blocks: int = 8


def load_pairs(pairs_dir: str | Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """All (LR, HR) uint8 pairs of ``pairs_dir``/LR and ``pairs_dir``/HR (same names),
    checked to be exactly x4."""
    root = Path(pairs_dir)
    pairs = []
    for pair in pair_folders(root / "LR", root / "HR"):
        lr, hr = read_rgb8(pair.first), read_rgb8(pair.second)
        if hr.shape[:2] != (4 * lr.shape[0], 4 * lr.shape[1]):
            raise ValueError(f"{pair.name}: HR {hr.shape[1]}x{hr.shape[0]} is not 4x the "
                             f"LR {lr.shape[1]}x{lr.shape[0]}")
        pairs.append((lr, hr))
    if not pairs:
        raise ValueError(f"{root}: no (LR, HR) pairs found")
    return pairs


def _batch(pairs: list[tuple[np.ndarray, np.ndarray]], cfg: DownstreamConfig,
           gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Aligned random crops with flips and 90-degree rotations, images sampled in
    proportion to their crop positions."""
    c = cfg.lr_crop
    usable = [(lr, hr) for lr, hr in pairs if min(lr.shape[:2]) >= c]
    if not usable:
        raise ValueError(f"no pair has an LR of at least {c}x{c} pixels")
    weights = torch.tensor([float((lr.shape[0] - c + 1) * (lr.shape[1] - c + 1))
                            for lr, _ in usable])
    idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=gen)
    lrs, hrs = [], []
    for i in idx.tolist():
        lr, hr = usable[i]
        y = int(torch.randint(0, lr.shape[0] - c + 1, (1,), generator=gen))
        x = int(torch.randint(0, lr.shape[1] - c + 1, (1,), generator=gen))
        a = image_to_tensor(lr[y:y + c, x:x + c])[0]
        b = image_to_tensor(hr[4 * y:4 * (y + c), 4 * x:4 * (x + c)])[0]
        flips = torch.randint(0, 2, (2,), generator=gen).tolist()
        rot = int(torch.randint(0, 4, (1,), generator=gen))
        for t in range(2):
            if flips[t]:
                a, b = a.flip(t + 1), b.flip(t + 1)
        a, b = torch.rot90(a, rot, (1, 2)), torch.rot90(b, rot, (1, 2))
        lrs.append(a)
        hrs.append(b)
    return torch.stack(lrs), torch.stack(hrs)


def train_downstream(pairs_dir: str | Path, cfg: DownstreamConfig = DownstreamConfig(),
                     log: Callable[[str], None] | None = None) -> DownstreamSR:
    """Train :class:`DownstreamSR` on the pairs with L1 loss, Adam (0.9, 0.99) and the
    learning rate halved at 50 % and 75 % of the iterations; deterministic for a seed."""
    pairs = load_pairs(pairs_dir)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = DownstreamSR(cfg.channels, cfg.blocks)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
    start, last = time.monotonic(), 0.0
    net.train()
    for it in range(cfg.iterations):
        factor = 0.5 ** sum(it >= m * cfg.iterations for m in (0.5, 0.75))
        for group in opt.param_groups:
            group["lr"] = cfg.lr * factor
        lr, hr = _batch(pairs, cfg, gen)
        loss = (net(lr) - hr).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"the downstream training diverged at iteration {it}")
        opt.step()
        now = time.monotonic()
        if log is not None and (now - last > 30 or it == cfg.iterations - 1):
            log(f"  it {it + 1}/{cfg.iterations} L1 {value:.4f} "
                f"({now - start:.0f} s)")
            last = now
    return net.eval()


@torch.no_grad()
def super_resolve_folder(net: DownstreamSR, lr_dir: str | Path, out_dir: str | Path,
                         names: list[str] | None = None) -> list[Path]:
    """SR of every image of ``lr_dir`` (or of the stems in ``names``): 8-bit PNGs under
    the same names, so ``sdflow eval folders`` pairs them with the ground truth."""
    from sdflow.evaluation.data import list_images

    out = []
    for stem, path in list_images(lr_dir).items():
        if names is not None and stem not in names:
            continue
        sr = net(image_to_tensor(read_rgb8(path)))
        target = Path(out_dir) / f"{stem}.png"
        out.append(write_image(target, tensor_to_image(sr), overwrite=True))
    return out
