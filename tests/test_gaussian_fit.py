"""The gaussian-fit baseline downscaler: the unpaired fit finds a known blur and noise, the
model downscales like its definition through every path, and eval ds scores it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import sdflow
from sdflow.cli import main
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.inference.tiling import tiled_downscale
from sdflow.metrics.degradation import high_band_energy
from sdflow.metrics.degradation_fit import (
    blur_luma_chroma,
    degrade,
    fit_gaussian_degradation,
    gaussian_blur_sigma,
)
from sdflow.metrics.resize import imresize
from sdflow.models import GaussianDownscaler, GaussianFitConfig

from inference_helpers import one_thread

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def hr_images(shared):
    paths = sorted((shared / "data/RealSR_x4/train/HR").glob("*.png"))[:12]
    return [read_image(p).rgb[:256, :256] for p in paths]


def _camera(images, sigma, noise, seed=0, colour_sigma=None):
    """Synthetic 'real LR' of a known camera: blur (the colour differences by colour_sigma),
    bicubic x1/4, white noise, 8 bits."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for img in images:
        x = image_to_tensor(img).double()
        low = imresize(blur_luma_chroma(x, sigma, colour_sigma), scale=0.25)
        low = low + torch.randn(low.shape, generator=g, dtype=low.dtype) * (2 * noise / 255)
        out.append(tensor_to_image(low.float()))
    return out


@pytest.mark.parametrize("sigma, noise", [(1.5, 0.0), (2.2, 3.0), (1.0, 2.0), (0.0, 0.0)])
def test_the_fit_recovers_a_known_camera(hr_images, sigma, noise):
    """Blur and noise are identified jointly (noise lowers the blur index): on the same
    scenes (the fit never pairs them; other noise draws) both come back."""
    fit = fit_gaussian_degradation(_camera(hr_images, sigma, noise, seed=5), hr_images)
    assert abs(fit.sigma - sigma) < 0.2
    assert abs(fit.noise - noise) < 0.4
    assert abs(fit.fitted_blur - fit.real_blur) < 0.01


@pytest.mark.parametrize("sigma, colour_sigma, noise, tolerance",
                         [(1.5, 3.0, 0.0, 0.35),
                          pytest.param(1.0, 2.0, 1.0, 0.8, marks=pytest.mark.slow)])
def test_the_fit_recovers_a_camera_whose_colour_is_blurrier(hr_images, sigma, colour_sigma,
                                                            noise, tolerance):
    """A camera whose colour differences are blurrier than its brightness (demosaicing):
    the brightness blur comes back as before and the colour blur by its colour detail; a
    camera without extra colour blur keeps colour_sigma at sigma, as --same-colour-blur.
    With noise the tolerance is wider: noise drawn per RGB channel is colour detail too, so
    the fitted noise's error (1.2 for 1.0 here) moves the colour sigma (2.7 for 2.0, and 1.5
    where the camera blurs colour by its sigma 1.0)."""
    camera = _camera(hr_images, sigma, noise, seed=5, colour_sigma=colour_sigma)
    fit = fit_gaussian_degradation(camera, hr_images)
    assert abs(fit.sigma - sigma) < 0.2 and abs(fit.noise - noise) < 0.4
    assert abs(fit.colour_sigma - colour_sigma) < tolerance
    assert abs(fit.fitted_colour / fit.real_colour - 1) < 0.1
    plain = fit_gaussian_degradation(camera, hr_images, fit_colour=False)
    assert plain.colour_sigma == plain.sigma and plain.fitted_colour > 1.5 * plain.real_colour
    same = fit_gaussian_degradation(_camera(hr_images, sigma, noise, seed=5), hr_images)
    assert same.colour_sigma < same.sigma + tolerance


