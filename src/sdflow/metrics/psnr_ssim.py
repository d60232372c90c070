"""PSNR and SSIM as SR papers report them.

Conventions (all explicit arguments):

- inputs are 8-bit images: uint8 arrays ``H x W x 3`` or uint8 tensors ``[3, H, W]``.
  Model outputs must be quantised first (``sdflow.imageio.tensor_to_image`` rounds to 8
  bits), exactly as a saved PNG would be;
- ``color="y"``: compare the BT.601 luma of :func:`sdflow.metrics.color.rgb_to_y`, float,
  in [16, 235]; ``color="rgb"``: compare the three channels;
- ``shave`` pixels are removed from every border of both images before anything else
  (``shave = scale`` is the SR convention);
- PSNR uses a peak of 255 and, for RGB, the MSE over all channels jointly;
- SSIM follows Wang et al. (2004): 11x11 Gaussian window with sigma 1.5, K1 = 0.01,
  K2 = 0.03, L = 255, 'valid' filtering (no padding), mean of the SSIM map; for RGB the
  mean of the three per-channel SSIMs. Computed in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.metrics.color import rgb_to_y

COLOR_SPACES = ("y", "rgb")
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
PEAK = 255.0


def as_uint8_tensor(img: np.ndarray | Tensor) -> Tensor:
    """An 8-bit image (uint8 ``H x W x 3`` array or uint8 ``[3, H, W]`` tensor) as a uint8
    ``[3, H, W]`` tensor; anything else is refused so that rounding is never implicit."""
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8:
            raise TypeError(f"metrics take 8-bit images, got a {img.dtype} array; quantise "
                            "it first (sdflow.imageio.tensor_to_image rounds to 8 bits)")
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 image, got shape {img.shape}")
        # read-only arrays (e.g. np.asarray of a PIL image) are copied, never shared
        return torch.from_numpy(np.require(img, requirements=["C", "W"])).permute(2, 0, 1)
    if img.dtype != torch.uint8:
        raise TypeError(f"metrics take 8-bit images, got a {img.dtype} tensor; quantise it "
                        "first (sdflow.imageio.tensor_to_image rounds to 8 bits)")
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected a [3, H, W] image tensor, got shape {tuple(img.shape)}")
    return img


def _prepare(pred: np.ndarray | Tensor, target: np.ndarray | Tensor, shave: int,
             color: str) -> tuple[Tensor, Tensor]:
    """Both images as float64 ``[C, H, W]`` on [0, 255] in the chosen colour space."""
    if color not in COLOR_SPACES:
        raise ValueError(f"color must be one of {COLOR_SPACES}, got {color!r}")
    a, b = as_uint8_tensor(pred), as_uint8_tensor(target)
    if a.shape != b.shape:
        raise ValueError(f"image sizes differ: {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    if shave < 0:
        raise ValueError(f"shave must be >= 0, got {shave}")
    h, w = a.shape[1:]
    if h <= 2 * shave or w <= 2 * shave:
        raise ValueError(f"a {w}x{h} image has nothing left after shaving {shave} px")
    if shave:
        a, b = a[:, shave:-shave, shave:-shave], b[:, shave:-shave, shave:-shave]
    if color == "y":
        return rgb_to_y(a), rgb_to_y(b)
    return a.to(torch.float64), b.to(torch.float64)


def psnr(pred: np.ndarray | Tensor, target: np.ndarray | Tensor, *, shave: int = 0,
         color: str = "y") -> float:
    """PSNR in dB (``inf`` for identical images); see the module doc for conventions."""
    a, b = _prepare(pred, target, shave, color)
    mse = float(((a - b) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK**2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """Normalised 1-D Gaussian taps (float64), as MATLAB ``fspecial('gaussian')`` rows."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def ssim_map(a: Tensor, b: Tensor, peak: float = PEAK) -> Tensor:
    """SSIM map of float images ``[C, H, W]`` with the Gaussian window, 'valid' filtering;
    returns ``[C, H-10, W-10]``."""
    if a.shape[-1] < SSIM_WINDOW or a.shape[-2] < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} after "
                         f"shaving, got {a.shape[-1]}x{a.shape[-2]}")
    g = gaussian_window().to(a.device)
    c = a.shape[0]
    wy = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    wx = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def filt(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t.unsqueeze(0), wy, groups=c), wx, groups=c)[0]

    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return num / den


def ssim(pred: np.ndarray | Tensor, target: np.ndarray | Tensor, *, shave: int = 0,
         color: str = "y") -> float:
    """Mean SSIM (Wang et al.); for ``color="rgb"`` the mean of the per-channel SSIMs."""
    a, b = _prepare(pred, target, shave, color)
    return float(ssim_map(a, b).mean(dim=(1, 2)).mean())
