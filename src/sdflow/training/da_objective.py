"""The training objective of ``da-iccv21``, **our re-implementation** of Wang et al.,
ICCV 2021 (docs/domain-adaptation.md, "Losses").

Notation: ``y_s`` clean HR crop (source), ``x_s = bicubic x1/4 (y_s)`` (MATLAB imresize,
antialiased), ``x_t`` a real LR crop (target, unpaired). ``f_s = E(x_s)``, ``f_t = E(x_t)``,
``x_{s->t} = G_t(f_s)``, ``x_{t->t} = G_t(f_t)``, ``f~_s = E(x_{s->t})``,
``y_{s->s} = G_SR(f_s)``, ``y_{s->t->s} = G_SR(f~_s)``. Generator terms::

    L_align = 1/2 (D_f(f_s) - 0.5)^2 + 1/2 (D_f(f_t) - 0.5)^2              (E)
    L_rec   = |y_{s->s} - y_s|_1 + alpha L_per(y_{s->s}, y_s) + beta (D_HR(y_{s->s}) - 1)^2
    L_res   = |x_{t->t} - x_t|_1                                            (E, G_t)
    L_sty   = (D_t(x_{s->t}) - 1)^2                                         (E, G_t)
    L_idt   = |f~_s - f_s|_1   (f_s optionally under stop-gradient)         (E, G_t)
    L_cyc   = |y_{s->t->s} - y_s|_1 [+ alpha L_per + beta (D_HR(y_{s->t->s}) - 1)^2]
    L_G     = sum_k lambda_k L_k

(all squared terms are means over the discriminators' score maps). Discriminators (LSGAN):
D_f real = f_s, fake = f_t; D_t real = x_t, fake = x_{s->t}; D_HR real = y_s, fake =
y_{s->s} and, when L_cyc has its adversarial part, y_{s->t->s}.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.config import check_ranges
from sdflow.metrics.degradation_fit import degrade
from sdflow.metrics.resize import imresize
from sdflow.models.da_iccv21 import DAICCV21
from sdflow.nets.discriminators import PatchDiscriminator
from sdflow.training.losses import (
    PerceptualLoss,
    check_loss_fields,
    frozen,
    lsgan,
    lsgan_discriminator,
    quantize_8bit,
    run_pair,
)
from sdflow.training.objective import Objective


@dataclass
class DALossConfig:
    """Weights and switches of the objective. Defaults: the toolkit default
    (docs/domain-adaptation.md, "What we chose, and why"); the ``da_usr_compat_x4`` preset
    sets USR_DA's values."""

    #: The generator terms, in the order of the paper's full objective.
    TERMS: ClassVar[tuple[str, ...]] = ("align", "rec", "res", "sty", "idt", "cyc")

    align: float = 0.01  # lambda_align
    rec: float = 1.0  # lambda_rec
    res: float = 1.0  # lambda_res
    sty: float = 0.01  # lambda_sty
    idt: float = 0.1  # lambda_idt
    cyc: float = 1.0  # lambda_cyc
    perceptual: float = 1.0  # alpha, inside L_rec and (full) L_cyc; 0: VGG never loaded
    adversarial: float = 0.005  # beta, inside L_rec and (full) L_cyc
    idt_stop_gradient: bool = False  # L_idt = |f~_s - sg(f_s)|_1 (our option; USR_DA: off)
    cyc_mode: Literal["full", "l1"] = "full"  # L_cyc as L_rec, or its L1 part only
    n_pre: int = 0  # warm-up iterations without any adversarial term (and no D steps)
    quantize_source: bool = True  # round x_s to 8-bit levels, like real LR inputs
    # x_s = bicubic x1/s of G_sigma * y_s (a Gaussian camera blur, sigma in HR pixels, as
    # SDFlow's loss.degradation_blur; "auto": fitted to the training folders without
    # pairs); 0: the paper's bicubic source LR. Our option, off by default.
    source_blur: float | Literal["auto"] = 0.0
    perceptual_layers: list[str] = field(
        default_factory=lambda: ["relu2_2", "relu3_3", "relu4_3", "relu5_3"])
    disc_base: int = 64
    feature_disc_down: int = 2  # D_f on LR-size feature maps
    lr_disc_down: int = 2  # D_t on LR images
    hr_disc_down: int = 3  # D_HR on SR images

    def __post_init__(self) -> None:
        check_loss_fields(self, (*self.TERMS, "perceptual", "adversarial"))
        if self.source_blur != "auto":
            check_ranges(self, {"source_blur": (0.0, 8.0)})

    @property
    def needs_perceptual(self) -> bool:
        return self.perceptual > 0 and (self.rec > 0 or (self.cyc > 0 and
                                                          self.cyc_mode == "full"))


