"""Tiled super-resolution and downscaling with bounded memory.

The image is cut into tiles of ``tile`` input pixels (the *core*), each extended by
``overlap`` pixels of context on every side (the *region*, clipped at the image border).
The model runs on each region and only the core of its output is kept, so the cores tile
the output exactly; with enough context the result equals the untiled one (measured in
docs/inference.md).

The randomness is drawn once per image at full latent resolution and cut per tile:
the SR noise field ``eps`` (``[B, 45, h, w]``), the downscaling noise field and the
mixture component(s) (one per image, or a field in ``element`` mode). A tile therefore
sees exactly the latent values the untiled run would use at its pixels, and tiles agree
wherever they overlap.

Coordinates: SR tiles are in LR pixels (any alignment); downscaling tiles are in HR
pixels of the image padded to :attr:`SDFlow.ds_multiple` and aligned to it, so every
tile's latent grid (HR/8) lines up with the whole image's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sdflow.errors import NonFiniteOutputError, SDFlowError, is_oom
from sdflow.hardware import available_ram
from sdflow.models.base import KnowsItsMemory, StochasticDS

#: Context (overlap) per side in input pixels. Chosen from measurements of tiled vs untiled
#: output at tau = 0 (docs/inference.md, tests/test_tiling.py): SR in LR pixels, DS in HR
#: pixels (a multiple of 8).
DEFAULT_SR_OVERLAP = 16
DEFAULT_DS_OVERLAP = 64
#: Smallest tile the out-of-memory fallback goes down to (input pixels).
MIN_SR_TILE = 16
MIN_DS_TILE = 32



class TileOutOfMemoryError(SDFlowError):
    """Even the smallest tile did not fit in memory."""


@dataclass(frozen=True)
class Tile:
    """One tile: the region the model sees and the core whose output is kept, both as
    ``(y0, y1, x0, x1)`` in input pixels."""

    region: tuple[int, int, int, int]
    core: tuple[int, int, int, int]


def split_axis(length: int, tile: int, overlap: int, align: int = 1, min_region: int = 1
               ) -> list[tuple[int, int, int, int]]:
    """Cut ``[0, length)`` into cores of at most ``tile`` pixels (multiples of ``align``
    except the last), as equal as possible, each with ``overlap`` pixels of context and a
    region of at least ``min_region`` pixels. Returns ``(r0, r1, c0, c1)`` per tile.
    ``tile <= 0`` or ``tile >= length``: one tile."""
    if tile <= 0 or tile >= length:
        return [(0, length, 0, length)]
    units = -(-length // align)
    per = max(1, tile // align)
    n = -(-units // per)
    cuts = [min(length, round(k * units / n) * align) for k in range(n + 1)]
    cuts[-1] = length
    out = []
    for c0, c1 in zip(cuts[:-1], cuts[1:], strict=True):
        if c1 <= c0:
            continue
        r0, r1 = max(0, c0 - overlap), min(length, c1 + overlap)
        while r1 - r0 < min(min_region, length):
            r0, r1 = max(0, r0 - align), min(length, r1 + align)
        out.append((r0, r1, c0, c1))
    return out


def plan_tiles(height: int, width: int, tile: int, overlap: int, align: int = 1,
               min_region: int = 1) -> list[Tile]:
    """Tiles covering a ``height x width`` image row by row."""
    rows = split_axis(height, tile, overlap, align, min_region)
    cols = split_axis(width, tile, overlap, align, min_region)
    return [Tile((r0, r1, q0, q1), (c0, c1, d0, d1))
            for r0, r1, c0, c1 in rows for q0, q1, d0, d1 in cols]


# ---------------------------------------------------------------------------- memory
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
          "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12,
          "tib": 2**40}


def parse_memory(text: str | int) -> int:
    """``"2G"``, ``"1.5GiB"``, ``"512M"``, ``"800MB"`` or a byte count -> bytes. Single
    letters are binary (G = GiB)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read a memory size from {text!r}; write e.g. 2G or 512M")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def default_budget(device: torch.device) -> int:
    """Memory for the model's activations when ``--max-memory`` is not given: half of the
    available RAM on CPU (Linux; 4 GiB where unknown), 80% of free memory on CUDA."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(0.8 * free)
    available = available_ram()
    return available // 2 if available is not None else 4 * 2**30


def bytes_per_pixel(model, task: str) -> float:
    """Estimated peak activation memory per *input* pixel of a tile region (float32,
    no autograd), from the model's widths. ``task`` is "sr" (per LR pixel) or "ds" (per
    HR pixel). The coefficients were fitted to peak-RSS measurements on this CPU
    (benchmarks/inference.py --calibrate; docs/inference.md) and include a margin.
    Models other than SDFlow provide their own ``bytes_per_pixel(task)``."""
    if isinstance(model, KnowsItsMemory):
        return float(model.bytes_per_pixel(task))
    cfg = model.config
    s2 = cfg.scale**2
    width = {"sr": max(
        # E: features, modulation, trunk copies and the two modulation projections
        10 * cfg.encoder_channels,
        # RRDB condition net: the dense concatenations of one residual dense block
        3 * (cfg.cond_channels + 4 * cfg.cond_growth) + 3 * cfg.cond_channels,
        # HF flow and the last HR level (48 ch at LR resolution) with coupling nets
        4 * (cfg.hf_channels + cfg.image_channels) + 4 * cfg.coupling_hidden,
        # first HR level at half the HR resolution: (s/2)^2 positions per LR pixel
        (s2 // 4) * (4 * 4 * cfg.image_channels + 3 * cfg.coupling_hidden),
    )}
    if task == "sr":
        per = width["sr"] + s2 * cfg.image_channels * 2  # + the HR output tile
    elif task == "ds":
        # per HR pixel: first HR level at HR/2 dominates; the LR-side nets are at 1/16
        per = max(
            (4 * 4 * cfg.image_channels + 3 * cfg.coupling_hidden) / 4,
            (3 * (cfg.cond_channels + 4 * cfg.cond_growth) + 3 * cfg.cond_channels) / s2,
        ) + 2 * cfg.image_channels
    else:
        raise ValueError(f"task must be 'sr' or 'ds', got {task!r}")
    return 4.0 * per * 1.5


def choose_tile(model, task: str, height: int, width: int, budget: int, overlap: int,
                align: int = 1) -> int:
    """The tile size for a ``height x width`` input under ``budget`` bytes: 0 (untiled)
    if the whole image fits, else the largest multiple of ``align`` whose region
    (tile + 2 overlap)^2 fits, at least the minimum tile."""
    bpp = bytes_per_pixel(model, task)
    if height * width * bpp <= budget:
        return 0
    side = int(math.sqrt(budget / bpp)) - 2 * overlap
    minimum = MIN_SR_TILE if task == "sr" else MIN_DS_TILE
    return max(minimum, side // align * align)


# ---------------------------------------------------------------------------- running
@dataclass
class TiledOutput:
    """``images``: ``[B, N, 3, H, W]`` float32 on the CPU; ``finite``: ``[B, N]`` bool;
    ``tile``/``overlap``: what was used (tile 0 = untiled); ``tiles``: how many."""

    images: Tensor
    finite: Tensor
    tile: int
    overlap: int
    tiles: int


def _device_dtype(model) -> tuple[torch.device, torch.dtype]:
    """Where the model's tensors live (a model without any, e.g. one that runs in ONNX
    Runtime, takes CPU float32 inputs)."""
    return model_device(model), next(model.parameters(), torch.empty(0)).dtype


def model_device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def run_tiles(model, task: str, image: Tensor, latents: Sequence[Callable], *, tile: int,
              overlap: int, out_size: tuple[int, int],
              progress: Callable[[int, int], None] | None = None) -> TiledOutput:
    """Run SR (``task="sr"``, ``image`` = LR ``[B, 3, h, w]``) or downscaling
    (``task="ds"``, ``image`` = HR padded to ``ds_multiple``) tile by tile.

    ``latents[i](y0, y1, x0, x1)`` returns sample i's latent (``tau * eps`` for SR,
    ``z_d'`` for DS) for the tile whose *region* is given in input pixels; it cuts the
    per-image fields, so every tile sees the same field.
    """
    device, dtype = _device_dtype(model)
    b, _, h, w = image.shape
    s = model.scale
    align = model.ds_multiple if task == "ds" else 1
    if task == "ds":
        overlap = -(-overlap // align) * align
    tiles = plan_tiles(h, w, tile, overlap, align, min_region=2 * align if task == "ds" else 2)
    n = len(latents)
    oh, ow = out_size
    out = torch.empty(b, n, 3, oh, ow, dtype=torch.float32)
    finite = torch.ones(b, n, dtype=torch.bool)

    def to_out(v: int) -> int:
        return v * s if task == "sr" else v // s

    for k, t in enumerate(tiles):
        y0, y1, x0, x1 = t.region
        c0, c1, d0, d1 = t.core
        x = image[:, :, y0:y1, x0:x1].to(device=device, dtype=dtype)
        if task == "sr":
            z_c, feats = model.sr_condition(x)
        else:
            z_c, feats = model.ds_condition(x)
        for i, latent in enumerate(latents):
            z = latent(y0, y1, x0, x1)
            z = None if z is None else z.to(device=device, dtype=dtype)
            y = model.sr_decode(z_c, feats, z) if task == "sr" else \
                model.ds_decode(z_c, feats, z)
            oy0, ox0 = to_out(c0 - y0), to_out(d0 - x0)
            core = y[:, :, oy0 : oy0 + to_out(c1 - c0), ox0 : ox0 + to_out(d1 - d0)]
            # DS: the padded image's output is cropped to the real size at the end
            ty1, tx1 = min(oh, to_out(c1)), min(ow, to_out(d1))
            ty0, tx0 = to_out(c0), to_out(d0)
            if ty1 > ty0 and tx1 > tx0:
                core = core[:, :, : ty1 - ty0, : tx1 - tx0]
                finite[:, i] &= torch.isfinite(core.reshape(b, -1)).all(dim=1).cpu()
                out[:, i, :, ty0:ty1, tx0:tx1] = core.float().cpu()
            del y, core
        del z_c, feats, x
        if progress is not None:
            progress(k + 1, len(tiles))
    return TiledOutput(out, finite, tile, overlap, len(tiles))


def run_with_fallback(run: Callable[[int], TiledOutput], tile: int, height: int, width: int,
                      minimum: int, on_retry: Callable[[str], None] | None = None
                      ) -> TiledOutput:
    """``run(tile)``; on out-of-memory retry with half the tile (an untiled run first
    becomes half the longer side), down to ``minimum``."""
    while True:
        try:
            return run(tile)
        except Exception as exc:
            if not is_oom(exc):
                raise
            current = tile if tile > 0 else max(height, width)
            smaller = current // 2
            if current <= minimum or smaller < minimum:
                raise TileOutOfMemoryError(
                    f"out of memory even with {current}-pixel tiles; lower --samples, use "
                    "--device cpu, or free memory") from exc
            if on_retry is not None:
                on_retry(f"out of memory with {'no tiling' if tile <= 0 else f'tile {tile}'}"
                         f"; retrying with tile {smaller}")
            tile = smaller
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _draw_noise(shape, tau: float, generator, truncate: float | None) -> Tensor | None:
    """Standard-normal field of ``shape`` from ``generator`` (None at tau <= 0, and then
    nothing is drawn, exactly as :meth:`StandardNormal.sample`)."""
    if tau <= 0:
        return None
    source = generator.device if generator is not None else "cpu"
    eps = torch.randn(shape, generator=generator, device=source)
    if truncate is not None:
        eps = eps.clamp(-truncate, truncate)
    return eps.cpu()


def sr_latent(eps: Tensor | None, tau: float, channels: int, batch: int = 1) -> Callable:
    """Sample latent ``tau * eps`` cut to a tile region (zeros when ``eps`` is None)."""
    def cut(y0, y1, x0, x1):
        if eps is None or tau <= 0:
            return torch.zeros(batch, channels, y1 - y0, x1 - x0)
        return tau * eps[:, :, y0:y1, x0:x1]
    return cut


def no_latent(y0: int, y1: int, x0: int, x1: int) -> None:
    """The latent of a deterministic model's only sample: none."""
    return None


