"""Numerical checks of a flow model: exact invertibility and log-determinants against the
autograd Jacobian. Used by ``sdflow selfcheck`` and by the test-suite."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sdflow.flows import ActNorm, Bijection


@torch.no_grad()
def perturb_parameters_(module: nn.Module, std: float = 0.02,
                        generator: torch.Generator | None = None) -> nn.Module:
    """Add N(0, std^2) noise to every parameter except ActNorm's, so zero-initialised
    layers (coupling outputs, injectors) stop being the identity. For testing only."""
    skip = {id(p) for m in module.modules() if isinstance(m, ActNorm) for p in m.parameters()}
    for p in module.parameters():
        if id(p) not in skip:
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64)
            p.add_(noise.to(p) * std)
    return module


def jacobian_logdet(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``log|det J|`` of ``fn`` at a single sample ``x`` (``[1, ...]``), by autograd."""
    n = x.numel()
    jac = torch.autograd.functional.jacobian(lambda v: fn(v.view_as(x)).reshape(-1),
                                             x.reshape(-1), vectorize=True)
    if jac.shape != (n, n):
        raise ValueError(f"not a square Jacobian: {tuple(jac.shape)}")
    return torch.linalg.slogdet(jac)[1]


@dataclass
class BijectionCheck:
    name: str
    roundtrip_error: float  # max |inverse(forward(x)) - x|
    logdet: float  # the layer's own log-det at the sample
    jacobian_logdet: float  # slogdet of the autograd Jacobian
    inverse_logdet_error: float  # |logdet + logdet_inverse|

    @property
    def logdet_error(self) -> float:
        return abs(self.logdet - self.jacobian_logdet) / max(1.0, abs(self.jacobian_logdet))


def check_bijection(name: str, layer: Bijection, x: Tensor, cond: Tensor | None = None
                    ) -> BijectionCheck:
    """Round trip and log-det of ``layer`` on one sample ``x`` (use float64)."""
    with torch.no_grad():
        y, logdet = layer(x, cond)
        x_back, logdet_inv = layer.inverse(y, cond)
    jac_ld = jacobian_logdet(lambda v: layer(v, cond)[0], x)
    return BijectionCheck(
        name=name,
        roundtrip_error=float((x_back - x).abs().max()),
        logdet=float(logdet[0]),
        jacobian_logdet=float(jac_ld),
        inverse_logdet_error=float((logdet + logdet_inv).abs().max()),
    )
