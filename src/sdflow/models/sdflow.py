"""SDFlow (Sun & Chen, TPAMI 2024): LR <-> HR in both directions through a shared content
latent, with conditional flows for HR high frequencies and LR degradations.

Shapes for scale s = 4, HR x: [B, 3, H, W], LR y: [B, 3, h, w] with h = H/4, all images in
[-1, 1]::

    x --f_HR--> [z_c (3 ch), z_h (45 ch)] at h x w ;  z_h --f_HF(. ; z_c)--> z_h' ~ N(0, I)
    y --f_LR--> z_LR (3 ch) ;  z_c = E(y) ;  z_d = z_LR - z_c
      z_d --f_Deg(. ; z_c)--> z_d' (12 ch, h/2 x w/2) ~ Gaussian mixture

SR samples z_h' = tau * eps and inverts f_HF and f_HR from E(y); downscaling samples z_d'
from the mixture and inverts f_Deg and f_LR from the z_c of the HR image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sdflow.config import FieldError, check_ranges
from sdflow.distributions import MIXTURE_MODES, GaussianMixturePrior, StandardNormal
from sdflow.flows import (
    Bijection,
    ConditionalFlow,
    ConditionalSplit,
    FlowLevel,
    LinearPredictor,
    data_init,
)
from sdflow.models.base import PresetConfig, numbered_children
from sdflow.models.sampling import (
    SR_DEFAULT_TAU,
    MixtureDownscaling,
)
from sdflow.models.sampling import (
    check_image as _check_image,
)
from sdflow.models.sampling import (
    finite_or_raise as _finite_or_raise,
)
from sdflow.models.sampling import (
    tensor_or_raise as _tensor_or_raise,
)
from sdflow.nets import ConditionNet, ContentExtractor
from sdflow.seeding import generator_from

#: Width of one 8-bit quantisation bin for images mapped to [-1, 1].
BIN_WIDTH = 2.0 / 255.0



#: Scales the architecture supports (log2(scale) squeeze levels of the HR flow).
SUPPORTED_SCALES = (2, 4, 8)

#: Allowed range of every numeric field of :class:`SDFlowConfig`. The upper bounds are far
#: above any sensible model (the paper's is 16 steps, 64 wide) and keep a corrupt or
#: hostile checkpoint from building a model for minutes or exhausting memory.
_SDFLOW_RANGES: dict[str, tuple[float | None, float | None]] = {
    "scale": (2, 8),
    "image_channels": (1, 4),
    "hr_steps": (1, 64),
    "lr_steps": (1, 64),
    "coupling_hidden": (1, 512),
    "transition_steps": (1, 16),
    "hf_steps": (1, 64),
    "hf_cond_blocks": (0, 64),
    "deg_steps": (1, 64),
    "deg_cond_blocks": (0, 64),
    "cond_channels": (1, 512),
    "cond_growth": (1, 512),
    "encoder_channels": (1, 512),
    "encoder_blocks": (0, 64),
    "encoder_mod_layers": (0, 32),
    "mixture_components": (1, 256),
    "log_std_min": (-20.0, 0.0),
    "hf_predictor_kernel": (0, 31),
}


@dataclass(frozen=True)
class SDFlowConfig(PresetConfig):
    """Every size of the SDFlow architecture. ``preset("paper")`` is the authors' model."""

    _name = "SDFlow"

    scale: int = 4  # power of two; the HR flow has log2(scale) squeeze levels
    image_channels: int = 3
    hr_steps: int = 16  # unconditional flow steps per HR level
    lr_steps: int = 16  # flow steps of the LR flow
    coupling_hidden: int = 64  # hidden width of every coupling/injector network
    transition_steps: int = 2  # ActNorm+1x1 steps after each squeeze / before the unsqueeze
    hf_steps: int = 8  # conditional steps of the HF flow (last one without coupling)
    hf_cond_blocks: int = 8  # RRDBs in the HF condition network
    deg_steps: int = 8  # conditional steps of the degradation flow
    deg_cond_blocks: int = 4  # RRDBs in the degradation condition network
    cond_channels: int = 64  # feature width of the condition networks
    cond_growth: int = 32  # RRDB growth channels
    encoder_channels: int = 64  # width of the LR content extractor E
    encoder_blocks: int = 16  # modulated residual blocks in E
    encoder_mod_layers: int = 8  # conv layers of E's degradation-modulation branch
    mixture_components: int = 16
    mixture_mode: str = "official"  # "element" | "image" | "official", see distributions
    log_std_min: float = -5.0  # floor on log sigma_k of the mixture
    detach_hf_condition: bool = True  # f_HF sees sg(z_c), as in the authors' code
    detach_deg_condition: bool = True  # f_Deg sees sg(z_c) when encoding LR (an assumption)
    # Our addition (0 = none, the authors' model): kernel of a linear predictor of z_h from
    # z_c subtracted before the HF flow (a lifting "predict" step, sdflow.flows.predict).
    hf_predictor_kernel: int = 0

    def __post_init__(self) -> None:
        check_ranges(self, _SDFLOW_RANGES)
        if self.scale not in SUPPORTED_SCALES:
            raise FieldError("scale", f"must be a power of two in {SUPPORTED_SCALES}, "
                                      f"got {self.scale}")
        k = self.hf_predictor_kernel
        if k > 0 and k % 2 == 0:
            raise FieldError("hf_predictor_kernel", f"must be 0 (none) or odd, got {k}")
        if self.mixture_mode not in MIXTURE_MODES:
            raise FieldError("mixture_mode", f"must be one of {MIXTURE_MODES}, "
                                             f"got {self.mixture_mode!r}")
        for name in ("detach_hf_condition", "detach_deg_condition"):
            if not isinstance(getattr(self, name), bool):
                raise FieldError(name, f"expected true/false, got {getattr(self, name)!r}")

    @property
    def hr_levels(self) -> int:
        return int(math.log2(self.scale))

    @property
    def hf_channels(self) -> int:
        """Channels of the HF latent z_h: everything after the split except z_c."""
        return self.image_channels * (self.scale**2 - 1)


