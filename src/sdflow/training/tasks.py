"""Training tasks: what the generic :class:`~sdflow.training.trainer.Trainer` needs from a
model family. A trainable architecture is registered once, in :data:`TRAINABLE`: its task
(networks, objective, data fitting, validation), its ``loss`` section and the
initialisations it offers; the config checks and the trainer read everything from there."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from sdflow.models.init import INIT_SCHEMES
from sdflow.training.da_objective import DALossConfig
from sdflow.training.data import PairedImage
from sdflow.training.objective import Objective
from sdflow.training.sdflow_objective import SDFlowLossConfig
from sdflow.training.sections import TrainConfig


class TrainingTask(Protocol):
    """A model family's training logic. The trainer owns optimisers, EMA, checkpoints,
    logging and distribution; the task owns the networks and the losses."""

    generator: nn.Module  # the model, a registered architecture: exported (EMA'd) whole
    discriminators: nn.Module | None

    def initialize(self, batch: dict[str, Tensor]) -> None:
        """Data-dependent initialisation (e.g. ActNorm) from one large batch."""

    def generator_loss(self, batch: dict[str, Tensor], iteration: int,
                       generator: torch.Generator, batch_offset: int, global_batch: int
                       ) -> tuple[Tensor, dict[str, float], dict[str, Tensor]]:
        """(total weighted loss, logs, cache for the discriminator step)."""

    def discriminator_loss(self, cache: dict[str, Tensor], iteration: int
                           ) -> tuple[Tensor | None, dict[str, float]]:
        """(total or None when no discriminator is active, logs)."""

    def after_generator_step(self) -> None:
        """Projections/constraints after each generator step."""

    def validate(self, model: nn.Module, pairs: list[PairedImage], samples: int, seed: int
                 ) -> tuple[dict[str, float], Any]:
        """(metrics, sample grid as HxWx3 uint8 or None) with ``model`` in eval mode."""

    def fit_to_data(self, lr_images: list, hr_images: list) -> dict[str, Any] | None:
        """Fit data-dependent objective settings to the training images (before step 0)."""

    #: Log keys the trainer prints in its progress line (when present).
    progress_keys: tuple[str, ...]


class ObjectiveTask:
    """What the tasks share around their :class:`~sdflow.training.objective.Objective`:
    the weighted generator loss and its logs, the discriminator total, the projections
    after each step and a lazily built LPIPS for validation. Subclasses set ``generator``,
    ``discriminators``, ``objective`` and call :meth:`_setup_validation`."""

    objective: Objective

    def _setup_validation(self, cfg: TrainConfig, device: torch.device) -> None:
        self._weights_dir = cfg.run.weights_dir
        self._device = device
        self._lpips = None
        self._lpips_tried = False

    def _lpips_or_none(self):
        from sdflow.training.validation import try_lpips

        if not self._lpips_tried:
            self._lpips = try_lpips(self._weights_dir, self._device)
            self._lpips_tried = True
        return self._lpips

    def generator_loss(self, batch, iteration, generator, batch_offset, global_batch):
        terms, stats, cache = self.objective.generator_terms(
            batch["hr"], batch["lr"], iteration, generator, batch_offset, global_batch)
        logs = {k: float(v.detach()) for k, v in terms.items()}
        logs.update(stats)
        return self.objective.weighted_total(terms), logs, cache

    def discriminator_loss(self, cache, iteration):
        terms = self.objective.discriminator_terms(cache, iteration)
        if not terms:
            return None, {}
        return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}

    def after_generator_step(self) -> None:
        self.objective.after_generator_step()

    def fit_to_data(self, lr_images: list, hr_images: list) -> dict[str, Any] | None:
        """Settings of the objective fitted to the training images before step 0 (the
        fitted values are written into the config); None when there are none."""
        return None


def _perceptual(cfg: TrainConfig, device: torch.device):
    """The VGG16 perceptual loss when the loss config needs it, else None."""
    from sdflow.training.losses import PerceptualLoss

    if not cfg.loss.needs_perceptual:
        return None
    return PerceptualLoss(cfg.loss.perceptual_layers, cfg.run.weights_dir).to(device)


def _model_config(config_cls: type, cfg: TrainConfig):
    try:
        return config_cls.preset(cfg.model.preset, **cfg.model.overrides)
    except TypeError as exc:
        raise ValueError(f"model.overrides: {exc}") from exc


class SDFlowTask(ObjectiveTask):
    """SDFlow: model + D_c/D_HR/D_LR + optional VGG perceptual loss."""

    progress_keys = ("loss", "nll_hr", "nll_lr", "content", "domain", "adversarial",
                     "low_frequency", "bpd_hr", "bpd_lr")

    def __init__(self, cfg: TrainConfig, device: torch.device):
        from sdflow.models import SDFlow, SDFlowConfig
        from sdflow.models.init import apply_init
        from sdflow.training.sdflow_objective import SDFlowDiscriminators, SDFlowObjective

        self.cfg = cfg
        model_cfg = _model_config(SDFlowConfig, cfg)
        self.model = apply_init(SDFlow(model_cfg, seed=cfg.run.seed), cfg.model.init).to(device)
        self.generator = self.model
        self.discriminators = SDFlowDiscriminators(cfg.loss).to(device)
        self.objective = SDFlowObjective(self.model, self.discriminators, cfg.loss,
                                         _perceptual(cfg, device),
                                         share_targets=cfg.speed.share_targets,
                                         batch_frozen_passes=cfg.speed.batch_frozen_passes)
        self._setup_validation(cfg, device)

    def initialize(self, batch: dict[str, Tensor]) -> None:
        self.model.initialize_actnorm(batch["hr"], batch["lr"])

    def fit_to_data(self, lr_images, hr_images):
        """``loss.degradation_blur: auto``: the Gaussian blur that makes degraded HR images
        as blurred as the real LR (unpaired statistics), written into ``cfg.loss``; with
        ``degradation_colour_blur: auto`` also the colour differences' blur."""
        from sdflow.metrics.degradation_fit import fit_gaussian_degradation

        loss = self.cfg.loss
        if loss.degradation_blur != "auto":
            return None
        colour = loss.degradation_colour_blur == "auto"
        fit = fit_gaussian_degradation(lr_images, hr_images, scale=self.model.scale,
                                       fit_colour=colour)
        loss.degradation_blur = fit.sigma
        self.objective.degradation_sigma = fit.sigma
        if colour:
            loss.degradation_colour_blur = fit.colour_sigma
            self.objective.degradation_colour_sigma = fit.colour_sigma
        return fit.to_dict()

    def validate(self, model, pairs, samples, seed):
        from sdflow.training.validation import validate_sdflow

        res = validate_sdflow(model, pairs, samples=samples, seed=seed,
                              lpips=self._lpips_or_none())
        return res.metrics, res.grid


