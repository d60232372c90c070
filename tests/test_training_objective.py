"""The one weighting rule of both model families' objectives (sdflow.training.objective)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sdflow.training.da_objective import DALossConfig
from sdflow.training.objective import Objective, term_weights
from sdflow.training.sdflow_objective import SDFlowLossConfig


class _Bare(Objective):
    def __init__(self, cfg):
        super().__init__(cfg, discriminators=torch.nn.Identity(), perceptual=torch.nn.Identity(),
                         perceptual_fix="unused")


@pytest.mark.parametrize("config", [SDFlowLossConfig, DALossConfig])
def test_every_term_is_weighted_by_the_config_field_of_its_name(config):
    cfg = config()
    names = {f.name for f in dataclasses.fields(cfg)}
    assert set(config.TERMS) <= names  # a TERMS entry without a field would fail here
    assert "TERMS" not in names  # a class constant, not a config key
    weights = term_weights(cfg)
    assert weights == {k: float(getattr(cfg, k)) for k in config.TERMS}
    obj = _Bare(cfg)
    terms = {k: torch.tensor(float(i + 1)) for i, k in enumerate(config.TERMS)}
    expected = sum(weights[k] * v.item() for k, v in terms.items())
    assert obj.weighted_total(terms).item() == pytest.approx(expected)


def test_a_term_weighted_zero_cannot_poison_the_total_and_unknown_terms_are_refused():
    cfg = SDFlowLossConfig(spectrum=0.0)
    obj = _Bare(cfg)
    nan = torch.tensor(float("nan"))
    total = obj.weighted_total({"nll_hr": torch.tensor(2.0), "spectrum": nan})
    assert total.item() == pytest.approx(2.0 * cfg.nll_hr)
    with pytest.raises(KeyError, match="typo_term"):
        obj.weighted_total({"typo_term": torch.tensor(1.0)})
    assert obj.weighted_total({}).item() == 0.0  # no term: a zero tensor, backward-safe


def test_warm_up_is_n_pre_iterations_for_both_families():
    for cfg in (SDFlowLossConfig(n_pre=3), DALossConfig(n_pre=3)):
        obj = _Bare(cfg)
        assert not obj.past_warm_up(2) and obj.past_warm_up(3)


def test_a_perceptual_weight_without_a_perceptual_loss_names_the_fix():
    with pytest.raises(ValueError, match="loss.perceptual=0"):
        Objective(DALossConfig(perceptual=1.0), torch.nn.Identity(), None,
                  "set loss.perceptual=0 (alpha)")
