"""Loss building blocks shared by the training objectives."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def check_loss_fields(cfg: Any, weights: Sequence[str]) -> None:
    """Range checks shared by the loss configs: non-negative term weights, discriminator
    sizes, warm-up, and VGG16 layer names; raises :class:`~sdflow.config.FieldError`."""
    from sdflow.config import FieldError, check_ranges
    from sdflow.nets.backbones import VGG16_RELUS

    check_ranges(cfg, {name: (0.0, None) for name in weights})
    check_ranges(cfg, {"n_pre": (0, None), "disc_base": (1, 1024)})
    check_ranges(cfg, {name: (0, 8) for name in vars(cfg) if name.endswith("_disc_down")})
    bad = [layer for layer in cfg.perceptual_layers if layer not in VGG16_RELUS]
    if bad or not cfg.perceptual_layers:
        raise FieldError("perceptual_layers", f"unknown VGG16 layer {bad[0]!r}; choose from "
                         f"{', '.join(VGG16_RELUS)}" if bad else "needs at least one layer")


def lsgan(scores: Tensor, target: float) -> Tensor:
    """Least-squares GAN term ``mean((D - target)^2)``."""
    return (scores - target).pow(2).mean()


def lsgan_discriminator(real: Tensor, fake: Tensor) -> Tensor:
    """``1/2 E(D(real) - 1)^2 + 1/2 E D(fake)^2``."""
    return 0.5 * lsgan(real, 1.0) + 0.5 * lsgan(fake, 0.0)


def gaussian_kernel(size: int, sigma: float) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian_blur(x: Tensor, size: int = 5, sigma: float = 1.1) -> Tensor:
    """Separable Gaussian low-pass, reflect-padded (``G_sigma`` of docs/training.md)."""
    if size <= 1 or sigma <= 0:
        return x
    k = gaussian_kernel(size, sigma).to(x)
    c = x.shape[1]
    pad = size // 2
    mode = "reflect" if min(x.shape[2:]) > pad else "replicate"
    x = F.pad(x, (pad, pad, pad, pad), mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, size).expand(c, 1, 1, size), groups=c)
    return F.conv2d(x, k.view(1, 1, size, 1).expand(c, 1, size, 1), groups=c)


def gaussian_blur_per_sample(x: Tensor, sigmas: Tensor) -> Tensor:
    """Separable Gaussian blur of each image of ``x`` ``[B, C, H, W]`` with its own standard
    deviation ``sigmas`` ``[B]`` (pixels; 0 leaves the image unchanged), reflect-padded."""
    b, c, h, w = x.shape
    radius = max(1, int(math.ceil(3.0 * float(sigmas.max()))))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigmas.to(x).clamp_min(1e-3).view(b, 1)
    k = torch.exp(-0.5 * (offsets.view(1, -1) / s) ** 2)
    k = (k / k.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [B C, size]
    size = 2 * radius + 1
    mode = "reflect" if min(h, w) > radius else "replicate"
    y = F.pad(x, (radius,) * 4, mode=mode).reshape(1, b * c, h + 2 * radius, w + 2 * radius)
    y = F.conv2d(y, k.view(b * c, 1, 1, size), groups=b * c)
    y = F.conv2d(y, k.view(b * c, 1, size, 1), groups=b * c)
    return y.reshape(b, c, h, w)


def quantize_8bit(x: Tensor) -> Tensor:
    """Round images in [-1, 1] to 8-bit levels (clamped) with a straight-through gradient:
    the forward value is what a saved image would hold, the backward is the identity."""
    q = (torch.round((x.clamp(-1, 1) + 1.0) * 127.5) / 127.5) - 1.0
    return x + (q - x).detach()


@contextmanager
def frozen(modules: nn.Module | Sequence[nn.Module | None]) -> Iterator[None]:
    """Parameters of ``modules`` do not receive gradients from what is computed inside
    (gradients still flow through them to their inputs). Restores the previous flags."""
    mods = [modules] if isinstance(modules, nn.Module) else [m for m in modules if m is not None]
    params = [p for m in mods for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def run_pair(fn: Callable[[Tensor], Tensor], a: Tensor, b: Tensor, batched: bool = True
             ) -> tuple[Tensor, Tensor]:
    """``(fn(a), fn(b))``, in one call on their concatenation when ``batched`` and the
    shapes allow it (for networks without batch statistics this changes speed only)."""
    if not batched or a.shape[1:] != b.shape[1:]:
        return fn(a), fn(b)
    out = fn(torch.cat([a, b]))
    return out[: a.shape[0]], out[a.shape[0]:]


class TargetCache:
    """Functions of a training step's data tensors (blurs, VGG features), memoised per
    step by the tensor's identity; no gradient is recorded, since data need none.
    ``enabled=False`` recomputes on every call, as a plain implementation would."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._memo: dict[tuple[str, int], tuple[Tensor, Any]] = {}

    def get(self, name: str, data: Tensor, fn: Callable[[Tensor], Any]) -> Any:
        if data.requires_grad:
            raise ValueError(f"TargetCache.get({name!r}): the tensor requires grad; only "
                             "data tensors (targets) can be shared between loss terms")
        if not self.enabled:
            return fn(data)
        key = (name, id(data))
        if key not in self._memo:  # the entry keeps `data` alive, so its id stays its own
            with torch.no_grad():
                self._memo[key] = (data, fn(data))
        return self._memo[key][1]


