"""Per-pixel uncertainty of a flow model's samples, and a small colour map to show it.

``std_map`` is the standard deviation across N >= 2 samples at each pixel, in 8-bit grey
levels (0..255 scale, whatever the bit depth of the image), combined over colour channels
as a root mean square: ``u = sqrt(mean_c var_n(x[n, c]))`` with the unbiased variance
over samples. A pixel where every sample agrees has u = 0; u = 10 means the samples
typically differ there by about 10 grey levels.

Two files are written per image: a colour-mapped 8-bit PNG (viridis-like, dark = certain,
yellow = uncertain; scaled to ``vmax`` grey levels, recorded in the PNG text) and the raw
map as 16-bit gray PNG with ``value = round(256 * u)``, i.e. divide by 256 to get grey
levels (resolution 1/256 level; the largest possible u, 127.5, is 32640).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Raw map: stored value = RAW_SCALE * std in 8-bit grey levels.
RAW_SCALE = 256

#: Anchors of a perceptually ordered dark-blue -> green -> yellow map (viridis-like),
#: at equal steps from 0 to 1; colours in between are interpolated linearly.
_ANCHORS = np.array([
    (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
    (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37)], dtype=np.float64)


def colormap(values: np.ndarray, vmax: float) -> np.ndarray:
    """``H x W`` values -> ``H x W x 3`` uint8 colours, 0 -> dark blue, >= vmax -> yellow."""
    t = np.clip(np.asarray(values, np.float64) / max(float(vmax), 1e-12), 0.0, 1.0)
    pos = t * (len(_ANCHORS) - 1)
    i = np.minimum(pos.astype(np.int64), len(_ANCHORS) - 2)
    frac = (pos - i)[..., None]
    rgb = _ANCHORS[i] * (1.0 - frac) + _ANCHORS[i + 1] * frac
    return np.round(rgb).astype(np.uint8)


def std_map(samples: Tensor) -> np.ndarray:
    """``[N, C, H, W]`` samples in [0, 1] (N >= 2) -> ``H x W`` float32 standard deviation
    across samples in 8-bit grey levels (RMS over channels)."""
    if samples.shape[0] < 2:
        raise ValueError("an uncertainty map needs at least 2 samples (--samples 2 or more)")
    var = samples.double().var(dim=0, unbiased=True).mean(dim=0)
    return (torch.sqrt(var) * 255.0).float().numpy()


def raw16(u: np.ndarray) -> np.ndarray:
    """The raw map as uint16: ``round(256 * u)``."""
    return np.clip(np.round(u * RAW_SCALE), 0, 65535).astype(np.uint16)


def default_vmax(u: np.ndarray) -> float:
    """Colour scale when none is given: the 99.5th percentile of the map (at least 1 grey
    level), so a few extreme pixels do not wash the map out."""
    return max(1.0, float(np.percentile(u, 99.5))) if u.size else 1.0
