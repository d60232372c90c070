"""Simple no-reference statistics of (LR) images, to compare generated and real degradations.

Both work on the luma Y (:func:`sdflow.metrics.color.rgb_to_y`, float on the 8-bit scale):

- :func:`noise_sigma`: Immerkaer's estimate of the standard deviation of additive white
  noise from the high-pass residual ``Y * N``, ``N = [[1,-2,1],[-2,4,-2],[1,-2,1]]``
  (J. Immerkaer, "Fast Noise Variance Estimation", CVIU 1996):
  ``sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |Y * N|`` (valid filtering), in grey levels.
- :func:`noise_floor`: the same estimate per 8x8 block, its 10th percentile over blocks:
  the noise in the flattest parts of the image. Texture (above all the texture left by a
  mild blur) raises the global estimate but hardly the floor, so the floor tells white
  noise from fine detail where the global estimate cannot (the unpaired degradation fit
  uses it).
- :func:`blur_index`: the no-reference blur metric of Crete-Roffet et al. ("The blur
  effect: perception and estimation with a new no-reference perceptual blur metric",
  SPIE 2007): re-blur Y with a 1x9 (and 9x1) box filter and measure how much of the
  neighbour-difference variation survives; 0 = sharp, towards 1 = blurred. The maximum of
  the horizontal and vertical values is reported.
- :func:`high_band_energy`: the fraction of Y's spectral energy (mean removed, Hann
  window) at radial frequencies in ``[0.25, 0.5]`` cycles per pixel: what a camera's blur
  removes and bicubic keeps. A generated LR over a real LR gives the band-energy ratio
  (1 = the real LR's fine-detail energy; above 1 = sharper or noisier than the camera).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.metrics.color import luma_chroma, rgb_to_y
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


def noise_floor(img: np.ndarray | Tensor, block: int = 8, quantile: float = 0.1) -> float:
    """Immerkaer's noise sigma per ``block`` x ``block`` block of Y, its ``quantile`` over
    the blocks (grey levels): the noise of the image's flattest parts."""
    y = luma(img)
    h, w = y.shape
    if h < block + 2 or w < block + 2:
        raise ValueError(f"the noise floor needs at least {block + 2}x{block + 2} pixels, "
                         f"got {w}x{h}")
    kernel = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]],
                          dtype=torch.float64)
    residual = F.conv2d(y[None, None], kernel[None, None])[0, 0].abs()
    bh, bw = residual.shape[0] // block, residual.shape[1] // block
    blocks = residual[:bh * block, :bw * block].reshape(bh, block, bw, block).mean(dim=(1, 3))
    sigmas = blocks.flatten() * (math.sqrt(math.pi / 2.0) / 6.0)
    return float(torch.quantile(sigmas, quantile))


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


HIGH_BAND = (0.25, 0.5)  # cycles per pixel


def windowed_power_spectrum(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(power, radius)``: the power spectrum of ``x`` (``[..., H, W]``, the mean of each
    image removed, Hann-windowed) and the radial frequency of each bin in cycles per pixel
    (``[H, W]``; 0.5 is Nyquist). Shared by :func:`high_band_energy` and the training loss
    ``sdflow.training.losses.spectrum_distance``."""
    h, w = x.shape[-2:]
    kw = {"dtype": x.dtype, "device": x.device}
    window = torch.outer(torch.hann_window(h, periodic=False, **kw),
                         torch.hann_window(w, periodic=False, **kw))
    power = torch.fft.fft2((x - x.mean(dim=(-2, -1), keepdim=True)) * window).abs().pow(2)
    fy = torch.fft.fftfreq(h, **kw).view(-1, 1)
    fx = torch.fft.fftfreq(w, **kw).view(1, -1)
    return power, torch.sqrt(fy**2 + fx**2)


def colour_detail(img: np.ndarray | Tensor, band: tuple[float, float] = HIGH_BAND) -> float:
    """Fine detail in colour against fine detail in brightness: the energy of Cb and Cr
    (BT.601) at radial frequencies in ``band`` over that of Y, Hann-windowed and mean
    removed, of an 8-bit RGB image. A camera's demosaicing leaves its LR less sharp colour
    than brightness; colour sharper than that, or noise drawn per RGB channel, raises it."""
    x = as_uint8_tensor(img).to(torch.float64)
    if min(x.shape[-2:]) < 8:
        raise ValueError(f"colour detail needs at least 8x8 pixels, got {x.shape[2]}x{x.shape[1]}")
    power, radius = windowed_power_spectrum(luma_chroma(x[None])[0])
    inside = (radius >= band[0]) & (radius <= band[1])
    fine = power[:, inside].sum(dim=1)
    if float(fine[0]) == 0:
        return 0.0 if float(fine[1:].sum()) == 0 else float("inf")
    return float(fine[1:].sum() / fine[0])


def high_band_energy(img: np.ndarray | Tensor, band: tuple[float, float] = HIGH_BAND) -> float:
    """Fraction of the Hann-windowed, mean-removed Y spectrum's energy at radial frequencies
    in ``band`` (cycles per pixel; 0.5 is Nyquist) of an 8-bit RGB image."""
    y = luma(img)
    h, w = y.shape
    if min(h, w) < 8:
        raise ValueError(f"band energy needs at least 8x8 pixels, got {w}x{h}")
    if float(y.max() - y.min()) == 0:
        return 0.0  # a flat image has no detail at any frequency
    power, radius = windowed_power_spectrum(y)
    total = float(power.sum())
    if total == 0:
        return 0.0
    inside = (radius >= band[0]) & (radius <= band[1])
    return float(power[inside].sum()) / total
