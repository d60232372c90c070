"""Inference on real images: tiled SR and downscaling with one noise field per image, every
common input kind, non-finite retries, uncertainty maps, and the batch runner behind
``sdflow sr`` / ``sdflow downscale`` (:mod:`sdflow.inference.batch`)."""

from sdflow.inference.pipeline import (
    ImageResult,
    ImageSizeError,
    InferenceWarning,
    SampleInfo,
    downscale,
    process,
    super_resolve,
)
from sdflow.inference.tiling import (
    DEFAULT_DS_OVERLAP,
    DEFAULT_SR_OVERLAP,
    tiled_downscale,
    tiled_sr,
)

__all__ = [
    "DEFAULT_DS_OVERLAP",
    "DEFAULT_SR_OVERLAP",
    "ImageResult",
    "ImageSizeError",
    "InferenceWarning",
    "SampleInfo",
    "downscale",
    "process",
    "super_resolve",
    "tiled_downscale",
    "tiled_sr",
]