#: Config fields that no weight records (sampling and training switches): a config read
#: from a bare state dict has them at their defaults.
SDFLOW_FIELDS_NOT_IN_WEIGHTS = ("mixture_mode", "log_std_min", "detach_hf_condition",
                                "detach_deg_condition")


def config_from_state_dict(state) -> SDFlowConfig:
    """The SDFlow sizes that produced ``state`` (a state dict, or the keys and shapes of a
    safetensors file), read from its key names and tensor shapes: for tools that hold the
    weights without sdflow's header (spandrel). The fields in
    :data:`SDFLOW_FIELDS_NOT_IN_WEIGHTS` keep their defaults."""
    def shape(key: str) -> tuple[int, ...]:
        return tuple(state[key].shape)

    split = "hr_flow.split"
    levels = numbered_children(state, "hr_flow.levels")
    rrdb = f"{split}.flow.cond_net.trunk.0.rdb1.conv1.weight"
    predictor = f"{split}.predictor.weight"
    return SDFlowConfig(
        scale=2 ** levels,
        image_channels=shape("content_extractor.head.0.weight")[1],
        hr_steps=numbered_children(state, "hr_flow.levels.0.steps.layers"),
        lr_steps=numbered_children(state, "lr_flow.steps.layers"),
        coupling_hidden=shape("lr_flow.steps.layers.0.coupling.net.conv_in.weight")[0],
        transition_steps=numbered_children(state, "lr_flow.transition_in.layers"),
        hf_steps=numbered_children(state, f"{split}.flow.steps.layers"),
        hf_cond_blocks=numbered_children(state, f"{split}.flow.cond_net.trunk"),
        deg_steps=numbered_children(state, "deg_flow.steps.layers"),
        deg_cond_blocks=numbered_children(state, "deg_flow.cond_net.0.trunk"),
        cond_channels=shape(f"{split}.flow.cond_net.conv_in.weight")[0],
        cond_growth=shape(rrdb)[0],
        encoder_channels=shape("content_extractor.head.0.weight")[0],
        encoder_blocks=numbered_children(state, "content_extractor.trunk"),
        encoder_mod_layers=numbered_children(state, "content_extractor.modulation"),
        mixture_components=shape("deg_prior.means")[0],
        hf_predictor_kernel=shape(predictor)[-1] if predictor in state else 0,
    )


