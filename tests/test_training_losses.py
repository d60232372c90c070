"""Every term of the SDFlow objective: its target values and which parameters it reaches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sdflow.config import FieldError
from sdflow.imageio import read_image
from sdflow.metrics import imresize_uint8
from sdflow.metrics.artefacts import block_ratio
from sdflow.metrics.resize import imresize
from sdflow.training.losses import (
    frozen,
    gaussian_blur,
    gaussian_blur_per_sample,
    grid_gap,
    lsgan,
    lsgan_discriminator,
    quantize_8bit,
)
from sdflow.training.sdflow_objective import (
    SDFlowDiscriminators,
    SDFlowLossConfig,
    SDFlowObjective,
    parameter_groups,
)

from helpers import real_crops, tiny_model


def test_lsgan_targets():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert lsgan(ones, 1.0) == 0 and lsgan(zeros, 0.0) == 0 and lsgan(ones, 0.0) == 1
    assert lsgan(torch.full((4,), 0.5), 0.5) == 0
    assert lsgan_discriminator(ones, zeros) == 0
    assert lsgan_discriminator(zeros, ones) == 1.0


def test_quantize_8bit_forward_and_straight_through_gradient():
    x = torch.tensor([-1.2, -0.5, 0.1234, 0.9999, 1.3], requires_grad=True)
    q = quantize_8bit(x)
    levels = (q.detach() + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert q.min() == -1 and q.max() == 1
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones(5))


def test_gaussian_blur_preserves_constants_and_mean():
    c = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(gaussian_blur(c), c)
    x = torch.randn(1, 1, 16, 16)
    assert gaussian_blur(x).std() < x.std()


def test_frozen_restores_flags_and_blocks_parameter_gradients():
    lin = torch.nn.Linear(2, 2)
    x = torch.randn(3, 2, requires_grad=True)
    with frozen(lin):
        y = lin(x).sum()
    assert all(p.requires_grad for p in lin.parameters())
    y.backward()
    assert lin.weight.grad is None and x.grad is not None


@pytest.fixture(scope="module")
def setup(shared):
    torch.manual_seed(0)
    model = tiny_model(shared).train()
    cfg = SDFlowLossConfig(n_pre=0, content_perceptual=0.0, perceptual=0.0, perceptual_ds=0.0,
                           disc_base=8,
                           mode_hr=1.0, mode_lr=1.0, content_cycle=1.0,
                           content_synthetic=1.0, spectrum=1.0, sr_cycle=1.0,
                           sr_grid=1.0, sr_synthetic=1.0)
    discs = SDFlowDiscriminators(cfg)
    obj = SDFlowObjective(model, discs, cfg)
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    _, lr = real_crops(shared, 64, "Canon_033.png")  # unpaired: another scene
    return model, discs, obj, hr.repeat(2, 1, 1, 1), lr.repeat(2, 1, 1, 1)


# term -> model groups it must reach (all others must get no gradient)
REACH = {
    "nll_hr": {"f_HR", "f_HF"},
    "nll_lr": {"f_LR", "f_Deg", "prior", "E"},
    "content": {"f_HR", "E"},
    "domain": {"f_HR", "E"},
    "beta1": {"f_HR", "E"},
    "beta2": {"f_LR"},
    "adversarial": {"f_HR", "f_HF", "E", "f_LR", "f_Deg", "prior"},
    "low_frequency": {"f_HR", "f_HF", "E", "f_LR", "f_Deg", "prior"},
    "mode_hr": {"f_HR", "f_HF"},
    "mode_lr": {"E", "f_LR", "f_Deg", "prior"},
    "content_cycle": {"E"},
    "content_synthetic": {"E"},
    "spectrum": {"f_HR", "f_LR", "f_Deg", "prior"},
    "sr_cycle": {"E", "f_HR", "f_HF"},
    "sr_grid": {"E", "f_HR", "f_HF"},
    "sr_synthetic": {"E", "f_HR", "f_HF"},
}


@pytest.mark.parametrize("term", sorted(REACH))
def test_gradient_flow_of_each_generator_term(setup, term):
    model, discs, obj, hr, lr = setup
    terms, _, _ = obj.generator_terms(hr, lr, iteration=0,
                                      generator=torch.Generator().manual_seed(0))
    assert set(terms) >= set(REACH)
    model.zero_grad(set_to_none=True)
    discs.zero_grad(set_to_none=True)
    terms[term].backward()
    reached = {name for name, params in parameter_groups(model).items()
               if any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)}
    assert reached == REACH[term]
    assert all(p.grad is None for p in discs.parameters()), "discriminators must stay frozen"


def test_nll_lr_without_its_pull_on_the_content_extractor(setup):
    """loss.nll_lr_reaches_content=false: the same NLL value, its gradient reaches f_LR,
    f_Deg and the mixture but not E; the content term still reaches E."""
    from dataclasses import replace

    model, discs, obj, hr, lr = setup
    cut = SDFlowObjective(model, discs, replace(obj.cfg, nll_lr_reaches_content=False))
    both = {}
    for name, objective in (("with", obj), ("without", cut)):
        terms, _, _ = objective.generator_terms(hr, lr, iteration=0,
                                                generator=torch.Generator().manual_seed(0))
        both[name] = terms
        model.zero_grad(set_to_none=True)
        terms["nll_lr"].backward(retain_graph=True)
        reached = {group for group, params in parameter_groups(model).items()
                   if any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)}
        assert reached == (REACH["nll_lr"] if name == "with" else {"f_LR", "f_Deg", "prior"})
        model.zero_grad(set_to_none=True)
        terms["content"].backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in parameter_groups(model)["E"])
    torch.testing.assert_close(both["with"]["nll_lr"], both["without"]["nll_lr"])


def test_discriminator_terms_reach_only_discriminators(setup):
    model, discs, obj, hr, lr = setup
    _, _, cache = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(0))
    model.zero_grad(set_to_none=True)
    d_terms = obj.discriminator_terms(cache, 0)
    assert set(d_terms) == {"d_content", "d_hr", "d_lr"}
    for name, sub in (("d_content", discs.content), ("d_hr", discs.hr), ("d_lr", discs.lr)):
        discs.zero_grad(set_to_none=True)
        d_terms = obj.discriminator_terms(cache, 0)
        d_terms[name].backward()
        assert all(p.grad is not None for p in sub.parameters())
        others = [m for m in (discs.content, discs.hr, discs.lr) if m is not sub]
        assert all(p.grad is None for m in others for p in m.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_domain_terms_target_values(setup):
    """Generator pushes D_c(HR content) to 0 and D_c(LR content) to 1 (swapped labels);
    the discriminator the other way round. Checked with a constant discriminator output."""
    model, discs, obj, hr, lr = setup

    class Const(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, z):
            return torch.full((z.shape[0], 1, 2, 2), self.value) + 0 * self.w

    original = discs.content
    try:
        discs.content = Const(0.0)  # says "LR" to everything
        terms, _, cache = obj.generator_terms(hr, lr, 10**9)
        assert terms["domain"].item() == pytest.approx(0.5)  # 1/2*0 + 1/2*(0-1)^2
        assert obj.discriminator_terms(cache, 10**9)["d_content"].item() == pytest.approx(0.5)
        discs.content = Const(1.0)
        terms, _, cache = obj.generator_terms(hr, lr, 10**9)
        assert terms["domain"].item() == pytest.approx(0.5)
    finally:
        discs.content = original


def test_stage_two_terms_only_after_n_pre(setup):
    model, discs, _, hr, lr = setup
    cfg = SDFlowLossConfig(n_pre=5, content_perceptual=0.0, perceptual=0.0, perceptual_ds=0.0,
                           disc_base=8)
    obj = SDFlowObjective(model, discs, cfg)
    with torch.no_grad():
        early, _, cache = obj.generator_terms(hr, lr, 4)
        late, _, _ = obj.generator_terms(hr, lr, 5, torch.Generator().manual_seed(0))
    assert "adversarial" not in early and "adversarial" in late
    assert set(obj.discriminator_terms(cache, 4)) == {"d_content"}


def test_scaling_content_does_not_lower_the_loss(setup, monkeypatch):
    """Degeneracy guard (design notes §9.2): an HR flow that scales z_c by a gains
    3hw log(a) of log-det (NLL_HR alone prefers it), but beta1 and the content loss must
    make it a net loss."""
    model, discs, obj, hr, lr = setup
    a = 4.0
    with torch.no_grad():
        base_terms = obj.generator_terms(hr, lr, 10**9)[0]
        original = model.hr_flow.encode_levels

        def scaled_levels(x):
            z, logdet = original(x)
            z = torch.cat([a * z[:, :3], z[:, 3:]], dim=1)
            return z, logdet + 3 * z.shape[2] * z.shape[3] * torch.log(torch.tensor(a))

        monkeypatch.setattr(model.hr_flow, "encode_levels", scaled_levels)
        scaled_terms = obj.generator_terms(hr, lr, 10**9)[0]
    assert scaled_terms["nll_hr"] < base_terms["nll_hr"]  # the degenerate direction exists
    assert obj.weighted_total(scaled_terms) > obj.weighted_total(base_terms)


def test_perceptual_weight_requires_vgg(shared):
    model = tiny_model(shared)
    cfg = SDFlowLossConfig(content_perceptual=0.05)
    with pytest.raises(ValueError, match="perceptual"):
        SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg, None)


def test_perceptual_loss_with_local_vgg_weights(shared):
    from sdflow.training.losses import PerceptualLoss

    p = PerceptualLoss(weights_dir=str(shared / "weights"))
    a = torch.rand(1, 3, 24, 24, requires_grad=True) * 2 - 1
    assert p(a, a).item() == 0
    b = torch.rand(1, 3, 24, 24) * 2 - 1
    loss = p(a, b)
    loss.backward()
    assert loss > 0 and all(q.grad is None for q in p.parameters())


def _stage1_objective(shared, **terms):
    """A tiny data-initialised model in eval mode and its objective (stage 1 only, no VGG)
    with the given extra term weights."""
    model = tiny_model(shared).eval()
    cfg = SDFlowLossConfig(n_pre=10**9, content_perceptual=0.0, perceptual=0.0,
                           perceptual_ds=0.0, disc_base=8,
                           **terms)
    return model, cfg, SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg)


def test_mode_and_content_cycle_target_values(shared):
    """mode_hr = mean |decode_hr(z_c^x, 0) - x|; content_cycle = mean |E(q(DS(x))) - z_c^x|
    with DS drawn from the same generator; both computed here independently."""
    model, cfg, obj = _stage1_objective(shared, mode_hr=1.0, content_cycle=1.0)
    hr, _ = real_crops(shared, 32, "Nikon_031.png")
    _, lr = real_crops(shared, 32, "Canon_033.png")
    with torch.no_grad():
        terms, _, _ = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(3))
        z_c = model.content_from_hr(hr)
        recon = model.decode_hr(z_c, torch.zeros(1, 45, 8, 8))
        z_deg = model.deg_prior.sample((1, 12, 4, 4), cfg.tau_train,
                                       generator=torch.Generator().manual_seed(3))
        fake = quantize_8bit(model.decode_lr(z_c, z_deg))
        cycle = (model.content_extractor(fake) - z_c).abs().mean()
    torch.testing.assert_close(terms["mode_hr"], (recon - hr).abs().mean())
    torch.testing.assert_close(terms["content_cycle"], cycle)
    assert terms["mode_hr"] > 0 and terms["content_cycle"] > 0


def test_sr_cycle_target_value(shared):
    """sr_cycle = mean |SR_0(y^) - x|: the tau 0 SR (model.sr) of the stage-2 DS sample y^
    (the cache's, 8-bit) against the HR crop it came from; absent before stage 2."""
    model = tiny_model(shared).eval()
    cfg = SDFlowLossConfig(n_pre=1, content_perceptual=0.0, perceptual=0.0,
                           perceptual_ds=0.0, disc_base=8, sr_cycle=1.0, sr_grid=1.0)
    obj = SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg)
    hr, _ = real_crops(shared, 32, "Nikon_031.png")
    _, lr = real_crops(shared, 32, "Canon_033.png")
    with torch.no_grad():
        early, _, _ = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(3))
        terms, _, cache = obj.generator_terms(hr, lr, 1, torch.Generator().manual_seed(3))
        sr = model.sr(cache["ds"], tau=0.0)
        expected = (sr - hr).abs().mean()
    assert "sr_cycle" not in early and "sr_grid" not in early
    torch.testing.assert_close(terms["sr_cycle"], expected)
    assert terms["sr_cycle"] > 0
    torch.testing.assert_close(terms["sr_grid"], grid_gap(sr, hr, 4))


