"""What every training objective shares: a loss config whose named fields weigh the terms,
one weighting rule, the warm-up that keeps the adversarial part off, and discriminators and
a perceptual loss that the objective uses but does not own (the generator step must not
optimise their parameters)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn


class LossConfig(Protocol):
    """A loss section (``training.config``): the weights of :attr:`TERMS` are its fields."""

    #: The generator terms the objective returns, each weighted by the field of its name.
    TERMS: ClassVar[tuple[str, ...]]
    n_pre: int  # warm-up iterations without adversarial terms (and no discriminator steps)

    @property
    def needs_perceptual(self) -> bool: ...


def term_weights(cfg: LossConfig) -> dict[str, float]:
    """``{term: weight}`` for every term the config's objective returns."""
    return {name: float(getattr(cfg, name)) for name in cfg.TERMS}


class Objective(nn.Module):
    """Base of the model families' objectives. ``generator_terms`` returns unweighted terms,
    monitoring values and a cache for the discriminator step; :meth:`weighted_total` is
    the one rule that weighs them (a term weighted 0 is left out, so a non-finite value
    of a switched-off term cannot reach the total)."""

    def __init__(self, cfg: Any, discriminators: nn.Module, perceptual: nn.Module | None,
                 perceptual_fix: str):
        super().__init__()
        self.cfg = cfg
        # Not registered as submodules: the generator step must not own their parameters.
        object.__setattr__(self, "discriminators", discriminators)
        object.__setattr__(self, "perceptual", perceptual)
        if cfg.needs_perceptual and perceptual is None:
            raise ValueError(f"perceptual weights are > 0 but no PerceptualLoss was given; "
                             f"{perceptual_fix} to train without VGG features")

    def past_warm_up(self, iteration: int) -> bool:
        """Whether ``iteration`` is past ``loss.n_pre`` (SDFlow's stage 2; da-iccv21's
        adversarial terms)."""
        return iteration >= self.cfg.n_pre

    def weighted_total(self, terms: dict[str, Tensor]) -> Tensor:
        weights = term_weights(self.cfg)
        unknown = sorted(set(terms) - set(weights))
        if unknown:  # a new term without a weight would silently not train
            raise KeyError(f"terms without a weight in {type(self.cfg).__name__}.TERMS: "
                           f"{', '.join(unknown)}")
        return sum((weights[k] * v for k, v in terms.items() if weights[k] != 0),
                   torch.zeros(()))

    def generator_terms(self, hr: Tensor, lr: Tensor, iteration: int,
                        generator: torch.Generator | None = None, batch_offset: int = 0,
                        global_batch: int | None = None
                        ) -> tuple[dict[str, Tensor], dict[str, float], dict[str, Tensor]]:
        """(unweighted terms, monitoring values, cache for :meth:`discriminator_terms`)."""
        raise NotImplementedError

    def discriminator_terms(self, cache: dict[str, Tensor], iteration: int
                            ) -> dict[str, Tensor]:
        """The discriminators' losses on the cached (detached) images; empty when none is
        being trained at ``iteration``."""
        raise NotImplementedError

    def after_generator_step(self) -> None:
        """Projections after each optimiser step (none by default)."""