def test_colour_blur_leaves_the_brightness_alone(hr_images):
    """blur_luma_chroma blurs luma by sigma whatever colour_sigma is, and the colour
    differences by colour_sigma; None or colour_sigma == sigma is the plain RGB blur."""
    from sdflow.metrics.color import luma_chroma, rgb_from_luma_chroma

    x = image_to_tensor(hr_images[1][:64, :64]).double()
    torch.testing.assert_close(rgb_from_luma_chroma(luma_chroma(x)), x)
    plain = gaussian_blur_sigma(x, 1.2)
    torch.testing.assert_close(blur_luma_chroma(x, 1.2, None), plain)
    torch.testing.assert_close(blur_luma_chroma(x, 1.2, 1.2), plain)
    both = luma_chroma(blur_luma_chroma(x, 1.2, 3.0))
    torch.testing.assert_close(both[:, :1], luma_chroma(plain)[:, :1])
    torch.testing.assert_close(both[:, 1:], luma_chroma(gaussian_blur_sigma(x, 3.0))[:, 1:])


def test_across_scenes_a_blurrier_camera_fits_a_larger_sigma(hr_images):
    """Unpaired (the LR shows scenes 0, 2, 4, ..., the HR the others): with this few scenes
    the blur index's dependence on content limits the precision (docs/training.md), but
    a clearly blurrier camera always fits a clearly larger sigma."""
    lr_scenes, hr_scenes = hr_images[::2], hr_images[1::2]
    sharp = fit_gaussian_degradation(_camera(lr_scenes, 0.5, 0.0), hr_scenes)
    blurry = fit_gaussian_degradation(_camera(lr_scenes, 2.5, 0.0), hr_scenes)
    assert blurry.sigma > sharp.sigma + 1.0
    assert blurry.bicubic_blur == sharp.bicubic_blur < blurry.real_blur


def test_the_fit_refuses_tiny_or_missing_images(hr_images):
    with pytest.raises(ValueError, match="at least one"):
        fit_gaussian_degradation([], hr_images)
    with pytest.raises(ValueError, match="16x16"):
        fit_gaussian_degradation([np.zeros((8, 8, 3), np.uint8)], hr_images)


def test_the_model_is_its_definition_through_every_path(hr_images):
    model = GaussianDownscaler(GaussianFitConfig(sigma=1.7, noise=2.0, colour_sigma=2.9)).eval()
    x = image_to_tensor(hr_images[0][:200, :184])  # not a multiple of 8: padded and cropped
    with torch.no_grad():
        mode = model.downscale(x, tau=0.0)
        reference = degrade(x, 4, 1.7, colour_sigma=2.9)
        torch.testing.assert_close(mode, reference[:, :, :50, :46], atol=2e-3, rtol=0)
        # inside, away from the padded border, exactly the definition
        torch.testing.assert_close(mode[:, :, :40, :40], reference[:, :, :40, :40])
        sample = model.downscale(x, tau=1.0, seed=3)
        tiled = tiled_downscale(model, x, tau=1.0, generator=torch.Generator().manual_seed(3),
                                tile=64)
    torch.testing.assert_close(tiled, sample, atol=1e-5, rtol=0)
    noise = (sample - mode) * 255 / 2
    assert 1.6 < float(noise.std()) < 2.4  # tau 1: the fitted noise, in grey levels
    pil = sdflow.downscale(model, Image.fromarray(hr_images[0][:200, :184]), tau=1.0, seed=3)
    assert np.abs(np.asarray(pil, np.int16) - tensor_to_image(sample).astype(np.int16)).max() <= 1