SDFLOW_PRESETS: dict[str, SDFlowConfig] = {
    # The authors' released architecture: 14,099,319 parameters.
    "paper": SDFlowConfig(),
    # A CPU-trainable model: same structure, narrower and shallower (see docs/model.md).
    "lite": SDFlowConfig(
        hr_steps=8,
        lr_steps=8,
        coupling_hidden=32,
        hf_steps=4,
        hf_cond_blocks=2,
        deg_steps=4,
        deg_cond_blocks=1,
        cond_channels=32,
        cond_growth=16,
        encoder_channels=32,
        encoder_blocks=4,
        encoder_mod_layers=3,
        mixture_mode="image",
    ),
    # Seconds on a CPU: the model of the tests and of the smoke training preset (random
    # weights are enough to check a set-up end to end; nothing shipped uses it).
    "tiny": SDFlowConfig(
        hr_steps=2,
        lr_steps=2,
        coupling_hidden=16,
        hf_steps=2,
        hf_cond_blocks=1,
        deg_steps=2,
        deg_cond_blocks=1,
        cond_channels=16,
        cond_growth=8,
        encoder_channels=16,
        encoder_blocks=1,
        encoder_mod_layers=1,
        mixture_components=4,
        mixture_mode="image",
    ),
}
SDFlowConfig._presets = SDFLOW_PRESETS


