"""How a batch command names its outputs: format (``--ext``), task/tau/sample/component
tags, ``--suffix``, names too long for the disk, and the components read from the draw
plan. Pure functions of the options: the same inputs always get the same names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from sdflow.imageio import OUTPUT_FORMATS
from sdflow.models.base import StochasticDS

TASK_NAMES = {"sr": "sr", "ds": "downscale"}


#: Input extension -> output format for ``--ext auto``.
_AUTO_FORMATS = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp",
                 ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}


def output_format(ext: str, source: Path) -> str:
    """The format an input's outputs are written in (``auto``: the input's, else png)."""
    return _AUTO_FORMATS.get(source.suffix.lower(), "png") if ext == "auto" else ext


def _tau_tag(tau: float) -> str:
    return f"t{tau:.2f}"


#: Longest output file name (bytes): the 255 most file systems take, less room for the
#: temporary name an output is written under first (sdflow.atomic: ".NAME~sd.XXXXXXXX.EXT").
NAME_MAX = 255 - 16


def fit_name(name: str, ext: str) -> str:
    """``name + ext``, or, when that is over :data:`NAME_MAX` bytes, ``name`` cut short with
    ``~`` and 8 hex digits of its hash (the same every run, so reruns find it)."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) + len(ext.encode()) <= NAME_MAX:
        return name + ext
    tag = "~" + hashlib.sha256(raw).hexdigest()[:8]
    keep = NAME_MAX - len(ext.encode()) - len(tag)
    short = raw[:keep].decode("utf-8", "ignore")  # never half a character
    return short + tag + ext


def output_names(rel: Path, task: str, tau: float, components: list, fmt: str,
                 suffix: str | None = None, deterministic: bool = False) -> list[Path]:
    """Relative output paths of one image's samples: ``photo_sr_t0.80_s0.png`` (one per
    sample) or ``photo_ds_t0.80_k5.png`` (``..._k5_s1.png`` with several samples;
    ``kmix`` when the component varies per element); ``photo_sr.png`` / ``photo_ds.png``
    for a model that is deterministic in ``task`` (no temperature, no samples). With
    ``suffix``: ``photo_<suffix>.png`` (``photo.png`` for an empty one), ``_s<i>`` added
    per sample when there are several."""
    ext = OUTPUT_FORMATS[fmt]
    stem = rel.with_suffix("").name
    n = len(components)
    names = []
    for i, k in enumerate(components):
        if suffix is not None:
            name = stem + (f"_{suffix}" if suffix else "") + (f"_s{i}" if n > 1 else "")
        elif deterministic:
            name = f"{stem}_{task}"
        elif task == "sr":
            name = f"{stem}_sr_{_tau_tag(tau)}_s{i}"
        else:
            ktag = "kmix" if k is None else f"k{k}"
            name = f"{stem}_ds_{_tau_tag(tau)}_{ktag}" + (f"_s{i}" if n > 1 else "")
        names.append(rel.parent / fit_name(name, ext))
    return names


def uncertainty_names(rel: Path, task: str, tau: float, suffix: str | None = None
                      ) -> tuple[Path, Path]:
    stem = rel.with_suffix("").name
    if suffix is None:
        base = f"{stem}_{task}_{_tau_tag(tau)}"
    else:
        base = stem + (f"_{suffix}" if suffix else "")
    return rel.parent / fit_name(f"{base}_std", ".png"), rel.parent / fit_name(f"{base}_std16",
                                                                             ".png")


def planned_components(model, task: str, samples: int, seed: int, component: int | None
                       ) -> list[int | None]:
    """The DS mixture component of each sample, read from the model's draw plan for a
    generator seeded with ``seed`` (the image's seed; the components are its first draws),
    for the output names."""
    if task == "sr" or not isinstance(model, StochasticDS):
        return [None] * samples
    if model.deg_prior.mode == "element" and component is None:
        return [None] * samples
    m = model.ds_multiple
    comps, _ = model.draw_ds_latents((m, m), 1, 0.0, samples, component,
                                     torch.Generator().manual_seed(seed))
    return [int(c.flatten()[0]) for c in comps]

