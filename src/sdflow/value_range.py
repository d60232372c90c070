"""The models' pixel range. Inside sdflow images are float tensors in [-1, 1] (the SDFlow
authors' convention); files, ONNX graphs, PIL and the VGG/AlexNet backbones use [0, 1]
(or integers over their peak). Every conversion between the two goes through these
functions, so the convention lives in one place."""

from __future__ import annotations

from torch import Tensor


def to_signed(x01: Tensor) -> Tensor:
    """[0, 1] -> [-1, 1] (no clamping)."""
    return x01 * 2.0 - 1.0


def to_unit(x: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1] (no clamping)."""
    return (x + 1.0) * 0.5