def _to_unit(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 127.5 - 1.0


def test_sr_grid_is_the_block_ratio_gap_and_removes_a_grid(shared):
    """grid_gap = |block_ratio(sr) - block_ratio(reference)| on 8-bit images (one image: the
    batch pooling is the image's own ratio), two-sided; its gradient flattens a 4-px grid
    down to the photo's ratio, not below it."""
    hr = read_image(shared / "data/RealSR_x4/val/HR/Nikon_031.png").rgb[200:264, 300:364]
    lr = read_image(shared / "data/RealSR_x4/val/LR/Nikon_031.png").rgb[50:66, 75:91]
    nearest = lr.repeat(4, axis=0).repeat(4, axis=1).astype(np.float64)
    bicubic = imresize_uint8(lr, scale=4).astype(np.float64)
    blocky = np.round((nearest + bicubic) / 2).astype(np.uint8)  # a strong, finite grid
    gap = block_ratio(blocky) - block_ratio(hr)
    assert gap > 1.0
    torch.testing.assert_close(float(grid_gap(_to_unit(blocky), _to_unit(hr), 4)), gap,
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(float(grid_gap(_to_unit(hr), _to_unit(blocky), 4)), gap,
                               rtol=1e-9, atol=1e-9)  # two-sided
    x = _to_unit(blocky).clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        grid_gap(x, _to_unit(hr), 4).backward()
        opt.step()
    after = block_ratio(((x.detach()[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255)
                        .byte().numpy())
    assert abs(after - block_ratio(hr)) < 0.2 * gap


def test_sr_grid_needs_the_sr_cycle():
    with pytest.raises(FieldError, match="sr_grid"):
        SDFlowLossConfig(sr_grid=1.0)


def test_sr_cycle_can_leave_the_decoder_alone(setup):
    """loss.sr_cycle_trains_decoder=false: the same sr_cycle value, its gradient reaches E
    only (f_HR and the HF flow frozen for the term), and the flags are restored after."""
    model, discs, obj, hr, lr = setup
    values = {}
    for trains in (True, False):
        cfg = dataclasses.replace(obj.cfg, sr_cycle_trains_decoder=trains)
        terms, _, _ = SDFlowObjective(model, discs, cfg).generator_terms(
            hr, lr, iteration=0, generator=torch.Generator().manual_seed(0))
        model.zero_grad(set_to_none=True)
        terms["sr_cycle"].backward()
        values[trains] = terms["sr_cycle"].detach()
        reached = {name for name, params in parameter_groups(model).items()
                   if any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)}
        assert reached == ({"E", "f_HR", "f_HF"} if trains else {"E"})
    torch.testing.assert_close(values[True], values[False])
    assert all(p.requires_grad for p in model.hr_flow.parameters())


def test_synthetic_terms_target_values(shared):
    """Without blur and noise the synthetic LR is the 8-bit MATLAB-bicubic x1/4 of the HR:
    content_synthetic = mean |E(q(B x)) - z_c^x|, sr_synthetic = mean |SR_0(q(B x)) - x|."""
    model, _, obj = _stage1_objective(shared, content_synthetic=1.0, sr_synthetic=1.0,
                                      synthetic_blur_max=0.0, synthetic_noise_max=0.0)
    hr, _ = real_crops(shared, 32, "Nikon_031.png")
    _, lr = real_crops(shared, 32, "Canon_033.png")
    with torch.no_grad():
        terms, _, _ = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(3))
        z_c = model.content_from_hr(hr)
        clean = quantize_8bit(imresize(hr, scale=0.25))
        expected_content = (model.content_extractor(clean) - z_c).abs().mean()
        expected_sr = (model.sr(clean, tau=0.0) - hr).abs().mean()
    torch.testing.assert_close(terms["content_synthetic"], expected_content)
    torch.testing.assert_close(terms["sr_synthetic"], expected_sr)


def test_the_synthetic_terms_share_one_draw(shared):
    """With random blur and noise, content_synthetic is the same with or without
    sr_synthetic on: both see one synthetic LR per crop, drawn once."""
    model, cfg, _ = _stage1_objective(shared)
    hr, _ = real_crops(shared, 32, "Nikon_031.png")
    _, lr = real_crops(shared, 32, "Canon_033.png")
    values = []
    for sr_weight in (0.0, 1.0):
        weights = dataclasses.replace(cfg, content_synthetic=1.0, sr_synthetic=sr_weight)
        obj = SDFlowObjective(model, SDFlowDiscriminators(weights), weights)
        with torch.no_grad():
            terms, _, _ = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(5))
        values.append(terms["content_synthetic"])
    assert ("sr_synthetic" in terms) and values[0] > 0
    torch.testing.assert_close(values[0], values[1])


def test_synthetic_lr_is_degraded_by_its_random_blur_and_noise(shared):
    _, _, obj = _stage1_objective(shared, content_synthetic=1.0, synthetic_blur_max=3.0,
                                  synthetic_noise_max=3.0)
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    batch = hr.repeat(4, 1, 1, 1)
    a = obj._synthetic_lr(batch, torch.Generator().manual_seed(1), 0, None)
    b = obj._synthetic_lr(batch, torch.Generator().manual_seed(1), 0, None)
    torch.testing.assert_close(a, b)  # a function of the generator
    assert a.shape == (4, 3, 16, 16)
    levels = (a + 1) * 127.5
    torch.testing.assert_close(levels, levels.round())  # 8-bit values
    assert len({float((a[i] - a[0]).abs().sum()) for i in range(1, 4)}) == 3  # all differ
    # two processes taking halves of the global batch draw what one process draws
    halves = torch.cat([obj._synthetic_lr(batch[:2], torch.Generator().manual_seed(1), 0, 4),
                        obj._synthetic_lr(batch[2:], torch.Generator().manual_seed(1), 2, 4)])
    torch.testing.assert_close(halves, a)


def test_per_sample_blur_matches_the_fixed_blur():
    x = torch.randn(2, 3, 20, 20, dtype=torch.float64)
    sigmas = torch.tensor([0.8, 1.5], dtype=torch.float64)
    out = gaussian_blur_per_sample(x, sigmas)
    radius = 5  # ceil(3 * 1.5)
    for i in range(2):
        ref = gaussian_blur(x[i:i + 1], 2 * radius + 1, float(sigmas[i]))
        torch.testing.assert_close(out[i:i + 1], ref)
    torch.testing.assert_close(gaussian_blur_per_sample(x, torch.zeros(2)), x)


def test_the_sr_and_ds_perceptual_pairs_have_their_own_weights(shared):
    """perceptual (B(x^) vs y) and perceptual_ds (y^ vs B(x)) are separate terms: with only
    the DS weight on, the term is the VGG distance of the DS sample to the bicubic x1/4 of
    the HR, it reaches the degradation flow, and the SR pair is not computed."""
    from sdflow.training.losses import PerceptualLoss

    torch.manual_seed(0)
    model = tiny_model(shared).train()
    cfg = SDFlowLossConfig(n_pre=0, content_perceptual=0.0, perceptual=0.0, perceptual_ds=0.5,
                           disc_base=8)
    vgg = PerceptualLoss(cfg.perceptual_layers, str(shared / "weights"))
    obj = SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg, vgg)
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    _, lr = real_crops(shared, 64, "Canon_033.png")
    terms, _, cache = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(1))
    assert "perceptual_ds" in terms and "perceptual" not in terms
    with torch.no_grad():
        direct = vgg(cache["ds"], imresize(hr, scale=1 / model.scale))
    torch.testing.assert_close(terms["perceptual_ds"].detach(), direct, rtol=1e-5, atol=1e-6)
    model.zero_grad(set_to_none=True)
    terms["perceptual_ds"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.deg_flow.parameters())
    weights = {"perceptual_ds": torch.tensor(2.0)}
    assert obj.weighted_total(weights) == 0.5 * 2.0
    assert SDFlowLossConfig(content_perceptual=0.0, perceptual=0.0,
                            perceptual_ds=0.1).needs_perceptual


