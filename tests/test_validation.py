"""Training validation scores as ``sdflow eval`` does: the same per-image seeds, sample
counts and metrics, so a validation number and an eval number of the same crops agree."""

from __future__ import annotations

import numpy as np
import pytest

from sdflow.evaluation import EvalOptions, evaluate_ds, evaluate_sr
from sdflow.imageio import write_image
from sdflow.training.data import load_pairs
from sdflow.training.validation import validate_sdflow

from helpers import tiny_model


@pytest.fixture(scope="module")
def crops(shared, tmp_path_factory):
    """Two val crops as validation loads them, and the same crops as an eval folder."""
    pairs = load_pairs(shared / "data/RealSR_x4/val", 4, lr_crop=16, limit=2)
    root = tmp_path_factory.mktemp("crops")
    for pair in pairs:
        write_image(root / "LR" / f"{pair.name}.png", pair.lr)
        write_image(root / "HR" / f"{pair.name}.png", pair.hr)
    return pairs, root


def _mean(result, method: str, tau: float, key: str) -> float:
    return float(np.mean([r[key] for r in result.rows
                          if r["method"] == method and r["tau"] == tau]))


def test_validation_and_eval_score_the_same_outputs_alike(shared, crops):
    pairs, root = crops
    model = tiny_model(shared)
    val = validate_sdflow(model, pairs, samples=3, seed=5, lpips=None).metrics
    options = EvalOptions(taus=(0.0, 0.8), samples=3, seed=5, lpips_net=None)
    sr = evaluate_sr(model, root / "LR", root / "HR", options)
    for tau in (0.0, 0.8):
        for key in ("psnr", "ssim", "lr_psnr"):
            assert val[f"sr_t{tau:.1f}_{key}"] == pytest.approx(
                _mean(sr, "sdflow", tau, key), abs=1e-9), (tau, key)
    assert val["sr_t0.8_diversity_std"] == pytest.approx(_mean(sr, "sdflow", 0.8, "div_std"))
    assert val["bicubic_psnr"] == pytest.approx(_mean(sr, "bicubic", None, "psnr"))
    ds = evaluate_ds(model, root / "HR", root / "LR",
                     EvalOptions(taus=(0.0, 0.8), samples=3, seed=5, lpips_net=None))
    assert val["ds_t0.0_psnr"] == pytest.approx(_mean(ds, "sdflow", 0.0, "psnr"), abs=1e-9)
    assert val["ds_t0.8_diversity_std"] == pytest.approx(_mean(ds, "sdflow", 0.8, "div_std"))
    assert val["ds_bicubic_psnr"] == pytest.approx(_mean(ds, "bicubic", None, "psnr"))
    # another seed draws other samples: the agreement above is not a coincidence
    other = validate_sdflow(model, pairs, samples=3, seed=6, lpips=None).metrics
    assert other["sr_t0.8_psnr"] != val["sr_t0.8_psnr"]
