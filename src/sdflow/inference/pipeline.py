"""One image through the model: any input kind in, the same kind out.

:func:`process` takes a :class:`~sdflow.imageio.LoadedImage` and returns composed output
arrays (source layout and bit depth), what each sample actually used, and optionally the
uncertainty map. The colour channels go through the model (gray sources as RGB, written
back as gray); alpha is resized on its own (bicubic for SR, area averaging for
downscaling). It draws the randomness once per image, runs the tiles, retries samples
that come out non-finite at ``0.9 tau`` (up to :data:`MAX_RETRIES` times, then at
tau = 0), and never injects noise. :func:`super_resolve` and :func:`downscale` are
the image API (``sdflow.super_resolve(model, image)``; model methods take tensors only).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from sdflow.errors import NonFiniteOutputError, SDFlowError
from sdflow.imageio import LoadedImage, compose, from_array, from_pil, image_to_tensor, to_pil
from sdflow.imageio import to_gray as _to_gray
from sdflow.inference import tiling, uncertainty
from sdflow.metrics.resize import imresize
from sdflow.models.base import StochasticDS, StochasticSR, SuperResolver, downscales
from sdflow.models.sampling import default_tau, pad_to_multiple
from sdflow.seeding import generator_from
from sdflow.value_range import to_unit

#: Non-finite samples are retried at 0.9 tau this many times, then once at tau = 0.
MAX_RETRIES = 3
RETRY_FACTOR = 0.9

TASKS = ("sr", "ds")


class ImageSizeError(SDFlowError, ValueError):
    """An image is too small for the task."""


class InferenceWarning(UserWarning):
    """Something in an image's processing a user should know (a retry, a conversion)."""


@dataclass
class SampleInfo:
    index: int
    tau: float  # the temperature actually used
    tau_requested: float
    component: int | None  # DS mixture component (None for SR and element mode)
    retries: int = 0


@dataclass
class ImageResult:
    """``outputs``: one array per sample in the source layout; ``samples``: what each used;
    ``uncertainty``: ``H x W`` std map in 8-bit grey levels (N >= 2 and asked for)."""

    outputs: list[np.ndarray]
    samples: list[SampleInfo]
    tile: int
    overlap: int
    tiles: int
    seconds: float
    bit_depth: int
    uncertainty: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _resize_alpha(alpha: np.ndarray, task: str, out_size: tuple[int, int]) -> Tensor:
    peak = 65535.0 if alpha.dtype == np.uint16 else 255.0
    a = torch.from_numpy(alpha.astype(np.float32) / peak)[None, None]
    if task == "sr" and out_size[0] >= alpha.shape[0]:
        a = F.interpolate(a, size=out_size, mode="bicubic", align_corners=False)
    else:  # downscaling, or SR with an outscale below 1
        a = F.interpolate(a, size=out_size, mode="area")
    return a[0, 0].clamp(0, 1)


#: Bytes per output pixel and sample held until an image's samples are written: the float32
#: sample (12), its composed 8/16-bit copy (up to 8) and the resize for --outscale (12).
SAMPLE_BYTES_PER_PIXEL = 32


def _refuse_samples_beyond_memory(name: str, num_samples: int, out_size: tuple[int, int],
                                  outscale: float | None) -> None:
    """All samples of an image are held until it is written (the uncertainty map needs
    them): refuse up front, in one line, when they cannot fit in the available memory."""
    from sdflow.hardware import available_ram

    h, w = out_size
    if outscale is not None:
        h, w = max(h, round(h * outscale / 4)), max(w, round(w * outscale / 4))
    need = num_samples * h * w * SAMPLE_BYTES_PER_PIXEL
    available = available_ram()
    if available is not None and need > available:
        raise ImageSizeError(f"{name}: {num_samples} samples of {w}x{h} need about "
                             f"{need / 2**30:.1f} GiB, more than the {available / 2**30:.1f} "
                             "GiB available; lower --samples (or --outscale)")


