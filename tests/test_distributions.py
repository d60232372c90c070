import math

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal

from sdflow.distributions import GaussianMixturePrior, StandardNormal


def test_standard_normal_log_prob_matches_torch():
    z = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    expected = Normal(0.0, 1.0).log_prob(z).sum(dim=(1, 2, 3))
    torch.testing.assert_close(StandardNormal.log_prob(z), expected)


def test_standard_normal_temperature_and_generator():
    s0 = StandardNormal.sample((2, 3, 4, 4), tau=0.0)
    assert torch.equal(s0, torch.zeros(2, 3, 4, 4))
    a = StandardNormal.sample((2, 3, 8, 8), 0.7, generator=torch.Generator().manual_seed(1))
    b = StandardNormal.sample((2, 3, 8, 8), 0.7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    big = StandardNormal.sample((4, 3, 64, 64), 0.5, generator=torch.Generator().manual_seed(2))
    assert big.std().item() == pytest.approx(0.5, rel=0.02)
    t = StandardNormal.sample((1, 1, 64, 64), 1.0, generator=torch.Generator().manual_seed(2),
                              truncate=1.0)
    assert t.abs().max() <= 1.0


def _prior(mode, k=4):
    p = GaussianMixturePrior(k, mode, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        p.log_stds.copy_(torch.linspace(-0.5, 0.5, k, dtype=torch.float64))
    return p


@pytest.mark.parametrize("mode", ["element", "official"])
def test_elementwise_mixture_density(mode):
    p = _prior(mode)
    z = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    mix = MixtureSameFamily(Categorical(logits=torch.zeros(4, dtype=torch.float64)),
                            Normal(p.means.detach(), p.log_stds.detach().exp()))
    expected = mix.log_prob(z).sum(dim=(1, 2, 3))
    torch.testing.assert_close(p.log_prob(z), expected)


def test_image_mixture_density():
    p = _prior("image")
    z = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    per_comp = torch.stack([Normal(p.means[k].detach(), p.log_stds[k].detach().exp())
                            .log_prob(z).sum(dim=(1, 2, 3)) for k in range(4)], dim=1)
    expected = torch.logsumexp(per_comp, dim=1) - math.log(4)
    torch.testing.assert_close(p.log_prob(z), expected)


def test_sigma_floor_applies_to_density_and_sampling():
    p = GaussianMixturePrior(2, "element", log_std_min=-3.0)
    with torch.no_grad():
        p.log_stds.fill_(-50.0)
    assert torch.all(p.effective_log_stds() == -3.0)
    z = p.means.detach()[0].expand(1, 1, 1, 1)
    assert torch.isfinite(p.log_prob(z)).all()
    s = p.sample((1, 1, 64, 64), 1.0, component=0, generator=torch.Generator().manual_seed(0))
    assert (s - p.means[0]).std().item() == pytest.approx(math.exp(-3.0), rel=0.05)


def test_explicit_component_selection():
    p = _prior("official", k=16)
    s = p.sample((2, 3, 4, 4), tau=0.0, component=5)
    assert torch.equal(s, p.means[5].detach().expand(2, 3, 4, 4))
    s2 = p.sample((2, 3, 4, 4), tau=0.0, component=torch.tensor([1, 7]))
    assert torch.equal(s2[0], p.means[1].detach().expand(3, 4, 4))
    assert torch.equal(s2[1], p.means[7].detach().expand(3, 4, 4))
    with pytest.raises(ValueError, match="component"):
        p.sample((2, 3, 4, 4), tau=0.0, component=16)


@pytest.mark.parametrize("mode,per_image", [("image", True), ("official", True),
                                            ("element", False)])
def test_sampling_granularity(mode, per_image):
    p = _prior(mode, k=16)
    s = p.sample((2, 3, 4, 4), tau=0.0, generator=torch.Generator().manual_seed(3))
    distinct = [torch.unique(s[i]).numel() for i in range(2)]
    if per_image:
        assert distinct == [1, 1]
    else:
        assert min(distinct) > 1


def test_mixture_sampling_reproducible_with_generator():
    p = _prior("element", k=16)
    a = p.sample((2, 3, 4, 4), 0.8, generator=torch.Generator().manual_seed(9))
    b = p.sample((2, 3, 4, 4), 0.8, generator=torch.Generator().manual_seed(9))
    c = p.sample((2, 3, 4, 4), 0.8, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match="mixture mode"):
        GaussianMixturePrior(4, "per-pixel")