def parameter_groups(generator: DAICCV21,
                     discriminators: DADiscriminators | None = None
                     ) -> dict[str, list[nn.Parameter]]:
    """The parameter groups a gradient can reach, for the gradient-flow tests."""
    groups = {"E": list(generator.encoder.parameters()),
              "G_SR": list(generator.sr_decoder.parameters()),
              "G_t": list(generator.lr_decoder.parameters())}
    if discriminators is not None:
        groups.update(D_f=list(discriminators.feature.parameters()),
                      D_t=list(discriminators.lr.parameters()),
                      D_HR=list(discriminators.hr.parameters()))
    return groups


class DADiscriminators(nn.Module):
    """D_f (features), D_t (LR images), D_HR (SR images): spectral-norm PatchGANs."""

    def __init__(self, cfg: DALossConfig, feature_channels: int, image_channels: int = 3):
        super().__init__()
        self.feature = PatchDiscriminator(feature_channels, cfg.disc_base, cfg.feature_disc_down)
        self.lr = PatchDiscriminator(image_channels, cfg.disc_base, cfg.lr_disc_down)
        self.hr = PatchDiscriminator(image_channels, cfg.disc_base, cfg.hr_disc_down)


# ---------------------------------------------------------------------- the sub-losses
def align_generator_loss(d_source: Tensor, d_target: Tensor) -> Tensor:
    """The encoder's L_align: both domains' D_f scores pushed to 0.5 (LSGAN)."""
    return 0.5 * lsgan(d_source, 0.5) + 0.5 * lsgan(d_target, 0.5)


def align_discriminator_loss(d_source: Tensor, d_target: Tensor) -> Tensor:
    """D_f's loss: source features 1, target features 0 (LSGAN, averaged)."""
    return lsgan_discriminator(d_source, d_target)


def identity_loss(f_tilde: Tensor, f_s: Tensor, stop_gradient: bool = False) -> Tensor:
    """L_idt = mean |f~_s - f_s|, with ``f_s`` detached when ``stop_gradient``."""
    return F.l1_loss(f_tilde, f_s.detach() if stop_gradient else f_s)