class DATask(ObjectiveTask):
    """da-iccv21 (our re-implementation of Wang et al., ICCV 2021): E + G_SR + G_t trained
    together; D_f/D_t/D_HR; optional VGG16 perceptual loss. All three are exported (G_t is
    the model's downscaling direction)."""

    progress_keys = ("loss", "align", "rec", "res", "sty", "idt", "cyc", "d_f", "d_t", "d_hr")

    def __init__(self, cfg: TrainConfig, device: torch.device):
        from sdflow.models.da_iccv21 import DAICCV21, DAICCV21Config
        from sdflow.training.da_objective import DADiscriminators, DAObjective

        self.cfg = cfg
        model_cfg = _model_config(DAICCV21Config, cfg)
        self.generator = DAICCV21(model_cfg, seed=cfg.run.seed).to(device)
        self.discriminators = DADiscriminators(cfg.loss, model_cfg.channels,
                                               model_cfg.image_channels).to(device)
        self.objective = DAObjective(self.generator, self.discriminators, cfg.loss,
                                     _perceptual(cfg, device))
        self._setup_validation(cfg, device)

    def initialize(self, batch: dict[str, Tensor]) -> None:
        """Nothing data-dependent to initialise."""

    def fit_to_data(self, lr_images, hr_images):
        """``loss.source_blur: auto``: the Gaussian camera blur of the source LR, fitted to
        the training images as SDFlow's ``degradation_blur: auto`` is."""
        from sdflow.metrics.degradation_fit import fit_gaussian_degradation

        if self.cfg.loss.source_blur != "auto":
            return None
        fit = fit_gaussian_degradation(lr_images, hr_images, scale=self.generator.scale,
                                       fit_colour=False)
        self.cfg.loss.source_blur = fit.sigma
        return fit.to_dict()

    def validate(self, model, pairs, samples, seed):
        from sdflow.training.validation import validate_da

        res = validate_da(model, pairs, seed=seed, lpips=self._lpips_or_none())
        return res.metrics, res.grid


@dataclass(frozen=True)
class TrainingSpec:
    """What training an architecture of ``sdflow.models.ARCHITECTURES`` takes."""

    task: type  # a TrainingTask: built from (TrainConfig, device)
    loss_config: type  # the dataclass of the config's ``loss`` section
    init_schemes: tuple[str, ...] = ("random",)  # the values of ``model.init``


#: Every trainable architecture, by its name in ``sdflow.models.ARCHITECTURES``.
TRAINABLE: dict[str, TrainingSpec] = {
    "sdflow": TrainingSpec(SDFlowTask, SDFlowLossConfig, INIT_SCHEMES),
    "da-iccv21": TrainingSpec(DATask, DALossConfig),
}


def build_task(cfg: TrainConfig, device: torch.device) -> TrainingTask:
    return TRAINABLE[cfg.model.architecture].task(cfg, device)

