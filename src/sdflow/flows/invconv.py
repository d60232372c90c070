"""Invertible 1x1 convolution with an LU-parameterised weight (Glow)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.flows.base import Bijection


class InvertibleConv1x1(Bijection):
    """``y = W x`` at every pixel, with ``W = P (L + I) (U + diag(sign * exp(log_abs_diag)))``.

    ``P`` and the signs are fixed buffers; the strictly-lower ``L``, strictly-upper
    ``U`` and ``log_abs_diag`` are learned, so log|det W| = sum(log_abs_diag) costs
    nothing and W stays invertible. Initialised from the LU factors of a random
    orthogonal matrix (drawn from ``generator`` when given).
    """

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        self.channels = channels
        q, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator,
                                           dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        diag = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_diag", torch.sign(diag).float())
        self.lower = nn.Parameter(torch.tril(lower, -1).float())
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_abs_diag = nn.Parameter(torch.log(diag.abs()).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1),
                             persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        diag = torch.diag(self.sign_diag * torch.exp(self.log_abs_diag))
        upper = self.upper * self.lower_mask.T + diag
        return lower, upper

    def _compute_weight(self) -> Tensor:
        lower, upper = self._factors()
        return self.perm @ lower @ upper

    def _compute_inverse_weight(self) -> Tensor:
        """``W^{-1} = U^{-1} L^{-1} P^T`` by triangular solves (better conditioned than inv(W)),
        in float32 at least: the solves have no float16/bfloat16 kernels, and a model cast
        whole to half precision (spandrel's ``.to(dtype)``) still needs its inverse."""
        lower, upper = self._factors()
        dtype = lower.dtype
        work = torch.promote_types(dtype, torch.float32)
        lower, upper, eye = lower.to(work), upper.to(work), self.eye.to(work)
        l_inv = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        u_inv = torch.linalg.solve_triangular(upper, eye, upper=True)
        return (u_inv @ l_inv @ self.perm.T.to(work)).to(dtype)

    def weight(self) -> Tensor:
        """``W``, computed from the factors on every call (a prepared model bakes it once:
        :func:`sdflow.prepare`)."""
        return self._compute_weight()

    def inverse_weight(self) -> Tensor:
        return self._compute_inverse_weight()

    def _logdet(self, x: Tensor) -> Tensor:
        return ((x.shape[2] * x.shape[3]) * self.log_abs_diag.sum()).expand(x.shape[0])

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = F.conv2d(x, self.weight()[:, :, None, None])
        return y, self._logdet(x)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x = F.conv2d(y, self.inverse_weight()[:, :, None, None])
        return x, -self._logdet(y)
