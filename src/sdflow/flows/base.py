"""The bijection interface shared by every flow layer.

Every layer maps data to latent in ``forward`` and back in ``inverse``::

    y, logdet = layer(x, cond)            # logdet = log|det dy/dx|, shape [B]
    x, logdet_inv = layer.inverse(y, cond)  # logdet_inv = log|det dx/dy| = -logdet

``cond`` is the conditioning tensor of conditional layers and must be ``None`` for
unconditional ones. Log-determinants are per sample so that a batch can hold
independent images.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every dimension but the first: ``[B, ...] -> [B]``."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def zero_logdet(x: Tensor) -> Tensor:
    return x.new_zeros(x.shape[0])


@runtime_checkable
class Bakeable(Protocol):
    """A layer that can fix its inference weights once (fold normalisations, precompute an
    inverse, pick a memory format): :func:`sdflow.prepare` calls ``bake`` on every module
    that has it, so a new layer with weights worth baking needs no edit there."""

    def bake(self, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        ...


class Bijection(nn.Module):
    """Base class: an invertible map with a per-sample log-determinant."""

    #: Conditional layers need ``cond``; unconditional ones reject it.
    conditional: bool = False

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _check_cond(self, cond: Tensor | None) -> None:
        if self.conditional and cond is None:
            raise ValueError(f"{type(self).__name__} is conditional: pass cond")
        if not self.conditional and cond is not None:
            raise ValueError(f"{type(self).__name__} is unconditional: cond must be None")


class Composite(Bijection):
    """A bijection made of members applied in order (forward) or in reverse order (inverse);
    log-determinants add up and the condition goes to the conditional members only, so
    conditional and unconditional layers can be mixed."""

    def members(self) -> list[Bijection]:
        raise NotImplementedError

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        logdet = zero_logdet(x)
        for layer in self.members():
            x, ld = layer(x, cond if layer.conditional else None)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        logdet = zero_logdet(y)
        for layer in reversed(self.members()):
            y, ld = layer.inverse(y, cond if layer.conditional else None)
            logdet = logdet + ld
        return y, logdet


class FlowSequence(Composite):
    """Composition of a list of bijections."""

    def __init__(self, layers: Iterable[Bijection]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.conditional = any(layer.conditional for layer in self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> Bijection:
        return self.layers[index]

    def members(self) -> list[Bijection]:
        return list(self.layers)
