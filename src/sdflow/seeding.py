"""Per-image random streams: one rule for every command that seeds by image.

An image's noise depends only on the run's seed and the image's name (for a batch: its
path relative to the input root), so an image gets the same output whatever else is
processed with it, and a single image rerun alone reproduces its output inside a batch.
"""

from __future__ import annotations

import zlib

import torch


def image_seed(seed: int, name: str) -> int:
    """``(seed * 1000003 + crc32(name)) mod 2**63``."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8"))) % (2**63)


def image_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded with :func:`image_seed`."""
    return torch.Generator().manual_seed(image_seed(seed, name))
