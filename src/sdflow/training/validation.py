"""Validation during training: SR (and DS) metrics on paired images next to the bicubic
baseline on the same crops, and a sample grid PNG. ``validate_sdflow`` adds bits/dim and
diversity; ``validate_da`` serves the deterministic da-iccv21 model."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdflow.imageio import image_to_tensor, tensor_to_image, write_image
from sdflow.metrics import LPIPS, imresize_uint8, lr_psnr, pixel_std, psnr, ssim
from sdflow.models import SDFlow, bits_per_dim
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


def _fidelity(pred: np.ndarray, gt: np.ndarray, shave: int, lpips: LPIPS | None) -> dict:
    out = {"psnr": psnr(pred, gt, shave=shave, color="y"),
           "ssim": ssim(pred, gt, shave=shave, color="y")}
    if lpips is not None:
        out["lpips"] = lpips.distance(pred, gt)
    return out


@torch.no_grad()
def validate_sdflow(model: SDFlow, pairs: list[PairedImage], *, samples: int = 3,
                    seed: int = 0, lpips: LPIPS | None = None, grid_images: int = 3
                    ) -> ValidationResult:
    """Metrics (means over ``pairs``), conventions as ``sdflow eval``: PSNR/SSIM on Y with
    ``scale`` px shaved for SR, no shave for the LR-size DS comparison; LPIPS-alex on RGB.

    SR at tau = 0 and tau = 0.8 (first of ``samples`` seeded samples); LR-consistency of SR;
    diversity over the samples; DS at tau = 0 (seeded component) against the real LR, next
    to bicubic x4 / x1/4 of the same crops; bits/dim of the real HR and LR.
    """
    model = prepare(model)  # as inference runs it (a copy: the training model is untouched)
    device = next(model.parameters()).device
    s = model.scale
    rows: list[dict[str, float]] = []
    grid_rows: list[np.ndarray] = []
    for idx, pair in enumerate(pairs):
        gen = torch.Generator().manual_seed(seed + idx)
        lr_t = image_to_tensor(pair.lr).to(device)
        hr_t = image_to_tensor(pair.hr).to(device)
        r: dict[str, float] = {}
        bic = imresize_uint8(pair.lr, scale=s)
        for k, v in _fidelity(bic, pair.hr, s, lpips).items():
            r[f"bicubic_{k}"] = v
        sr_imgs = {}
        for tau in SR_TAUS:
            n = 1 if tau == 0 else max(samples, 1)
            out = model.sr(lr_t, tau, num_samples=n, generator=gen)
            outs = [out] if n == 1 else [out[:, i] for i in range(n)]
            imgs = [tensor_to_image(o) for o in outs]
            sr_imgs[tau] = imgs
            for k, v in _fidelity(imgs[0], pair.hr, s, lpips).items():
                r[f"sr_t{tau:.1f}_{k}"] = v
            r[f"sr_t{tau:.1f}_lr_psnr"] = lr_psnr(imgs[0], pair.lr, s)
            if n > 1:
                r[f"sr_t{tau:.1f}_diversity_std"] = pixel_std(imgs)
        ds = tensor_to_image(model.downscale(hr_t, 0.0, generator=gen))
        ds_samples = model.downscale(hr_t, 0.8, num_samples=max(samples, 2), generator=gen)
        ds_imgs = [tensor_to_image(ds_samples[:, i]) for i in range(ds_samples.shape[1])]
        bic_down = imresize_uint8(pair.hr, scale=1 / s)
        r["ds_t0.0_psnr"] = psnr(ds, pair.lr, shave=0, color="y")
        r["ds_bicubic_psnr"] = psnr(bic_down, pair.lr, shave=0, color="y")
        r["ds_t0.8_diversity_std"] = pixel_std(ds_imgs)
        hr_even = hr_t[:, :, : hr_t.shape[2] // s * s, : hr_t.shape[3] // s * s]
        lr_even = lr_t[:, :, : lr_t.shape[2] // 2 * 2, : lr_t.shape[3] // 2 * 2]
        r["bpd_hr"] = float(bits_per_dim(model.log_prob_hr(hr_even), hr_even[0].numel())[0])
        r["bpd_lr"] = float(bits_per_dim(model.log_prob_lr(lr_even), lr_even[0].numel())[0])
        rows.append(r)
        if idx < grid_images:
            grid_rows.append(_grid_row(pair, bic, sr_imgs, ds, ds_imgs, s))
    metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    grid = np.concatenate(grid_rows, axis=0) if grid_rows else None
    return ValidationResult(metrics, grid)


def _grid_row(pair: PairedImage, bic: np.ndarray, sr: dict, ds: np.ndarray,
              ds_samples: list[np.ndarray], s: int) -> np.ndarray:
    """Two strips of HR-size tiles: LR (nearest) | bicubic | SR t=0 | SR t=0.8 x2 | GT and
    HR | DS t=0 | DS t=0.8 x2 | real LR | (blank), LR-size images shown nearest x s."""
    top = [_nearest_up(pair.lr, s), bic, sr[0.0][0], *sr[0.8][:2], pair.hr]
    bottom = [pair.hr, _nearest_up(ds, s), *[_nearest_up(d, s) for d in ds_samples[:2]],
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
def validate_da(model: torch.nn.Module, pairs: list[PairedImage], *,
                lpips: LPIPS | None = None, grid_images: int = 3) -> ValidationResult:
    """da-iccv21 (our re-implementation): SR = G_SR(E(LR)) against HR next to bicubic x4
    (PSNR/SSIM on Y, ``scale`` px shaved; LPIPS-alex on RGB), and the SR's LR-consistency.

    When the model has G_t (every model this version trains): ``x_st_psnr`` compares
    x_{s->t} = G_t(E(bicubic x1/4 of HR)) with the real LR of the same scene (no shave),
    next to ``ds_bicubic_psnr`` (the bicubic x1/4 itself), and ``x_tt_psnr`` how well
    G_t(E(LR)) restores the real LR. Grid rows: LR | bicubic | SR | GT and
    bicubic x1/4 | x_{s->t} | real LR | x_{t->t} (LR-size tiles shown nearest x scale).
    """
    sr_model, lr_decoder = model, model.lr_decoder  # None: a file exported without G_t
    device = next(sr_model.parameters()).device
    s = sr_model.scale
    rows: list[dict[str, float]] = []
    grid_rows: list[list[np.ndarray]] = []
    for idx, pair in enumerate(pairs):
        lr_t = image_to_tensor(pair.lr).to(device)
        r: dict[str, float] = {}
        bic = imresize_uint8(pair.lr, scale=s)
        for k, v in _fidelity(bic, pair.hr, s, lpips).items():
            r[f"bicubic_{k}"] = v
        sr = tensor_to_image(sr_model.sr(lr_t))
        for k, v in _fidelity(sr, pair.hr, s, lpips).items():
            r[f"sr_{k}"] = v
        r["sr_lr_psnr"] = lr_psnr(sr, pair.lr, s)
        if idx < grid_images:
            grid_rows.append([_nearest_up(pair.lr, s), bic, sr, pair.hr])
        if lr_decoder is not None:
            bic_down = imresize_uint8(pair.hr, scale=1 / s)
            x_st = tensor_to_image(lr_decoder(sr_model.encoder(
                image_to_tensor(bic_down).to(device))))
            x_tt = tensor_to_image(lr_decoder(sr_model.encoder(lr_t)))
            r["x_st_psnr"] = psnr(x_st, pair.lr, shave=0, color="y")
            r["ds_bicubic_psnr"] = psnr(bic_down, pair.lr, shave=0, color="y")
            r["x_tt_psnr"] = psnr(x_tt, pair.lr, shave=0, color="y")
            if idx < grid_images:
                grid_rows.append([_nearest_up(im, s) for im in (bic_down, x_st, pair.lr, x_tt)])
        rows.append(r)
    metrics = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return ValidationResult(metrics, _strips(grid_rows) if grid_rows else None)
