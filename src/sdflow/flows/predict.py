"""The predict step of a lifting scheme, as a flow layer: ``b -> b - P(a)``.

In a wavelet lifting scheme the detail coefficients are replaced by what the coarse
coefficients cannot predict about them. In SDFlow the HR flow splits ``[z_c, z_h]`` and the
HF flow models ``z_h`` given ``z_c``; at ``z_h' = 0`` (SR at tau = 0) the decoded details are
the HF flow's mode. Untrained, that mode is ~0, and with the Haar initialisation (or any
2x2-squeeze flow near it) zero details decode to a 4x4-blocky image. A linear predictor
``P`` (a KxK convolution of ``z_c``) subtracted before the HF flow makes the mode start at
the least-squares estimate of the details from their neighbourhood of content instead,
so that the HF flow models only the residual. The map is a shift by a function of the
other half, so its Jacobian is unit-triangular: log-det 0, exactly invertible.

``P`` is learned with the rest of the model; its data-dependent initialisation (inside
:func:`sdflow.flows.data_init`, like ActNorm's) solves the ridge-regularised normal
equations on the init batch, pooled over ranks when several processes train.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.flows.actnorm import DataInitialized


class LinearPredictor(DataInitialized):
    """``P(a)``: a ``kernel x kernel`` convolution (reflect-padded) from ``in_channels`` to
    ``out_channels`` plus a bias, zero until initialised from data."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, ridge: float = 1e-3):
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the predictor kernel must be odd and >= 1, got {kernel}")
        self.kernel = kernel
        self.ridge = ridge
        self.weight = nn.Parameter(torch.zeros(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self._setup_data_init()

    def _pad(self, a: Tensor) -> Tensor:
        p = self.kernel // 2
        if p == 0:
            return a
        mode = "reflect" if min(a.shape[2:]) > p else "replicate"
        return F.pad(a, (p, p, p, p), mode=mode)

    def forward(self, a: Tensor) -> Tensor:
        return F.conv2d(self._pad(a), self.weight, self.bias)

    @torch.no_grad()
    def initialize(self, a: Tensor, b: Tensor) -> None:
        """Least-squares fit of ``b`` from the ``kernel x kernel`` neighbourhoods of ``a``
        (with a bias), ridge ``ridge * mean(diag)``; statistics pooled over ranks."""
        cols = F.unfold(self._pad(a.double()), self.kernel)  # [B, C k k, h w]
        feats = torch.cat([cols, torch.ones_like(cols[:, :1])], dim=1)
        feats = feats.transpose(1, 2).reshape(-1, feats.shape[1])  # [N, C k k + 1]
        target = b.double().flatten(2).transpose(1, 2).reshape(-1, b.shape[1])
        gram = feats.T @ feats
        cross = feats.T @ target
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(gram, op=dist.ReduceOp.SUM)
            dist.all_reduce(cross, op=dist.ReduceOp.SUM)
        n = gram.shape[0]
        reg = self.ridge * gram.diagonal().mean() * torch.eye(n, dtype=gram.dtype,
                                                              device=gram.device)
        reg[-1, -1] = 0.0  # the bias is not shrunk
        solution = torch.linalg.solve(gram + reg, cross)  # [C k k + 1, out]
        self.weight.copy_(solution[:-1].T.reshape_as(self.weight).to(self.weight.dtype))
        self.bias.copy_(solution[-1].to(self.bias.dtype))
        self.initialized.fill_(1)
