"""``gaussian-fit``: the parametric baseline downscaler (Gaussian blur, bicubic, white noise).

``y = bicubic_down(G_sigma * x) + tau * noise * eps`` with sigma (HR pixels) and noise (grey
levels) fitted from *unpaired* real LR and HR folders by statistics alone, the colour
differences blurred by their own ``colour_sigma``
(:func:`sdflow.metrics.degradation_fit.fit_gaussian_degradation`; ``sdflow fit-degradation``
writes the model). It is the floor a learned downscaler must clear, and a fast,
explainable downscaler in its own right.

It is a :class:`~sdflow.models.base.Downscaler` like SDFlow, with the same sampling code
(:class:`~sdflow.models.sampling.MixtureDownscaling`):
its noise latent has SDFlow's ``z_d'`` layout (``[B, 12, H/8, W/8]``: the LR noise field
squeezed 2x2) under a one-component standard-normal "mixture", so the tiler, the batch
commands and the evaluation draw and cut it exactly as they do SDFlow's. tau 0 is the
noise-free mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.config import FieldError, check_ranges
from sdflow.distributions import GaussianMixturePrior
from sdflow.metrics.degradation_fit import degrade
from sdflow.models.base import PresetConfig
from sdflow.models.sampling import MixtureDownscaling


@dataclass(frozen=True)
class GaussianFitConfig(PresetConfig):
    """The fitted degradation: blur ``sigma`` (HR pixels) and white ``noise`` (grey levels,
    the standard deviation at tau 1) at ``scale``; ``colour_sigma`` blurs the colour
    differences (BT.601 Cb, Cr) instead of ``sigma`` (None: ``sigma``, one RGB blur, as in
    files fitted before 2026-12-07)."""

    _name: ClassVar[str] = "gaussian-fit"
    scale: int = 4
    sigma: float = 0.0
    noise: float = 0.0
    colour_sigma: float | None = None

    def __post_init__(self) -> None:
        check_ranges(self, {"sigma": (0.0, 8.0), "noise": (0.0, 64.0),
                            "colour_sigma": (0.0, 8.0)})
        if self.scale not in (2, 4, 8):
            raise FieldError("scale", f"must be 2, 4 or 8, got {self.scale}")


GaussianFitConfig._presets = {"default": GaussianFitConfig()}


class GaussianDownscaler(MixtureDownscaling, nn.Module):
    """Blur (colour by its own sigma) + bicubic + white noise; images in [-1, 1],
    ``[B, 3, H, W]``."""

    label = ("gaussian-fit (Gaussian blurs of brightness and colour and white noise, fitted by "
             "unpaired statistics)")

    def __init__(self, config: GaussianFitConfig | None = None):
        super().__init__()
        cfg = config or GaussianFitConfig()
        self.config = cfg
        self.scale = cfg.scale
        # the noise latent's distribution: one standard-normal component, not trained
        self.deg_prior = GaussianMixturePrior(1, "image")
        with torch.no_grad():
            self.deg_prior.means.zero_()
            self.deg_prior.log_stds.zero_()
        self.deg_prior.requires_grad_(False)
        self.preparation = None  # set on a prepared copy (sdflow.prepare)

    @property
    def ds_multiple(self) -> int:
        """HR sides are padded to multiples of this (the noise latent is squeezed 2x2)."""
        return 2 * self.scale

    def ds_condition(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """HR ``x`` -> (its noise-free LR image, no features)."""
        cfg = self.config
        return degrade(x, self.scale, cfg.sigma, colour_sigma=cfg.colour_sigma), x.new_zeros(0)

    def ds_latent_shape(self, hr_height: int, hr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        m = self.ds_multiple
        return (batch, 12, hr_height // m, hr_width // m)

    def ds_decode(self, z_c: Tensor, features: Tensor, z_deg: Tensor) -> Tensor:
        """The noise-free LR image plus ``noise`` grey levels times the unsqueezed latent."""
        if self.config.noise <= 0:
            return z_c
        return z_c + F.pixel_shuffle(z_deg, 2) * (2.0 * self.config.noise / 255.0)

    def bytes_per_pixel(self, task: str) -> float:
        """Peak activation bytes per HR input pixel: the padded image and two blur passes
        in float32, and the small LR outputs."""
        return 64.0

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """Downscale with an explicit noise latent (None: tau 0), for export."""
        z_c, features = self.ds_condition(x)
        if noise is None:
            return z_c
        return self.ds_decode(z_c, features, noise)
