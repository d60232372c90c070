"""Metrics of SR outputs beyond fidelity: LR-consistency and diversity of samples."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from sdflow.metrics.lpips import LPIPS
from sdflow.metrics.psnr_ssim import psnr
from sdflow.metrics.resize import imresize_uint8


def lr_psnr(sr: np.ndarray, lr: np.ndarray, scale: int = 4) -> float:
    """LR-consistency: PSNR (RGB, no shave, peak 255) between the 8-bit MATLAB-bicubic
    ``1/scale`` downscaling of an 8-bit SR output and its LR input."""
    down = imresize_uint8(sr, scale=1.0 / scale)
    if down.shape != lr.shape:
        raise ValueError(f"downscaled SR {down.shape[:2]} does not match LR {lr.shape[:2]}")
    return psnr(down, lr, shave=0, color="rgb")


def pixel_std(samples: Sequence[np.ndarray]) -> float:
    """Mean over pixels and channels of the per-pixel standard deviation (population,
    ddof = 0) across N >= 2 8-bit samples, in grey levels [0, 255]."""
    if len(samples) < 2:
        raise ValueError("diversity needs at least two samples")
    stack = np.stack([s.astype(np.float64) for s in samples])
    return float(stack.std(axis=0).mean())


def pairwise_lpips(samples: Sequence[np.ndarray], lpips: LPIPS) -> float:
    """Mean LPIPS over all N(N-1)/2 pairs of N >= 2 8-bit samples."""
    if len(samples) < 2:
        raise ValueError("diversity needs at least two samples")
    values = [lpips.distance(a, b) for a, b in itertools.combinations(samples, 2)]
    return float(np.mean(values))
