"""``da-iccv21``: **our re-implementation** of the domain-adaptation SR framework of Wang,
Zhang, Yuan & Wang, "Unsupervised Real-World Super-Resolution: A Domain Adaptation
Perspective" (ICCV 2021). No official code exists and the paper does not specify the
networks; every size below is our choice (docs/domain-adaptation.md).

All networks work at any input size (no crop-size-dependent layers). With LR images
``[B, 3, h, w]`` in [-1, 1] and ``C = channels``::

    E    : LR image -> feature f [B, C, h, w]   conv3x3 + residual blocks + conv, long skip
    G_SR : f -> HR image [B, 3, s*h, s*w]        ESRGAN tail: conv, RRDB trunk, conv (skip),
                                                  log2(s) x (nearest x2, conv, LReLU),
                                                  conv, LReLU, conv
    G_t  : f -> LR image [B, 3, h, w]            conv + residual blocks + conv (linear out)

:class:`DAICCV21` holds all three; training trains them together and exports them together,
so the model super-resolves (E, G_SR) and downscales (bicubic x1/s, E, G_t).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.config import FieldError, check_ranges
from sdflow.metrics.resize import imresize_down
from sdflow.models.base import PresetConfig, numbered_children
from sdflow.models.sampling import check_image as _check_image
from sdflow.models.sampling import finite_or_raise as _finite_or_raise
from sdflow.models.sampling import pad_to_multiple as _pad_to_multiple
from sdflow.models.sampling import tensor_or_raise as _tensor_or_raise
from sdflow.models.sdflow import SUPPORTED_SCALES
from sdflow.nets.rrdb import RRDB, scaled_xavier_

#: How the architecture is named everywhere users see it.
LABEL = ("da-iccv21: our re-implementation of Wang et al., 'Unsupervised Real-World "
         "Super-Resolution: A Domain Adaptation Perspective', ICCV 2021 (no official code)")


#: Allowed range of every field of :class:`DAICCV21Config` (bounds far above any sensible
#: model; they keep a corrupt checkpoint from building a huge one).
_DA_RANGES: dict[str, tuple[float | None, float | None]] = {
    "scale": (2, 8),
    "image_channels": (1, 4),
    "channels": (1, 512),
    "encoder_blocks": (0, 64),
    "sr_channels": (1, 512),
    "sr_blocks": (0, 64),
    "sr_growth": (1, 512),
    "lr_channels": (1, 512),
    "lr_blocks": (0, 64),
}


@dataclass(frozen=True)
class DAICCV21Config(PresetConfig):
    """Sizes of E, G_SR and G_t. ``preset("default")`` is the toolkit default (our choice)."""

    _name = "da-iccv21"

    scale: int = 4  # power of two; G_SR upsamples by nearest x2 log2(scale) times
    image_channels: int = 3
    channels: int = 64  # width of E and of the feature f = E(x)
    encoder_blocks: int = 8  # residual blocks in E
    sr_channels: int = 64  # width of G_SR's trunk and upsampler
    sr_blocks: int = 23  # RRDBs in G_SR (23 = ESRGAN)
    sr_growth: int = 32  # RRDB growth channels
    lr_channels: int = 64  # width of G_t
    lr_blocks: int = 6  # residual blocks in G_t

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise FieldError(f.name, f"expected an integer, got {value!r}")
        check_ranges(self, _DA_RANGES)
        if self.scale not in SUPPORTED_SCALES:
            raise FieldError("scale", f"must be a power of two in {SUPPORTED_SCALES}, "
                                      f"got {self.scale}")


def config_from_state_dict(state) -> DAICCV21Config:
    """The sizes that produced ``state`` (a state dict, or the keys and shapes of a
    safetensors file), from key names and tensor shapes (spandrel). A file without G_t
    (sdflow 0.1) gives G_t's default sizes."""
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    has_lr = "lr_decoder.head.weight" in state
    default = DAICCV21Config()
    return DAICCV21Config(
        scale=2 ** numbered_children(state, "sr_decoder.upconvs"),
        image_channels=shape("encoder.head.weight")[1],
        channels=shape("encoder.head.weight")[0],
        encoder_blocks=numbered_children(state, "encoder.body"),
        sr_channels=shape("sr_decoder.conv_first.weight")[0],
        sr_blocks=numbered_children(state, "sr_decoder.trunk"),
        sr_growth=shape("sr_decoder.trunk.0.rdb1.conv1.weight")[0],
        lr_channels=shape("lr_decoder.head.weight")[0] if has_lr else default.lr_channels,
        lr_blocks=numbered_children(state, "lr_decoder.body") if has_lr else default.lr_blocks,
    )


