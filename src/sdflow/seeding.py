"""Per-image random streams: one rule for every command that seeds by image.

An image's noise depends only on the run's seed and the image's key: its path relative to
the input root (a folder given on the command line; for a file given by itself, its name),
without the extension. So an image gets the same output whatever else is processed with
it, a single image rerun alone reproduces its output inside a batch of its folder, and a
format change (photo.png -> photo.jpg) keeps the noise. ``sdflow eval`` pairs files by
that key (flat folders) and seeds with it too.
"""

from __future__ import annotations

import secrets
import zlib
from pathlib import PurePath

import torch


def new_seed() -> int:
    """A fresh random seed for a job given none (recorded and shown, so it can be reused)."""
    return secrets.randbelow(2**31)


def image_key(rel: str | PurePath) -> str:
    """The seeding key of an image: its relative path, ``/``-separated, no extension."""
    return PurePath(rel).with_suffix("").as_posix()


def image_seed(seed: int, name: str) -> int:
    """``(seed * 1000003 + crc32(name)) mod 2**63``; a name that is not valid UTF-8 (a
    file name from an old share) is hashed by its original bytes."""
    return (seed * 1_000_003 + zlib.crc32(name.encode("utf-8", "surrogateescape"))) % (2**63)


def image_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded with :func:`image_seed`."""
    return torch.Generator().manual_seed(image_seed(seed, name))


def generator_from(seed: int | None,
                   generator: torch.Generator | None) -> torch.Generator | None:
    """``seed`` -> a CPU ``torch.Generator`` seeded with it (else ``generator`` as given);
    both together is an error. The ``seed=`` keyword of the model and image APIs."""
    if seed is None:
        return generator
    if generator is not None:
        raise ValueError("pass either seed= or generator=, not both")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return torch.Generator().manual_seed(seed)