def process(model, image: LoadedImage, task: str, *, tau: float, num_samples: int = 1,
            generator: torch.Generator | None = None, component=None,
            truncate: float | None = None, tile: int | None = None,
            tile_overlap: int | None = None, max_memory: str | int | None = None,
            bit_depth: int | None = None, want_uncertainty: bool = False,
            outscale: float | None = None,
            progress: Callable[[int, int], None] | None = None,
            message: Callable[[str], None] | None = None) -> ImageResult:
    """Run SR (``task="sr"``) or downscaling (``task="ds"``) on one image.

    ``tile``: input pixels per tile (LR for SR, HR for DS); 0 = untiled; None = chosen
    from ``max_memory`` (bytes or "2G"; default: half the available memory).
    ``bit_depth``: of the outputs (default: the source's). ``outscale`` (SR only): the
    outputs, their alpha and the uncertainty map are ``round(outscale * input)`` in size
    (Real-ESRGAN's --outscale): the float SR images are resized once (MATLAB bicubic,
    antialiased when shrinking) before they are rounded, alpha once from the source's.
    ``message`` receives one-line notes (retries, out-of-memory fallbacks).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if outscale is not None and (task != "sr" or not 0 < outscale <= 16):
        raise ValueError(f"outscale is for SR only and must be in (0, 16], got {outscale}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if want_uncertainty and num_samples < 2:
        raise ValueError("an uncertainty map needs at least 2 samples")
    say = message or (lambda text: None)
    start = time.monotonic()
    x = image_to_tensor(image.rgb)
    h, w = image.size
    s = model.scale
    if task == "sr":
        if h < 2 or w < 2:
            raise ImageSizeError(f"{image.name}: {w}x{h} is too small for super-resolution; "
                                 "at least 2x2 pixels are needed")
        overlap = tiling.DEFAULT_SR_OVERLAP if tile_overlap is None else int(tile_overlap)
        source = x
        out_size = (h * s, w * s)
        if not isinstance(model, SuperResolver):
            raise ValueError(f"{type(model).__name__} cannot super-resolve")
        if isinstance(model, StochasticSR):
            shape = model.sr_latent_shape(h, w)
        elif tau > 0 or num_samples > 1:
            raise ValueError(f"{type(model).__name__} is deterministic: it has no "
                             "temperature and gives one output per image")
        else:
            shape = (1, 0, h, w)  # no latent
        channels = shape[1]
        eps = [tiling._draw_noise(shape, tau, generator, truncate)
               for _ in range(num_samples)]
        comps = [None] * num_samples

        def latent(i: int, t: float):
            return tiling.sr_latent(eps[i], t, channels)
        align, minimum = 1, tiling.MIN_SR_TILE
    else:
        if not downscales(model):
            raise ValueError(f"{type(model).__name__} cannot downscale; use a model with a "
                             "downscaling direction (sdflow, gaussian-fit, da-iccv21)")
        m = model.ds_multiple
        overlap = tiling.DEFAULT_DS_OVERLAP if tile_overlap is None else int(tile_overlap)
        source = pad_to_multiple(x, m, minimum=2 * m)
        out_size = (-(-h // s), -(-w // s))
        if isinstance(model, StochasticDS):
            comps, eps = model.draw_ds_latents(source.shape[2:], 1, tau, num_samples,
                                               component, generator, truncate)

            def latent(i: int, t: float):
                return tiling.ds_latent(model.deg_prior, comps[i], eps[i], t, m)
        elif tau > 0 or num_samples > 1 or component is not None:
            raise ValueError(f"{type(model).__name__} downscales deterministically: it has "
                             "no temperature or component and gives one output per image")
        else:
            comps = [None]

            def latent(i: int, t: float):
                return tiling.no_latent
        align, minimum = m, tiling.MIN_DS_TILE
    sh, sw = source.shape[2:]
    tile = tiling._resolve_tile(model, task, tile, overlap, max_memory, sh, sw, align)

    taus = [float(tau)] * num_samples
    retries = [0] * num_samples
    _refuse_samples_beyond_memory(image.name, num_samples, out_size, outscale)
    images = torch.empty(num_samples, 3, *out_size)
    pending = list(range(num_samples))
    tiles_used = 1
    while pending:
        res = tiling.run_with_fallback(
            lambda t, todo=tuple(pending), ov=overlap: tiling.run_tiles(
                model, task, source, [latent(i, taus[i]) for i in todo], tile=t,
                overlap=ov, out_size=out_size, progress=progress),
            tile, sh, sw, minimum, on_retry=lambda text: say(f"{image.name}: {text}"))
        tile, overlap, tiles_used = res.tile, res.overlap, res.tiles
        failed = []
        for j, i in enumerate(pending):
            images[i] = res.images[0, j]
            if not bool(res.finite[0, j]):
                failed.append(i)
        for i in failed:
            if taus[i] <= 0:
                raise NonFiniteOutputError(
                    f"{image.name}: sample {i} is not finite even at tau = 0; the input may "
                    "hold NaN/Inf or the model is broken", torch.zeros(1, dtype=torch.bool),
                    images[i : i + 1])
            retries[i] += 1
            new = 0.0 if retries[i] > MAX_RETRIES else taus[i] * RETRY_FACTOR
            say(f"{image.name}: sample {i} not finite at tau {taus[i]:.3f}; retrying at "
                f"tau {new:.3f}")
            taus[i] = new
        pending = failed

    if outscale is not None:
        size = (max(1, round(h * outscale)), max(1, round(w * outscale)))
        if size != out_size:
            images = imresize(images.double(), size=size).float()
            out_size = size
    alpha = None if image.alpha is None else _resize_alpha(image.alpha, task, out_size)
    depth = bit_depth or image.bit_depth
    outputs = [compose(images[i], alpha, image, depth)
               for i in range(num_samples)]
    samples = []
    for i in range(num_samples):
        comp = comps[i]
        k = int(comp.flatten()[0]) if comp is not None and comp.numel() == 1 else None
        samples.append(SampleInfo(i, taus[i], float(tau), k, retries[i]))
    u = None
    if want_uncertainty:
        vals = to_unit(images.clamp(-1, 1))
        if image.is_gray:
            vals = _to_gray(vals)
        u = uncertainty.std_map(vals)
    return ImageResult(outputs, samples, tile, overlap, tiles_used,
                       time.monotonic() - start, depth, u, list(image.notes))


# ---------------------------------------------------------------------------- Python API
def as_loaded(image) -> LoadedImage:
    """A PIL image or uint8/uint16 numpy array as a :class:`LoadedImage`."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, Image.Image):
        return from_pil(image)
    if isinstance(image, np.ndarray):
        return from_array(image)
    raise TypeError(f"expected a torch tensor, a PIL image or a uint8/uint16 numpy array, "
                    f"got {type(image).__name__}")