DA_PRESETS: dict[str, DAICCV21Config] = {
    # Toolkit default (docs/domain-adaptation.md): E 8 residual blocks, ESRGAN-size
    # G_SR (23 RRDBs), G_t 6 residual blocks, all 64 wide.
    "default": DAICCV21Config(),
    # CPU-trainable: same structure, narrower and shallower.
    "lite": DAICCV21Config(channels=32, encoder_blocks=4, sr_channels=32, sr_blocks=3,
                           sr_growth=16, lr_channels=32, lr_blocks=3),
    # Tests and smoke runs.
    "tiny": DAICCV21Config(channels=8, encoder_blocks=1, sr_channels=8, sr_blocks=1,
                           sr_growth=4, lr_channels=8, lr_blocks=1),
}
DAICCV21Config._presets = DA_PRESETS


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)  # zero padding: any size >= 1x1


class ResBlock(nn.Module):
    """``x + conv(LReLU(conv(x)))`` without normalisation (EDSR-style)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv(channels, channels)
        self.conv2 = _conv(channels, channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class Encoder(nn.Module):
    """E: LR image -> features at LR resolution (linear output)."""

    def __init__(self, in_channels: int, channels: int, blocks: int):
        super().__init__()
        self.head = _conv(in_channels, channels)
        self.body = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))
        self.tail = _conv(channels, channels)
        scaled_xavier_(self.body)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(self.body(h)) + h


class SRDecoder(nn.Module):
    """G_SR: features -> HR image, the ESRGAN tail with a configurable RRDB trunk."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int,
                 growth: int, scale: int):
        super().__init__()
        self.conv_first = _conv(in_channels, channels)
        self.trunk = nn.Sequential(*(RRDB(channels, growth) for _ in range(blocks)))
        self.conv_trunk = _conv(channels, channels)
        self.upconvs = nn.ModuleList(_conv(channels, channels)
                                     for _ in range(int(math.log2(scale))))
        self.conv_hr = _conv(channels, channels)
        self.conv_last = _conv(channels, out_channels)
        self.act = nn.LeakyReLU(0.2)
        scaled_xavier_(self.trunk)

    def forward(self, f: Tensor) -> Tensor:
        h = self.conv_first(f)
        h = h + self.conv_trunk(self.trunk(h))
        for conv in self.upconvs:
            h = self.act(conv(F.interpolate(h, scale_factor=2, mode="nearest")))
        return self.conv_last(self.act(self.conv_hr(h)))


class LRDecoder(nn.Module):
    """G_t: features -> LR image in the target (real) domain's style (linear output)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int):
        super().__init__()
        self.head = _conv(in_channels, channels)
        self.body = nn.Sequential(*(ResBlock(channels) for _ in range(blocks)))
        self.act = nn.LeakyReLU(0.2)
        self.tail = _conv(channels, out_channels)
        scaled_xavier_(self.body)

    def forward(self, f: Tensor) -> Tensor:
        h = self.head(f)
        return self.tail(self.act(self.body(h) + h))


def _build(seed: int | None, fn):
    """Run ``fn`` with the global RNG seeded by ``seed`` and restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return fn()


