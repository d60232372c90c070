"""Every flow layer and composite: float64 invertibility and log-det vs the autograd Jacobian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sdflow.diagnostics import check_bijection, perturb_parameters_
from sdflow.flows import (
    ActNorm,
    AffineCoupling,
    AffineInjector,
    ConditionalFlow,
    ConditionalSplit,
    FlowLevel,
    FlowSequence,
    FlowStep,
    InvertibleConv1x1,
    LinearPredictor,
    Squeeze,
    Unsqueeze,
    data_init,
    transition_block,
)

COND = 3  # condition channels of the conditional test layers


def _conv_cond_net(cin: int, cout: int, half: bool = False) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1)]
    if half:
        layers.append(nn.AvgPool2d(2))
    return nn.Sequential(*layers)


# name -> (factory, input shape, condition shape or None)
LAYERS = {
    "actnorm": (lambda: ActNorm(4), (1, 4, 3, 3), None),
    "invconv": (lambda: InvertibleConv1x1(4), (1, 4, 3, 3), None),
    "coupling_even": (lambda: AffineCoupling(4, hidden=8), (1, 4, 3, 3), None),
    "coupling_odd": (lambda: AffineCoupling(5, hidden=8), (1, 5, 3, 2), None),
    "coupling_cond": (lambda: AffineCoupling(4, COND, hidden=8), (1, 4, 3, 3), (1, COND, 3, 3)),
    "injector": (lambda: AffineInjector(4, COND, hidden=8), (1, 4, 3, 3), (1, COND, 3, 3)),
    "squeeze": (lambda: Squeeze(), (1, 2, 4, 4), None),
    "unsqueeze": (lambda: Unsqueeze(), (1, 8, 2, 2), None),
    "transition": (lambda: transition_block(4), (1, 4, 3, 3), None),
    "flowstep": (lambda: FlowStep(4, hidden=8), (1, 4, 3, 3), None),
    "flowstep_cond": (lambda: FlowStep(4, COND, hidden=8), (1, 4, 3, 3), (1, COND, 3, 3)),
    "flowstep_cond_nocoupling": (lambda: FlowStep(4, COND, hidden=8, coupling=False),
                                 (1, 4, 3, 3), (1, COND, 3, 3)),
    "flowlevel": (lambda: FlowLevel(2, 2, hidden=8), (1, 2, 4, 4), None),
    "flowlevel_unsqueeze": (lambda: FlowLevel(2, 2, hidden=8, unsqueeze=True), (1, 2, 4, 4),
                            None),
    "conditional_flow": (lambda: ConditionalFlow(3, _conv_cond_net(COND, 6), 6, 3, hidden=8),
                         (1, 3, 3, 3), (1, COND, 3, 3)),
    "conditional_flow_squeeze": (
        lambda: ConditionalFlow(2, _conv_cond_net(COND, 6, half=True), 6, 3, hidden=8,
                                squeeze=True),
        (1, 2, 4, 4), (1, COND, 4, 4)),
    "conditional_split": (
        lambda: ConditionalSplit(2, ConditionalFlow(3, _conv_cond_net(2, 6), 6, 2, hidden=8)),
        (1, 5, 3, 3), None),
    "conditional_split_predictor": (
        lambda: ConditionalSplit(2, ConditionalFlow(3, _conv_cond_net(2, 6), 6, 2, hidden=8),
                                 predictor=LinearPredictor(2, 3, 3)),
        (1, 5, 3, 3), None),
    "sequence_mixed": (
        lambda: FlowSequence([ActNorm(4), FlowStep(4, COND, hidden=8), InvertibleConv1x1(4)]),
        (1, 4, 3, 3), (1, COND, 3, 3)),
}


def _build(name: str, seed: int = 0):
    factory, shape, cond_shape = LAYERS[name]
    torch.manual_seed(seed)
    layer = factory().double()
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    cond = None if cond_shape is None else torch.randn(cond_shape, generator=gen,
                                                       dtype=torch.float64)
    with data_init(layer):  # data-dependent ActNorm init, then move off the init point
        layer(x, cond)
    perturb_parameters_(layer, std=0.3, generator=gen)
    for m in layer.modules():  # randomise ActNorm too, so it is not trivially normalising
        if isinstance(m, ActNorm):
            with torch.no_grad():
                m.loc.add_(0.3 * torch.randn(m.loc.shape, generator=gen, dtype=torch.float64))
                m.log_scale.add_(0.3 * torch.randn(m.log_scale.shape, generator=gen,
                                                   dtype=torch.float64))
    return layer, x, cond


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_roundtrip_and_logdet(name):
    layer, x, cond = _build(name)
    res = check_bijection(name, layer, x, cond)
    assert res.roundtrip_error < 1e-9, res
    assert res.inverse_logdet_error < 1e-9, res
    assert abs(res.logdet - res.jacobian_logdet) < 1e-8 * max(1.0, abs(res.jacobian_logdet)), res


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_batch_logdet_is_per_sample(name):
    layer, x, cond = _build(name)
    xb = torch.cat([x, 2.0 * x], dim=0)
    cb = None if cond is None else torch.cat([cond, -cond], dim=0)
    _, ld = layer(xb, cb)
    assert ld.shape == (2,)
    _, ld0 = layer(xb[:1], None if cb is None else cb[:1])
    _, ld1 = layer(xb[1:], None if cb is None else cb[1:])
    torch.testing.assert_close(ld, torch.cat([ld0, ld1]), rtol=1e-12, atol=1e-10)


def test_perturbation_makes_layers_non_trivial():
    """The randomisation above must actually move coupling layers off the identity."""
    layer, x, _ = _build("coupling_even")
    y, ld = layer(x)
    assert (y - x).abs().max() > 1e-3 and ld.abs().max() > 1e-3


def test_couplings_and_injectors_are_identity_at_init():
    x = torch.randn(2, 4, 5, 5)
    u = torch.randn(2, COND, 5, 5)
    for layer, cond in ((AffineCoupling(4, hidden=8), None), (AffineCoupling(4, COND, 8), u),
                        (AffineInjector(4, COND, 8), u)):
        y, ld = layer(x, cond)
        assert torch.equal(y, x)
        assert torch.equal(ld, torch.zeros(2))


def test_soft_clamp_bounds_log_scale():
    layer = AffineCoupling(2, hidden=4)
    with torch.no_grad():
        layer.net.conv_out.conv.bias.fill_(1e6)
    x = torch.randn(1, 2, 3, 3)
    _, ld = layer(x)
    assert ld.item() <= 9 * 0.5  # |s| < 0.4995 per element, 9 elements


def test_squeeze_is_pixel_unshuffle_with_documented_channel_order():
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    y, _ = Squeeze()(x)
    assert torch.equal(y, F.pixel_unshuffle(x, 2))
    for c in range(2):
        for dy in range(2):
            for dx in range(2):
                assert torch.equal(y[0, 4 * c + 2 * dy + dx], x[0, c, dy::2, dx::2])
    with pytest.raises(ValueError, match="even"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


def test_invconv_weight_is_invertible_and_det_matches():
    layer = InvertibleConv1x1(6, generator=torch.Generator().manual_seed(3)).double()
    perturb_parameters_(layer, 0.1, torch.Generator().manual_seed(4))
    w = layer.weight()
    torch.testing.assert_close(layer.inverse_weight() @ w, torch.eye(6, dtype=torch.float64))
    assert torch.linalg.slogdet(w)[1].item() == pytest.approx(layer.log_abs_diag.sum().item())
    # initial weight is orthogonal
    w0 = InvertibleConv1x1(6).weight()
    torch.testing.assert_close(w0 @ w0.T, torch.eye(6), atol=1e-5, rtol=0)


def test_invconv_init_reproducible_from_generator():
    a = InvertibleConv1x1(5, generator=torch.Generator().manual_seed(7))
    b = InvertibleConv1x1(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.weight(), b.weight())


def test_conditional_layers_require_condition():
    with pytest.raises(ValueError, match="conditional"):
        AffineInjector(4, COND)(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match="unconditional"):
        FlowSequence([ActNorm(4)])(torch.zeros(1, 4, 2, 2), torch.zeros(1, 1, 2, 2))


def test_every_exported_bijection_gets_the_float64_tests():
    """A new layer exported from sdflow.flows fails here until LAYERS builds it (and so
    runs it through the invertibility and log-det tests above)."""
    import sdflow.flows as flows
    from sdflow.flows.base import Bijection

    exported = {getattr(flows, n) for n in flows.__all__}
    layers = {c for c in exported if isinstance(c, type) and issubclass(c, Bijection)
              and c is not Bijection}
    covered = {type(factory()) for factory, _, _ in LAYERS.values()}
    missing = sorted(c.__name__ for c in layers - covered)
    assert not missing, f"add these to LAYERS: {missing}"