def _api(model, image, task: str, **kwargs):
    loaded = as_loaded(image)
    with warnings.catch_warnings():
        warnings.simplefilter("default", InferenceWarning)
        res = process(model, loaded, task,
                      message=lambda text: warnings.warn(text, InferenceWarning,
                                                         stacklevel=4), **kwargs)
        for note in res.notes:
            warnings.warn(note, InferenceWarning, stacklevel=4)
    if loaded.kind == "pil":
        outs = [to_pil(a, loaded) for a in res.outputs]
    else:
        outs = res.outputs
    return outs[0] if len(outs) == 1 else outs


@torch.no_grad()
def super_resolve(model, image, tau: float | None = None, num_samples: int = 1,
                  generator: torch.Generator | None = None, truncate: float | None = None,
                  *, seed: int | None = None, tile: int | None = None,
                  tile_overlap: int | None = None, max_memory: str | int | None = None):
    """Super-resolve a PIL image or uint8/uint16 array with any :class:`SuperResolver`;
    returns the same kind (a list for ``num_samples > 1``): same mode/channels and bit
    depth, ``scale`` x the size. Tiled with one noise field per image, as ``sdflow sr``.
    ``tau`` defaults to 0.8 for a stochastic model and is 0 for a deterministic one;
    ``seed`` seeds a CPU generator."""
    if tau is None:
        tau = default_tau(isinstance(model, StochasticSR), "sr")
    return _api(model, image, "sr", tau=tau, num_samples=num_samples,
                generator=generator_from(seed, generator), truncate=truncate, tile=tile,
                tile_overlap=tile_overlap, max_memory=max_memory)


@torch.no_grad()
def downscale(model, image, tau: float | None = None, num_samples: int = 1,
              component=None, generator: torch.Generator | None = None,
              truncate: float | None = None, *, seed: int | None = None,
              tile: int | None = None, tile_overlap: int | None = None,
              max_memory: str | int | None = None):
    """Downscale a PIL image or uint8/uint16 array with a :class:`Downscaler` to a
    realistic LR image of the same kind (``ceil(H/4) x ceil(W/4)``; a list for
    ``num_samples > 1``). ``tau`` defaults to 0.8 for a stochastic downscaler and is 0 for
    a deterministic one (da-iccv21)."""
    if tau is None:
        tau = default_tau(isinstance(model, StochasticDS), "ds")
    return _api(model, image, "ds", tau=tau, num_samples=num_samples,
                generator=generator_from(seed, generator), component=component,
                truncate=truncate, tile=tile, tile_overlap=tile_overlap,
                max_memory=max_memory)
