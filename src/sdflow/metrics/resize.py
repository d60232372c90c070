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

:func:`imresize` neither clamps nor rounds, and gradients flow to the input (losses of
training code use it). It has two implementations of the same operator:

- a fast path through PyTorch's antialiased bicubic
  (``interpolate(mode="bicubic", antialias=True, align_corners=False)``): that kernel is
  Keys' cubic with ``a = -0.5`` (the non-antialiased one uses ``a = -0.75``), stretched by
  the factor when shrinking and normalised per output pixel, with MATLAB's sample
  positions; only its edge handling differs (it drops taps outside the image and
  renormalises), so the input is first padded half-sample symmetrically (MATLAB's mirror)
  and the extra output cropped. Used for float32/float64 when each axis is an exact
  integer downscale (``H = k * h``, antialiased) or an exact power-of-two upscale, and the
  axis is at least as long as the padding. (For upscales by 3, 5, ... PyTorch computes
  the sample positions with a rounded ``1/k`` in the input's precision, which in float32
  drifts by ~1e-5 across a few hundred pixels, so those stay on the general path.)
- the general path: weights computed in float64 as MATLAB's ``contributions`` does, cast
  to the input's dtype, and weighted sums of gathered rows/columns; everything else.

The two agree to ~1e-15 in float64 (tests/test_metrics.py). Speed, general / fast, from
``python benchmarks/resize_speed.py --repeats 100`` (median, 2 threads, float32 8x3x96x96;
3 runs on a 2-core AMD EPYC, AVX2/AVX-512F, no AMX, shared with other jobs, torch 2.13
CPU): x1/4 (the training losses' case) 10-13x forward, 2.0-2.3x forward + backward (the
backward of PyTorch's antialiased kernel is most of the fast path's time); x4 of the
8x3x24x24 result 9-15x forward, 1.1-2.3x forward + backward.

:func:`imresize_uint8` is MATLAB's path for uint8 images (8-bit rounding after each axis)
and is what makes 8-bit images here; it always takes the general path, so that its
rounding of exact ties stays as it was.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_WIDTH = 4.0
#: dtypes of the fast path (those PyTorch's antialiased bicubic takes on CPU and CUDA)
FAST_DTYPES = (torch.float32, torch.float64)
#: mirrored rows/columns added per side before an upscale: the cubic reaches 2 pixels out
UP_PAD = 2


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


def _axis_factor(in_length: int, out_length: int, scale: float,
                 antialiasing: bool) -> int | None:
    """``k`` for an exact upscale by a power of two ``k`` (1 included), ``-k`` for an exact
    antialiased downscale by an integer ``k``; None where the fast path does not apply."""
    if out_length >= in_length:
        k = out_length // in_length
        if (out_length == k * in_length and k & (k - 1) == 0 and scale == k
                and in_length >= UP_PAD):
            return k
        return None
    k = in_length // out_length
    # pad 2k per side (the stretched kernel reaches 1.5k + 0.5 pixels past the edge centre)
    if (antialiasing and in_length == k * out_length and abs(scale * k - 1.0) <= 1e-12
            and in_length >= 2 * k):
        return -k
    return None


def fast_plan(x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None,
              antialiasing: bool = True) -> tuple[int, int] | None:
    """The per-axis factors ``(rows, columns)`` (see :func:`_axis_factor`) with which
    :func:`imresize` takes the fast path for these arguments, or None for the general
    path."""
    plan = _check_and_plan(x, scale, size)
    if x.dtype not in FAST_DTYPES or x.numel() == 0:
        return None
    factors = {dim: _axis_factor(x.shape[dim], length, s, antialiasing)
               for dim, length, s in plan}
    rows, cols = factors[x.ndim - 2], factors[x.ndim - 1]
    return None if rows is None or cols is None else (rows, cols)


def _mirror_pad(x: Tensor, dim: int, p: int) -> Tensor:
    """Half-sample symmetric padding (``c b a | a b c | c b a``), ``p <= size``."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, 0, p).flip(dim), x, x.narrow(dim, n - p, p).flip(dim)],
                     dim)


def _resize_interpolate(x: Tensor, factors: tuple[int, int]) -> Tensor:
    """The fast path: mirror-pad, PyTorch's antialiased bicubic, crop."""
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    x4 = x.reshape(-1, 1, h, w) if x.ndim < 4 else x.reshape(-1, *x.shape[-3:])
    sizes, crops = [], []
    for dim, n, k in ((-2, h, factors[0]), (-1, w, factors[1])):
        pad = UP_PAD if k > 0 else 2 * -k
        x4 = _mirror_pad(x4, dim, pad)
        sizes.append((n + 2 * pad) * k if k > 0 else (n + 2 * pad) // -k)
        crops.append(pad * k if k > 0 else pad // -k)
    y = F.interpolate(x4, size=(sizes[0], sizes[1]), mode="bicubic", antialias=True,
                      align_corners=False)
    (ch, cw), (oh, ow) = crops, (sizes[0] - 2 * crops[0], sizes[1] - 2 * crops[1])
    return y[..., ch : ch + oh, cw : cw + ow].reshape(*lead, oh, ow)


def _resize_general(x: Tensor, scale: float | None, size: tuple[int, int] | None,
                    antialiasing: bool) -> Tensor:
    """The general path: MATLAB's weights and gathers, one axis after the other."""
    for dim, length, s in _check_and_plan(x, scale, size):
        x = _resize_axis(x, dim, length, s, antialiasing)
    return x


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
    factors = fast_plan(x, scale, size, antialiasing)
    if factors is not None:
        return _resize_interpolate(x, factors)
    return _resize_general(x, scale, size, antialiasing)


def downscale_by(x: Tensor, k: int) -> Tensor:
    """MATLAB ``imresize(x, 1/k)`` (bicubic, antialiased) of float images ``[N, C, H, W]``
    whose sides are multiples of ``k`` and at least ``2k``: equal to :func:`imresize`, but
    written as a mirror pad and a strided convolution per axis, whose output size follows
    the input's symbolically, so an exported (ONNX) graph works at every input size.

    Output pixel i is centred at input ``k i + (k - 1) / 2`` and sees the 4k inputs within
    2k of it (the cubic kernel stretched k times), mirrored at the edges as MATLAB does."""
    if k == 1:
        return x
    d = torch.arange(4 * k, dtype=torch.float64) - (2 * k - 0.5)  # tap offsets from centre
    w = cubic(d / k)
    w = (w / w.sum()).to(x)
    c = x.shape[1]
    pad = 3 * k // 2  # taps reach 1.5k pixels past the first/last centre's block
    x = _mirror_pad(x, 2, pad)
    x = F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), stride=(k, 1), groups=c)
    x = _mirror_pad(x, 3, pad)
    return F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), stride=(1, k), groups=c)


def imresize_down(x: Tensor, k: int) -> Tensor:
    """``imresize(x, scale=1/k)`` of float images ``[N, C, H, W]``, through
    :func:`downscale_by` (exportable at any size) when the sides are multiples of ``k``."""
    h, w = x.shape[-2:]
    if x.ndim == 4 and h % k == 0 and w % k == 0 and h >= 2 * k and w >= 2 * k:
        return downscale_by(x, k)
    return imresize(x, scale=1.0 / k)


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