def ds_latent(prior, comp: Tensor, eps: Tensor | None, tau: float, multiple: int) -> Callable:
    """Sample latent ``mu_k + sigma_k tau eps`` cut to a tile region (HR pixels, aligned
    to ``multiple``); ``comp`` is per image ``[B, 1, 1, 1]`` or a per-element field."""
    def cut(y0, y1, x0, x1):
        a0, a1, b0, b1 = y0 // multiple, y1 // multiple, x0 // multiple, x1 // multiple
        c = comp if comp.shape[2] == 1 and comp.shape[3] == 1 else comp[:, :, a0:a1, b0:b1]
        e = None if eps is None else eps[:, :, a0:a1, b0:b1]
        shape = (comp.shape[0], 4 * 3, a1 - a0, b1 - b0)
        return prior.latent(c, shape, tau, e)
    return cut


def _resolve_tile(model, task, tile, overlap, max_memory, height, width, align):
    device, _ = _device_dtype(model)
    if tile is not None:
        return max(0, int(tile))
    budget = parse_memory(max_memory) if max_memory is not None else default_budget(device)
    return choose_tile(model, task, height, width, budget, overlap, align)


@torch.no_grad()
def tiled_sr(model, y: Tensor, tau: float = 0.8, num_samples: int = 1,
             generator: torch.Generator | None = None, truncate: float | None = None, *,
             tile: int | None = None, tile_overlap: int | None = None,
             max_memory: str | int | None = None) -> Tensor:
    """:meth:`SDFlow.sr` for tensors, tiled: same noise draws (so with the same generator
    it equals the untiled result up to the tiling error), same return shapes, same
    :class:`NonFiniteOutputError`. ``tile`` (LR pixels; 0 = untiled; default: from
    ``max_memory`` or the available memory), ``tile_overlap`` (default
    :data:`DEFAULT_SR_OVERLAP`)."""
    model._check_lr(y, even=False)
    overlap = DEFAULT_SR_OVERLAP if tile_overlap is None else int(tile_overlap)
    b, _, h, w = y.shape
    shape = (b, model.config.hf_channels, h, w)
    eps = [_draw_noise(shape, tau, generator, truncate) for _ in range(num_samples)]
    latents = [sr_latent(e, tau, model.config.hf_channels, b) for e in eps]
    s = model.scale
    tile = _resolve_tile(model, "sr", tile, overlap, max_memory, h, w, 1)
    res = run_with_fallback(
        lambda t: run_tiles(model, "sr", y, latents, tile=t, overlap=overlap,
                            out_size=(h * s, w * s)), tile, h, w, MIN_SR_TILE)
    out = res.images.to(y.device)
    if not bool(res.finite.all()):
        raise NonFiniteOutputError("tiled super-resolution produced non-finite values",
                                   res.finite.all(dim=1), out)
    return out[:, 0] if num_samples == 1 else out


