"""Fit a Gaussian camera blur (and white noise) to a real LR domain from *unpaired* images.

The real LR of a camera is blurrier than the bicubic x1/s of a sharp photo. Without pairs
the blur can still be measured: blur each HR image with a Gaussian of standard deviation
sigma (HR pixels), downscale it by MATLAB's antialiased bicubic, add white noise, and
choose the sigma and noise at which the results have the real LR images' mean blur index
(:func:`~sdflow.metrics.degradation.blur_index`) and noise floor
(:func:`~sdflow.metrics.degradation.noise_floor`: Immerkaer's estimate in the flattest
blocks, which fine texture does not fool). A camera's colour is blurrier than its
brightness (demosaicing, chroma subsampling), so the colour differences get their own,
larger sigma, chosen to match the real LR's colour detail
(:func:`~sdflow.metrics.degradation.colour_detail`). The HR and LR images may show
different scenes: only the statistics of the degradation are compared.

:func:`degrade` is the degradation itself (blur, bicubic, optional noise), shared by the
``gaussian-fit`` downscaler and by the SDFlow objective's HR-side anchor
(``loss.degradation_blur``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.imageio import image_to_tensor, tensor_to_image
from sdflow.metrics.color import luma_chroma, rgb_from_luma_chroma
from sdflow.metrics.degradation import blur_index, colour_detail, noise_floor
from sdflow.metrics.resize import imresize_down

#: Standard deviation of Y (BT.601, 8-bit scale) for unit white noise in each RGB channel.
Y_NOISE_GAIN = math.sqrt(0.256788**2 + 0.504129**2 + 0.097906**2)

#: Sigmas (HR pixels) tried by :func:`fit_gaussian_degradation`; the fit interpolates.
SIGMA_GRID = tuple(round(0.25 * i, 2) for i in range(0, 17))  # 0 .. 4

#: Extra colour blur (HR pixels, added to the fitted sigma) tried for the colour sigma.
COLOUR_STEPS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0)


def gaussian_blur_sigma(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``x`` ``[B, C, H, W]`` with standard deviation ``sigma``
    pixels (a 6-sigma support, reflect-padded where the image allows); 0 returns ``x``."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3.0 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    k = (k / k.sum()).to(x)
    c, size = x.shape[1], 2 * radius + 1
    mode = "reflect" if min(x.shape[2:]) > radius else "replicate"
    y = F.pad(x, (radius,) * 4, mode=mode)
    y = F.conv2d(y, k.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(y, k.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def blur_luma_chroma(x: Tensor, sigma: float, colour_sigma: float | None = None) -> Tensor:
    """Gaussian blur of ``x`` (RGB ``[B, 3, H, W]``) whose brightness (BT.601 luma) is blurred
    by ``sigma`` and whose colour differences by ``colour_sigma`` (None: ``sigma`` too, one
    RGB blur). The luma of the result is the luma blurred by ``sigma`` either way."""
    if colour_sigma is None or colour_sigma == sigma:
        return gaussian_blur_sigma(x, sigma)
    ycc = luma_chroma(x)
    ycc = torch.cat([gaussian_blur_sigma(ycc[:, :1], sigma),
                     gaussian_blur_sigma(ycc[:, 1:], colour_sigma)], dim=1)
    return rgb_from_luma_chroma(ycc)


def degrade(x: Tensor, scale: int, sigma: float, noise: Tensor | None = None,
            noise_std: float = 0.0, colour_sigma: float | None = None) -> Tensor:
    """``bicubic_down(G_sigma * x) + noise_std * noise`` for images in [-1, 1]; ``noise``
    (standard normal, the LR shape) and ``noise_std`` (grey levels) are optional, and
    ``colour_sigma`` blurs the colour differences more than the brightness
    (:func:`blur_luma_chroma`)."""
    low = imresize_down(blur_luma_chroma(x, sigma, colour_sigma), scale)
    if noise is not None and noise_std > 0:
        low = low + noise.to(low) * (2.0 * noise_std / 255.0)
    return low


@dataclass(frozen=True)
class GaussianFit:
    """The fitted degradation and the statistics it was fitted on."""

    sigma: float  # Gaussian blur, HR pixels
    noise: float  # white noise std, grey levels (8-bit scale)
    colour_sigma: float  # Gaussian blur of the colour differences, HR pixels (>= sigma)
    real_blur: float  # mean blur index of the real LR images
    real_noise: float  # mean noise floor of the real LR images (noise_floor, grey levels)
    bicubic_blur: float  # the same for plain bicubic x1/s of the HR images
    fitted_blur: float  # ... and for the fitted degradation (blur and noise)
    fitted_noise: float
    real_colour: float  # mean colour detail of the real LR images (colour_detail)
    fitted_colour: float  # ... and of the fitted degradation (with colour_sigma)
    lr_images: int
    hr_images: int

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def _centre(img: np.ndarray, side: int, multiple: int) -> np.ndarray:
    h, w = img.shape[:2]
    side_h = min(side, h) // multiple * multiple
    side_w = min(side, w) // multiple * multiple
    top, left = (h - side_h) // 2, (w - side_w) // 2
    return np.ascontiguousarray(img[top:top + side_h, left:left + side_w, :3])


def _stats(images: Sequence[np.ndarray]) -> tuple[float, float]:
    return (float(np.mean([blur_index(i) for i in images])),
            float(np.mean([noise_floor(i) for i in images])))


def _colour(images: Sequence[np.ndarray]) -> float:
    return float(np.mean([colour_detail(i) for i in images]))


def _crossing(xs: Sequence[float], ys: Sequence[float], target: float) -> float:
    """Where the piecewise-linear ``ys(xs)`` (``ys`` rising or falling) first reaches
    ``target``; the ends clamp."""
    sign = 1.0 if ys[-1] >= ys[0] else -1.0
    if sign * (target - ys[0]) <= 0:
        return xs[0]
    for i in range(1, len(xs)):
        if sign * (ys[i] - target) >= 0:
            t = (target - ys[i - 1]) / (ys[i] - ys[i - 1]) if ys[i] != ys[i - 1] else 1.0
            return xs[i - 1] + t * (xs[i] - xs[i - 1])
    return xs[-1]


def fit_gaussian_degradation(lr_images: Sequence[np.ndarray], hr_images: Sequence[np.ndarray],
                             scale: int = 4, lr_crop: int = 128,
                             sigmas: Sequence[float] = SIGMA_GRID, fit_noise: bool = True,
                             fit_colour: bool = True, seed: int = 0) -> GaussianFit:
    """Fit sigma and noise so that degraded HR images match the real LR's statistics.

    ``lr_images`` and ``hr_images`` are 8-bit RGB arrays ``[H, W, 3]`` of *different*
    scenes; their centre crops (``lr_crop`` LR pixels, ``scale * lr_crop`` HR pixels, or the
    whole image if smaller) are measured. Blur and noise are fitted jointly, because noise
    lowers the blur index (it adds fine detail): for every sigma of the grid, the white
    noise that brings the noise floor up to the real LR's is added (quadrature, from the
    blurred images' own floor), and the blur index is measured *with* that noise; sigma
    is where it crosses the real LR's (linear interpolation; the grid's ends clamp, so a
    domain sharper than bicubic gets sigma 0). The noise is then refined by two secant
    steps on the measured noise floor. Last (``fit_colour``), the colour differences get
    the blur ``colour_sigma >= sigma`` at which the degraded images, with that noise, have
    the real LR's mean colour detail (interpolated over :data:`COLOUR_STEPS`; colour that
    is sharper than the brightness is not fitted: ``colour_sigma = sigma`` then, as with
    ``fit_colour=False``). The noise draws come from ``seed``.
    """
    if not lr_images or not hr_images:
        raise ValueError("the Gaussian fit needs at least one LR and one HR image")
    lr = [_centre(i, lr_crop, 1) for i in lr_images]
    hr = [image_to_tensor(_centre(i, scale * lr_crop, scale)).double() for i in hr_images]
    if min(min(i.shape[:2]) for i in lr) < 16 or min(min(t.shape[2:]) for t in hr) < 16 * scale:
        raise ValueError(f"the Gaussian fit needs LR images of at least 16x16 pixels and HR "
                         f"images of at least {16 * scale}x{16 * scale}")
    real_blur, real_noise = _stats(lr)

    def lows(sigma: float, colour_sigma: float | None = None) -> list[Tensor]:
        with torch.no_grad():
            return [degrade(t, scale, sigma, colour_sigma=colour_sigma) for t in hr]

    def noisy(images: list[Tensor], noise: float) -> list[np.ndarray]:
        g = torch.Generator().manual_seed(seed)
        out = []
        for low in images:
            eps = torch.randn(low.shape, generator=g, dtype=low.dtype)
            out.append(tensor_to_image(low + eps * (2.0 * noise / 255.0) if noise > 0 else low))
        return out

    def measured(images: list[Tensor], noise: float) -> tuple[float, float]:
        return _stats(noisy(images, noise))

    def noise_for(clean_noise: float) -> float:
        """Per-channel RGB noise std that adds the missing floor in quadrature (the floor is
        measured on Y, where independent RGB noise shrinks by :data:`Y_NOISE_GAIN`)."""
        missing = math.sqrt(max(real_noise**2 - clean_noise**2, 0.0)) if fit_noise else 0.0
        return missing / Y_NOISE_GAIN

    grid = sorted(set(float(s) for s in sigmas))
    table = []  # (sigma, added noise, blur with it)
    bicubic_blur = None
    for sigma in grid:
        images = lows(sigma)
        blur0, noise0 = measured(images, 0.0)
        if sigma == 0.0:
            bicubic_blur = blur0
        added = noise_for(noise0)
        table.append((sigma, added, measured(images, added)[0] if added > 0 else blur0))
    if bicubic_blur is None:
        bicubic_blur = measured(lows(0.0), 0.0)[0]
    blurs = [b for _, _, b in table]
    if real_blur <= blurs[0]:
        sigma, added = table[0][:2]
    elif real_blur >= max(blurs):
        sigma, added = max(table, key=lambda row: row[2])[:2]
    else:
        i = next(i for i in range(1, len(grid)) if blurs[i] >= real_blur)
        t = (real_blur - blurs[i - 1]) / max(blurs[i] - blurs[i - 1], 1e-12)
        sigma = round(grid[i - 1] + t * (grid[i] - grid[i - 1]), 3)
        added = table[i - 1][1] + t * (table[i][1] - table[i - 1][1])
    images = lows(sigma)
    blur, noise = measured(images, added)
    for _ in range(2):  # secant-like refinement of the noise on the measured estimate
        if not fit_noise or added <= 0 or abs(noise - real_noise) < 0.02:
            break
        added = max(0.0, added * real_noise / max(noise, 1e-6)) if noise > 0 else added
        blur, noise = measured(images, added)
    added = round(float(added), 3)
    real_colour = _colour(lr)
    colour_sigma = float(sigma)
    fitted_colour = _colour(noisy(images, added))
    if fit_colour and fitted_colour > real_colour:
        steps = [min(colour_sigma + step, 8.0) for step in COLOUR_STEPS]
        colours = [fitted_colour] + [_colour(noisy(lows(sigma, c), added)) for c in steps[1:]]
        colour_sigma = round(_crossing(steps, colours, real_colour), 3)
        fitted_colour = _colour(noisy(lows(sigma, colour_sigma), added))
    return GaussianFit(sigma=float(sigma), noise=added, colour_sigma=colour_sigma,
                       real_blur=real_blur, real_noise=real_noise, bicubic_blur=bicubic_blur,
                       fitted_blur=blur, fitted_noise=noise, real_colour=real_colour,
                       fitted_colour=fitted_colour, lr_images=len(lr), hr_images=len(hr))
