"""Base distributions of the latents: a standard normal (HF latent) and the learned
Gaussian-mixture prior of the degradation latent.

Sampling always takes an optional ``torch.Generator``; noise is drawn on the generator's
device and then moved, so a CPU-seeded sample is the same whatever device runs the model.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from sdflow.flows.base import sum_except_batch

LOG_2PI = math.log(2.0 * math.pi)

MixtureMode = Literal["element", "image", "official"]
MIXTURE_MODES: tuple[str, ...] = ("element", "image", "official")


def randn(shape: tuple[int, ...], *, generator: torch.Generator | None = None,
          device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
          truncate: float | None = None) -> Tensor:
    """Standard normal noise from ``generator`` (drawn on its device, moved to ``device``);
    with ``truncate`` the values are clamped to ``[-truncate, truncate]``."""
    source = generator.device if generator is not None else device
    eps = torch.randn(shape, generator=generator, device=source, dtype=dtype)
    if truncate is not None:
        eps = eps.clamp(-truncate, truncate)
    return eps.to(device) if device is not None else eps


class StandardNormal:
    """N(0, I) over all non-batch dimensions. ``sample`` returns ``tau * eps``."""

    @staticmethod
    def log_prob(z: Tensor) -> Tensor:
        return -0.5 * sum_except_batch(z.pow(2) + LOG_2PI)

    @staticmethod
    def sample(shape: tuple[int, ...], tau: float = 1.0, *,
               generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32, truncate: float | None = None) -> Tensor:
        if tau <= 0:
            return torch.zeros(shape, device=device, dtype=dtype)
        return tau * randn(shape, generator=generator, device=device, dtype=dtype,
                           truncate=truncate)


class GaussianMixturePrior(nn.Module):
    """K equally weighted 1-D Gaussians ``N(mu_k, sigma_k^2)`` with learned scalars.

    ``mode`` decides how the mixture covers a latent tensor of D elements:

    - ``"element"``: every element has its own mixture, in training and in sampling;
      ``log p = sum_i logsumexp_k log N(z_i; mu_k, sigma_k) - D log K``.
    - ``"image"``: one component per image, in training and in sampling;
      ``log p = logsumexp_k sum_i log N(z_i; mu_k, sigma_k) - log K``.
    - ``"official"``: the authors' behaviour, the per-element density in training but one
      component per image in sampling (so samples do not follow the trained density).

    ``log sigma_k`` is floored at ``log_std_min`` wherever it is used; the trainer also
    projects the parameter back above the floor after each step.
    """

    def __init__(self, num_components: int = 16, mode: MixtureMode = "official",
                 log_std_min: float = -5.0, generator: torch.Generator | None = None):
        super().__init__()
        if mode not in MIXTURE_MODES:
            raise ValueError(f"mixture mode must be one of {MIXTURE_MODES}, got {mode!r}")
        self.num_components = num_components
        self.mode = mode
        self.log_std_min = log_std_min
        self.means = nn.Parameter(torch.randn(num_components, generator=generator))
        self.log_stds = nn.Parameter(torch.zeros(num_components))

    def effective_log_stds(self) -> Tensor:
        return self.log_stds.clamp(min=self.log_std_min)

    def component_log_prob(self, z: Tensor) -> Tensor:
        """``[B, ...] -> [B, D, K]``: log N(z_i; mu_k, sigma_k) for every element and component."""
        flat = z.reshape(z.shape[0], -1, 1)
        log_std = self.effective_log_stds()
        return -0.5 * ((flat - self.means) * torch.exp(-log_std)).pow(2) - log_std - 0.5 * LOG_2PI

    def log_prob(self, z: Tensor) -> Tensor:
        lp = self.component_log_prob(z)
        log_k = math.log(self.num_components)
        if self.mode == "image":
            return torch.logsumexp(lp.sum(dim=1), dim=1) - log_k
        return (torch.logsumexp(lp, dim=2) - log_k).sum(dim=1)

    @torch.no_grad()
    def responsibilities(self, z: Tensor) -> Tensor:
        """Posterior component probabilities per image, ``[B, K]`` (for monitoring)."""
        lp = self.component_log_prob(z)
        if self.mode == "image":
            return torch.softmax(lp.sum(dim=1), dim=1)
        return torch.softmax(lp, dim=2).mean(dim=1)

    def draw_components(self, shape: tuple[int, ...], component=None,
                        generator: torch.Generator | None = None, device=None) -> Tensor:
        """Component indices for a latent of ``shape``: ``[B, 1, ...]`` (one per image) or
        ``shape`` (one per element, ``element`` mode). ``component`` (an int or one per
        image) fixes them; otherwise they are drawn from ``generator``."""
        device = device if device is not None else self.means.device
        k = self.num_components
        b = shape[0]
        if component is not None:
            comp = torch.as_tensor(component, device=device, dtype=torch.long)
            if comp.ndim == 0:
                comp = comp.expand(b)
            if comp.shape != (b,):
                raise ValueError(f"component must be an int or have shape ({b},), "
                                 f"got {tuple(comp.shape)}")
            if bool(((comp < 0) | (comp >= k)).any()):
                raise ValueError(f"component must be in [0, {k - 1}], got {comp.tolist()}")
            return comp.view(b, *([1] * (len(shape) - 1)))
        source = generator.device if generator is not None else device
        draw_shape = shape if self.mode == "element" else (b,) + (1,) * (len(shape) - 1)
        return torch.randint(k, draw_shape, generator=generator, device=source).to(device)

    def sample(self, shape: tuple[int, ...], tau: float = 1.0, *, component=None,
               generator: torch.Generator | None = None, device=None,
               dtype: torch.dtype = torch.float32, truncate: float | None = None,
               eps: Tensor | None = None) -> Tensor:
        """``z = mu_k + sigma_k * tau * eps``. ``component`` (an int or one index per image)
        fixes k; otherwise k is drawn per image or per element according to ``mode``.
        ``eps`` (of ``shape``) replaces the drawn standard-normal noise."""
        device = device if device is not None else self.means.device
        comp = self.draw_components(shape, component, generator, device)
        if tau > 0 and eps is None:
            eps = randn(shape, generator=generator, device=device, dtype=dtype,
                        truncate=truncate)
        return self.latent(comp, shape, tau, eps, dtype)

    def latent(self, comp: Tensor, shape: tuple[int, ...], tau: float,
               eps: Tensor | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """``mu_k + sigma_k * tau * eps`` for component indices ``comp`` (broadcastable to
        ``shape``, e.g. from :meth:`draw_components` or a crop of them); ``eps`` may be None
        when ``tau <= 0``."""
        comp = comp.to(self.means.device).expand(shape)
        mu = self.means.to(dtype)[comp]
        if tau <= 0:
            return mu
        if eps is None:
            raise ValueError("eps is needed when tau > 0")
        if eps.shape != torch.Size(shape):
            raise ValueError(f"eps must have shape {shape}, got {tuple(eps.shape)}")
        sigma = torch.exp(self.effective_log_stds()).to(dtype)[comp]
        return mu + sigma * tau * eps.to(mu)
