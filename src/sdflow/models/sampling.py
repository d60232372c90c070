"""Sampling code shared by the models: image-tensor checks, padding, and realistic
downscaling as one *draw plan*.

The draw plan of downscaling (:meth:`MixtureDownscaling.draw_ds_latents`) is the one
documented order in which a downscaler's randomness is drawn from a generator: first the
mixture component of every sample, then every sample's standard-normal noise field
(none at tau 0). :meth:`MixtureDownscaling.downscale` (the untiled tensor method), the
tiled pipeline behind ``sdflow downscale`` / ``sdflow.downscale`` and the output names all
use it, so one seed gives the same samples on every path.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from sdflow.distributions import randn
from sdflow.errors import NonFiniteOutputError
from sdflow.seeding import generator_from

#: Default temperatures. SR: 0.8, the paper's setting. Downscaling: 0.8 too, the default of
#: the authors' downscaling script (their DS figure does not state it); with a random
#: mixture component per image. See docs/inference.md.
SR_DEFAULT_TAU = 0.8
DS_DEFAULT_TAU = 0.8


def default_tau(stochastic: bool, task: str) -> float:
    """The temperature of ``task`` ("sr" or "ds") when none is given: the default above for
    a stochastic direction, 0 for a deterministic one (it has no temperature)."""
    if not stochastic:
        return 0.0
    return SR_DEFAULT_TAU if task == "sr" else DS_DEFAULT_TAU


def check_image(t: Tensor, name: str) -> None:
    if t.ndim != 4:
        raise ValueError(f"{name} must be a [B, C, H, W] tensor, got shape {tuple(t.shape)}")


def tensor_or_raise(x: Any, method: str, image_api: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"model.{method} takes tensors [B, 3, H, W] in [-1, 1], not "
                        f"{type(x).__name__}; for images use sdflow.{image_api}(model, image)")


def finite_or_raise(out: Tensor, what: str) -> Tensor:
    """``out`` is ``[B, N, ...]`` (N samples per image). Returns it, or raises
    :class:`NonFiniteOutputError` if any sample holds NaN/Inf; the error's ``finite_mask``
    and ``output`` have the shape the caller returns: ``[B]`` / ``[B, ...]`` for one sample,
    ``[B, N]`` / ``[B, N, ...]`` for several."""
    finite = torch.isfinite(out.flatten(2)).all(dim=2)
    if not bool(finite.all()):
        single = out.shape[1] == 1
        bad = [(b if single else (b, n)) for b, n in (~finite).nonzero().tolist()]
        raise NonFiniteOutputError(
            f"{what} produced non-finite values for sample(s) {bad}; retry them at a lower "
            "temperature or check the input for NaN/Inf",
            finite[:, 0] if single else finite, out[:, 0] if single else out)
    return out


def pad_to_multiple(x: Tensor, multiple: int, minimum: int = 0) -> Tensor:
    """Pad the bottom/right of ``x`` to sizes that are multiples of ``multiple`` (and at
    least ``minimum``), reflecting where the image is large enough, else replicating."""
    h, w = x.shape[2:]
    th = max(minimum, -(-h // multiple) * multiple)
    tw = max(minimum, -(-w // multiple) * multiple)
    ph, pw = th - h, tw - w
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class MixtureDownscaling:
    """Downscaling for a model whose degradation latent ``z_d'`` is drawn from a mixture
    prior ``deg_prior`` (:class:`~sdflow.distributions.GaussianMixturePrior`) and decoded
    by ``ds_condition`` / ``ds_decode`` (the :class:`~sdflow.models.base.Downscaler`
    contract, with ``ds_multiple`` and ``scale``). SDFlow and gaussian-fit use it."""

    can_downscale = True

    def draw_ds_latents(self, padded_size: tuple[int, int], batch: int, tau: float,
                        num_samples: int, component=None,
                        generator: torch.Generator | None = None,
                        truncate: float | None = None
                        ) -> tuple[list[Tensor], list[Tensor | None]]:
        """The draw plan for ``num_samples`` samples of ``batch`` HR images padded to
        ``padded_size``: the components of all samples first (``[B, 1, 1, 1]`` per image,
        or a per-element field), then their noise fields (:meth:`ds_latent_shape`, None
        at tau <= 0). Drawn on the generator's device, returned on the CPU."""
        shape = self.ds_latent_shape(*padded_size, batch=batch)
        source = generator.device if generator is not None else torch.device("cpu")
        comps = [self.deg_prior.draw_components(shape, component, generator, source).cpu()
                 for _ in range(num_samples)]
        eps = [randn(shape, generator=generator, device=source, truncate=truncate).cpu()
               if tau > 0 else None for _ in range(num_samples)]
        return comps, eps

    def downscale(self, x: Tensor, tau: float = DS_DEFAULT_TAU, num_samples: int = 1,
                  component=None, generator: torch.Generator | None = None,
                  noise: Tensor | None = None, truncate: float | None = None, *,
                  seed: int | None = None) -> Tensor:
        """Downscale HR images ``x`` ``[B, 3, H, W]`` of any size to realistic LR images
        ``[B, 3, ceil(H/s), ceil(W/s)]`` (``[B, N, ...]`` for N > 1 samples).

        The HR image is reflect-padded to a multiple of ``ds_multiple`` and the result
        cropped back. ``component`` fixes the mixture component (an int or one per image);
        otherwise it is drawn as the mixture mode says. The randomness follows the draw
        plan (:meth:`draw_ds_latents`), so the tiled pipeline gives the same samples for
        the same generator. With ``noise`` (``eps`` of :meth:`ds_latent_shape` for the
        padded size, or with a sample dim) the noise is given instead of drawn; ``seed``
        gives a CPU generator seeded with it. For PIL images and numpy arrays use
        :func:`sdflow.downscale`.
        """
        generator = generator_from(seed, generator)
        tensor_or_raise(x, "downscale", "downscale")
        check_image(x, "HR image")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        s = self.scale
        h, w = x.shape[2:]
        out_h, out_w = -(-h // s), -(-w // s)
        xp = pad_to_multiple(x, self.ds_multiple, minimum=2 * self.ds_multiple)
        z_c, features = self.ds_condition(xp)
        shape = self.ds_latent_shape(*xp.shape[2:], batch=x.shape[0])
        comps, eps = self.draw_ds_latents(xp.shape[2:], x.shape[0],
                                          tau if noise is None else 0.0, num_samples,
                                          component, generator, truncate)
        if noise is not None:
            noise = noise.unsqueeze(1) if noise.ndim == 4 else noise
            eps = [noise[:, i] for i in range(num_samples)]
        outs = []
        for comp, e in zip(comps, eps, strict=True):
            z_deg = self.deg_prior.latent(comp.to(z_c.device), shape, tau,
                                          None if e is None else e.to(z_c), z_c.dtype)
            outs.append(self.ds_decode(z_c, features, z_deg)[:, :, :out_h, :out_w])
        out = torch.stack(outs, dim=1)
        finite_or_raise(out, "downscaling")
        return out[:, 0] if num_samples == 1 else out
