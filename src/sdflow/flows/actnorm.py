"""Activation normalisation (Glow) with explicit, distributed-aware data initialisation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sdflow.flows.base import Bijection


class DataInitialized(nn.Module):
    """A layer with a data-dependent initialisation that runs only inside :func:`data_init`
    and only while its ``initialized`` buffer (saved in the state dict) is 0."""

    def _setup_data_init(self) -> None:
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))
        self._init_requested = False

    @property
    def is_initialized(self) -> bool:
        return bool(self.initialized.item())

    @property
    def wants_init(self) -> bool:
        return self._init_requested and not self.is_initialized


class ActNorm(Bijection, DataInitialized):
    """Per-channel affine map ``y = exp(log_scale) * (x + loc)``.

    The data-dependent initialisation (zero mean, unit variance per channel on a
    batch) never happens implicitly: it runs only inside :func:`data_init`, and only
    for layers whose ``initialized`` buffer is 0. The buffer is saved in the state
    dict, so a loaded model is never re-initialised. Under ``torch.distributed`` the
    statistics are pooled over all ranks, so every rank gets identical parameters.
    """

    def __init__(self, channels: int, eps: float = 1e-6, min_var: float = 1e-4):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.min_var = min_var
        self.loc = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self._setup_data_init()

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set loc/log_scale from the statistics of ``x`` (pooled across ranks)."""
        stats = torch.stack(
            [
                x.double().sum(dim=(0, 2, 3)),
                x.double().pow(2).sum(dim=(0, 2, 3)),
                torch.full((self.channels,), x.numel() / self.channels, dtype=torch.float64,
                           device=x.device),
            ]
        )
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        total, total_sq, count = stats
        mean = total / count
        var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
        var = torch.where(var < self.min_var, torch.ones_like(var), var)
        self.loc.copy_((-mean).view_as(self.loc).to(self.loc.dtype))
        self.log_scale.copy_(
            (-torch.log(var.sqrt() + self.eps)).view_as(self.log_scale).to(self.log_scale.dtype)
        )
        self.initialized.fill_(1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.wants_init:
            self.initialize(x)
        y = (x + self.loc) * torch.exp(self.log_scale)
        logdet = (x.shape[2] * x.shape[3]) * self.log_scale.sum()
        return y, logdet.expand(x.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = y * torch.exp(-self.log_scale) - self.loc
        logdet = -(y.shape[2] * y.shape[3]) * self.log_scale.sum()
        return x, logdet.expand(y.shape[0])


@contextmanager
def data_init(module: nn.Module) -> Iterator[None]:
    """Within this context, every not-yet-initialised ActNorm (and every other
    :class:`DataInitialized` layer) in ``module`` initialises itself from the first batch it
    sees in a forward pass.

    Run one forward pass on a representative batch inside it::

        with data_init(model):
            model.log_prob_hr(hr_batch)
    """
    layers = [m for m in module.modules() if isinstance(m, DataInitialized)]
    for layer in layers:
        layer._init_requested = True
    try:
        yield
    finally:
        for layer in layers:
            layer._init_requested = False


def mark_initialized(module: nn.Module) -> None:
    """Declare every data-initialised layer in ``module`` initialised (e.g. after loading
    parameters that were set by other means)."""
    for m in module.modules():
        if isinstance(m, DataInitialized):
            m.initialized.fill_(1)


def all_initialized(module: nn.Module) -> bool:
    return all(m.is_initialized for m in module.modules() if isinstance(m, DataInitialized))
