"""``sdflow eval`` end to end on small real data with a tiny untrained model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _evaldata import NAMES, make_model, make_pairs, one_thread  # noqa: F401

import sdflow
from sdflow.checkpoint import file_sha256
from sdflow.cli import main
from sdflow.evaluation import EvalOptions, evaluate_bicubic
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.metrics import imresize_uint8, lr_psnr, noise_sigma, psnr, ssim
from sdflow.metrics.artefacts import block_ratio, spearman
from sdflow.seeding import image_seed


@pytest.fixture(scope="module")
def tiny(shared, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny")
    data = make_pairs(shared, root / "data")
    return data, make_model(data, root / "m.safetensors")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_bicubic_mode_and_folders_mode_agree(tiny, shared, tmp_path, capsys):
    data, _ = tiny
    weights = str(shared / "weights")
    code, out, _ = _run(["bicubic", "--data", str(data), "--save", str(tmp_path / "pred"),
                         "--out", str(tmp_path / "a"), "--weights", weights, "--quiet"], capsys)
    assert code == 0 and "bicubic" in out
    code, out, _ = _run(["folders", "--pred", str(tmp_path / "pred" / "bicubic"),
                         "--gt", str(data / "HR"), "--lr", str(data / "LR"),
                         "--out", str(tmp_path / "b"), "--weights", weights, "--quiet"], capsys)
    assert code == 0
    a, b = _rows(tmp_path / "a" / "metrics.csv"), _rows(tmp_path / "b" / "metrics.csv")
    assert [r["image"] for r in a] == list(NAMES)
    for ra, rb in zip(a, b, strict=True):
        for key in ("psnr", "ssim", "lpips", "lr_psnr"):
            assert ra[key] == rb[key]
    # The numbers are the plain metric functions on the 8-bit bicubic image.
    lr = read_image(data / "LR" / f"{NAMES[0]}.png").rgb
    hr = read_image(data / "HR" / f"{NAMES[0]}.png").rgb
    sr = imresize_uint8(lr, scale=4)
    assert float(a[0]["psnr"]) == pytest.approx(psnr(sr, hr, shave=4), abs=1e-12)
    assert float(a[0]["ssim"]) == pytest.approx(ssim(sr, hr, shave=4), abs=1e-12)
    assert float(a[0]["lr_psnr"]) == pytest.approx(lr_psnr(sr, lr), abs=1e-12)


def test_sr_end_to_end(tiny, shared, tmp_path, capsys):
    data, model_path = tiny
    args = ["sr", "--model", str(model_path), "--data", str(data), "--tau", "0,0.8",
            "--samples", "2", "--seed", "3", "--weights", str(shared / "weights"), "--quiet"]
    code, out, _ = _run(args + ["--out", str(tmp_path / "a")], capsys)
    assert code == 0
    assert "sdflow" in out and "bicubic" in out and "LR-PSNR" in out
    rows = _rows(tmp_path / "a" / "metrics.csv")
    assert [(r["method"], r["tau"], r["samples"]) for r in rows[:3]] == [
        ("bicubic", "", "1"), ("sdflow", "0.0", "1"), ("sdflow", "0.8", "2")]
    assert len(rows) == 6
    zero, warm = rows[1], rows[2]
    assert zero["div_lpips"] == "" and zero["psnr_best"] == ""
    assert float(warm["div_lpips"]) > 0 and float(warm["div_std"]) > 0
    assert float(warm["psnr_best"]) >= float(warm["psnr"])
    assert float(warm["lpips_best"]) <= float(warm["lpips"])

    # tau = 0 is the model's deterministic SR (prepared, as sdflow sr runs it), quantised to
    # 8 bits, scored by psnr().
    model = sdflow.prepare(sdflow.load(model_path))
    lr = read_image(data / "LR" / f"{NAMES[0]}.png").rgb
    hr = read_image(data / "HR" / f"{NAMES[0]}.png").rgb
    with torch.no_grad():
        sr = tensor_to_image(model.sr(image_to_tensor(lr), 0.0))
    assert float(zero["psnr"]) == pytest.approx(psnr(sr, hr, shave=4), abs=1e-12)
    # ... and tau > 0 draws its noise from the documented per-image seed.
    gen = torch.Generator().manual_seed(image_seed(3, NAMES[0]))
    with torch.no_grad():
        samples = model.sr(image_to_tensor(lr), 0.8, num_samples=2, generator=gen)
    mean = np.mean([psnr(tensor_to_image(samples[0, k]), hr, shave=4) for k in range(2)])
    assert float(warm["psnr"]) == pytest.approx(mean, abs=1e-12)
    # block ratio of every SR row; uncertainty correlations of the sampled rows only
    imgs = [tensor_to_image(samples[0, k]) for k in range(2)]
    assert float(zero["block"]) == pytest.approx(block_ratio(sr, 4), abs=1e-12)
    assert float(warm["block"]) == pytest.approx(
        np.mean([block_ratio(im, 4) for im in imgs]), abs=1e-12)
    assert rows[0]["block"] != "" and zero["unc_err_rho"] == ""
    spread = np.sqrt(np.stack(imgs).astype(np.float64).var(axis=0, ddof=1).mean(axis=2))
    error = np.sqrt(((sr.astype(np.float64) - hr) ** 2).mean(axis=2))
    assert float(warm["unc_err_rho"]) == pytest.approx(spearman(spread, error), abs=1e-12)
    assert -1 <= float(warm["unc_grad_rho"]) <= 1

    record = json.loads((tmp_path / "a" / "metrics.json").read_text())
    protocol = record["protocol"]
    assert "BT.601" in protocol["color_space"] and protocol["shave"] == 4
    assert protocol["lpips"]["net"] == "alex" and protocol["lpips"]["version"] == "0.1"
    assert record["taus"] == [0.0, 0.8] and record["seed"] == 3 and record["samples"] == 2
    assert record["model"]["sha256"] == file_sha256(model_path)
    assert record["dataset"]["lr_dir"] == str(data / "LR")
    assert record["dataset"]["pairs"] == 2 and record["dataset"]["hr_files"] == 2
    means = {(m["method"], m["tau"]): m for m in record["means"]}
    assert means[("sdflow", 0.8)]["psnr"] == pytest.approx(
        np.mean([float(r["psnr"]) for r in rows if r["tau"] == "0.8"]))

    # Same seed: same numbers; another seed: tau = 0 unchanged, samples differ.
    _run(args + ["--out", str(tmp_path / "b")], capsys)
    assert _rows(tmp_path / "b" / "metrics.csv") == rows
    other = [a if a != "3" else "4" for a in args]
    _run(other + ["--out", str(tmp_path / "c")], capsys)
    rows_c = _rows(tmp_path / "c" / "metrics.csv")
    assert rows_c[1]["psnr"] == zero["psnr"] and rows_c[2]["psnr"] != warm["psnr"]


def test_ds_end_to_end(tiny, tmp_path, capsys):
    data, model_path = tiny
    code, out, _ = _run(["ds", "--model", str(model_path), "--data", str(data), "--tau", "0",
                         "--samples", "2", "--lpips", "none", "--out", str(tmp_path),
                         "--save", str(tmp_path / "gen"), "--quiet"], capsys)
    assert code == 0 and "noise real" in out
    rows = _rows(tmp_path / "metrics.csv")
    # bicubic, the registered gaussian-fit baseline (tau 0), then the model
    assert [(r["method"], r["tau"]) for r in rows[:3]] == [
        ("bicubic", ""), ("gaussian-fit", "0.0"), ("sdflow", "0.0")]
    rows = [r for r in rows if r["method"] != "gaussian-fit"]
    assert "lpips" not in rows[0]
    real = read_image(data / "LR" / f"{NAMES[0]}.png").rgb
    hr = read_image(data / "HR" / f"{NAMES[0]}.png").rgb
    assert float(rows[0]["psnr"]) == pytest.approx(
        psnr(imresize_uint8(hr, scale=0.25), real, shave=0), abs=1e-12)
    assert float(rows[1]["noise_real"]) == pytest.approx(noise_sigma(real), abs=1e-12)
    assert float(rows[1]["div_std"]) > 0  # the mixture component is drawn even at tau = 0
    generated = read_image(tmp_path / "gen" / "sdflow_tau0" / f"{NAMES[0]}.png").rgb
    assert generated.shape == real.shape


def test_errors_are_reported(tiny, tmp_path, capsys, monkeypatch):
    data, model_path = tiny
    lonely = tmp_path / "pred"
    lonely.mkdir()
    (lonely / "other.png").write_bytes((data / "HR" / f"{NAMES[0]}.png").read_bytes())
    code, _, err = _run(["folders", "--pred", str(lonely), "--gt", str(data / "HR"),
                         "--lpips", "none", "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "no counterpart" in err and "other" in err

    monkeypatch.delenv("SDFLOW_WEIGHTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = _run(["bicubic", "--data", str(data), "--out", str(tmp_path / "o"),
                         "--quiet"], capsys)
    assert code == 1 and "alexnet_features_imagenet.safetensors" in err

    code, _, err = _run(["sr", "--model", str(model_path), "--lr", str(data / "HR"),
                         "--hr", str(data / "HR"), "--lpips", "none",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 1 and "is not 4x the LR" in err


def test_bicubic_on_realsr_val_matches_documented_figures(shared):
    # The figures docs/evaluation.md states for `sdflow eval bicubic` on RealSR_x4/val.
    val = shared / "data" / "RealSR_x4" / "val"
    result = evaluate_bicubic(val / "LR", val / "HR", EvalOptions(lpips_net=None))
    (mean,) = result.summary()
    assert mean["images"] == 20
    assert mean["psnr"] == pytest.approx(27.0037, abs=5e-5)
    assert mean["ssim"] == pytest.approx(0.77724, abs=5e-6)


def test_non_finite_samples_are_dropped_and_counted():
    from sdflow.errors import NonFiniteOutputError
    from sdflow.evaluation.scoring import generate as _generate

    def fake(x, tau, num_samples, generator):
        out = torch.zeros(1, num_samples, 3, 8, 8)
        out[0, 1, 0, 0, 0] = float("nan")
        raise NonFiniteOutputError("nan", torch.tensor([False]), out)

    images, bad = _generate(fake, torch.zeros(1, 3, 2, 2), 0.8, 3, torch.Generator())
    assert bad == 1 and len(images) == 2 and images[0].shape == (8, 8, 3)


def test_summary_means_skip_nan_and_count_it():
    from sdflow.evaluation import EvalResult

    rows = [{"image": "a", "method": "bicubic", "tau": None, "samples": 1, "psnr": 30.0},
            {"image": "a", "method": "m", "tau": 0.8, "samples": 2, "psnr": 20.0,
             "nonfinite": 0},
            {"image": "b", "method": "m", "tau": 0.8, "samples": 2, "psnr": float("nan"),
             "nonfinite": 2}]
    bicubic, model = EvalResult("sr", rows, {}).summary()
    assert bicubic["psnr"] == 30.0 and bicubic["nonfinite"] is None
    assert "missing" not in bicubic
    assert model["psnr"] == 20.0 and model["nonfinite"] == 1.0 and model["missing"] == 1
