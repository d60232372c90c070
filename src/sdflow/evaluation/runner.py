"""The evaluation modes: a model's SR or downscaling, any prediction folder, and bicubic.

Every mode reads 8-bit images, quantises generated images to 8 bits (rounding) before any
metric, and returns an :class:`~sdflow.evaluation.results.EvalResult` whose ``info`` is the
protocol record written to JSON.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sdflow.evaluation.data import DatasetError, Pair, count_images, pair_folders, read_rgb8
from sdflow.evaluation.results import EvalResult, Figure, Panel
from sdflow.evaluation.scoring import Scorer, draw_outputs, sample_count
from sdflow.imageio import image_to_tensor, write_image
from sdflow.metrics import lpips as lpips_module
from sdflow.metrics.artefacts import block_ratio, gradient_magnitude, spearman
from sdflow.metrics.consistency import lr_psnr
from sdflow.metrics.degradation import blur_index, colour_detail, high_band_energy, noise_sigma
from sdflow.metrics.lpips import LPIPS
from sdflow.metrics.psnr_ssim import COLOR_SPACES
from sdflow.metrics.resize import imresize_uint8
from sdflow.models.base import downscales, is_stochastic
from sdflow.models.prepare import prepare
from sdflow.version import __version__

#: How many samples of the largest tau a report row shows.
REPORT_SAMPLES = 3


@dataclass
class EvalOptions:
    """Settings shared by all modes (the CLI flags of ``sdflow eval``)."""

    color: str = "y"
    shave: int | None = None  # None: the scale for SR-size images, 0 for LR-size images
    lpips_net: str | None = "alex"  # None: no LPIPS (and no pairwise-LPIPS diversity)
    weights_dir: str | os.PathLike | None = None
    taus: Sequence[float] = (0.0,)
    samples: int = 1
    seed: int = 0
    device: str = "cpu"
    limit: int | None = None
    crop: int | None = None  # collect report crops of this (HR) size
    save_dir: str | os.PathLike | None = None
    #: called after each image with (images done, images in all, a one-line message)
    progress: Callable[[int, int, str], None] | None = None

    def __post_init__(self) -> None:
        if self.color not in COLOR_SPACES:
            raise ValueError(f"color must be one of {COLOR_SPACES}, got {self.color!r}")
        if self.lpips_net is not None and self.lpips_net not in lpips_module.NETS:
            raise ValueError(f"LPIPS net must be one of {lpips_module.NETS} or None")
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if not self.taus:
            raise ValueError("give at least one tau")
        if any(t < 0 for t in self.taus):
            raise ValueError(f"tau must be >= 0, got {list(self.taus)}")
        if self.shave is not None and self.shave < 0:
            raise ValueError(f"shave must be >= 0, got {self.shave}")


def _block(image: np.ndarray, scale: int) -> float:
    """:func:`block_ratio` on the model's grid, nan for images too small to measure it."""
    return block_ratio(image, scale) if min(image.shape[:2]) >= 2 * scale else float("nan")


def _uncertainty_rhos(samples: list[np.ndarray], tau0: np.ndarray | None,
                      target: np.ndarray) -> dict[str, float]:
    """Spearman correlations of the per-pixel spread of ``samples`` (RMS over channels of
    the standard deviation across samples) with the per-pixel error of the tau = 0 output
    (RMS over channels; nan without one) and with the Sobel gradient magnitude of the
    ground truth's luma."""
    stack = np.stack(samples).astype(np.float64)
    spread = np.sqrt(stack.var(axis=0, ddof=1).mean(axis=2))
    out = {"unc_grad_rho": spearman(spread, gradient_magnitude(target).numpy())}
    if tau0 is None:
        out["unc_err_rho"] = float("nan")
    else:
        error = np.sqrt(((tau0.astype(np.float64) - target.astype(np.float64)) ** 2).mean(2))
        out["unc_err_rho"] = spearman(spread, error)
    return out