@pytest.mark.slow  # over 10 s on 2 cores: run by .ci/run's second step
def test_fit_degradation_command_writes_a_usable_model(shared, tmp_path, capsys):
    data = shared / "data/RealSR_x4/train"
    out = tmp_path / "camera.safetensors"
    argv = ["fit-degradation", "--lr-dir", str(data / "LR"), "--hr-dir", str(data / "HR"),
            "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fitted: sigma" in printed and "colour: sigma" in printed
    model = sdflow.load(str(out))
    assert isinstance(model, GaussianDownscaler) and 1.0 < model.config.sigma < 2.5
    assert model.config.colour_sigma > model.config.sigma  # the camera's colour is blurrier
    extra = model.checkpoint_info.extra
    assert extra["fit"]["lr_images"] == 30 and extra["compute"]["kind"] == "fit"
    assert str(tmp_path) not in json.dumps(model.checkpoint_info.to_json())
    assert main(argv) == 1  # an existing file is kept
    assert "--overwrite" in capsys.readouterr().err
    plain = tmp_path / "one_blur.safetensors"
    assert main([*argv[:-1], str(plain), "--same-colour-blur"]) == 0
    assert "colour: the same as the brightness" in capsys.readouterr().out
    assert sdflow.load(str(plain)).config.colour_sigma is None
    hr = tmp_path / "hr"
    hr.mkdir()
    Image.open(shared / "data/RealSR_x4/val/HR/Canon_031.png").crop((0, 0, 64, 64)).save(
        hr / "a.png")
    assert main(["downscale", str(hr), "-o", str(tmp_path / "lr"), "--model", str(out),
                 "--tau", "0"]) == 0
    assert [p.name for p in (tmp_path / "lr").iterdir()] == ["a_ds_t0.00_k0.png"]
    assert main(["make-pairs", str(hr), "-o", str(tmp_path / "pairs"), "--model",
                 str(out), "--tau", "0"]) == 0
    assert "a" in (tmp_path / "pairs" / "manifest.tsv").read_text()
    capsys.readouterr()


def test_eval_ds_scores_the_gaussian_fit_baseline_and_band_ratio(shared, tmp_path, capsys):
    data = str(shared / "data/RealSR_x4/val")
    assert main(["eval", "ds", "--model", "sdflow-lite-realsr-x4", "--data", data,
                 "--limit", "2", "--lpips", "none", "--tau", "0", "--out", str(tmp_path),
                 "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "gaussian-fit" in table and "band ratio" in table and "colour ratio" in table
    record = json.loads((tmp_path / "metrics.json").read_text())
    means = {m["method"]: m for m in record["means"]}
    assert set(means) == {"bicubic", "gaussian-fit", "sdflow"}
    # the camera blurs: bicubic keeps far more fine detail than the real LR has
    assert means["bicubic"]["band_ratio"] > 2.0
    assert means["gaussian-fit"]["band_ratio"] < means["bicubic"]["band_ratio"]
    # ... and more fine colour detail (the camera's demosaicing smooths colour; 1.19 here)
    assert means["bicubic"]["colour_ratio"] > 1.05
    assert means["gaussian-fit"]["psnr"] > means["bicubic"]["psnr"] + 0.5
    assert record["baselines"][0]["sha256"]
    assert main(["eval", "ds", "--model", "sdflow-lite-realsr-x4", "--data", data,
                 "--limit", "1", "--lpips", "none", "--tau", "0", "--out",
                 str(tmp_path / "b"), "--quiet", "--baseline", "none"]) == 0
    assert "gaussian-fit" not in capsys.readouterr().out
    # a model of the baseline's architecture keeps rows of its own (not averaged together)
    assert main(["eval", "ds", "--model", "gaussian-fit-realsr-x4", "--data", data,
                 "--limit", "1", "--lpips", "none", "--tau", "0", "--out", str(tmp_path / "c"),
                 "--quiet",
                 "--baseline", "gaussian-fit-realsr-x4", "--baseline",
                 "gaussian-fit-realsr-x4"]) == 0
    record = json.loads((tmp_path / "c" / "metrics.json").read_text())
    means = {m["method"]: m for m in record["means"]}
    assert list(means) == ["bicubic", "gaussian-fit", "gaussian-fit-2", "gaussian-fit-model"]
    assert {m["images"] for m in record["means"]} == {1}
    assert means["gaussian-fit-model"]["psnr"] == means["gaussian-fit"]["psnr"]


def test_high_band_energy_falls_with_blur_and_rises_with_noise(hr_images):
    img = hr_images[0]
    x = image_to_tensor(img)
    blurred = tensor_to_image(gaussian_blur_sigma(x, 1.5))
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 8, img.shape), 0, 255).astype(
        np.uint8)
    e, eb, en = high_band_energy(img), high_band_energy(blurred), high_band_energy(noisy)
    assert eb < 0.5 * e < en
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert high_band_energy(flat) == 0.0