@torch.no_grad()
def tiled_downscale(model, x: Tensor, tau: float | None = None, num_samples: int = 1,
                    component=None,
                    generator: torch.Generator | None = None, truncate: float | None = None,
                    *, tile: int | None = None, tile_overlap: int | None = None,
                    max_memory: str | int | None = None) -> Tensor:
    """:meth:`SDFlow.downscale` for tensors, tiled (HR pixels, aligned to
    ``model.ds_multiple``). The randomness follows the model's draw plan, so the samples
    equal the untiled method's for the same generator. ``tau`` defaults to 0.8 for a
    stochastic downscaler, 0 for a deterministic one."""
    from sdflow.models.sampling import default_tau, pad_to_multiple

    if tau is None:
        tau = default_tau(isinstance(model, StochasticDS), "ds")
    b, _, h, w = x.shape
    s = model.scale
    m = model.ds_multiple
    overlap = DEFAULT_DS_OVERLAP if tile_overlap is None else int(tile_overlap)
    xp = pad_to_multiple(x, m, minimum=2 * m)
    if isinstance(model, StochasticDS):
        comps, eps = model.draw_ds_latents(xp.shape[2:], b, tau, num_samples, component,
                                           generator, truncate)
        latents = [ds_latent(model.deg_prior, c, e, tau, m)
                   for c, e in zip(comps, eps, strict=True)]
    elif tau > 0 or num_samples > 1 or component is not None:
        raise ValueError(f"{type(model).__name__} downscales deterministically: tau 0, one "
                         "sample, no component")
    else:
        latents = [no_latent]
    hp, wp = xp.shape[2:]
    tile = _resolve_tile(model, "ds", tile, overlap, max_memory, hp, wp, m)
    res = run_with_fallback(
        lambda t: run_tiles(model, "ds", xp, latents, tile=t, overlap=overlap,
                            out_size=(-(-h // s), -(-w // s))), tile, hp, wp, MIN_DS_TILE)
    out = res.images.to(x.device)
    if not bool(res.finite.all()):
        raise NonFiniteOutputError("tiled downscaling produced non-finite values",
                                   res.finite.all(dim=1), out)
    return out[:, 0] if num_samples == 1 else out
