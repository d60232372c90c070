"""Colour conversion for metrics: RGB -> Y (luma) exactly as MATLAB ``rgb2ycbcr``.

ITU-R BT.601 with studio swing: for R, G, B in [0, 1],
``Y = 16 + 65.481 R + 128.553 G + 24.966 B``, so Y lies in [16, 235] (white 235, black 16).
The result is kept in floating point (MATLAB's ``rgb2ycbcr(im2double(img)) * 255``, the
way SR evaluation scripts compute it); it is not rounded to 8 bits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: BT.601 studio-swing luma row of MATLAB's ``rgb2ycbcr`` matrix (for RGB in [0, 1]).
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(rgb: Tensor | np.ndarray) -> Tensor:
    """Y of RGB values on the 8-bit scale [0, 255].

    ``rgb`` is a uint8 array ``H x W x 3`` or a tensor ``[..., 3, H, W]`` holding values on
    [0, 255] (any dtype). Returns float64 ``[..., 1, H, W]`` (``[1, H, W]`` for an array)
    with values in [16, 235].
    """
    if isinstance(rgb, np.ndarray):
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 RGB array, got shape {rgb.shape}")
        rgb = torch.from_numpy(np.require(rgb, requirements=["C", "W"])).permute(2, 0, 1)
    if rgb.ndim < 3 or rgb.shape[-3] != 3:
        raise ValueError(f"expected RGB tensors [..., 3, H, W], got shape {tuple(rgb.shape)}")
    x = rgb.to(torch.float64) / 255.0
    w = torch.tensor(Y_COEFFS, dtype=torch.float64, device=x.device).view(3, 1, 1)
    return (x * w).sum(dim=-3, keepdim=True) + Y_OFFSET


#: BT.601 rows for Y, Cb, Cr, full range and without offsets.
_LUMA_CHROMA = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def luma_chroma(rgb: Tensor) -> Tensor:
    """``[B, 3, H, W]`` RGB (any scale) -> BT.601 luma and the two colour differences on
    the same scale, without offsets: for spectra, where the mean does not matter, and for
    telling grey detail from colour detail."""
    m = torch.tensor(_LUMA_CHROMA, dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("ij,bjhw->bihw", m, rgb)


def rgb_from_luma_chroma(ycc: Tensor) -> Tensor:
    """The inverse of :func:`luma_chroma`: ``[B, 3, H, W]`` luma and colour differences
    back to RGB on the same scale."""
    m = torch.linalg.inv(torch.tensor(_LUMA_CHROMA, dtype=torch.float64)).to(ycc)
    return torch.einsum("ij,bjhw->bihw", m, ycc)
