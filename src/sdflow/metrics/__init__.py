"""Image-quality metrics with explicit conventions (see docs/evaluation.md).

Fidelity metrics take 8-bit images (uint8 ``H x W x 3`` arrays or ``[3, H, W]`` tensors):
model outputs are quantised first, as a saved image would be.
"""

from sdflow.metrics.color import rgb_to_y
from sdflow.metrics.consistency import lr_psnr, pairwise_lpips, pixel_std
from sdflow.metrics.degradation import blur_index, noise_sigma
from sdflow.metrics.lpips import LPIPS
from sdflow.metrics.psnr_ssim import as_uint8_tensor, psnr, ssim
from sdflow.metrics.resize import imresize, imresize_uint8

__all__ = [
    "LPIPS",
    "as_uint8_tensor",
    "blur_index",
    "imresize",
    "imresize_uint8",
    "lr_psnr",
    "noise_sigma",
    "pairwise_lpips",
    "pixel_std",
    "psnr",
    "rgb_to_y",
    "ssim",
]
