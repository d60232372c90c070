"""Simple no-reference statistics of (LR) images, to compare generated and real degradations.

Both work on the luma Y (:func:`sdflow.metrics.color.rgb_to_y`, float on the 8-bit scale):

- :func:`noise_sigma`: Immerkaer's estimate of the standard deviation of additive white
  noise from the high-pass residual ``Y * N``, ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]``
  (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996):
  ``sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |Y * N|`` (valid filtering), in grey levels.
- :func:`blur_index`: the no-reference blur metric of Crete-Roffet et al. ("The blur
  effect: perception and estimation with a new no-reference perceptual blur metric",
  SPIE 2007): re-blur Y with a 1x9 (and 9x1) box filter and measure how much of the
  neighbour-difference variation survives; 0 = sharp, towards 1 = blurred. The maximum of
  the horizontal and vertical values is reported.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.metrics.color import rgb_to_y
from sdflow.metrics.psnr_ssim import as_uint8_tensor

BLUR_FILTER = 9


def luma(img: np.ndarray | Tensor) -> Tensor:
    """The luma Y of an 8-bit RGB image, ``[H, W]`` float64 on the 8-bit scale."""
    return rgb_to_y(as_uint8_tensor(img))[0]


def noise_sigma(img: np.ndarray | Tensor) -> float:
    """Immerkaer's noise standard deviation of an 8-bit RGB image's Y, in grey levels."""
    y = luma(img)
    h, w = y.shape
    if h < 3 or w < 3:
        raise ValueError(f"noise estimation needs at least 3x3 pixels, got {w}x{h}")
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]],
                          dtype=torch.float64)
    residual = F.conv2d(y[None, None], kernel[None, None])
    return float(math.sqrt(math.pi / 2.0) * residual.abs().sum() / (6.0 * (w - 2) * (h - 2)))


def _blur_along(y: Tensor, dim: int) -> float:
    """Crete-Roffet blur along one axis (``dim`` 0 = vertical, 1 = horizontal)."""
    k = torch.full((BLUR_FILTER,), 1.0 / BLUR_FILTER, dtype=torch.float64)
    shape = (1, 1, BLUR_FILTER, 1) if dim == 0 else (1, 1, 1, BLUR_FILTER)
    pad = (0, 0, BLUR_FILTER // 2, BLUR_FILTER // 2) if dim == 0 else \
        (BLUR_FILTER // 2, BLUR_FILTER // 2, 0, 0)
    blurred = F.conv2d(F.pad(y[None, None], pad, mode="replicate"), k.view(shape))[0, 0]
    d_sharp = torch.diff(y, dim=dim).abs()
    d_blur = torch.diff(blurred, dim=dim).abs()
    variation = (d_sharp - d_blur).clamp(min=0)
    s_sharp = float(d_sharp.sum())
    if s_sharp == 0:
        return 1.0  # a flat image carries no detail at all
    return (s_sharp - float(variation.sum())) / s_sharp


def blur_index(img: np.ndarray | Tensor) -> float:
    """Crete-Roffet blur of an 8-bit RGB image's Y: 0 = sharp, towards 1 = blurred."""
    y = luma(img)
    if min(y.shape) < BLUR_FILTER:
        raise ValueError(f"blur estimation needs at least {BLUR_FILTER}x{BLUR_FILTER} pixels")
    return max(_blur_along(y, 0), _blur_along(y, 1))
