"""How ``sdflow eval`` and training validation score a model's outputs: the samples each
image gets (drawn with the per-image seed, quantised to 8 bits, non-finite ones counted
and left out) and the fidelity metrics of 8-bit images under one protocol. Both use this
module, so a validation number and an eval number of the same crop mean the same thing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from sdflow.errors import NonFiniteOutputError
from sdflow.imageio import tensor_to_image
from sdflow.metrics.consistency import pairwise_lpips, pixel_std
from sdflow.metrics.lpips import LPIPS
from sdflow.metrics.psnr_ssim import psnr, ssim
from sdflow.models.base import StochasticSR, is_stochastic
from sdflow.seeding import image_generator


class Scorer:
    """PSNR and SSIM on ``color`` (``"y"``: MATLAB's Y) with a shave, and LPIPS when an
    ``lpips`` network is given."""

    def __init__(self, color: str = "y", lpips: LPIPS | None = None):
        self.color = color
        self.lpips = lpips

    def fidelity(self, pred: np.ndarray, target: np.ndarray, shave: int) -> dict[str, float]:
        out = {"psnr": psnr(pred, target, shave=shave, color=self.color),
               "ssim": ssim(pred, target, shave=shave, color=self.color)}
        if self.lpips is not None:
            out["lpips"] = self.lpips.distance(pred, target)
        return out

    def samples(self, preds: list[np.ndarray], target: np.ndarray, shave: int,
                best_of: bool) -> dict[str, float]:
        """Mean metrics over samples; with ``best_of`` also each metric's best sample
        (chosen per metric) and the diversity of the samples."""
        if not preds:
            keys = ["psnr", "ssim"] + (["lpips"] if self.lpips is not None else [])
            return {k: float("nan") for k in keys}
        per = [self.fidelity(p, target, shave) for p in preds]
        out = {k: float(np.mean([m[k] for m in per])) for k in per[0]}
        if best_of:
            out["psnr_best"] = max(m["psnr"] for m in per)
            out["ssim_best"] = max(m["ssim"] for m in per)
            if self.lpips is not None:
                out["lpips_best"] = min(m["lpips"] for m in per)
            if len(preds) >= 2:
                out["div_std"] = pixel_std(preds)
                if self.lpips is not None:
                    out["div_lpips"] = pairwise_lpips(preds, self.lpips)
        return out


def sample_count(model: nn.Module, task: str, tau: float, samples: int) -> int:
    """How many outputs an image gets at ``tau``: SR at tau 0 is deterministic (one); a
    stochastic downscaler draws its mixture component even at tau 0 (``samples``); a
    deterministic model gives one."""
    if not is_stochastic(model, task):
        return 1
    return 1 if task == "sr" and tau == 0 else samples


def _sampler(model: nn.Module, task: str) -> Callable[..., torch.Tensor]:
    """``model.sr``/``model.downscale`` with the sampling signature (a deterministic SR
    model, whose tau is checked to be 0 before, gets it wrapped)."""
    if task == "ds":
        return model.downscale
    if isinstance(model, StochasticSR):
        return model.sr
    return lambda y, tau, num_samples, generator: model.sr(y)


def draw_outputs(model: nn.Module, task: str, x: torch.Tensor, tau: float, n: int,
                 seed: int, name: str) -> tuple[list[np.ndarray], int]:
    """``n`` outputs of ``model`` (``task`` "sr" or "ds") for the one image ``x`` at
    ``tau``, drawn with the per-image seed of ``name`` (the same at every tau); returns
    the finite ones as 8-bit images and the number of non-finite ones."""
    return generate(_sampler(model, task), x, tau, n, image_generator(seed, name))


def generate(fn: Callable[..., torch.Tensor], x: torch.Tensor, tau: float, n: int,
             gen: torch.Generator) -> tuple[list[np.ndarray], int]:
    """Run ``fn(x, tau, num_samples=n, generator=gen)``; return the finite samples as 8-bit
    images and the number of non-finite ones."""
    try:
        with torch.no_grad():
            out = fn(x, tau, num_samples=n, generator=gen)
    except NonFiniteOutputError as exc:
        out = exc.output
    samples = out.reshape(n, *out.shape[-3:])  # a batch of one image
    finite = torch.isfinite(samples.reshape(n, -1)).all(dim=1).cpu()
    images = [tensor_to_image(samples[k]) for k in range(n) if bool(finite[k])]
    return images, int(n - len(images))
