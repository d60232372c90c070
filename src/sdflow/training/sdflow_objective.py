"""The unpaired SDFlow training objective (the authors never released it).

docs/training.md ("The objective") states it term by term; every assumed choice is a field of
:class:`SDFlowLossConfig` whose default is the documented one. With ``x`` HR and ``y`` LR
crops (unpaired, dequantised)::

    L_G = w_hr NLL_HR + w_lr NLL_LR + lambda_c L_content + lambda_d L_dom + R
          + [it >= n_pre] (lambda_adv L_adv + lambda_lf L_lf + lambda_per L_per)

- NLL_HR = -log p(x)/(3HW) (f_HR, f_HF); NLL_LR = -log p(y)/(3hw) (f_LR, f_Deg, mixture, E).
- L_content: the content latents decoded alone through f_LR with its parameters frozen,
  compared after a Gaussian low-pass with the MATLAB-bicubic x1/4 of x and with y (L1),
  plus alpha times a VGG perceptual distance on the same pairs.
- L_dom: LSGAN on a latent discriminator D_c (real = HR content, fake = LR content) with
  swapped labels for the generator; R = beta1 (E z_cx^2 + E z_cy^2) + beta2 E (z_LR - sg z_cy)^2.
- Stage 2: SR samples x^ = SR(y; tau) and DS samples y^ = DS(x; tau), 8-bit quantised with a
  straight-through gradient, against D_HR / D_LR (LSGAN), and low-frequency consistency
  ||G B(x^) - G y||_1 + ||G y^ - G B(x)||_1, plus VGG perceptual distances on the same
  pairs: lambda_per for the SR pair, lambda_per_ds for the DS pair (the project's first
  reading of the paper used one weight for both; a full-band distance between y^ and the
  bicubic B(x) pulls the downscaling towards bicubic, so the DS pair has its own weight).
  No pixel loss ever compares a generated image with an unpaired image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from sdflow.config import FieldError, check_ranges
from sdflow.metrics.degradation_fit import degrade
from sdflow.metrics.resize import imresize
from sdflow.models import SDFlow
from sdflow.nets.discriminators import PatchDiscriminator
from sdflow.training.losses import (
    PerceptualLoss,
    TargetCache,
    channel_weights_problem,
    check_loss_fields,
    frozen,
    gaussian_blur,
    gaussian_blur_per_sample,
    grid_gap,
    lsgan,
    lsgan_discriminator,
    nats_to_bits_per_dim,
    quantize_8bit,
    run_pair,
    spectrum_distance,
)
from sdflow.training.objective import Objective


@dataclass
class SDFlowLossConfig:
    """Weights and switches of the SDFlow objective (defaults: docs/training.md, "The
    objective")."""

    #: The generator terms, each weighted by the field of its name (content_perceptual is
    #: a weight inside the content term).
    TERMS: ClassVar[tuple[str, ...]] = (
        "nll_hr", "nll_lr", "content", "domain", "beta1", "beta2", "adversarial",
        "low_frequency", "perceptual", "perceptual_ds", "mode_hr", "mode_lr", "content_cycle",
        "content_synthetic", "spectrum", "sr_cycle", "sr_grid", "sr_synthetic")

    nll_hr: float = 1.0
    nll_lr: float = 1.0
    content: float = 1.0  # lambda_c
    content_perceptual: float = 0.05  # alpha, inside L_content
    domain: float = 0.05  # lambda_d
    beta1: float = 0.05  # content-scale bound
    beta2: float = 0.5  # keeps z_d = z_LR - z_c small (f_LR only)
    adversarial: float = 0.1  # lambda_adv, stage 2
    low_frequency: float = 1.0  # lambda_lf, stage 2
    perceptual: float = 0.5  # lambda_per, stage 2: VGG distance of B(x^) to y (SR pair)
    perceptual_ds: float = 0.5  # the same for the DS pair, y^ to B(x)
    # Our addition (not in the paper's objective; 0 = off): the tau = 0 outputs as
    # reconstructions of the training image itself, which needs no pairing:
    # mode_hr: ||decode_hr(z_c^x, z_h' = 0) - x||_1, the HR image from its own content at
    # the latent mode (what SR at tau = 0 outputs); mode_lr: ||decode_lr(E(y), mu_k*) - y||_1
    # with k* the image's most responsible mixture component (what DS at tau = 0 outputs).
    mode_hr: float = 0.0
    mode_lr: float = 0.0
    # Our addition (0 = off): content cycle through the model's own realistic downscaling.
    # y^ = DS(x; tau_train) is a synthetic real-looking LR whose content is known to be
    # z_c^x; ||E(sg y^) - sg z_c^x||_1 teaches E to see through real degradations (the
    # unpaired data never show E a degraded image together with its clean content).
    content_cycle: float = 0.0
    # Our addition (0 = off): a pixel cycle HR -> LR -> HR, stage 2. The SR at tau = 0 of
    # the model's own DS sample of x (the 8-bit y^ of the stage-2 terms, detached) is
    # compared with x: ||SR_0(sg y^) - x||_1. SR learns to invert the learned, realistic
    # degradation as an SR network trained on the model's own (HR, LR) pairs would
    # (make-pairs); the DS side gets no gradient from it, so it is not pulled towards
    # LR images that are easy to invert. Reaches E, f_HR and f_HF.
    sr_cycle: float = 0.0
    # Whether sr_cycle's gradient reaches the HR decoder (f_HR and the HF flow). False: only
    # E learns from it (the decoder, whose predict step keeps the 4x4 grid away, is frozen
    # for this term). With it true a leg raised the SR block ratio at every temperature
    # (docs/training.md, "SDFlow's SR on its own pairs"); false gave no SR gain in a probe.
    sr_cycle_trains_decoder: bool = True
    # Our addition (0 = off; needs sr_cycle): how far the 4x4 grid of the HR flow's squeezes
    # in sr_cycle's SR is from the HR crop's, |block ratio of the SR - the crop's| (the block
    # ratio of sdflow.metrics.artefacts: mean luma difference across grid lines over inside,
    # pooled over the batch). Two-sided: a one-sided hinge at 0.1 overshot to an inverse
    # grid (block 0.92, docs/training.md). It reaches what sr_cycle reaches.
    sr_grid: float = 0.0
    # Our addition (0 = off): content from synthetically degraded HR. Each HR crop is
    # blurred with a random Gaussian (sigma ~ U(0, synthetic_blur_max) HR pixels), MATLAB-
    # bicubic downscaled, given white noise (std ~ U(0, synthetic_noise_max) grey levels)
    # and 8-bit quantised; ||E(that) - sg z_c^x||_1 teaches E to recover the content of an
    # HR image through a range of blurs and noise (it uses HR images only: no pairing).
    content_synthetic: float = 0.0
    # Our addition (0 = off): the pixel-space partner of content_synthetic. The tau = 0 SR
    # of the same synthetic LR (random Gaussian blur, bicubic, noise, 8 bits) is compared
    # with the HR crop: ||SR_0(that) - x||_1. With one fitted camera blur in the anchors
    # (degradation_blur) SR otherwise sharpens every input as if it had that blur: a
    # sharper camera's LR comes out over-sharpened, a blurrier one's soft (docs/training.md,
    # "SDFlow's SR on its own pairs"). Reaches E, f_HR and f_HF.
    sr_synthetic: float = 0.0
    # Our addition (0 = off): unpaired power-spectrum matching, stage 2. The batch-mean
    # share of each radial frequency band (per channel) of the DS samples against the real
    # LR batch's (training.losses.spectrum_distance): a statistic that a single Gaussian
    # blur cannot match (the real LR has less fine-band energy than the Gaussian with its
    # blur index) and that needs no pairing.
    spectrum: float = 0.0
    spectrum_bands: int = 8
    # The channels whose spectra are matched: R, G, B, or luma and colour differences
    # (ycbcr also sees how sharp or noisy the colour is, which per-channel RGB spectra
    # cannot tell from grey detail; docs/training.md, "Colour detail").
    spectrum_space: Literal["rgb", "ycbcr"] = "rgb"
    # How the term splits between the three channels of spectrum_space (a weighted mean:
    # equal weights are the plain mean; [3, 1, 1] in ycbcr pulls the brightness spectrum
    # three times as hard as each colour difference).
    spectrum_channel_weights: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    synthetic_blur_max: float = 2.5
    synthetic_noise_max: float = 3.0
    n_pre: int = 50_000  # iterations before the stage-2 terms switch on
    tau_train: float = 0.8  # temperature of the stage-2 samples
    blur_size: int = 5
    blur_sigma: float = 1.1
    # Our addition: the camera blur of the HR-side anchors. Every term that compares with
    # the downscaled HR image B(x) (content, stage-2 low-frequency and DS perceptual) or
    # downscales an SR sample (stage-2 SR consistency) uses B(G_sigma x) instead: a Gaussian
    # of this sigma (HR pixels) before the bicubic x1/s. 0 = plain bicubic (the design
    # notes). "auto" fits sigma at start-up to the training folders' real LR by unpaired
    # statistics (sdflow.metrics.degradation_fit; the run's config.json records the value).
    # With plain bicubic the HR content is sharper than the real LR's content, so the
    # downscaling comes out bicubic and SR blurry (docs/training.md).
    degradation_blur: float | Literal["auto"] = 0.0
    # Our addition: the blur of the colour differences (BT.601 Cb, Cr) in the same anchors,
    # HR pixels. None = degradation_blur (one RGB blur). A camera's colour is blurrier than
    # its brightness; "auto" (with degradation_blur: auto) fits it with sigma by the real
    # LR's colour detail, as sdflow fit-degradation does.
    degradation_colour_blur: float | Literal["auto"] | None = None
    # Our addition (True = the paper): whether NLL_LR's gradient reaches E through
    # z_d = z_LR - E(y). The mixture density is highest for a small z_d, so this gradient
    # pulls E(y) towards f_LR(y); it is the largest pull on E of all terms. False:
    # z_d = z_LR - sg E(y); f_LR, f_Deg and the mixture still learn from the NLL. Measured:
    # without it E(y) keeps the real LR's blur all the same, at lower fidelity
    # (docs/training.md, "The likelihood's pull on E, measured and cut").
    nll_lr_reaches_content: bool = True
    quantize_samples: bool = True
    lr_disc_input: Literal["image", "highpass"] = "image"
    disc_base: int = 64
    content_disc_down: int = 2
    lr_disc_down: int = 2
    hr_disc_down: int = 3
    perceptual_layers: list[str] = field(
        default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3"])

    def __post_init__(self) -> None:
        check_loss_fields(self, (*self.TERMS, "content_perceptual"))
        check_ranges(self, {"synthetic_blur_max": (0.0, 20.0), "synthetic_noise_max": (0.0, 255.0),
                            "tau_train": (0.0, 2.0), "blur_size": (0, 31),
                            "spectrum_bands": (2, 64),
                            "blur_sigma": (0.0, 20.0)})
        if self.degradation_blur != "auto":
            check_ranges(self, {"degradation_blur": (0.0, 8.0)})
        if self.degradation_colour_blur == "auto" and self.degradation_blur != "auto":
            raise FieldError("degradation_colour_blur", "'auto' is fitted together with the "
                             "brightness blur: set degradation_blur: auto too, or give a number")
        if self.degradation_colour_blur not in (None, "auto"):
            check_ranges(self, {"degradation_colour_blur": (0.0, 8.0)})
        if self.blur_size > 1 and self.blur_size % 2 == 0:
            raise FieldError("blur_size", f"must be odd (or 0/1: no blur), got {self.blur_size}")
        if self.sr_grid > 0 and self.sr_cycle == 0:
            raise FieldError("sr_grid", "penalises the grid of sr_cycle's SR output: set "
                             "loss.sr_cycle > 0 too, or sr_grid: 0")
        problem = channel_weights_problem(self.spectrum_channel_weights)
        if problem:
            raise FieldError("spectrum_channel_weights", problem)

    @property
    def needs_perceptual(self) -> bool:
        return self.content_perceptual > 0 or self.perceptual > 0 or self.perceptual_ds > 0


#: The model groups a gradient can reach, for the gradient-flow tests.
def parameter_groups(model: SDFlow) -> dict[str, list[nn.Parameter]]:
    return {
        "f_HR": list(model.hr_flow.levels.parameters()),
        "f_HF": list(model.hr_flow.split.parameters()),
        "E": list(model.content_extractor.parameters()),
        "f_LR": list(model.lr_flow.parameters()),
        "f_Deg": list(model.deg_flow.parameters()),
        "prior": list(model.deg_prior.parameters()),
    }


class SDFlowDiscriminators(nn.Module):
    """D_c (content latents), D_HR (SR samples vs HR), D_LR (DS samples vs real LR)."""

    def __init__(self, cfg: SDFlowLossConfig, channels: int = 3):
        super().__init__()
        self.content = PatchDiscriminator(channels, cfg.disc_base, cfg.content_disc_down)
        self.hr = PatchDiscriminator(channels, cfg.disc_base, cfg.hr_disc_down)
        self.lr = PatchDiscriminator(channels, cfg.disc_base, cfg.lr_disc_down)


class SDFlowObjective(Objective):
    """Computes the generator terms and, from its cache, the discriminator terms.

    ``generator_terms`` returns unweighted terms; ``weighted_total`` applies the config. The
    discriminators are used frozen in the generator pass (gradients reach the model only).
    """

    def __init__(self, model: SDFlow, discriminators: SDFlowDiscriminators,
                 cfg: SDFlowLossConfig, perceptual: PerceptualLoss | None = None, *,
                 share_targets: bool = True, batch_frozen_passes: bool = True):
        super().__init__(cfg, discriminators, perceptual, "set loss.content_perceptual=0, "
                         "loss.perceptual=0 and loss.perceptual_ds=0")
        self.model = model
        # the speed section of the training config (float rounding only)
        self.share_targets = share_targets
        self.batch_frozen_passes = batch_frozen_passes
        #: sigma of the HR-side anchor's blur (loss.degradation_blur); None until an "auto"
        #: value is fitted to the data (SDFlowTask.fit_to_data)
        self.degradation_sigma: float | None = \
            None if cfg.degradation_blur == "auto" else float(cfg.degradation_blur)
        #: the colour differences' sigma (loss.degradation_colour_blur; None: the same)
        self.degradation_colour_sigma: float | None = \
            None if cfg.degradation_colour_blur in (None, "auto") \
            else float(cfg.degradation_colour_blur)

    # ------------------------------------------------------------------ helpers
    def _blur(self, x: Tensor) -> Tensor:
        return gaussian_blur(x, self.cfg.blur_size, self.cfg.blur_sigma)

    def _degrade(self, x: Tensor) -> Tensor:
        """B(G_sigma x): the anchor's degradation of an HR image (or SR sample)."""
        if self.degradation_sigma is None:
            raise RuntimeError("loss.degradation_blur is 'auto' but was not fitted to the "
                               "data; call SDFlowTask.fit_to_data first")
        return degrade(x, self.model.scale, self.degradation_sigma,
                       colour_sigma=self.degradation_colour_sigma)

    def _lowpass_l1(self, a: Tensor, target: Tensor, targets: TargetCache) -> Tensor:
        return (self._blur(a) - targets.get("blur", target, self._blur)).abs().mean()

    def _sr_mode(self, z_c: Tensor) -> Tensor:
        """The tau = 0 SR of an LR image whose content is ``z_c``: decoded at z_h' = 0."""
        m = self.model
        return m.decode_hr(z_c, z_c.new_zeros(z_c.shape[0], m.config.hf_channels,
                                               *z_c.shape[2:]))

    def _content_decodes(self, z_c_x: Tensor, z_c_y: Tensor) -> tuple[Tensor, Tensor]:
        """Both content latents decoded alone through the frozen ``f_LR``."""
        lr_flow = self.model.lr_flow
        with frozen(lr_flow):
            return run_pair(lambda z: lr_flow.inverse(z)[0], z_c_x, z_c_y,
                            batched=self.batch_frozen_passes)

    def _perceptual_sums(self, groups: dict[str, list[tuple[Tensor, Tensor]]],
                         targets: TargetCache) -> dict[str, Tensor]:
        """For each group of (generated, data target) pairs, the sum of their VGG distances."""
        pairs = [pair for group in groups.values() for pair in group]
        if not pairs:
            return {}
        features = self.perceptual.features
        target_features = [targets.get("vgg", b, features) for _, b in pairs]
        generated = [a for a, _ in pairs]
        if self.batch_frozen_passes and len({a.shape for a in generated}) == 1:
            n = generated[0].shape[0]
            joint = features(torch.cat(generated))
            losses = [self.perceptual.distance([g[i * n:(i + 1) * n] for g in joint], tf)
                      for i, tf in enumerate(target_features)]
        else:
            losses = [self.perceptual.to_features(a, tf)
                      for a, tf in zip(generated, target_features, strict=True)]
        sums, start = {}, 0
        for name, group in groups.items():
            sums[name] = sum(losses[start:start + len(group)])
            start += len(group)
        return sums

    @torch.no_grad()
    def _synthetic_lr(self, hr: Tensor, generator: torch.Generator | None,
                      batch_offset: int, global_batch: int | None) -> Tensor:
        """Blur (random sigma), bicubic x1/scale, white noise (random std), 8-bit rounding;
        the random draws are made for the global batch and sliced like the stage-2 noise."""
        cfg = self.cfg
        b = hr.shape[0]
        n = global_batch or b
        part = slice(batch_offset, batch_offset + b)
        sigmas = (torch.rand(n, generator=generator) * cfg.synthetic_blur_max)[part]
        noise_std = (torch.rand(n, generator=generator) * cfg.synthetic_noise_max)[part]
        low = imresize(gaussian_blur_per_sample(hr, sigmas.to(hr.device)),
                       scale=1 / self.model.scale)
        eps = torch.randn(n, *low.shape[1:], generator=generator, dtype=hr.dtype)[part]
        noisy = low + eps.to(hr.device) * (2.0 / 255.0) * noise_std.to(hr).view(-1, 1, 1, 1)
        return quantize_8bit(noisy)

    def _lr_disc_input(self, y: Tensor) -> Tensor:
        return y - self._blur(y) if self.cfg.lr_disc_input == "highpass" else y

    # ------------------------------------------------------------------ generator
    def generator_terms(self, hr: Tensor, lr: Tensor, iteration: int,
                        generator: torch.Generator | None = None, batch_offset: int = 0,
                        global_batch: int | None = None
                        ) -> tuple[dict[str, Tensor], dict[str, float], dict[str, Tensor]]:
        """Unweighted loss terms, monitoring values and the cache for the discriminators.

        Stage-2 noise is drawn for the whole global batch (``global_batch`` samples, from
        ``generator``) and this process takes its slice at ``batch_offset``, so N processes
        draw the same noise as one process with the whole batch.
        """
        m, cfg, d = self.model, self.cfg, self.discriminators
        terms: dict[str, Tensor] = {}
        stats: dict[str, float] = {}
        z_c_x, z_hf, logp_hr = m.encode_hr(hr)
        enc = m.encode_lr_parts(lr, detach_content=not cfg.nll_lr_reaches_content)
        z_c_y = enc.z_c
        terms["nll_hr"] = -logp_hr.mean() / hr[0].numel()
        terms["nll_lr"] = -enc.log_prob.mean() / lr[0].numel()

        down_hr = self._degrade(hr)
        targets = TargetCache(self.share_targets)
        perceptual_pairs: dict[str, list[tuple[Tensor, Tensor]]] = {}
        content_x, content_y = self._content_decodes(z_c_x, z_c_y)
        terms["content"] = self._lowpass_l1(content_x, down_hr, targets) + \
            self._lowpass_l1(content_y, lr, targets)
        if cfg.content_perceptual > 0:
            perceptual_pairs["content"] = [(content_x, down_hr), (content_y, lr)]

        with frozen(d):
            dx, dy = d.content(z_c_x), d.content(z_c_y)
        terms["domain"] = 0.5 * lsgan(dx, 0.0) + 0.5 * lsgan(dy, 1.0)
        terms["beta1"] = z_c_x.pow(2).mean() + z_c_y.pow(2).mean()
        terms["beta2"] = (enc.z_lr - z_c_y.detach()).pow(2).mean()
        if cfg.mode_hr > 0:
            recon = m.decode_hr(z_c_x, torch.zeros_like(z_hf))
            terms["mode_hr"] = (recon - hr).abs().mean()
        if cfg.mode_lr > 0:
            k = m.deg_prior.responsibilities(enc.z_deg.detach()).argmax(dim=1)
            z_mode = m.deg_prior.means[k].view(-1, 1, 1, 1).expand_as(enc.z_deg)
            terms["mode_lr"] = (m.decode_lr(z_c_y, z_mode) - lr).abs().mean()

        if cfg.content_cycle > 0:
            with torch.no_grad():
                b, c, h, w = z_c_x.shape
                n = global_batch or b
                part = slice(batch_offset, batch_offset + b)
                z_deg = m.deg_prior.sample((n, 4 * c, h // 2, w // 2), cfg.tau_train,
                                           generator=generator, device=hr.device,
                                           dtype=hr.dtype)[part]
                fake_lr = quantize_8bit(m.decode_lr(z_c_x, z_deg))
            terms["content_cycle"] = (m.content_extractor(fake_lr) - z_c_x.detach()).abs().mean()

        if cfg.content_synthetic > 0 or cfg.sr_synthetic > 0:
            fake_lr = self._synthetic_lr(hr, generator, batch_offset, global_batch)
            z_c_fake = m.content_extractor(fake_lr)
            if cfg.content_synthetic > 0:
                terms["content_synthetic"] = (z_c_fake - z_c_x.detach()).abs().mean()
            if cfg.sr_synthetic > 0:
                terms["sr_synthetic"] = (self._sr_mode(z_c_fake) - hr).abs().mean()

        cache = {"z_c_x": z_c_x.detach(), "z_c_y": z_c_y.detach(), "hr": hr, "lr": lr}
        if self.past_warm_up(iteration):
            tau = cfg.tau_train
            b, c, h, w = z_c_x.shape
            n = global_batch or b
            part = slice(batch_offset, batch_offset + b)
            eps = torch.randn(n, m.config.hf_channels, *z_c_y.shape[2:], generator=generator,
                              dtype=hr.dtype)[part].to(hr.device)
            sr = m.decode_hr(z_c_y, tau * eps)
            z_deg = m.deg_prior.sample((n, 4 * c, h // 2, w // 2), tau, generator=generator,
                                       device=hr.device, dtype=hr.dtype)[part]
            ds = m.decode_lr(z_c_x, z_deg)
            if cfg.quantize_samples:
                sr, ds = quantize_8bit(sr), quantize_8bit(ds)
            with frozen(d):
                terms["adversarial"] = 0.5 * lsgan(d.hr(sr), 1.0) + \
                    0.5 * lsgan(d.lr(self._lr_disc_input(ds)), 1.0)
            down_sr = self._degrade(sr)
            terms["low_frequency"] = self._lowpass_l1(down_sr, lr, targets) + \
                self._lowpass_l1(ds, down_hr, targets)
            if cfg.spectrum > 0:
                terms["spectrum"] = spectrum_distance(ds, lr, cfg.spectrum_bands,
                                                       cfg.spectrum_space,
                                                       cfg.spectrum_channel_weights)
            if cfg.sr_cycle > 0:
                z_c_ds = m.content_extractor(ds.detach())
                with frozen([] if cfg.sr_cycle_trains_decoder else [m.hr_flow]):
                    sr_of_ds = self._sr_mode(z_c_ds)
                terms["sr_cycle"] = (sr_of_ds - hr).abs().mean()
                if cfg.sr_grid > 0:
                    terms["sr_grid"] = grid_gap(sr_of_ds, hr, m.config.scale)
            if cfg.perceptual > 0:
                perceptual_pairs["perceptual"] = [(down_sr, lr)]
            if cfg.perceptual_ds > 0:
                perceptual_pairs["perceptual_ds"] = [(ds, down_hr)]
            cache.update(sr=sr.detach(), ds=ds.detach())

        # VGG distances last, so that all generated images share one pass (perf switches)
        sums = self._perceptual_sums(perceptual_pairs, targets)
        if "content" in sums:
            terms["content"] = terms["content"] + cfg.content_perceptual * sums["content"]
        for name in ("perceptual", "perceptual_ds"):
            if name in sums:
                terms[name] = sums[name]

        with torch.no_grad():
            stats["bpd_hr"] = float(nats_to_bits_per_dim(terms["nll_hr"]))
            stats["bpd_lr"] = float(nats_to_bits_per_dim(terms["nll_lr"]))
            stats["zc_hr_mean"], stats["zc_hr_std"] = float(z_c_x.mean()), float(z_c_x.std())
            stats["zc_lr_mean"], stats["zc_lr_std"] = float(z_c_y.mean()), float(z_c_y.std())
            stats["zd_std"] = float((enc.z_lr - z_c_y).std())
            stats["sigma_mean"] = float(m.deg_prior.effective_log_stds().exp().mean())
        return terms, stats, cache

    # ------------------------------------------------------------------ discriminators
    def discriminator_terms(self, cache: dict[str, Tensor], iteration: int
                            ) -> dict[str, Tensor]:
        d = self.discriminators
        terms = {}
        if self.cfg.domain > 0:
            terms["d_content"] = lsgan_discriminator(d.content(cache["z_c_x"]),
                                                     d.content(cache["z_c_y"]))
        if self.past_warm_up(iteration) and self.cfg.adversarial > 0:
            terms["d_hr"] = lsgan_discriminator(d.hr(cache["hr"]), d.hr(cache["sr"]))
            terms["d_lr"] = lsgan_discriminator(d.lr(self._lr_disc_input(cache["lr"])),
                                                d.lr(self._lr_disc_input(cache["ds"])))
        return terms

    @torch.no_grad()
    def after_generator_step(self) -> None:
        """Projections after each optimiser step: keep log sigma_k above its floor."""
        prior = self.model.deg_prior
        prior.log_stds.clamp_(min=prior.log_std_min)
