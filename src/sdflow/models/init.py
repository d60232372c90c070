"""Alternative initialisations of SDFlow for training from scratch.

``haar_init_`` makes the HR flow start as a wavelet transform: every invertible 1x1 of the
HR levels starts as the identity, except the first one after each squeeze, which starts as
an orthonormal 2x2 Haar transform (block average first, details after). With the couplings
at their identity init, z_c is then the 4x4 block mean of the image (ActNorm-normalised)
and z_h its Haar details. The LR flow's 1x1s start as the identity, so z_LR starts as the
(normalised) LR image itself. Both sides thus start in the same space, "content = a
downscaled image", instead of two unrelated random channel mixes that the content loss
would first have to align. The authors' code uses random orthogonal 1x1s (``"random"``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from sdflow.flows import FlowLevel, InvertibleConv1x1
from sdflow.models.sdflow import SDFlow

INIT_SCHEMES = ("random", "haar")


@torch.no_grad()
def set_invconv_weight_(layer: InvertibleConv1x1, weight: Tensor) -> None:
    """Re-parameterise ``layer`` so that its weight equals ``weight`` (LU with pivoting)."""
    p, lower, upper = torch.linalg.lu(weight.double())
    diag = torch.diagonal(upper)
    if bool((diag == 0).any()):
        raise ValueError("the weight is singular")
    dtype = layer.lower.dtype
    layer.perm.copy_(p.to(dtype))
    layer.lower.copy_(torch.tril(lower, -1).to(dtype))
    layer.upper.copy_(torch.triu(upper, 1).to(dtype))
    layer.sign_diag.copy_(torch.sign(diag).to(dtype))
    layer.log_abs_diag.copy_(torch.log(diag.abs()).to(dtype))


def haar_matrix(in_channels: int) -> Tensor:
    """Orthonormal Haar transform of squeezed channels ``4c + 2dy + dx`` (c < in_channels):
    output channel c is the 2x2 average of channel c (times 2), channels
    ``in_channels + 3c + {0, 1, 2}`` its horizontal, vertical and diagonal details."""
    block = torch.tensor([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]],
                         dtype=torch.float64) / 2
    n = 4 * in_channels
    w = torch.zeros(n, n, dtype=torch.float64)
    for c in range(in_channels):
        cols = slice(4 * c, 4 * c + 4)
        w[c, cols] = block[0]
        for k in range(3):
            w[in_channels + 3 * c + k, cols] = block[k + 1]
    return w


@torch.no_grad()
def haar_init_(model: SDFlow) -> SDFlow:
    """Apply the Haar initialisation to ``model``'s HR and LR flows (before the ActNorm
    data init)."""
    for module in model.lr_flow.modules():
        if isinstance(module, InvertibleConv1x1):
            set_invconv_weight_(module, torch.eye(module.channels))
    for level in model.hr_flow.levels:
        assert isinstance(level, FlowLevel)
        channels = level.transition_in[0].invconv.channels
        eye = torch.eye(channels)
        for module in level.modules():
            if isinstance(module, InvertibleConv1x1):
                set_invconv_weight_(module, eye)
        set_invconv_weight_(level.transition_in[0].invconv, haar_matrix(channels // 4))
    return model


def apply_init(model: SDFlow, scheme: str) -> SDFlow:
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose from {INIT_SCHEMES}")
    return haar_init_(model) if scheme == "haar" else model