def test_degradation_blur_sets_the_hr_anchor_of_content_and_stage_two(shared):
    """loss.degradation_blur = sigma: the content term's HR target and the stage-2 DS
    low-frequency target are B(G_sigma x), and SR samples are compared with y after
    B(G_sigma .); sigma 0 is plain bicubic. Values recomputed here independently."""
    from sdflow.metrics.degradation_fit import gaussian_blur_sigma

    torch.manual_seed(0)
    model = tiny_model(shared).eval()
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    _, lr = real_crops(shared, 64, "Canon_033.png")
    out = {}
    for sigma in (0.0, 1.8):
        cfg = SDFlowLossConfig(n_pre=0, content_perceptual=0.0, perceptual=0.0,
                               perceptual_ds=0.0, disc_base=8, degradation_blur=sigma)
        obj = SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg)
        with torch.no_grad():
            terms, _, cache = obj.generator_terms(hr, lr, 0, torch.Generator().manual_seed(2))
            target = imresize(gaussian_blur_sigma(hr, sigma), scale=0.25)
            content_x = model.lr_flow.inverse(model.content_from_hr(hr))[0]
            content_y = model.lr_flow.inverse(model.content_from_lr(lr))[0]
            expected = (gaussian_blur(content_x) - gaussian_blur(target)).abs().mean() + \
                (gaussian_blur(content_y) - gaussian_blur(lr)).abs().mean()
            low = (gaussian_blur(imresize(gaussian_blur_sigma(cache["sr"], sigma), scale=0.25))
                   - gaussian_blur(lr)).abs().mean() + \
                (gaussian_blur(cache["ds"]) - gaussian_blur(target)).abs().mean()
        torch.testing.assert_close(terms["content"], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(terms["low_frequency"], low, rtol=1e-5, atol=1e-6)
        out[sigma] = terms["content"]
    assert out[0.0] != out[1.8]


def test_degradation_blur_auto_is_fitted_to_the_training_images(shared):
    """'auto' refuses to run unfitted; SDFlowTask.fit_to_data writes the fitted sigma into
    the config (so the run's config.json records it) and into the objective."""
    from sdflow.config import FieldError
    from sdflow.imageio import read_image
    from sdflow.training.config import load_config
    from sdflow.training.tasks import build_task

    cfg = SDFlowLossConfig(degradation_blur="auto", content_perceptual=0.0, perceptual=0.0,
                           perceptual_ds=0.0)
    obj = SDFlowObjective(tiny_model(shared), SDFlowDiscriminators(cfg), cfg)
    hr, _ = real_crops(shared, 32)
    with pytest.raises(RuntimeError, match="not fitted"):
        obj._degrade(hr)
    with pytest.raises(FieldError, match="degradation_blur"):
        SDFlowLossConfig(degradation_blur=-1.0)

    data = shared / "data/RealSR_x4/train"
    train = load_config("smoke", None, ["loss.degradation_blur=auto",
                                        "loss.content_perceptual=0", "loss.perceptual=0",
                                        "loss.perceptual_ds=0"])
    task = build_task(train, torch.device("cpu"))
    lr = [read_image(p).rgb for p in sorted((data / "LR").glob("*.png"))[:6]]
    hr_images = [read_image(p).rgb for p in sorted((data / "HR").glob("*.png"))[:6]]
    fitted = task.fit_to_data(lr, hr_images)
    assert 1.0 < fitted["sigma"] < 2.5  # RealSR's real LR is blurrier than bicubic
    assert train.loss.degradation_blur == fitted["sigma"]
    assert task.objective.degradation_sigma == fitted["sigma"]
    assert train.loss.degradation_colour_blur is None  # not asked for: one RGB blur
    assert task.objective.degradation_colour_sigma is None


def test_degradation_colour_blur_blurs_the_anchors_colour_only(shared):
    """loss.degradation_colour_blur: the anchor B(G x) blurs the colour differences by its
    own sigma and leaves the luma as degradation_blur makes it; 'auto' is fitted with
    degradation_blur (and refused without it)."""
    from sdflow.config import ConfigError, from_dict
    from sdflow.imageio import read_image
    from sdflow.metrics.color import luma_chroma
    from sdflow.training.config import load_config
    from sdflow.training.tasks import build_task

    model = tiny_model(shared).eval()
    hr, _ = real_crops(shared, 64, "Nikon_031.png")
    anchors = {}
    for colour in (None, 3.0):
        cfg = SDFlowLossConfig(degradation_blur=1.5, degradation_colour_blur=colour,
                               content_perceptual=0.0, perceptual=0.0, perceptual_ds=0.0)
        anchors[colour] = luma_chroma(
            SDFlowObjective(model, SDFlowDiscriminators(cfg), cfg)._degrade(hr))
    torch.testing.assert_close(anchors[3.0][:, :1], anchors[None][:, :1])
    chroma_energy = {c: float(a[:, 1:].diff(dim=-1).abs().mean()) for c, a in anchors.items()}
    assert chroma_energy[3.0] < 0.9 * chroma_energy[None]
    with pytest.raises(ConfigError, match="degradation_colour_blur"):
        from_dict(SDFlowLossConfig, {"degradation_colour_blur": "auto"}, "loss")

    data = shared / "data/RealSR_x4/train"
    train = load_config("smoke", None, ["loss.degradation_blur=auto",
                                        "loss.degradation_colour_blur=auto",
                                        "loss.content_perceptual=0", "loss.perceptual=0",
                                        "loss.perceptual_ds=0"])
    task = build_task(train, torch.device("cpu"))
    lr = [read_image(p).rgb[:64, :64] for p in sorted((data / "LR").glob("*.png"))[:6]]
    hr_images = [read_image(p).rgb[:256, :256] for p in sorted((data / "HR").glob("*.png"))[:6]]
    fitted = task.fit_to_data(lr, hr_images)
    assert fitted["colour_sigma"] > fitted["sigma"]  # the camera's colour is blurrier
    assert train.loss.degradation_colour_blur == fitted["colour_sigma"]
    assert task.objective.degradation_colour_sigma == fitted["colour_sigma"]


def test_spectrum_distance_is_zero_for_alike_batches_and_grows_with_blur():
    from sdflow.training.losses import band_shares, radial_band_energy, spectrum_distance

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 24, 24, generator=g, dtype=torch.float64) * 2 - 1
    shares = band_shares(x)
    assert shares.shape == (3, 8)
    torch.testing.assert_close(shares.sum(dim=1), torch.ones(3, dtype=torch.float64))
    # Parseval: with the mean removed, the bands hold all the windowed image's energy
    window = torch.outer(torch.hann_window(24, periodic=False, dtype=torch.float64),
                         torch.hann_window(24, periodic=False, dtype=torch.float64))
    centred = (x - x.mean(dim=(2, 3), keepdim=True)) * window
    torch.testing.assert_close(radial_band_energy(x).sum(dim=2),
                               centred.pow(2).sum(dim=(2, 3)) * 24 * 24)
    assert spectrum_distance(x, x.flip(0)) < 1e-9  # the same images in another order
    blurred = [gaussian_blur(x, 9, s) for s in (0.5, 1.0, 2.0)]
    d = [float(spectrum_distance(b, x)) for b in blurred]
    assert 0 < d[0] < d[1] < d[2]
    # white noise has more fine-band share than its blur; the gradient pulls towards it
    b = blurred[1].clone().requires_grad_(True)
    spectrum_distance(b, x).backward()
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_ycbcr_spectrum_tells_colour_noise_from_grey_noise():
    """Per-channel RGB spectra cannot tell noise drawn per channel from noise shared by
    the three channels; in luma and colour differences the first fills Cb and Cr with fine
    detail, so spectrum_space="ycbcr" separates them."""
    from sdflow.metrics.color import luma_chroma
    from sdflow.training.losses import spectrum_distance

    g = torch.Generator().manual_seed(1)
    scene = gaussian_blur(torch.rand(8, 3, 32, 32, generator=g, dtype=torch.float64), 9, 2.0)
    grey = scene + 0.05 * torch.randn(8, 1, 32, 32, generator=g, dtype=torch.float64)
    colour = scene + 0.05 * torch.randn(8, 3, 32, 32, generator=g, dtype=torch.float64)
    rgb = float(spectrum_distance(colour, grey))
    ycc = float(spectrum_distance(colour, grey, space="ycbcr"))
    assert ycc > 3 * rgb
    # a grey image has no colour difference; the luma row is BT.601's
    flat = torch.rand(2, 1, 4, 4, generator=g, dtype=torch.float64).expand(2, 3, 4, 4)
    zeros = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(luma_chroma(flat)[:, 1:], zeros)
    torch.testing.assert_close(luma_chroma(flat)[:, :1], flat[:, :1])


