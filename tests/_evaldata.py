"""Small paired data and a tiny model for evaluation tests (built from ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import sdflow
from sdflow.imageio import image_to_tensor, read_image, write_image
from sdflow.models import SDFlow, SDFlowConfig

NAMES = ("Canon_031", "Nikon_035")
LR_BOX = (40, 40, 32)  # top, left, size of the LR crop; the HR crop is 4x


def make_pairs(shared: Path, root: Path) -> Path:
    """``root/LR/*.png`` (32x32) and ``root/HR/*.png`` (128x128): aligned crops of two
    RealSR validation pairs."""
    top, left, size = LR_BOX
    val = shared / "data" / "RealSR_x4" / "val"
    for name in NAMES:
        lr = read_image(val / "LR" / f"{name}.png").rgb[top : top + size, left : left + size]
        hr = read_image(val / "HR" / f"{name}.png").rgb[
            4 * top : 4 * (top + size), 4 * left : 4 * (left + size)]
        write_image(root / "LR" / f"{name}.png", lr)
        write_image(root / "HR" / f"{name}.png", hr)
    return root


def make_model(data: Path, path: Path) -> Path:
    """A tiny "lite" SDFlow, ActNorm-initialised on one real crop pair, saved to ``path``."""
    model = SDFlow(SDFlowConfig.preset("lite"), seed=0)
    name = f"{NAMES[0]}.png"
    model.initialize_actnorm(image_to_tensor(read_image(data / "HR" / name).rgb),
                             image_to_tensor(read_image(data / "LR" / name).rgb))
    sdflow.save(model, path, notes="test model, untrained")
    return path


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run on one intra-op thread: these models are tiny, and on a machine whose two cores
    are busy with another torch process, two spinning OpenMP threads slow them ~50x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
