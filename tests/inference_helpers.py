"""Small models and images for the inference tests (kept apart from helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def real_pixels(shared: Path, h: int, w: int, top: int = 60, left: int = 80) -> np.ndarray:
    """An ``h x w`` uint8 RGB crop of a real LR photo (read from ../shared, never copied
    into the repository)."""
    with Image.open(shared / "data/RealSR_x4/val/LR_full/Nikon_031.png") as img:
        arr = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(arr[top : top + h, left : left + w])


def one_thread():
    """Generator for an autouse fixture: run a test module on one PyTorch thread. These
    tests use small tensors, where one thread is as fast as two, and a busy shared CPU
    makes OpenMP's two-thread barriers many times slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
