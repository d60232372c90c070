"""MATLAB-compatible bicubic ``imresize`` in torch (differentiable, any float dtype).

Reproduces MATLAB's ``imresize(A, scale)`` / ``imresize(A, [h w])`` with the default
``'bicubic'`` method on double images:

- Keys' cubic kernel with ``a = -0.5``, support 4;
- when shrinking (scale < 1) the kernel is stretched by ``1/scale`` and scaled by ``scale``
  (MATLAB's ``'Antialiasing', true``, its default for bicubic);
- output pixel ``x`` (1-based) samples input coordinate ``u = x/scale + (1 - 1/scale)/2``;
- weights of each output pixel are normalised to sum to one;
- indices outside the image are mirrored half-sample symmetrically (``1..n, n..1``);
- output size ``ceil(scale * size)`` when a scale is given; the weights then use that
  scale, not ``out/in``;
- the dimension with the smaller scale factor is resized first (rows first on ties).

:func:`imresize` neither clamps nor rounds; it computes the weights in float64, casts them
to the input's dtype and forms weighted sums of gathered rows/columns, so gradients flow to
the input (losses of training code use it). :func:`imresize_uint8` is MATLAB's path for
uint8 images (8-bit rounding after each axis) and is what makes 8-bit images here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

KERNEL_WIDTH = 4.0


def cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2))
    return inner + outer


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[Tensor, Tensor]:
    """Weights ``[out, P]`` (float64) and 0-based input indices ``[out, P]`` of one axis,
    as MATLAB's ``contributions`` computes them (zero-weight edge taps removed)."""
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be >= 1, got in={in_length}, out={out_length}")
    width = KERNEL_WIDTH
    stretch = scale < 1 and antialiasing
    if stretch:
        width = KERNEL_WIDTH / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if stretch else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Half-sample symmetric mirror of the 1-based indices: 1..n, n..1, repeated.
    period = 2 * in_length
    mirror = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    index = mirror[torch.remainder(indices.long() - 1, period)]
    keep = (weights != 0).any(dim=0)
    return weights[:, keep], index[:, keep]


def output_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(scale * size)``."""
    return int(math.ceil(scale * size[0])), int(math.ceil(scale * size[1]))


def _resize_axis(x: Tensor, dim: int, out_length: int, scale: float,
                 antialiasing: bool) -> Tensor:
    weights, index = contributions(x.shape[dim], out_length, scale, antialiasing)
    weights = weights.to(device=x.device, dtype=x.dtype)
    index = index.to(x.device)
    view = [1] * x.ndim
    view[dim] = out_length
    out = None
    # One gather per tap keeps memory at the size of the output.
    for p in range(weights.shape[1]):
        term = x.index_select(dim, index[:, p]) * weights[:, p].view(view)
        out = term if out is None else out + term
    assert out is not None
    return out


def _check_and_plan(x: Tensor, scale: float | None, size: tuple[int, int] | None
                    ) -> list[tuple[int, int, float]]:
    """``(dim, out_length, scale)`` per axis, in MATLAB's order."""
    if x.ndim < 2:
        raise ValueError(f"imresize needs at least 2 dimensions [..., H, W], got {x.ndim}")
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale and size")
    in_h, in_w = x.shape[-2], x.shape[-1]
    if scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        out_h, out_w = output_size((in_h, in_w), scale)
        scales = (float(scale), float(scale))
    else:
        assert size is not None
        out_h, out_w = int(size[0]), int(size[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output size must be positive, got {size}")
        scales = (out_h / in_h, out_w / in_w)
    plan = [(x.ndim - 2, out_h, scales[0]), (x.ndim - 1, out_w, scales[1])]
    # MATLAB resizes the axis with the smaller scale first (stable sort: rows on ties).
    return sorted(plan, key=lambda step: step[2])


def imresize(x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
             antialiasing: bool = True) -> Tensor:
    """Resize float images ``[..., H, W]`` like MATLAB ``imresize(x, scale)`` (bicubic) on
    double images. Differentiable; the result is neither clamped nor rounded.

    Give either ``scale`` (output ``ceil(scale * H) x ceil(scale * W)``) or ``size``
    ``(h, w)`` (then each axis uses the scale ``out / in``).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize needs a float tensor, got {x.dtype}; for 8-bit images use "
                        "imresize_uint8")
    for dim, length, s in _check_and_plan(x, scale, size):
        x = _resize_axis(x, dim, length, s, antialiasing)
    return x


def _round_uint8(x: Tensor) -> Tensor:
    """MATLAB's float -> uint8 conversion: round half away from zero, saturate."""
    return torch.floor(x + 0.5).clamp(0, 255)


def imresize_uint8(img: np.ndarray, scale: float | None = None,
                   size: tuple[int, int] | None = None) -> np.ndarray:
    """MATLAB ``imresize`` (bicubic, antialiased) of an 8-bit ``H x W x C`` image.

    Like MATLAB on a uint8 image, each axis pass is rounded to 8 bits before the next one.
    (Checked on the Set5/Set14/BSD100 LR images, which were made with MATLAB: this matches
    them in about 99.95% of interior pixels, a single final rounding in about 90%.)
    """
    if img.dtype != np.uint8:
        raise TypeError(f"imresize_uint8 takes uint8 images, got {img.dtype}")
    squeeze = img.ndim == 2
    arr = img[:, :, None] if squeeze else img
    arr = np.require(arr, requirements=["C", "W"])  # a read-only input is copied
    x = torch.from_numpy(arr).permute(2, 0, 1).to(torch.float64)
    for dim, length, s in _check_and_plan(x, scale, size):
        x = _round_uint8(_resize_axis(x, dim, length, s, True))
    out = x.permute(1, 2, 0).numpy().astype(np.uint8)
    return out[:, :, 0] if squeeze else out