class PerceptualLoss(nn.Module):
    """Mean L1 distance of frozen VGG16 features (ImageNet-normalised), summed over layers.

    Built from local ImageNet weights (see :mod:`sdflow.weights`); nothing is downloaded.
    """

    def __init__(self, layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3"),
                 weights_dir: str | None = None):
        super().__init__()
        from sdflow.nets.backbones import VGGPerceptualFeatures

        self.features = VGGPerceptualFeatures(layers, weights_dir=weights_dir)
        for p in self.features.parameters():
            p.requires_grad_(False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.to_features(a, self.features(b))

    def to_features(self, a: Tensor, target: list[Tensor]) -> Tensor:
        """The loss of ``a`` against features computed once with :attr:`features` (e.g.
        of a ground truth used by several terms)."""
        return self.distance(self.features(a), target)

    @staticmethod
    def distance(features: list[Tensor], target: list[Tensor]) -> Tensor:
        """The loss between two lists of layer features."""
        return sum(F.l1_loss(x, y) for x, y in zip(features, target, strict=True))


def nats_to_bits_per_dim(nll_per_dim: Tensor) -> Tensor:
    """Per-dimension continuous NLL (nats, [-1, 1] images) -> bits/dim of 8-bit data."""
    return nll_per_dim / math.log(2.0) - math.log2(2.0 / 255.0)



def radial_band_energy(x: Tensor, n_bands: int = 8) -> Tensor:
    """Per image and channel, the energy of the Hann-windowed, mean-removed power spectrum
    in each of ``n_bands`` equal radial bands from 0 to Nyquist (0.5 cycles per pixel; the
    corners beyond it count in the last band): ``[B, C, n_bands]``."""
    from sdflow.metrics.degradation import windowed_power_spectrum

    power, radius = windowed_power_spectrum(x)
    band = (radius / 0.5 * n_bands).long().clamp(max=n_bands - 1)
    return power.flatten(2) @ F.one_hot(band.flatten(), n_bands).to(x.dtype)


def band_shares(x: Tensor, n_bands: int = 8) -> Tensor:
    """The batch's share of spectral energy per radial band and channel, ``[C, n_bands]``
    (rows sum to 1): energies summed over the batch before normalising, so that textured
    crops count by their energy and flat ones (whose spectrum is 8-bit rounding) hardly.
    Shares rather than energies, so that the statistic describes how detail is spread over
    scales (what a camera's blur and noise shape), not how much contrast the scenes have."""
    energy = radial_band_energy(x, n_bands).sum(dim=0)
    return energy / energy.sum(dim=1, keepdim=True).clamp(min=1e-12)


def channel_weights_problem(weights: Sequence[float], channels: int = 3) -> str:
    """Why ``weights`` cannot split a per-channel term between ``channels`` channels ('' when
    they can): one finite, non-negative weight per channel, with a positive sum."""
    if (len(weights) != channels or any(not math.isfinite(w) or w < 0 for w in weights)
            or sum(weights) <= 0):
        return (f"needs {channels} finite non-negative weights with a positive sum (one per "
                f"channel), got {list(weights)}")
    return ""


def spectrum_distance(fake: Tensor, real: Tensor, n_bands: int = 8,
                      space: Literal["rgb", "ycbcr"] = "rgb",
                      channel_weights: Sequence[float] = (1.0, 1.0, 1.0)) -> Tensor:
    """Unpaired power-spectrum matching: the mean absolute log ratio of the band shares
    (:func:`band_shares`) of the ``fake`` batch and of the ``real`` batch (no gradient).
    Zero when the two batches spread their detail over scales alike; it needs no pairing,
    only that both batches show the same kind of scenes.

    ``space="ycbcr"`` compares luma and colour-difference channels instead of R, G, B:
    noise drawn independently per RGB channel and noise common to all three give the same
    per-channel RGB spectra, but only the first puts fine detail into Cb and Cr, where a
    camera's demosaicing leaves little (docs/training.md, "Colour detail").

    ``channel_weights`` split the distance between the channels (a weighted mean of the
    per-channel distances, so equal weights give the plain mean and the term's overall
    weight stays the caller's): in ``ycbcr``, ``(3, 1, 1)`` pulls the brightness spectrum
    three times as hard as each colour difference."""
    if space == "ycbcr":
        from sdflow.metrics.color import luma_chroma

        fake, real = luma_chroma(fake), luma_chroma(real)
    problem = channel_weights_problem(channel_weights, fake.shape[1])
    if problem:
        raise ValueError(f"channel_weights {problem}")
    weights = torch.as_tensor(channel_weights, dtype=fake.dtype, device=fake.device)
    with torch.no_grad():
        target = band_shares(real, n_bands)
    per_channel = (torch.log(band_shares(fake, n_bands) + 1e-6)
                   - torch.log(target + 1e-6)).abs().mean(dim=1)
    return (per_channel * weights).sum() / weights.sum()


def grid_gap(sr: Tensor, reference: Tensor, period: int) -> Tensor:
    """How far the ``period``-pixel grid of ``sr`` is from that of ``reference`` (both
    ``[B, 3, H, W]`` RGB): |block ratio of sr - block ratio of reference (detached)| on their
    lumas (sdflow.metrics.artefacts), each pooled over the batch. Two-sided: a ratio below
    the photo's is an inverse grid (edges weaker at the grid lines), also an artefact."""
    from sdflow.metrics.artefacts import grid_differences
    from sdflow.metrics.color import luma_chroma

    def ratio(img: Tensor) -> Tensor:
        across, inside = grid_differences(luma_chroma(img)[:, 0], period).unbind(dim=1)
        return (across / inside.clamp(min=1e-8)).mean()

    return (ratio(sr) - ratio(reference).detach()).abs()
