"""Validation during training: SR (and DS) metrics on paired crops next to the bicubic
baseline on the same crops, and a sample grid PNG, scored through the evaluation scorer
(:mod:`sdflow.evaluation.scoring`) with ``sdflow eval``'s per-image seeds and sample
counts. ``validate_sdflow`` adds bits/dim and diversity; ``validate_da`` serves the
deterministic da-iccv21 model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdflow.evaluation.scoring import Scorer, draw_outputs, sample_count
from sdflow.imageio import image_to_tensor, tensor_to_image, write_image
from sdflow.metrics import LPIPS, imresize_uint8, lr_psnr, pixel_std
from sdflow.models import SDFlow, bits_per_dim
from sdflow.models.base import downscales
from sdflow.models.prepare import prepare
from sdflow.training.data import PairedImage

log = logging.getLogger(__name__)

SR_TAUS = (0.0, 0.8)


@dataclass
class ValidationResult:
    metrics: dict[str, float]
    grid: np.ndarray | None


def _nearest_up(img: np.ndarray, factor: int) -> np.ndarray:
    return img.repeat(factor, axis=0).repeat(factor, axis=1)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _tiles(images: list[np.ndarray], count: int, like: np.ndarray) -> list[np.ndarray]:
    """The first ``count`` images, grey tiles where there are fewer (non-finite outputs)."""
    return (images + [np.full_like(like, 128)] * count)[:count]


@torch.no_grad()
def validate_sdflow(model: SDFlow, pairs: list[PairedImage], *, samples: int = 3,
                    seed: int = 0, lpips: LPIPS | None = None, grid_images: int = 3
                    ) -> ValidationResult:
    """Metrics (means over ``pairs``), scored as ``sdflow eval`` scores them
    (:mod:`sdflow.evaluation.scoring`: the same per-image seeds from the pair's name, the
    same sample counts, PSNR/SSIM on Y with ``scale`` px shaved for SR and none for the
    LR-size DS comparison, LPIPS-alex on RGB, means over samples).

    SR at tau = 0 and tau = 0.8 (``samples`` samples, at least 2); LR-consistency of SR;
    diversity over the samples; DS at tau = 0 (``samples`` mixture components) against the
    real LR, next to bicubic x4 / x1/4 of the same crops; bits/dim of the real HR and LR.
    """
    model = prepare(model)  # as inference runs it (a copy: the training model is untouched)
    device = next(model.parameters()).device
    s = model.scale
    samples = max(samples, 2)
    scorer = Scorer("y", lpips)
    lr_scorer = Scorer("y")  # PSNR of LR-size crops (too small for LPIPS's AlexNet)
    rows: list[dict[str, float]] = []
    grid_rows: list[np.ndarray] = []
    for idx, pair in enumerate(pairs):
        lr_t = image_to_tensor(pair.lr).to(device)
        hr_t = image_to_tensor(pair.hr).to(device)
        bic = imresize_uint8(pair.lr, scale=s)
        r = {f"bicubic_{k}": v for k, v in scorer.fidelity(bic, pair.hr, s).items()}
        sr_imgs = {}
        for tau in SR_TAUS:
            n = sample_count(model, "sr", tau, samples)
            imgs, _ = draw_outputs(model, "sr", lr_t, tau, n, seed, pair.name)
            sr_imgs[tau] = imgs
            for k, v in scorer.samples(imgs, pair.hr, s, best_of=False).items():
                r[f"sr_t{tau:.1f}_{k}"] = v
            r[f"sr_t{tau:.1f}_lr_psnr"] = _mean([lr_psnr(im, pair.lr, s) for im in imgs])
            if n > 1:
                r[f"sr_t{tau:.1f}_diversity_std"] = \
                    pixel_std(imgs) if len(imgs) > 1 else float("nan")
        ds, _ = draw_outputs(model, "ds", hr_t, 0.0, samples, seed, pair.name)
        ds_var, _ = draw_outputs(model, "ds", hr_t, 0.8, samples, seed, pair.name)
        bic_down = imresize_uint8(pair.hr, scale=1 / s)
        r["ds_t0.0_psnr"] = lr_scorer.samples(ds, pair.lr, 0, best_of=False)["psnr"]
        r["ds_bicubic_psnr"] = lr_scorer.fidelity(bic_down, pair.lr, 0)["psnr"]
        r["ds_t0.8_diversity_std"] = pixel_std(ds_var) if len(ds_var) > 1 else float("nan")
        hr_even = hr_t[:, :, : hr_t.shape[2] // s * s, : hr_t.shape[3] // s * s]
        lr_even = lr_t[:, :, : lr_t.shape[2] // 2 * 2, : lr_t.shape[3] // 2 * 2]
        r["bpd_hr"] = float(bits_per_dim(model.log_prob_hr(hr_even), hr_even[0].numel())[0])
        r["bpd_lr"] = float(bits_per_dim(model.log_prob_lr(lr_even), lr_even[0].numel())[0])
        rows.append(r)
        if idx < grid_images:
            grid_rows.append(_grid_row(pair, bic, sr_imgs, ds, ds_var, s))
    metrics = {k: _nanmean([r[k] for r in rows]) for k in rows[0]}
    grid = np.concatenate(grid_rows, axis=0) if grid_rows else None
    return ValidationResult(metrics, grid)


def _nanmean(values: list[float]) -> float:
    """The mean of the finite values (nan when none is): an image whose samples were all
    non-finite does not hide the others."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _grid_row(pair: PairedImage, bic: np.ndarray, sr: dict, ds: list[np.ndarray],
              ds_samples: list[np.ndarray], s: int) -> np.ndarray:
    """Two strips of HR-size tiles: LR (nearest) | bicubic | SR t=0 | SR t=0.8 x2 | GT and
    HR | DS t=0 | DS t=0.8 x2 | real LR | (blank), LR-size images shown nearest x s."""
    top = [_nearest_up(pair.lr, s), bic, *_tiles(sr[0.0], 1, bic),
           *_tiles(sr[0.8], 2, bic), pair.hr]
    bottom = [pair.hr, *[_nearest_up(d, s) for d in _tiles(ds, 1, pair.lr)],
              *[_nearest_up(d, s) for d in _tiles(ds_samples, 2, pair.lr)],
              _nearest_up(pair.lr, s)]
    return _strips([top, bottom])


