"""Artefact and uncertainty statistics of SR outputs (luma Y on the 8-bit scale).

- :func:`block_ratio`: how strongly a ``period``-pixel grid shows through. The mean absolute
  difference between neighbouring pixels *across* the grid lines (offsets ``period - 1``,
  ``2 period - 1``, ... of the horizontal and vertical differences) divided by the mean
  absolute difference *inside* the cells, averaged over both directions. A natural photo
  or a bicubic upscale scores about 1.0-1.2 (RealSR val: HR 1.05, bicubic x4 1.18);
  a nearest-neighbour x4 upscale is infinite (all change is at the grid lines). SDFlow's
  HR flow squeezes 2x2 twice, so a model whose high-frequency latents carry nothing fills
  each 4x4 block almost flatly. :func:`grid_differences` is its differentiable core (the
  training loss ``loss.sr_grid`` penalises the same ratio).
- :func:`spearman`: rank correlation of two maps (ties get their mean rank), used to ask
  whether an uncertainty map follows the error of the tau-0 output or the image structure.
- :func:`gradient_magnitude`: Sobel gradient magnitude of the luma.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.metrics.degradation import luma


def grid_differences(y: Tensor, period: int = 4) -> Tensor:
    """Mean |neighbour difference| across and inside ``period``-pixel grid lines of a luma
    image or batch ``[..., H, W]`` (pooled over the leading dimensions; differentiable):
    ``[[across, inside] vertical, [across, inside] horizontal]``. The grid starts at pixel 0,
    as the model's squeezes do on an image or crop it decodes."""
    out = []
    for dim in (-2, -1):
        d = torch.diff(y, dim=dim).abs()
        border = (torch.arange(d.shape[dim], device=y.device) % period) == period - 1
        shape = [1] * d.ndim
        shape[dim] = -1
        border = border.view(shape).expand_as(d)
        out.append(torch.stack([d[border].mean(), d[~border].mean()]))
    return torch.stack(out)


def block_ratio(img: np.ndarray | Tensor, period: int = 4) -> float:
    """Mean |neighbour difference| across ``period``-pixel grid lines over the mean inside
    the cells (1.0: no grid), the average of the vertical and horizontal ratios."""
    y = luma(img)
    if min(y.shape) < 2 * period:
        raise ValueError(f"block ratio needs at least {2 * period}x{2 * period} pixels, "
                         f"got {y.shape[1]}x{y.shape[0]}")
    ratios = []
    for across, inside in grid_differences(y, period).tolist():
        ratios.append(across / inside if inside > 0 else (1.0 if across == 0 else np.inf))
    return float(np.mean(ratios))


def gradient_magnitude(img: np.ndarray | Tensor) -> Tensor:
    """Sobel gradient magnitude of the luma, [H, W] float64 (replicate-padded)."""
    y = luma(img)[None, None]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]],
                      dtype=torch.float64)
    k = torch.stack([kx, kx.T])[:, None]
    g = F.conv2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), k)[0]
    return g.pow(2).sum(0).sqrt()


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1; every member of a group of equal values gets the group's mean rank."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts + 1) / 2.0
    return mean_rank[inverse].astype(np.float64)


def spearman(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Spearman rank correlation of two equally shaped maps (nan if either is constant)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in size: {a.shape} vs {b.shape}")
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