class DAObjective(Objective):
    """Computes the generator terms and, from its cache, the discriminator terms.

    ``generator_terms`` returns the six unweighted losses (L_rec and L_cyc already hold
    their alpha/beta parts) plus their components for logging; ``weighted_total`` applies
    the lambdas. The discriminators are frozen in the generator pass.
    """

    def __init__(self, generator: DAICCV21, discriminators: DADiscriminators,
                 cfg: DALossConfig, perceptual: PerceptualLoss | None = None):
        super().__init__(cfg, discriminators, perceptual, "set loss.perceptual=0 (alpha)")
        self.generator = generator

    def source_lr(self, hr: Tensor) -> Tensor:
        """``x_s``: MATLAB-style antialiased bicubic x1/scale of the HR crop, after the
        Gaussian camera blur ``loss.source_blur`` when it is set."""
        with torch.no_grad():
            sigma = 0.0 if self.cfg.source_blur == "auto" else float(self.cfg.source_blur)
            x_s = degrade(hr, self.generator.scale, sigma) if sigma > 0 else \
                imresize(hr, scale=1 / self.generator.scale)
            return quantize_8bit(x_s) if self.cfg.quantize_source else x_s


    def generator_terms(self, hr: Tensor, lr: Tensor, iteration: int,
                        generator: torch.Generator | None = None, batch_offset: int = 0,
                        global_batch: int | None = None
                        ) -> tuple[dict[str, Tensor], dict[str, float], dict[str, Tensor]]:
        """``hr`` = y_s, ``lr`` = x_t. Returns (terms, logged components, cache); nothing
        in it is random, so the noise generator and batch position are not used."""
        g, cfg, d = self.generator, self.cfg, self.discriminators
        adv = self.past_warm_up(iteration) and cfg.adversarial > 0
        y_s, x_t = hr, lr
        x_s = self.source_lr(y_s)
        f_s, f_t = run_pair(g.encoder, x_s, x_t)
        x_st, x_tt = run_pair(g.lr_decoder, f_s, f_t)
        f_st = g.encoder(x_st)
        y_ss, y_sts = run_pair(g.sr_decoder, f_s, f_st)

        terms: dict[str, Tensor] = {}
        logs: dict[str, Tensor] = {}
        target_features = None
        if self.perceptual is not None and cfg.perceptual > 0:
            with torch.no_grad():
                target_features = self.perceptual.features(y_s)
        with frozen(d):
            if self.past_warm_up(iteration):  # absent during the warm-up
                terms["align"] = align_generator_loss(d.feature(f_s), d.feature(f_t))
                terms["sty"] = lsgan(d.lr(x_st), 1.0)
            logs["rec_l1"] = F.l1_loss(y_ss, y_s)
            terms["rec"] = logs["rec_l1"]
            if target_features is not None:
                logs["rec_perceptual"] = self.perceptual.to_features(y_ss, target_features)
                terms["rec"] = terms["rec"] + cfg.perceptual * logs["rec_perceptual"]
            if adv:
                logs["rec_adversarial"] = lsgan(d.hr(y_ss), 1.0)
                terms["rec"] = terms["rec"] + cfg.adversarial * logs["rec_adversarial"]
            terms["res"] = F.l1_loss(x_tt, x_t)
            terms["idt"] = identity_loss(f_st, f_s, cfg.idt_stop_gradient)
            logs["cyc_l1"] = F.l1_loss(y_sts, y_s)
            terms["cyc"] = logs["cyc_l1"]
            if cfg.cyc_mode == "full":
                if target_features is not None:
                    logs["cyc_perceptual"] = self.perceptual.to_features(y_sts,
                                                                         target_features)
                    terms["cyc"] = terms["cyc"] + cfg.perceptual * logs["cyc_perceptual"]
                if adv:
                    logs["cyc_adversarial"] = lsgan(d.hr(y_sts), 1.0)
                    terms["cyc"] = terms["cyc"] + cfg.adversarial * logs["cyc_adversarial"]

        stats = {k: float(v.detach()) for k, v in logs.items()}
        with torch.no_grad():
            stats["f_s_std"], stats["f_t_std"] = float(f_s.std()), float(f_t.std())
            stats["x_st_vs_x_s_l1"] = float((x_st - x_s).abs().mean())
        cache = {"y_s": y_s, "x_t": x_t, "f_s": f_s.detach(), "f_t": f_t.detach(),
                 "x_st": x_st.detach(), "y_ss": y_ss.detach(), "y_sts": y_sts.detach()}
        return terms, stats, cache

    def discriminator_terms(self, cache: dict[str, Tensor], iteration: int
                            ) -> dict[str, Tensor]:
        """Each discriminator is trained only while its generator term is active."""
        d, cfg = self.discriminators, self.cfg
        terms: dict[str, Tensor] = {}
        if not self.past_warm_up(iteration):
            return terms
        if cfg.align > 0:
            terms["d_f"] = align_discriminator_loss(d.feature(cache["f_s"]),
                                                    d.feature(cache["f_t"]))
        if cfg.sty > 0:
            terms["d_t"] = lsgan_discriminator(d.lr(cache["x_t"]), d.lr(cache["x_st"]))
        fakes = []
        if cfg.adversarial > 0 and cfg.rec > 0:
            fakes.append(cache["y_ss"])
        if cfg.adversarial > 0 and cfg.cyc > 0 and cfg.cyc_mode == "full":
            fakes.append(cache["y_sts"])
        if fakes:
            terms["d_hr"] = lsgan_discriminator(d.hr(cache["y_s"]), d.hr(torch.cat(fakes)))
        return terms