def _strips(rows: list[list[np.ndarray]]) -> np.ndarray:
    """Rows of equally sized tiles, separated by 4 white pixels (short rows padded white);
    each row is followed by a separator."""
    width = max(len(r) for r in rows)
    tile = rows[0][0]
    sep = np.full((tile.shape[0], 4, 3), 255, np.uint8)
    out = []
    for tiles in rows:
        tiles = tiles + [np.full_like(tile, 255)] * (width - len(tiles))
        parts = []
        for t in tiles:
            parts += [t, sep]
        strip = np.concatenate(parts[:-1], axis=1)
        out += [strip, np.full((4, strip.shape[1], 3), 255, np.uint8)]
    return np.concatenate(out, axis=0)


def save_grid(grid: np.ndarray, path: Path) -> None:
    write_image(path, grid, overwrite=True)


def try_lpips(weights_dir: str | None, device: torch.device) -> LPIPS | None:
    """LPIPS-alex for validation, or None (with a warning) if its weights are missing or
    unusable."""
    from sdflow.weights import WeightsError

    try:
        return LPIPS("alex", weights_dir=weights_dir).to(device)
    except WeightsError as exc:
        log.warning("validation without LPIPS: %s", exc)
        return None


@torch.no_grad()
def validate_da(model: torch.nn.Module, pairs: list[PairedImage], *, seed: int = 0,
                lpips: LPIPS | None = None, grid_images: int = 3) -> ValidationResult:
    """da-iccv21 (our re-implementation), scored as ``sdflow eval`` scores it: SR =
    G_SR(E(LR)) against HR next to bicubic x4 (PSNR/SSIM on Y, ``scale`` px shaved;
    LPIPS-alex on RGB), and the SR's LR-consistency.

    When the model has G_t (every model this version trains): ``x_st_psnr`` compares its
    downscaling x_{s->t} = G_t(E(bicubic x1/4 of HR)) with the real LR of the same scene
    (no shave), next to ``ds_bicubic_psnr`` (the bicubic x1/4 itself), and ``x_tt_psnr``
    how well G_t(E(LR)) restores the real LR. Grid rows: LR | bicubic | SR | GT and
    bicubic x1/4 | x_{s->t} | real LR | x_{t->t} (LR-size tiles shown nearest x scale).
    """
    model = prepare(model)  # as inference runs it (a copy: the training model is untouched)
    device = next(model.parameters()).device
    s = model.scale
    scorer = Scorer("y", lpips)
    lr_scorer = Scorer("y")  # PSNR of LR-size crops (too small for LPIPS's AlexNet)
    rows: list[dict[str, float]] = []
    grid_rows: list[list[np.ndarray]] = []
    for idx, pair in enumerate(pairs):
        lr_t = image_to_tensor(pair.lr).to(device)
        bic = imresize_uint8(pair.lr, scale=s)
        r = {f"bicubic_{k}": v for k, v in scorer.fidelity(bic, pair.hr, s).items()}
        sr, _ = draw_outputs(model, "sr", lr_t, 0.0, 1, seed, pair.name)
        for k, v in scorer.samples(sr, pair.hr, s, best_of=False).items():
            r[f"sr_{k}"] = v
        r["sr_lr_psnr"] = _mean([lr_psnr(im, pair.lr, s) for im in sr])
        if idx < grid_images:
            grid_rows.append([_nearest_up(pair.lr, s), bic, *_tiles(sr, 1, bic), pair.hr])
        if downscales(model):
            hr_t = image_to_tensor(pair.hr).to(device)
            x_st, _ = draw_outputs(model, "ds", hr_t, 0.0, 1, seed, pair.name)
            bic_down = imresize_uint8(pair.hr, scale=1 / s)
            x_tt = tensor_to_image(model.lr_decoder(model.encoder(lr_t)))
            r["x_st_psnr"] = lr_scorer.samples(x_st, pair.lr, 0, best_of=False)["psnr"]
            r["ds_bicubic_psnr"] = lr_scorer.fidelity(bic_down, pair.lr, 0)["psnr"]
            r["x_tt_psnr"] = lr_scorer.fidelity(x_tt, pair.lr, 0)["psnr"]
            if idx < grid_images:
                grid_rows.append([_nearest_up(im, s) for im in
                                  (bic_down, *_tiles(x_st, 1, pair.lr), pair.lr, x_tt)])
        rows.append(r)
    metrics = {k: _nanmean([r[k] for r in rows]) for k in rows[0]}
    return ValidationResult(metrics, _strips(grid_rows) if grid_rows else None)
