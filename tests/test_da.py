"""da-iccv21 (our re-implementation of Wang et al., ICCV 2021): networks, every loss (target
values, which parameter groups it reaches, shapes for odd sizes), one G and one D step,
smoke training, export, inference and ``sdflow eval``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _evaldata import make_pairs, one_thread  # noqa: F401

import sdflow
from sdflow.cli import main
from sdflow.config import ConfigError
from sdflow.models import ARCHITECTURES, DAICCV21, DAICCV21Config, SDFlow
from sdflow.models.base import Downscaler, StochasticDS, StochasticSR, SuperResolver, downscales
from sdflow.training.config import load_config
from sdflow.training.da_objective import (
    DADiscriminators,
    DALossConfig,
    DAObjective,
    align_discriminator_loss,
    align_generator_loss,
    identity_loss,
    parameter_groups,
)
from sdflow.training.losses import PerceptualLoss
from sdflow.training.objective import term_weights
from sdflow.training.trainer import Trainer

from helpers import real_crops, without_g_t

TINY = DAICCV21Config.preset("tiny")


# ---------------------------------------------------------------------- model
def test_config_presets_round_trip_and_validation():
    for name in ("default", "lite", "tiny"):
        cfg = DAICCV21Config.preset(name)
        assert DAICCV21Config.from_dict(cfg.to_dict()) == cfg
    assert ARCHITECTURES["da-iccv21"].config_cls is DAICCV21Config
    assert "re-implementation" in ARCHITECTURES["da-iccv21"].label
    with pytest.raises(ValueError, match="power of two"):
        DAICCV21Config(scale=3)
    with pytest.raises(ValueError, match="unknown"):
        DAICCV21Config.from_dict({"channels": 8, "depth": 2})
    with pytest.raises(ValueError, match="channels"):
        DAICCV21Config(channels=0)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (9, 4)])
def test_sr_shapes_for_any_size_and_determinism(size):
    model = DAICCV21(TINY).eval()
    y = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        out = model.sr(y)
        assert out.shape == (2, 3, 4 * size[0], 4 * size[1])
        assert torch.equal(out, model(y))  # forward: the same function, no checks


def test_the_contract_says_deterministic_sr_and_ds():
    model = DAICCV21(TINY)
    assert isinstance(model, SuperResolver) and issubclass(DAICCV21, SuperResolver)
    assert isinstance(model, Downscaler) and downscales(model)
    assert not isinstance(model, StochasticSR) and not isinstance(model, StochasticDS)
    assert issubclass(SDFlow, StochasticSR) and issubclass(SDFlow, StochasticDS)
    with pytest.raises(TypeError):  # no sampling arguments to ignore
        model.sr(torch.zeros(1, 3, 4, 4), 0.8)
    # through the image API a deterministic model takes no temperature
    with pytest.raises(ValueError, match="deterministic"):
        sdflow.super_resolve(model, np.zeros((4, 4, 3), np.uint8), tau=0.8)
    with pytest.raises(ValueError, match="deterministic"):
        sdflow.downscale(model, np.zeros((16, 16, 3), np.uint8), tau=0.8)
    with pytest.raises(ValueError, match="deterministic"):
        model.downscale(torch.zeros(1, 3, 16, 16), num_samples=2)
    with pytest.raises(TypeError, match="sdflow.super_resolve"):
        model.sr(np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize("size", [(16, 16), (37, 22), (9, 5)])
def test_downscale_is_g_t_of_e_of_bicubic_for_any_size(size):
    """DS = G_t(E(bicubic x1/4 of the HR)) with the output ceil(H/4) x ceil(W/4); the tiled
    image path gives the same image as the tensor method."""
    from sdflow.inference.tiling import tiled_downscale
    from sdflow.metrics.resize import imresize

    model = DAICCV21(TINY).eval()
    x = torch.rand(1, 3, *size) * 2 - 1
    with torch.no_grad():
        out = model.downscale(x)
        assert out.shape == (1, 3, -(-size[0] // 4), -(-size[1] // 4))
        if size[0] % 4 == 0 and size[1] % 4 == 0 and min(size) >= 8:
            want = model.lr_decoder(model.encoder(imresize(x, scale=0.25)))
            torch.testing.assert_close(out, want)
        torch.testing.assert_close(tiled_downscale(model, x, tile=8), out,
                                   atol=1e-5, rtol=0)
        assert torch.equal(model.downscale(x), out)  # deterministic


def test_a_file_without_g_t_loads_for_sr_and_refuses_ds_in_one_line(tmp_path, capsys):
    """Files exported by sdflow 0.1 hold E and G_SR only: they still super-resolve."""
    model = DAICCV21(TINY)
    full = tmp_path / "full.safetensors"
    sdflow.save(model, full)
    old = without_g_t(full, tmp_path / "old.safetensors")
    loaded = sdflow.load(old)
    assert loaded.lr_decoder is None and not downscales(loaded)
    y = torch.rand(1, 3, 6, 7) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.sr(y), model.sr(y))
    with pytest.raises(ValueError, match="no G_t"):
        loaded.downscale(torch.zeros(1, 3, 16, 16))
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    assert main(["downscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"),
                 "--model", str(old)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no downscaling part" in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_same_seed_same_weights():
    a, b = DAICCV21(TINY, seed=1), DAICCV21(TINY, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert {k.split(".")[0] for k in a.state_dict()} == {"encoder", "sr_decoder", "lr_decoder"}


# ---------------------------------------------------------------------- losses
def test_lsgan_targets_of_the_alignment_losses():
    half, ones, zeros = (torch.full((2, 1, 3, 3), v) for v in (0.5, 1.0, 0.0))
    assert align_generator_loss(half, half) == 0  # encoder: both domains to 0.5
    assert align_generator_loss(ones, zeros) == pytest.approx(0.25)
    assert align_discriminator_loss(ones, zeros) == 0  # D_f: source 1, target 0
    assert align_discriminator_loss(zeros, ones) == 1


def test_identity_loss_stop_gradient_flag():
    f_s = torch.tensor([1.0, -2.0], requires_grad=True)
    identity_loss(3 * f_s, f_s).backward()  # |3f - f| = 2|f|
    torch.testing.assert_close(f_s.grad, torch.tensor([1.0, -1.0]))
    f_s.grad = None
    identity_loss(3 * f_s, f_s, stop_gradient=True).backward()  # only through f~
    torch.testing.assert_close(f_s.grad, torch.tensor([1.5, -1.5]))


def _setup(shared, **loss):
    torch.manual_seed(0)
    gen = DAICCV21(TINY, seed=0).train()
    cfg = DALossConfig(disc_base=8, **loss)
    discs = DADiscriminators(cfg, TINY.channels)
    perceptual = PerceptualLoss(cfg.perceptual_layers, str(shared / "weights")) \
        if cfg.needs_perceptual else None
    return gen, discs, DAObjective(gen, discs, cfg, perceptual)


@pytest.fixture(scope="module")
def odd(shared):
    """Tiny networks, VGG relu1_2 perceptual, odd crops: HR 36x28 (x_s 9x7), x_t 9x7."""
    gen, discs, obj = _setup(shared, perceptual=0.5, perceptual_layers=["relu1_2"],
                             adversarial=0.1)
    hr, _ = real_crops(shared, 36, "Nikon_031.png")
    _, lr = real_crops(shared, 36, "Canon_033.png")  # another scene: unpaired
    return gen, discs, obj, hr[:, :, :, :28].repeat(2, 1, 1, 1), lr[:, :, :, :7].repeat(2, 1, 1, 1)


# term -> parameter groups it must reach (all others, and every discriminator, get none)
REACH = {
    "align": {"E"},
    "rec": {"E", "G_SR"},
    "res": {"E", "G_t"},
    "sty": {"E", "G_t"},
    "idt": {"E", "G_t"},
    "cyc": {"E", "G_SR", "G_t"},
}


def _reached(groups, min_abs: float = 0.0) -> set[str]:
    return {name for name, params in groups.items()
            if any(p.grad is not None and p.grad.abs().sum() > min_abs for p in params)}


@pytest.mark.parametrize("term", sorted(REACH))
def test_gradient_flow_of_each_generator_term(odd, term):
    gen, discs, obj, hr, lr = odd
    terms, stats, _ = obj.generator_terms(hr, lr, iteration=0)
    assert set(terms) == set(REACH)
    assert {"rec_l1", "rec_perceptual", "rec_adversarial", "cyc_l1", "cyc_perceptual",
            "cyc_adversarial"} <= set(stats)
    gen.zero_grad(set_to_none=True)
    discs.zero_grad(set_to_none=True)
    terms[term].backward()
    assert _reached(parameter_groups(gen, discs)) == REACH[term]


def test_cycle_l1_only_and_stop_gradient_variants_reach_the_same_groups(shared, odd):
    _, _, _, hr, lr = odd
    gen, discs, obj = _setup(shared, perceptual=0.0, cyc_mode="l1", idt_stop_gradient=True)
    terms, stats, cache = obj.generator_terms(hr, lr, 0)
    assert terms["cyc"].item() == pytest.approx(stats["cyc_l1"])
    assert "cyc_adversarial" not in stats and "rec_perceptual" not in stats
    for term in ("cyc", "idt"):
        gen.zero_grad(set_to_none=True)
        terms, _, _ = obj.generator_terms(hr, lr, 0)
        terms[term].backward()
        assert _reached(parameter_groups(gen, discs)) == REACH[term]
    # D_HR sees only y_{s->s} as fake when L_cyc has no adversarial part
    calls = []
    hook = discs.hr.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    obj.discriminator_terms(cache, 0)
    hook.remove()
    assert calls == [2, 2]  # real batch, then one batch of fakes


def test_shapes_for_odd_and_mismatched_crop_sizes(odd):
    gen, discs, obj, hr, lr = odd
    _, _, cache = obj.generator_terms(hr, lr, 0)
    assert cache["y_ss"].shape == cache["y_sts"].shape == (2, 3, 36, 28)
    assert cache["x_st"].shape == (2, 3, 9, 7)
    assert cache["f_s"].shape == cache["f_t"].shape == (2, TINY.channels, 9, 7)
    other = torch.rand(2, 3, 11, 13) * 2 - 1  # x_t of another size than x_s
    terms, _, cache = obj.generator_terms(hr, other, 0)
    assert cache["f_t"].shape == (2, TINY.channels, 11, 13)
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(v) for v in obj.discriminator_terms(cache, 0).values())


def test_discriminator_terms_reach_only_their_discriminator(odd):
    gen, discs, obj, hr, lr = odd
    _, _, cache = obj.generator_terms(hr, lr, 0)
    subs = {"d_f": "D_f", "d_t": "D_t", "d_hr": "D_HR"}
    assert set(obj.discriminator_terms(cache, 0)) == set(subs)
    for name, group in subs.items():
        gen.zero_grad(set_to_none=True)
        discs.zero_grad(set_to_none=True)
        obj.discriminator_terms(cache, 0)[name].backward()
        assert _reached(parameter_groups(gen, discs)) == {group}


class _Const(torch.nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return torch.full((x.shape[0], 1, 2, 2), self.value) + 0 * self.w


def test_target_values_with_constant_discriminators(shared, odd):
    """L_align is 0 when D_f says 0.5 everywhere; L_sty and the adversarial parts are 0
    when D says 1 (real); the D losses use 1 for real/source and 0 for fake/target."""
    _, _, _, hr, lr = odd
    gen, discs, obj = _setup(shared, perceptual=0.0, adversarial=1.0)
    discs.feature, discs.lr, discs.hr = _Const(0.5), _Const(1.0), _Const(1.0)
    terms, stats, cache = obj.generator_terms(hr, lr, 0)
    assert terms["align"].item() == 0 and terms["sty"].item() == 0
    assert stats["rec_adversarial"] == 0 and stats["cyc_adversarial"] == 0
    assert terms["rec"].item() == pytest.approx(stats["rec_l1"])
    d = obj.discriminator_terms(cache, 0)
    assert d["d_f"].item() == pytest.approx(0.5 * 0.25 + 0.5 * 0.25)
    assert d["d_t"].item() == pytest.approx(0.5)  # real right (0), fake (1-0)^2 halved
    discs.feature, discs.lr, discs.hr = _Const(1.0), _Const(0.0), _Const(0.0)
    terms, stats, _ = obj.generator_terms(hr, lr, 0)
    assert terms["align"].item() == pytest.approx(0.25)
    assert terms["sty"].item() == 1 and stats["rec_adversarial"] == 1
    weights = term_weights(obj.cfg)
    total = obj.weighted_total(terms)
    assert total.item() == pytest.approx(sum(weights[k] * terms[k].item() for k in terms))


def test_warm_up_has_no_adversarial_terms_and_no_discriminator_step(shared, odd):
    _, _, _, hr, lr = odd
    _, _, obj = _setup(shared, perceptual=0.0, n_pre=5)
    with torch.no_grad():
        early, stats, cache = obj.generator_terms(hr, lr, 4)
        late, _, _ = obj.generator_terms(hr, lr, 5)
    assert set(early) == {"rec", "res", "idt", "cyc"} and set(late) == set(REACH)
    assert "rec_adversarial" not in stats
    assert obj.discriminator_terms(cache, 4) == {}


def test_perceptual_weight_requires_vgg():
    gen = DAICCV21(TINY)
    cfg = DALossConfig(perceptual=1.0)
    with pytest.raises(ValueError, match="perceptual"):
        DAObjective(gen, DADiscriminators(cfg, TINY.channels), cfg, None)
    assert not DALossConfig(perceptual=0.0).needs_perceptual


# ---------------------------------------------------------------------- training
def _overrides(shared: Path, out: Path, **extra) -> list[str]:
    data = shared / "data/RealSR_x4"
    base = {"data.lr_dirs": [str(data / "train/LR")], "data.hr_dirs": [str(data / "train/HR")],
            "data.val_dir": None, "run.out_dir": str(out), "run.log_every": 1,
            "run.threads": 1}
    base.update(extra)
    return [f"{k}={json.dumps(v)}" for k, v in base.items()]


def _records(run: Path, kind: str = "train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if r["type"] == kind]


def test_presets_load_and_config_errors(shared):
    for preset in ("da_default_x4", "da_usr_compat_x4", "da_cpu_x4", "da_smoke"):
        cfg = load_config(preset)
        assert cfg.model.architecture == "da-iccv21"
        DAICCV21Config.preset(cfg.model.preset, **cfg.model.overrides)
    compat = load_config("da_usr_compat_x4").loss
    assert (compat.align, compat.sty, compat.idt, compat.perceptual, compat.adversarial) == \
        (0.01, 0.01, 0.01, 0.01, 0.01)
    with pytest.raises(ConfigError, match="cyc_mode"):
        load_config("da_smoke", None, ["loss.cyc_mode=half"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("da_smoke", None, ["loss.n_pre_typo=1"])


def test_one_generator_step_and_one_discriminator_step_change_the_right_parameters(
        shared, tmp_path):
    cfg = load_config("da_smoke", None, _overrides(shared, tmp_path / "run", **{
        "data.lr_crop": 16, "optim.grad_clip": 0.0}))
    trainer = Trainer(cfg)
    trainer.start()
    task = trainer.task
    groups = parameter_groups(task.generator, task.discriminators)
    batch = next(trainer.batches(0))
    assert batch["lr"].shape == (2, 3, 16, 16) and batch["hr"].shape == (2, 3, 64, 64)

    def snapshot():
        return {name: [p.detach().clone() for p in params] for name, params in groups.items()}

    def changed(before):
        return {name for name, params in groups.items()
                if any(not torch.equal(p, q) for p, q in zip(params, before[name], strict=True))}

    before = snapshot()
    trainer.train_step(batch, discriminator=False)  # a generator step only
    assert changed(before) == {"E", "G_SR", "G_t"}

    before = snapshot()
    _, _, cache = task.generator_loss(batch, 1, torch.Generator(), 0, 2)
    d_total, logs = task.discriminator_loss(cache, 1)
    assert set(logs) == {"d_f", "d_t", "d_hr"}
    trainer.opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    trainer.opt_d.step()
    assert changed(before) == {"D_f", "D_t", "D_HR"}


def test_model_init_other_than_random_is_rejected(shared, tmp_path):
    with pytest.raises(ValueError, match="model.init"):  # at config time, before any build
        load_config("da_smoke", None, _overrides(shared, tmp_path, **{"model.init": "haar"}))


@pytest.fixture(scope="module")
def trained(shared, tmp_path_factory) -> Path:
    """da_smoke for 30 iterations (warm-up then adversarial), validation at the end."""
    run = tmp_path_factory.mktemp("da") / "run"
    cfg = load_config("da_smoke", None, _overrides(shared, run, **{
        "run.iterations": 30, "optim.lr_g": 1e-3, "loss.n_pre": 20, "run.val_every": 30,
        "data.val_dir": str(shared / "data/RealSR_x4/val"),
        "run.weights_dir": str(shared / "weights")}))
    Trainer(cfg).fit()
    return run


def test_smoke_training_lowers_the_loss_and_validates(trained):
    records = _records(trained)
    assert len(records) == 30
    warm = [r["loss"] for r in records[:20]]
    assert np.median(warm[-5:]) < np.median(warm[:5])
    assert "align" not in records[19] and "align" in records[20] and "d_hr" in records[20]
    val = _records(trained, "val")[-1]
    for key in ("bicubic_psnr", "bicubic_lpips", "sr_psnr", "sr_ssim", "sr_lpips",
                "sr_lr_psnr", "x_st_psnr", "ds_bicubic_psnr", "x_tt_psnr"):
        assert np.isfinite(val[key]), key
    assert (trained / "samples" / "val_00000030.png").is_file()


def test_export_holds_e_g_sr_and_g_t_and_runs_both_directions(trained):
    model = sdflow.load(trained / "model_ema.safetensors")
    assert isinstance(model, DAICCV21)
    assert model.checkpoint_info.architecture == "da-iccv21"
    assert "re-implementation" in model.checkpoint_info.notes
    assert {k.split(".")[0] for k in model.state_dict()} == {"encoder", "sr_decoder",
                                                            "lr_decoder"}
    with torch.no_grad():
        assert model.sr(torch.rand(1, 3, 11, 6) * 2 - 1).shape == (1, 3, 44, 24)
        assert model.downscale(torch.rand(1, 3, 44, 24) * 2 - 1).shape == (1, 3, 11, 6)


def test_eval_sr_with_the_exported_model(trained, shared, tmp_path, capsys):
    data = make_pairs(shared, tmp_path / "data")
    ckpt = str(trained / "model_ema.safetensors")
    common = ["--data", str(data), "--lpips", "none", "--quiet"]
    assert main(["eval", "sr", "--model", ckpt, "--out", str(tmp_path / "a"), *common]) == 0
    out = capsys.readouterr().out
    assert "da-iccv21" in out
    result = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert result["taus"] == [0.0]
    assert "re-implementation" in result["model"]["label"]
    assert main(["eval", "sr", "--model", ckpt, "--tau", "0,0.8", "--out",
                 str(tmp_path / "b"), *common]) == 1
    err = capsys.readouterr().err
    assert "deterministic" in err and "--tau 0" in err
    assert main(["eval", "ds", "--model", ckpt, "--out", str(tmp_path / "c"), "--baseline",
                 "none", "--samples", "3", *common]) == 0
    result = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert result["taus"] == [0.0]  # deterministic: tau 0 alone, one sample
    ours = [m for m in result["means"] if m["method"] != "bicubic"]
    assert len(ours) == 1 and ours[0]["tau"] == 0.0 and ours[0]["psnr"] > 0


def test_resume_continues_exactly(shared, tmp_path):
    extra = {"run.checkpoint_every": 3, "loss.n_pre": 3, "optim.milestones": []}
    full = tmp_path / "full"
    Trainer(load_config("da_smoke", None, _overrides(shared, full, **{
        **extra, "run.iterations": 7}))).fit()
    part = tmp_path / "part"
    Trainer(load_config("da_smoke", None, _overrides(shared, part, **{
        **extra, "run.iterations": 4}))).fit()  # stops at 4, checkpoints at 3 and 4
    (part / "checkpoints" / "step_00000004.pt").unlink()  # as if killed after step 3
    Trainer(load_config("da_smoke", None, _overrides(shared, part, **{
        **extra, "run.iterations": 7}))).fit(resume="auto")
    a, b = _records(full), _records(part)
    assert [r["iteration"] for r in b] == list(range(7))
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "rec", "res", "cyc", "idt", "grad_norm"):
            assert ra[key] == rb[key], (ra["iteration"], key)
    assert a[-1]["d_hr"] == b[-1]["d_hr"]
    wa = sdflow.load(full / "model_ema.safetensors").state_dict()
    wb = sdflow.load(part / "model_ema.safetensors").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_da_model_through_the_sr_command_and_image_api(tmp_path):
    """The deterministic model runs through `sdflow sr` (tiled = untiled), `sdflow
    downscale` and the image API; a temperature or several samples are refused with a clear
    message."""
    from PIL import Image

    torch.manual_seed(0)
    model = DAICCV21(DAICCV21Config.preset("tiny"))
    ckpt = tmp_path / "da.safetensors"
    sdflow.save(model, ckpt)
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    src = str(tmp_path / "a.png")
    assert main(["sr", src, "-o", str(tmp_path / "o1"), "--model", str(ckpt)]) == 0
    assert main(["sr", src, "-o", str(tmp_path / "o2"), "--model", str(ckpt),
                 "--tile", "16"]) == 0
    one = np.array(Image.open(tmp_path / "o1/a_sr.png")).astype(int)
    two = np.array(Image.open(tmp_path / "o2/a_sr.png")).astype(int)
    assert one.shape == (80, 120, 3) and np.abs(one - two).max() <= 1
    assert main(["sr", src, "-o", str(tmp_path / "o3"), "--model", str(ckpt),
                 "--tau", "0.8"]) == 2
    assert main(["downscale", src, "-o", str(tmp_path / "o4"), "--model", str(ckpt),
                 "--tau", "0.5"]) == 2
    assert main(["downscale", src, "-o", str(tmp_path / "o4"), "--model", str(ckpt)]) == 0
    names = sorted(p.name for p in (tmp_path / "o4").iterdir() if p.suffix == ".png")
    assert names == ["a_ds.png"]
    lr = np.array(Image.open(tmp_path / "o4" / names[0]))
    assert lr.shape == (5, 8, 3)
    loaded = sdflow.load(ckpt)
    out = sdflow.super_resolve(loaded, Image.open(src))
    assert out.size == (120, 80)
    assert np.abs(np.array(out).astype(int) - one).max() <= 1


def test_source_blur_makes_the_source_lr_camera_like():
    """loss.source_blur (our option): x_s = bicubic(G_sigma y_s) instead of bicubic(y_s);
    'auto' is fitted to the training folders like SDFlow's degradation anchor."""
    from sdflow.metrics.degradation_fit import degrade
    from sdflow.training.losses import quantize_8bit

    gen = DAICCV21(TINY)
    hr = torch.rand(1, 3, 32, 32) * 2 - 1
    plain = DAObjective(gen, DADiscriminators(DALossConfig(disc_base=8, perceptual=0.0),
                                              TINY.channels),
                        DALossConfig(disc_base=8, perceptual=0.0), None)
    blurred_cfg = DALossConfig(disc_base=8, perceptual=0.0, source_blur=1.5)
    blurred = DAObjective(gen, DADiscriminators(blurred_cfg, TINY.channels), blurred_cfg, None)
    torch.testing.assert_close(blurred.source_lr(hr), quantize_8bit(degrade(hr, 4, 1.5)))
    assert not torch.allclose(blurred.source_lr(hr), plain.source_lr(hr))
    with pytest.raises(ConfigError, match="source_blur"):
        load_config("da_smoke", None, ["loss.source_blur=9.0"])