class HRFlow(Bijection):
    """``f_HR`` followed by the HF flow on the split: ``x -> [z_c, z_h']`` (3 + 45 channels at
    LR resolution). The log-det excludes the prior of z_h'."""

    def __init__(self, cfg: SDFlowConfig):
        super().__init__()
        c = cfg.image_channels
        self.content_channels = c
        self.levels = nn.ModuleList(
            FlowLevel(c * 4**i, cfg.hr_steps, cfg.coupling_hidden,
                      transition_steps=cfg.transition_steps)
            for i in range(cfg.hr_levels)
        )
        hf = ConditionalFlow(
            cfg.hf_channels,
            ConditionNet(c, cfg.hf_cond_blocks, cfg.cond_channels, cfg.cond_growth),
            cfg.cond_channels,
            cfg.hf_steps,
            cfg.coupling_hidden,
        )
        predictor = LinearPredictor(c, cfg.hf_channels, cfg.hf_predictor_kernel) \
            if cfg.hf_predictor_kernel else None
        self.split = ConditionalSplit(c, hf, detach_condition=cfg.detach_hf_condition,
                                      predictor=predictor)

    @property
    def hf(self) -> ConditionalFlow:
        return self.split.flow

    def encode_levels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x -> [z_c, z_h]`` (before the HF flow) and its log-det."""
        logdet = x.new_zeros(x.shape[0])
        for level in self.levels:
            x, ld = level(x)
            logdet = logdet + ld
        return x, logdet

    def decode_levels(self, z: Tensor) -> Tensor:
        for level in reversed(self.levels):
            z, _ = level.inverse(z)
        return z

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        z, logdet = self.encode_levels(x)
        z, ld = self.split(z)
        return z, logdet + ld

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        z, logdet = self.split.inverse(z)
        for level in reversed(self.levels):
            z, ld = level.inverse(z)
            logdet = logdet + ld
        return z, logdet


def _degradation_flow(cfg: SDFlowConfig) -> ConditionalFlow:
    """f_Deg: squeezes z_d once, so its condition features are computed from z_c and then
    pixel-unshuffled to half resolution."""
    cc = cfg.cond_channels
    cond_net = nn.Sequential(
        ConditionNet(cfg.image_channels, cfg.deg_cond_blocks, cc, cfg.cond_growth),
        nn.PixelUnshuffle(2),
        nn.Conv2d(4 * cc, cc, 1),
        nn.LeakyReLU(0.2),
    )
    return ConditionalFlow(cfg.image_channels, cond_net, cc, cfg.deg_steps,
                           cfg.coupling_hidden, squeeze=True)


class LREncoding(NamedTuple):
    """Everything :meth:`SDFlow.encode_lr_parts` computes for LR images ``y``."""

    z_lr: Tensor  # f_LR(y)
    z_c: Tensor  # E(y)
    z_deg: Tensor  # z_d' = f_Deg(z_LR - z_c ; z_c)
    logdet: Tensor  # log|det| of f_LR and f_Deg, [B]
    log_prior: Tensor  # mixture log-density of z_d', [B]

    @property
    def log_prob(self) -> Tensor:
        return self.logdet + self.log_prior


def bits_per_dim(log_prob: Tensor, num_dims: int) -> Tensor:
    """Bits per dimension of 8-bit data from the continuous log-density of dequantised
    images in [-1, 1]: ``-(log p + D log(2/255)) / (D ln 2)``."""
    return -(log_prob + num_dims * math.log(BIN_WIDTH)) / (num_dims * math.log(2.0))


class SDFlow(MixtureDownscaling, nn.Module):
    """The SDFlow model. Inputs and outputs are images in [-1, 1], ``[B, 3, H, W]``."""

    label = "SDFlow (Sun & Chen, TPAMI 2024)"

    def __init__(self, config: SDFlowConfig | None = None, *, seed: int | None = 0):
        super().__init__()
        cfg = config or SDFlowConfig()
        self.config = cfg
        self.scale = cfg.scale
        # All initial weights come from this seed (the global RNG is left untouched), so
        # the same config and seed always build the same model.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.hr_flow = HRFlow(cfg)
            self.lr_flow = FlowLevel(cfg.image_channels, cfg.lr_steps, cfg.coupling_hidden,
                                     unsqueeze=True, transition_steps=cfg.transition_steps)
            self.content_extractor = ContentExtractor(
                cfg.image_channels, cfg.image_channels, cfg.encoder_channels,
                cfg.encoder_blocks, cfg.encoder_mod_layers)
            self.deg_flow = _degradation_flow(cfg)
            self.deg_prior = GaussianMixturePrior(cfg.mixture_components, cfg.mixture_mode,
                                                  cfg.log_std_min)
        self.hf_prior = StandardNormal()
        self.preparation = None  # set on a prepared copy (sdflow.prepare)

    # ------------------------------------------------------------------ size rules
    @property
    def hr_multiple(self) -> int:
        """HR height/width must be multiples of this for the density (``encode_hr``)."""
        return self.scale

    @property
    def ds_multiple(self) -> int:
        """Downscaling works on HR padded to multiples of this (f_Deg squeezes z_c again)."""
        return 2 * self.scale

    def _check_hr(self, x: Tensor) -> None:
        _check_image(x, "HR image")
        h, w = x.shape[2:]
        m = self.hr_multiple
        if h % m or w % m or h < 2 * m or w < 2 * m:
            raise ValueError(f"HR size {h}x{w} must be a multiple of {m} and at least "
                             f"{2 * m}x{2 * m} for the HR density; pad or crop it first")

    def _check_lr(self, y: Tensor, even: bool) -> None:
        _check_image(y, "LR image")
        h, w = y.shape[2:]
        if h < 2 or w < 2:
            raise ValueError(f"LR size {h}x{w} is too small: at least 2x2 pixels are needed")
        if even and (h % 2 or w % 2 or h < 4 or w < 4):
            raise ValueError(f"LR size {h}x{w} must be even and at least 4x4 for the LR "
                             "density; pad or crop it first")

    # ------------------------------------------------------------------ encoding
    def content_from_lr(self, y: Tensor) -> Tensor:
        """``z_c = E(y)``."""
        return self.content_extractor(y)

    def content_from_hr(self, x: Tensor) -> Tensor:
        """``z_c``: the first channels of ``f_HR(x)`` (the HF flow is not needed)."""
        z, _ = self.hr_flow.encode_levels(x)
        return z[:, : self.config.image_channels]

    def encode_hr(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x -> (z_c, z_h', log p(x))``; ``log p`` in nats, continuous density, no content
        prior (as in the authors' model)."""
        self._check_hr(x)
        z, logdet = self.hr_flow(x)
        z_c, z_hf = self.hr_flow.split.split(z)
        return z_c, z_hf, logdet + self.hf_prior.log_prob(z_hf)

    def encode_lr(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``y -> (z_c, z_d', log p(y))`` with ``z_c = E(y)``, ``z_d = f_LR(y) - z_c``."""
        enc = self.encode_lr_parts(y)
        return enc.z_c, enc.z_deg, enc.log_prob

    def encode_lr_parts(self, y: Tensor, *, detach_content: bool = False) -> LREncoding:
        """:meth:`encode_lr` with every intermediate (the training objective needs them).

        ``detach_content``: z_d = z_LR - sg(E(y)), so that the log-density's gradient does
        not reach E through z_d (``loss.nll_lr_reaches_content: false``); the returned
        ``z_c`` keeps its graph for the other terms."""
        self._check_lr(y, even=True)
        z_lr, logdet_lr = self.lr_flow(y)
        z_c = self.content_extractor(y)
        cond = z_c.detach() if self.config.detach_deg_condition else z_c
        z_deg, logdet_deg = self.deg_flow(z_lr - (z_c.detach() if detach_content else z_c),
                                          cond)
        return LREncoding(z_lr, z_c, z_deg, logdet_lr + logdet_deg,
                          self.deg_prior.log_prob(z_deg))

    def log_prob_hr(self, x: Tensor, discrete: bool = False) -> Tensor:
        """Log-density of HR images in nats, ``[B]``.

        ``discrete=False``: the continuous density of ``x`` in [-1, 1] coordinates (what the
        authors' code computes). ``discrete=True`` adds ``D log(2/255)``: the log-probability
        of the 8-bit bin that holds ``x`` (a lower bound when ``x`` is uniformly dequantised),
        so that ``-log p / (D ln 2)`` is bits per dimension.
        """
        lp = self.encode_hr(x)[2]
        return lp + x[0].numel() * math.log(BIN_WIDTH) if discrete else lp

    def log_prob_lr(self, y: Tensor, discrete: bool = False) -> Tensor:
        """Log-density of LR images in nats, ``[B]``; ``discrete`` as in :meth:`log_prob_hr`.
        It treats ``z_c = E(y)`` as a point estimate, as the authors' model does."""
        lp = self.encode_lr(y)[2]
        return lp + y[0].numel() * math.log(BIN_WIDTH) if discrete else lp

    # ------------------------------------------------------------------ decoding
    def decode_hr(self, z_c: Tensor, z_hf: Tensor) -> Tensor:
        """Exact inverse of :meth:`encode_hr`: ``(z_c, z_h') -> x``."""
        x, _ = self.hr_flow.inverse(torch.cat([z_c, z_hf], dim=1))
        return x

    def decode_lr(self, z_c: Tensor, z_deg: Tensor) -> Tensor:
        """Exact inverse of :meth:`encode_lr` given its ``z_c``: ``(z_c, z_d') -> y``."""
        z_d, _ = self.deg_flow.inverse(z_deg, z_c)
        y, _ = self.lr_flow.inverse(z_c + z_d)
        return y

    # ------------------------------------------------------------------ generation
    # The two directions are split into a "condition" part (everything that depends only
    # on the input image; the costly RRDB features) and a "decode" part (one per sample).
    # ``sr``/``downscale`` and the tiled image pipeline (sdflow.inference) share them.
    def sr_condition(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``y -> (z_c, u)``: the content latent E(y) and the HF flow's condition features."""
        z_c = self.content_extractor(y)
        return z_c, self.hr_flow.hf.cond_net(z_c)

    def sr_decode(self, z_c: Tensor, features: Tensor, z_hf: Tensor) -> Tensor:
        """``(z_c, u, z_h') -> x``: invert the HF flow and f_HR; ``z_h' = tau * eps``."""
        z_h, _ = self.hr_flow.split.inverse_given(z_c, z_hf, features)
        return self.hr_flow.decode_levels(torch.cat([z_c, z_h], dim=1))

    def ds_condition(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """HR ``x`` (sides multiples of :attr:`ds_multiple`) ``-> (z_c, u)``: the content
        latent of f_HR and the degradation flow's condition features."""
        z_c = self.content_from_hr(x)
        return z_c, self.deg_flow.cond_net(z_c)

    def ds_latent_shape(self, hr_height: int, hr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        """Shape of z_d' for an HR image whose sides are multiples of :attr:`ds_multiple`."""
        c = self.config.image_channels
        m = self.ds_multiple
        return (batch, 4 * c, hr_height // m, hr_width // m)

    def ds_decode(self, z_c: Tensor, features: Tensor, z_deg: Tensor) -> Tensor:
        """``(z_c, u, z_d') -> y``: invert the degradation flow and f_LR."""
        z_d, _ = self.deg_flow.inverse_features(z_deg, features)
        y, _ = self.lr_flow.inverse(z_c + z_d)
        return y

    def sr_latent_shape(self, lr_height: int, lr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        """The shape of the HF latent z_h' of an LR image: one ``hf_channels`` vector per
        LR pixel."""
        return (batch, self.config.hf_channels, lr_height, lr_width)

    def forward(self, y: Tensor, noise: Tensor | None = None) -> Tensor:
        """SR with an explicit HF latent: ``[B, 3, h, w] -> [B, 3, s*h, s*w]``.

        ``noise`` is z_h' itself, ``tau * eps`` of shape :meth:`sr_latent_shape` (None:
        zeros, i.e. tau 0, the mode). No sampling and no data-dependent checks inside, so
        the graph is deterministic and exportable; :meth:`sr` is the sampling API."""
        z_c, features = self.sr_condition(y)
        if noise is None:
            b, _, h, w = z_c.shape
            noise = z_c.new_zeros(b, self.config.hf_channels, h, w)
        return self.sr_decode(z_c, features, noise)

    def sr(self, y: Tensor, tau: float = SR_DEFAULT_TAU, num_samples: int = 1,
           generator: torch.Generator | None = None, noise: Tensor | None = None,
           truncate: float | None = None, *, seed: int | None = None) -> Tensor:
        """Super-resolve LR images ``y`` ``[B, 3, h, w]`` (any size >= 2x2).

        ``z_h' = tau * eps``; ``tau = 0`` is deterministic. Returns ``[B, 3, s*h, s*w]`` for
        one sample, ``[B, N, 3, s*h, s*w]`` for ``num_samples = N > 1``. ``noise`` gives eps
        explicitly (``[B, 45, h, w]`` or ``[B, N, 45, h, w]``) instead of drawing it from
        ``generator`` (or from ``seed``: a CPU generator seeded with it). Raises
        :class:`NonFiniteOutputError` if a sample is not finite. For PIL images and numpy
        arrays (tiled, any size) use :func:`sdflow.super_resolve`.
        """
        generator = generator_from(seed, generator)
        _tensor_or_raise(y, "sr", "super_resolve")
        self._check_lr(y, even=False)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        z_c, features = self.sr_condition(y)
        b, _, h, w = z_c.shape
        shape = (b, self.config.hf_channels, h, w)
        if noise is not None and noise.ndim == 4:
            noise = noise.unsqueeze(1)
        outs = []
        for i in range(num_samples):
            if noise is not None:
                eps = tau * noise[:, i].to(z_c)
            else:
                eps = self.hf_prior.sample(shape, tau, generator=generator, device=z_c.device,
                                           dtype=z_c.dtype, truncate=truncate)
            outs.append(self.sr_decode(z_c, features, eps))
        out = torch.stack(outs, dim=1)
        _finite_or_raise(out, "super-resolution")
        return out[:, 0] if num_samples == 1 else out

    # ------------------------------------------------------------------ initialisation
    @torch.no_grad()
    def initialize_actnorm(self, hr: Tensor, lr: Tensor) -> None:
        """Data-dependent ActNorm init from one HR batch and one LR batch (each layer sees
        the activations of its own path). Layers already initialised are left alone."""
        with data_init(self):
            self.encode_hr(hr)
            self.encode_lr(lr)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