def test_spectrum_channel_weights_split_the_term_between_channels():
    """A weighted mean of the per-channel distances: equal weights are the plain mean, a
    weight of zero removes a channel (its gradient too), and bad weights are refused."""
    from sdflow.config import ConfigError, from_dict
    from sdflow.training.losses import spectrum_distance
    from sdflow.training.sdflow_objective import SDFlowLossConfig

    g = torch.Generator().manual_seed(2)
    real = gaussian_blur(torch.rand(6, 3, 32, 32, generator=g, dtype=torch.float64), 9, 2.0)
    fake = real.clone()
    fake[:, 1:] += 0.05 * torch.randn(6, 2, 32, 32, generator=g, dtype=torch.float64)
    fake.requires_grad_(True)
    plain = spectrum_distance(fake, real)
    torch.testing.assert_close(spectrum_distance(fake, real, channel_weights=(2, 2, 2)), plain)
    # only G and B differ from the real batch: a weight on R alone sees nothing
    assert float(spectrum_distance(fake, real, channel_weights=(1, 0, 0)).detach()) < 1e-9
    only_gb = spectrum_distance(fake, real, channel_weights=(0, 1, 1))
    torch.testing.assert_close(only_gb, plain * 3 / 2)
    spectrum_distance(fake, real, channel_weights=(0, 1, 0)).backward()
    assert fake.grad[:, 1].abs().sum() > 0 and fake.grad[:, [0, 2]].abs().sum() == 0
    with pytest.raises(ValueError, match="channel_weights"):
        spectrum_distance(fake, real, channel_weights=(1, 1))
    with pytest.raises(ConfigError, match="spectrum_channel_weights"):
        from_dict(SDFlowLossConfig, {"spectrum_channel_weights": [1.0, -1.0, 1.0]}, "loss")
    assert from_dict(SDFlowLossConfig, {"spectrum_channel_weights": [3, 1, 1]},
                     "loss").spectrum_channel_weights == [3.0, 1.0, 1.0]