def _protocol(options: EvalOptions, scale: int, shave: int, compared: str) -> dict[str, Any]:
    color = ("Y, BT.601 studio swing as MATLAB rgb2ycbcr (float, [16, 235])"
             if options.color == "y" else "RGB")
    return {
        "compared": compared,
        "quantisation": "generated images are rounded to 8 bits before every metric",
        "color_space": color,
        "shave": shave,
        "scale": scale,
        "psnr": "peak 255; RGB: MSE over all channels",
        "ssim": "Wang et al. 2004: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, L 255, "
                "valid filtering; RGB: mean of per-channel SSIM",
        "lpips": None if options.lpips_net is None else {
            "net": options.lpips_net, "version": lpips_module.VERSION,
            "input": "RGB in [-1, 1], full image (no shave)"},
        "resize": "MATLAB imresize bicubic (a=-0.5, antialiased), uint8 path",
    }


def _base_info(mode: str, options: EvalOptions) -> dict[str, Any]:
    return {"sdflow_version": __version__, "mode": mode,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": options.device}


def _model_info(model: nn.Module) -> dict[str, Any]:
    from sdflow.checkpoint import file_sha256

    info = getattr(model, "checkpoint_info", None)
    path = getattr(model, "checkpoint_path", None)
    return {"path": path, "sha256": file_sha256(path) if path else None,
            "architecture": info.architecture if info else type(model).__name__,
            "label": getattr(model, "label", None),
            "stochastic": is_stochastic(model),
            "stochastic_ds": is_stochastic(model, "ds"),
            "trained_on": info.trained_on if info else None,
            "parameters": sum(p.numel() for p in model.parameters())}


def _method_name(model: nn.Module) -> str:
    info = getattr(model, "checkpoint_info", None)
    return info.architecture if info else type(model).__name__.lower()


def _distinct_methods(baselines: Sequence[nn.Module], model: nn.Module) -> list[str]:
    """The method column of each baseline and (last) of the model, distinct so that their
    rows are not averaged together (and usable in folder names): a second downscaler of one
    architecture is ``NAME-2`` among the baselines, and the model under test ``NAME-model``."""
    archs = [_method_name(other) for other in baselines]
    names = [name if archs[:i].count(name) == 0 else f"{name}-{archs[:i].count(name) + 1}"
             for i, name in enumerate(archs)]
    name = _method_name(model)
    return [*names, f"{name}-model" if name in archs else name]


def _report(options: EvalOptions, done: int, total: int, message: str) -> None:
    if options.progress is not None:
        options.progress(done, total, message)


def _save(options: EvalOptions, folder: str, name: str, image: np.ndarray) -> None:
    if options.save_dir is not None:
        write_image(Path(options.save_dir) / folder / f"{name}.png", image, overwrite=True)


def _tau_label(tau: float) -> str:
    return f"tau{tau:g}"


# ------------------------------------------------------------------ report crops
def pick_crop(image: np.ndarray, size: int, multiple: int) -> tuple[int, int, int]:
    """``(top, left, size)`` of the most textured square crop (largest mean gradient
    magnitude on a grid of half-size steps), aligned to ``multiple``."""
    h, w = image.shape[:2]
    size = max(multiple, min(size, h, w) // multiple * multiple)
    gray = image.astype(np.float64).mean(axis=2)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    step = max(multiple, size // 2 // multiple * multiple)
    best, best_pos = -1.0, (0, 0)
    for top in range(0, h - size + 1, step):
        for left in range(0, w - size + 1, step):
            e = float(energy[top : top + size, left : left + size].mean())
            if e > best:
                best, best_pos = e, (top, left)
    return best_pos[0], best_pos[1], size


def _crop(image: np.ndarray, box: tuple[int, int, int], factor: int = 1) -> np.ndarray:
    """Crop ``box`` given at a resolution ``factor`` times that of ``image``."""
    top, left, size = (v // factor for v in box)
    return image[top : top + size, left : left + size]


def _nearest(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def _sample_panels(outputs: dict[float, list[np.ndarray]], box: tuple[int, int, int],
                   factor: int, upscale: int) -> list[Panel]:
    """One panel per tau (its first sample), plus further samples of the largest tau."""
    panels = []
    taus = list(outputs)
    for tau in taus:
        for k, img in enumerate(outputs[tau]):
            if k == 0 or (tau == max(taus) and k < REPORT_SAMPLES):
                label = f"τ={tau:g}" + (f" #{k + 1}" if len(outputs[tau]) > 1 else "")
                panels.append(Panel(label, _nearest(_crop(img, box, factor), upscale)))
    return panels


# ------------------------------------------------------------------ model capabilities
def default_taus(model: nn.Module, task: str = "sr") -> list[float]:
    """The temperatures evaluated when none are given: 0 and 0.8, or 0 alone for a
    deterministic model."""
    return [0.0, 0.8] if is_stochastic(model, task) else [0.0]


def check_taus(model: nn.Module, taus: Sequence[float], task: str = "sr") -> None:
    """A deterministic model has no temperature: any tau other than 0 is an error."""
    if not is_stochastic(model, task) and any(float(t) != 0.0 for t in taus):
        raise ValueError(f"{_method_name(model)} is deterministic (one output per image, no "
                         f"temperature): tau {', '.join(f'{t:g}' for t in taus)} does not "
                         "apply; leave --tau out or give --tau 0")


def check_can_downscale(model: nn.Module) -> None:
    if not downscales(model):
        raise ValueError(f"this model ({_method_name(model)}) cannot downscale: it has SR "
                         "only; ds mode needs a model with a downscaling direction (sdflow, "
                         "gaussian-fit, or a da-iccv21 file that holds G_t)")


# ------------------------------------------------------------------ generation helpers
def _prepared(model: nn.Module) -> nn.Module:
    """The model as ``sdflow sr`` runs it (:func:`sdflow.prepare`, fp32), unless the caller
    prepared it already."""
    return model if model.preparation is not None else prepare(model)


# ------------------------------------------------------------------ the one loop
#: What scoring one pair gives: its table rows and its report figure (None: no crop).
PairScore = tuple[list[dict[str, Any]], "Figure | None"]


def _score_pairs(pairs: list[Pair], options: EvalOptions,
                 score: Callable[[Pair], PairScore]) -> tuple[list[dict[str, Any]], list[Figure]]:
    """Every mode's loop: ``score`` each pair in order, collect rows and figures, report
    progress after each image."""
    rows: list[dict[str, Any]] = []
    figures: list[Figure] = []
    for i, pair in enumerate(pairs):
        start = time.perf_counter()
        pair_rows, figure = score(pair)
        rows += pair_rows
        if figure is not None:
            figures.append(figure)
        _report(options, i + 1, len(pairs), f"[{i + 1}/{len(pairs)}] {pair.name} "
                                             f"({time.perf_counter() - start:.1f} s)")
    return rows, figures


def _scorer(options: EvalOptions) -> Scorer:
    lpips = None if options.lpips_net is None else \
        LPIPS(options.lpips_net, options.weights_dir).to(options.device)
    return Scorer(options.color, lpips)


def _model_rows(model: nn.Module, task: str, x: torch.Tensor, target: np.ndarray,
                name: str, options: EvalOptions, scorer: Scorer, shave: int,
                extra: Callable[[list[np.ndarray], dict[float, list[np.ndarray]]],
                                dict[str, Any]],
                taus: Sequence[float] | None = None, samples: int | None = None,
                save: bool = True, method: str | None = None
                ) -> tuple[list[dict[str, Any]], dict[float, list[np.ndarray]]]:
    """A model's row per tau for one image (SR or DS, the same rules: seeds, sample
    counts, non-finite outputs, the first sample saved unless ``save`` is False), with
    ``extra(images, earlier)``'s task-specific columns (``earlier``: the images of the taus
    before); returns the rows and the images per tau. ``method`` names the rows (default:
    the architecture)."""
    method = method or _method_name(model)
    rows, outputs = [], {}
    for tau in options.taus if taus is None else taus:
        n = sample_count(model, task, tau, options.samples) if samples is None else samples
        images, bad = draw_outputs(model, task, x, tau, n, options.seed, name)
        if images and save:
            _save(options, f"{method}_{_tau_label(tau)}", name, images[0])
        rows.append({"image": name, "method": method, "tau": float(tau), "samples": n,
                     **scorer.samples(images, target, shave, best_of=n > 1),
                     **extra(images, outputs), "nonfinite": bad})
        outputs[tau] = images
    return rows, outputs


def _sr_extra(lr: np.ndarray, hr: np.ndarray, scale: int
              ) -> Callable[[list[np.ndarray], dict[float, list[np.ndarray]]], dict[str, Any]]:
    """SR's own columns: LR-consistency, the block ratio and, with samples, how their
    spread follows the error of the tau 0 output and the edges."""

    def extra(images: list[np.ndarray], earlier: dict[float, list[np.ndarray]]
              ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "lr_psnr": float(np.mean([lr_psnr(im, lr, scale) for im in images]))
            if images else float("nan"),
            "block": float(np.mean([_block(im, scale) for im in images]))
            if images else float("nan")}
        if len(images) >= 2:
            out.update(_uncertainty_rhos(images, earlier.get(0.0, [None])[0], hr))
        return out

    return extra


# ------------------------------------------------------------------ modes
def evaluate_bicubic(lr_dir: str | os.PathLike, hr_dir: str | os.PathLike, options: EvalOptions,
                     scale: int = 4) -> EvalResult:
    """The bicubic baseline: MATLAB-bicubic x``scale`` of each LR versus its HR."""
    pairs = pair_folders(lr_dir, hr_dir, options.limit)
    scorer = _scorer(options)
    shave = scale if options.shave is None else options.shave

    def score(pair: Pair) -> PairScore:
        lr, hr = read_rgb8(pair.first), read_rgb8(pair.second)
        _check_sr_sizes(pair, lr, hr, scale)
        sr = imresize_uint8(lr, scale=scale)
        _save(options, "bicubic", pair.name, sr)
        row = {"image": pair.name, "method": "bicubic", "tau": None, "samples": 1,
               **scorer.fidelity(sr, hr, shave), "lr_psnr": lr_psnr(sr, lr, scale),
               "block": _block(sr, scale)}
        figure = None
        if options.crop:
            box = pick_crop(hr, options.crop, scale)
            figure = Figure(pair.name, [
                Panel(f"LR ×{scale} (nearest)", _nearest(_crop(lr, box, scale), scale)),
                Panel("bicubic", _crop(sr, box)), Panel("GT", _crop(hr, box))])
        return [row], figure

    rows, figures = _score_pairs(pairs, options, score)
    info = _base_info("bicubic", options)
    info["protocol"] = _protocol(options, scale, shave, f"bicubic x{scale} of LR vs HR")
    info["protocol"].update(_sr_artefact_protocol(scale))
    info["dataset"] = _dataset_info(lr_dir, hr_dir, pairs)
    return EvalResult("bicubic", rows, info, figures)


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                     options: EvalOptions, lr_dir: str | os.PathLike | None = None,
                     scale: int = 4, method: str = "pred") -> EvalResult:
    """Any prediction folder versus a ground-truth folder (paired by file name). With
    ``lr_dir``, also the LR-consistency of each prediction."""
    pairs = pair_folders(pred_dir, gt_dir, options.limit)
    lr_files = None
    if lr_dir is not None:
        lr_files = {p.name: p.second for p in pair_folders(gt_dir, lr_dir)}
    scorer = _scorer(options)
    shave = scale if options.shave is None else options.shave

    def score(pair: Pair) -> PairScore:
        pred, gt = read_rgb8(pair.first), read_rgb8(pair.second)
        if pred.shape != gt.shape:
            raise DatasetError(f"{pair.first}: size {pred.shape[1]}x{pred.shape[0]} differs "
                               f"from the ground truth {gt.shape[1]}x{gt.shape[0]}")
        row: dict[str, Any] = {"image": pair.name, "method": method, "tau": None,
                               "samples": 1, **scorer.fidelity(pred, gt, shave),
                               "block": _block(pred, scale)}
        lr = None
        if lr_files is not None:
            lr = read_rgb8(lr_files[pair.name])
            _check_sr_sizes(pair, lr, gt, scale)
            row["lr_psnr"] = lr_psnr(pred, lr, scale)
        figure = None
        if options.crop:
            box = pick_crop(gt, options.crop, scale if lr is not None else 1)
            panels = [] if lr is None else [
                Panel(f"LR ×{scale} (nearest)", _nearest(_crop(lr, box, scale), scale))]
            panels += [Panel(method, _crop(pred, box)), Panel("GT", _crop(gt, box))]
            figure = Figure(pair.name, panels)
        return [row], figure

    rows, figures = _score_pairs(pairs, options, score)
    info = _base_info("folders", options)
    info["protocol"] = _protocol(options, scale, shave, "prediction folder vs ground truth")
    info["protocol"].update(_sr_artefact_protocol(scale))
    info["dataset"] = {"pred_dir": str(pred_dir), "gt_dir": str(gt_dir),
                       "lr_dir": None if lr_dir is None else str(lr_dir),
                       "pairs": len(pairs), "pred_files": count_images(pred_dir),
                       "gt_files": count_images(gt_dir)}
    return EvalResult("folders", rows, info, figures)


def evaluate_sr(model: nn.Module, lr_dir: str | os.PathLike, hr_dir: str | os.PathLike,
                options: EvalOptions) -> EvalResult:
    """A model's super-resolution of each LR versus its HR at every tau (the bicubic
    baseline is scored alongside). A deterministic model accepts tau 0 only."""
    check_taus(model, options.taus)
    model = _prepared(model)
    scale = int(model.scale)
    pairs = pair_folders(lr_dir, hr_dir, options.limit)
    scorer = _scorer(options)
    shave = scale if options.shave is None else options.shave

    def score(pair: Pair) -> PairScore:
        lr, hr = read_rgb8(pair.first), read_rgb8(pair.second)
        _check_sr_sizes(pair, lr, hr, scale)
        bicubic = imresize_uint8(lr, scale=scale)
        rows = [{"image": pair.name, "method": "bicubic", "tau": None, "samples": 1,
                 **scorer.fidelity(bicubic, hr, shave), "lr_psnr": lr_psnr(bicubic, lr, scale),
                 "block": _block(bicubic, scale)}]
        x = image_to_tensor(lr).to(options.device)
        model_rows, outputs = _model_rows(model, "sr", x, hr, pair.name, options, scorer,
                                          shave, _sr_extra(lr, hr, scale))
        figure = None
        if options.crop:
            box = pick_crop(hr, options.crop, scale)
            panels = [Panel(f"LR ×{scale} (nearest)", _nearest(_crop(lr, box, scale), scale)),
                      Panel("bicubic", _crop(bicubic, box))]
            panels += _sample_panels(outputs, box, 1, 1)
            panels.append(Panel("GT", _crop(hr, box)))
            figure = Figure(pair.name, panels)
        return rows + model_rows, figure

    rows, figures = _score_pairs(pairs, options, score)
    info = _base_info("sr", options)
    info["protocol"] = _protocol(options, scale, shave, "SR of LR vs HR")
    info["protocol"]["lr_consistency"] = ("PSNR (RGB, no shave) between the 8-bit MATLAB "
                                          f"bicubic x1/{scale} of the SR output and the LR")
    info["protocol"].update(_sr_artefact_protocol(scale))
    info.update(_sampling_info(options, sr=True))
    info["model"] = _model_info(model)
    info["dataset"] = _dataset_info(lr_dir, hr_dir, pairs)
    return EvalResult("sr", rows, info, figures)


def _ds_stats(images: Sequence[np.ndarray], real_band: float,
              real_colour: float) -> dict[str, float]:
    """Noise, blur, and the high-band energy and colour-detail ratios (generated / real LR)
    of some outputs."""
    if not images:
        return {key: float("nan") for key in ("noise_gen", "blur_gen", "band_ratio",
                                              "colour_ratio")}
    return {"noise_gen": float(np.mean([noise_sigma(im) for im in images])),
            "blur_gen": float(np.mean([blur_index(im) for im in images])),
            "band_ratio": float(np.mean([high_band_energy(im) for im in images]))
            / max(real_band, 1e-12),
            "colour_ratio": float(np.mean([colour_detail(im) for im in images]))
            / max(real_colour, 1e-12)}


def evaluate_ds(model: nn.Module, hr_dir: str | os.PathLike, lr_dir: str | os.PathLike,
                options: EvalOptions, baselines: Sequence[nn.Module] = ()) -> EvalResult:
    """A model's downscaling of each HR versus the real LR at every tau, with degradation
    statistics of generated and real LR, alongside the bicubic x1/scale baseline and each
    downscaler of ``baselines`` (e.g. a ``gaussian-fit`` model) at tau 0."""
    check_can_downscale(model)
    check_taus(model, options.taus, "ds")
    for other in baselines:
        check_can_downscale(other)
    model = _prepared(model)
    baselines = [_prepared(other) for other in baselines]
    scale = int(model.scale)
    if any(int(other.scale) != scale for other in baselines):
        raise ValueError(f"every baseline must downscale by {scale}, like the model")
    pairs = pair_folders(lr_dir, hr_dir, options.limit)
    scorer = _scorer(options)
    shave = 0 if options.shave is None else options.shave
    *baseline_methods, model_method = _distinct_methods(baselines, model)

    def score(pair: Pair) -> PairScore:
        real, hr = read_rgb8(pair.first), read_rgb8(pair.second)
        _check_ds_sizes(pair, real, hr, scale)
        real_band, real_colour = high_band_energy(real), colour_detail(real)
        stats_real = {"noise_real": noise_sigma(real), "blur_real": blur_index(real)}

        def extra(images: list[np.ndarray], earlier: object = None) -> dict[str, Any]:
            return {**_ds_stats(images, real_band, real_colour), **stats_real}

        bicubic = imresize_uint8(hr, scale=1.0 / scale)
        rows = [{"image": pair.name, "method": "bicubic", "tau": None, "samples": 1,
                 **scorer.fidelity(bicubic, real, shave), **extra([bicubic])}]
        x = image_to_tensor(hr).to(options.device)
        baseline_images = []
        for other, method in zip(baselines, baseline_methods, strict=True):  # tau 0, once
            other_rows, other_out = _model_rows(other, "ds", x, real, pair.name, options,
                                                scorer, shave, extra, taus=[0.0], samples=1,
                                                save=False, method=method)
            rows += other_rows
            baseline_images.append((method, other_out[0.0]))
        model_rows, outputs = _model_rows(model, "ds", x, real, pair.name, options, scorer,
                                          shave, extra, method=model_method)
        figure = None
        if options.crop:
            box = pick_crop(hr, options.crop, scale)
            panels = [Panel("HR", _crop(hr, box)),
                      Panel(f"bicubic ×1/{scale}", _nearest(_crop(bicubic, box, scale), scale))]
            panels += [Panel(name, _nearest(_crop(images[0], box, scale), scale))
                       for name, images in baseline_images if images]
            panels += _sample_panels(outputs, box, scale, scale)
            panels.append(Panel("real LR", _nearest(_crop(real, box, scale), scale)))
            figure = Figure(pair.name, panels)
        return rows + model_rows, figure

    rows, figures = _score_pairs(pairs, options, score)
    info = _base_info("ds", options)
    info["protocol"] = _protocol(options, scale, shave, "downscaled HR vs real LR")
    info["protocol"]["degradation_stats"] = {
        "noise": "Immerkaer 1996 noise sigma of the Laplacian-type high-pass residual of Y, "
                 "grey levels",
        "blur": "Crete-Roffet et al. 2007 no-reference blur of Y (1x9 box re-blur), "
                "0 sharp .. 1 blurred",
        "band_ratio": "energy of Y (Hann window, mean removed) at 0.25-0.5 cycles/pixel as a "
                      "fraction of all, generated over real LR; 1 = the real LR's fine "
                      "detail",
        "colour_ratio": "energy of Cb and Cr over that of Y (BT.601, Hann window, mean "
                        "removed) at 0.25-0.5 cycles/pixel, generated over real LR; 1 = the "
                        "real LR's fine colour detail, above 1 = colour sharper or noisier "
                        "than the camera's"}
    info.update(_sampling_info(options, sr=False))
    info["model"] = _model_info(model)
    info["baselines"] = [_model_info(other) for other in baselines]
    info["dataset"] = _dataset_info(lr_dir, hr_dir, pairs)
    return EvalResult("ds", rows, info, figures)


# ------------------------------------------------------------------ checks and records
def _check_sr_sizes(pair: Pair, lr: np.ndarray, hr: np.ndarray, scale: int) -> None:
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise DatasetError(f"{pair.name}: HR {hr.shape[1]}x{hr.shape[0]} is not {scale}x the "
                           f"LR {lr.shape[1]}x{lr.shape[0]}")


def _check_ds_sizes(pair: Pair, lr: np.ndarray, hr: np.ndarray, scale: int) -> None:
    expected = (-(-hr.shape[0] // scale), -(-hr.shape[1] // scale))
    if lr.shape[:2] != expected:
        raise DatasetError(f"{pair.name}: LR {lr.shape[1]}x{lr.shape[0]} is not the "
                           f"ceil(HR/{scale}) size {expected[1]}x{expected[0]}")


def _sr_artefact_protocol(scale: int) -> dict[str, Any]:
    return {
        "block": f"mean |neighbour difference| of Y across the {scale}-pixel grid lines "
                 "(offsets 3, 7, 11, ... for x4) over the mean inside the cells, average of "
                 "rows and columns; 1 = no grid (ground truth ~1.05, bicubic ~1.2); mean over "
                 "samples",
        "uncertainty": "unc_err_rho / unc_grad_rho: Spearman correlation, over pixels, of "
                       "the per-pixel standard deviation across the samples (RMS over RGB) "
                       "with the per-pixel RMS error of the tau = 0 output and with the "
                       "Sobel gradient magnitude of the ground truth's Y (rows with >= 2 "
                       "samples; unc_err_rho needs tau 0 in the run)",
    }


def _sampling_info(options: EvalOptions, sr: bool) -> dict[str, Any]:
    return {
        "taus": [float(t) for t in options.taus],
        "samples": options.samples,
        "seed": options.seed,
        "sampling": ("per image, torch.Generator seeded with seed*1000003 + crc32(name), "
                     "the same at every tau; " +
                     ("tau = 0 is deterministic and uses one sample; " if sr else
                      "every tau draws the mixture component, so tau = 0 has samples too; ") +
                     "metrics are means over samples; *_best is each metric's best sample; "
                     "div_lpips is the mean pairwise LPIPS, div_std the mean per-pixel "
                     "standard deviation (grey levels) over samples"),
    }


def _dataset_info(lr_dir: str | os.PathLike, hr_dir: str | os.PathLike,
                  pairs: list[Pair]) -> dict[str, Any]:
    return {"lr_dir": str(lr_dir), "hr_dir": str(hr_dir), "pairs": len(pairs),
            "lr_files": count_images(lr_dir), "hr_files": count_images(hr_dir)}
