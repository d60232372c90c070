"""The lifting predict step (LinearPredictor) and what it does to SDFlow's tau = 0 output."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sdflow.flows import ConditionalFlow, ConditionalSplit, LinearPredictor, data_init
from sdflow.metrics.artefacts import block_ratio
from sdflow.models import SDFlow
from sdflow.models.init import apply_init
from sdflow.models.sdflow import SDFlowConfig

from helpers import real_crops


def test_least_squares_init_recovers_a_linear_relation():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 2, 12, 12, generator=gen, dtype=torch.float64)
    truth = torch.randn(3, 2, 3, 3, generator=gen, dtype=torch.float64)
    b = F.conv2d(F.pad(a, (1, 1, 1, 1), mode="reflect"), truth) + 0.5
    pred = LinearPredictor(2, 3, 3, ridge=0.0).double()
    assert not pred.is_initialized and float(pred(a).detach().abs().max()) == 0.0
    with data_init(pred):
        pred.initialize(a, b)
    assert pred.is_initialized
    torch.testing.assert_close(pred.weight.data, truth, atol=1e-8, rtol=0)
    torch.testing.assert_close(pred.bias.data, torch.full((3,), 0.5, dtype=torch.float64),
                               atol=1e-8, rtol=0)


def test_split_initialises_the_predictor_once_and_only_inside_data_init():
    torch.manual_seed(0)
    flow = ConditionalFlow(3, torch.nn.Conv2d(2, 6, 3, padding=1), 6, 2, hidden=8)
    split = ConditionalSplit(2, flow, predictor=LinearPredictor(2, 3, 3))
    x = torch.randn(2, 5, 8, 8)
    split(x)
    assert not split.predictor.is_initialized  # no implicit init outside data_init
    with data_init(split):
        split(x)
    first = split.predictor.weight.detach().clone()
    assert split.predictor.is_initialized and float(first.abs().sum()) > 0
    with data_init(split):
        split(torch.randn(2, 5, 8, 8))
    torch.testing.assert_close(split.predictor.weight.detach(), first)


def test_predictor_is_saved_and_absent_by_default():
    base = SDFlowConfig.preset("lite")
    assert not any("predictor" in k for k in SDFlow(base).state_dict())
    with_pred = SDFlow(dataclasses.replace(base, hf_predictor_kernel=5))
    keys = [k for k in with_pred.state_dict() if "predictor" in k]
    assert sorted(keys) == ["hr_flow.split.predictor.bias", "hr_flow.split.predictor.initialized",
                            "hr_flow.split.predictor.weight"]
    with pytest.raises(ValueError, match="hf_predictor_kernel"):
        SDFlowConfig(hf_predictor_kernel=4)


def test_predict_step_removes_the_block_artefact_at_init(shared):
    """Haar init, zero details: a nearest-neighbour-like 4x4-blocky decode; with the
    data-initialised predictor the tau = 0 decode of a photo's own content is smooth."""
    crops = [real_crops(shared, 96, name) for name in
             ("Canon_031.png", "Canon_035.png", "Nikon_032.png", "Nikon_038.png")]
    hr, lr = torch.cat([c[0] for c in crops]), torch.cat([c[1] for c in crops])
    ratios = {}
    for kernel in (0, 5):
        cfg = dataclasses.replace(SDFlowConfig.preset("lite"), hf_predictor_kernel=kernel)
        model = apply_init(SDFlow(cfg), "haar")
        model.initialize_actnorm(hr, lr)
        with torch.no_grad():
            z_c = model.content_from_hr(hr[:1])
            zeros = torch.zeros(1, cfg.hf_channels, *z_c.shape[2:])
            out = model.sr_decode(z_c, model.hr_flow.hf.cond_net(z_c), zeros)
        ratios[kernel] = block_ratio(((out[0] + 1) * 127.5).round().clamp(0, 255).byte())
    assert ratios[0] > 5.0
    assert ratios[5] < 2.0
