"""Volume-preserving reshapes: squeeze (pixel-unshuffle by 2) and its inverse."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from sdflow.flows.base import Bijection, zero_logdet


class Squeeze(Bijection):
    """``(C, H, W) -> (4C, H/2, W/2)``, output channel ``4c + 2dy + dx`` (pixel-unshuffle).

    H and W must be even; the models pad their inputs so they always are.
    """

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze needs even height and width, got {tuple(x.shape[2:])}")
        return F.pixel_unshuffle(x, 2), zero_logdet(x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(y, 2), zero_logdet(y)


class Unsqueeze(Bijection):
    """``(4C, H, W) -> (C, 2H, 2W)``: the inverse of :class:`Squeeze` as a forward layer."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(x, 2), zero_logdet(x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return Squeeze().forward(y)