class DAICCV21(nn.Module):
    """The whole model: ``sr(y) = G_SR(E(y))`` and ``downscale(x) = G_t(E(bicubic_down(x)))``.

    Both directions are deterministic: a :class:`~sdflow.models.base.SuperResolver` and a
    :class:`~sdflow.models.base.Downscaler` (not ``StochasticSR``/``StochasticDS``). G_t
    is what the method trains to give E's features of an image "the degradation of the
    real LR" (the paper's x_{s->t}), so downscaling is: bicubic x1/s of the HR image (the
    paper's source LR x_s), E, then G_t. A file written before G_t was kept (sdflow
    0.1.0 exports) has no ``lr_decoder.*`` weights; it loads with ``lr_decoder = None``
    and super-resolves only (:attr:`can_downscale`)."""

    label = LABEL

    def __init__(self, config: DAICCV21Config | None = None, *, seed: int | None = 0):
        super().__init__()
        cfg = config or DAICCV21Config()
        self.config = cfg
        self.scale = cfg.scale

        def make():
            return (Encoder(cfg.image_channels, cfg.channels, cfg.encoder_blocks),
                    SRDecoder(cfg.channels, cfg.image_channels, cfg.sr_channels,
                              cfg.sr_blocks, cfg.sr_growth, cfg.scale))

        self.encoder, self.sr_decoder = _build(seed, make)
        self.lr_decoder: LRDecoder | None = _build(
            None if seed is None else seed + 1,
            lambda: LRDecoder(cfg.channels, cfg.image_channels, cfg.lr_channels,
                              cfg.lr_blocks))
        self.preparation = None  # set on a prepared copy (sdflow.prepare)

    @property
    def can_downscale(self) -> bool:
        """False for a file exported without G_t (SR only)."""
        return self.lr_decoder is not None

    def forward(self, y: Tensor) -> Tensor:
        """``[B, 3, h, w] -> [B, 3, s*h, s*w]``, no checks (the exportable graph)."""
        return self.sr_decoder(self.encoder(y))

    def sr(self, y: Tensor) -> Tensor:
        """Super-resolve ``y`` ``[B, 3, h, w]`` in [-1, 1] (any size) to ``[B, 3, s*h, s*w]``.
        Raises NonFiniteOutputError if an output is not finite. For PIL images and numpy
        arrays (tiled, any size) use :func:`sdflow.super_resolve`."""
        _tensor_or_raise(y, "sr", "super_resolve")
        _check_image(y, "LR image")
        return _finite_or_raise(self(y).unsqueeze(1), "super-resolution")[:, 0]

    # The two steps the tiled image pipeline (sdflow.inference) runs per tile; the latent
    # argument exists for SDFlow's sake and is ignored here.
    def sr_condition(self, y: Tensor) -> tuple[Tensor, None]:
        return self.encoder(y), None

    def sr_decode(self, features: Tensor, _unused: None, _latent: Tensor | None) -> Tensor:
        return self.sr_decoder(features)

    # ------------------------------------------------------------------ downscaling
    @property
    def ds_multiple(self) -> int:
        """HR sides are padded to multiples of this (bicubic x1/s needs whole LR pixels)."""
        return self.scale

    def _lr_decoder_or_raise(self) -> LRDecoder:
        if self.lr_decoder is None:
            raise ValueError("this da-iccv21 file has no G_t (it was exported before sdflow "
                             "kept the target-LR decoder): it super-resolves only; train or "
                             "export it again with this version to downscale")
        return self.lr_decoder

    def source_lr(self, x: Tensor) -> Tensor:
        """The paper's source LR x_s: MATLAB bicubic x1/s of the HR image."""
        return imresize_down(x, self.scale)

    def ds_condition(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """HR ``x`` (sides multiples of :attr:`ds_multiple`) -> (E(x_s), no features)."""
        return self.encoder(self.source_lr(x)), x.new_zeros(0)

    def ds_decode(self, features: Tensor, _unused: Tensor, _latent: Tensor | None) -> Tensor:
        return self._lr_decoder_or_raise()(features)

    def downscale(self, x: Tensor, tau: float = 0.0, num_samples: int = 1, component=None,
                  generator: torch.Generator | None = None, noise: Tensor | None = None,
                  truncate: float | None = None, *, seed: int | None = None) -> Tensor:
        """Downscale HR images ``x`` ``[B, 3, H, W]`` of any size to LR images in the real
        LR's style ``[B, 3, ceil(H/s), ceil(W/s)]``. Deterministic: ``tau`` must be 0 and
        ``num_samples`` 1 (the sampling arguments exist so every downscaler is called
        alike); for PIL images and numpy arrays use :func:`sdflow.downscale`."""
        _tensor_or_raise(x, "downscale", "downscale")
        _check_image(x, "HR image")
        if tau > 0 or num_samples != 1 or component is not None or noise is not None:
            raise ValueError("da-iccv21 downscales deterministically: tau 0, one sample, "
                             "no component or noise")
        decoder = self._lr_decoder_or_raise()
        h, w = x.shape[2:]
        s = self.scale
        xp = _pad_to_multiple(x, self.ds_multiple, minimum=2 * self.ds_multiple)
        out = decoder(self.ds_condition(xp)[0])[:, :, : -(-h // s), : -(-w // s)]
        return _finite_or_raise(out.unsqueeze(1), "downscaling")[:, 0]

    def bytes_per_pixel(self, task: str) -> float:
        """Estimated peak float32 activation memory per input pixel of a tile (LR pixels
        for SR, HR pixels for downscaling), with a 1.5 margin. SR: the widest of E, an
        RRDB's dense concatenation, and the two upsampling stages (at 4 and 16 positions
        per LR pixel); downscaling: the HR image and its resampling, plus E and G_t at
        1/s^2 of the positions."""
        c = self.config
        if task == "ds":
            per_lr = 4 * max(c.channels, c.lr_channels) + 2 * c.image_channels
            return 4.0 * (3 * c.image_channels + per_lr / c.scale**2) * 1.5
        if task != "sr":
            raise ValueError(f"task must be 'sr' or 'ds', got {task!r}")
        widest = max(4 * c.channels, 3 * (c.sr_channels + 4 * c.sr_growth) + 3 * c.sr_channels,
                     4 * 2 * c.sr_channels, c.scale**2 * (2 * c.sr_channels + 2 * 3))
        return 4.0 * widest * 1.5

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
