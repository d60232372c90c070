"""ONNX graphs of a prepared model, with dynamic batch, height and width.

The contract (docs/model.md):

- SR: input ``image`` float32 ``[N, 3, H, W]``, RGB in [0, 1]; a stochastic model (SDFlow)
  also takes ``noise`` ``[N, C, H, W]``, the HF latent itself (``tau * eps`` with eps
  standard normal; zeros = tau 0, the mode); output ``sr`` ``[N, 3, s*H, s*W]`` in [0, 1].
- DS (SDFlow): input ``image`` ``[N, 3, H, W]`` in [0, 1] with H and W multiples of
  ``2 s`` (8 for x4; pad or crop first), ``noise`` ``[N, 4*3, H/(2s), W/(2s)]``
  (``tau * eps``) and ``component`` int64 ``[N]`` (the mixture component of each image);
  output ``lr`` ``[N, 3, H/s, W/s]`` in [0, 1].

Exporting needs the ``onnx`` extra (``pip install 'sdflow[onnx]'``: onnx, onnxscript and
onnxruntime, which the verification runs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sdflow.atomic import write_atomic
from sdflow.errors import SDFlowError, first_line
from sdflow.models.base import StochasticDS, StochasticSR, SuperResolver, downscales
from sdflow.models.prepare import prepare
from sdflow.value_range import to_signed, to_unit

#: largest |ONNX Runtime - PyTorch| accepted by the verification, in [0, 1] units (a tenth
#: of an 8-bit grey level)
TOLERANCE = 1e-3 / 2.55


class ExportError(SDFlowError):
    """An export could not be written or does not match the model."""


class SRGraph(nn.Module):
    """``image`` in [0, 1] (+ ``noise`` for a stochastic model) -> SR in [0, 1].

    With ``tau`` (a stochastic model only) the sampling is baked in and ``image`` is the
    only input, as single-input runners (chaiNNer, ComfyUI) call a graph: tau 0 is the
    mode (no noise), tau > 0 draws ``tau * N(0, 1)`` inside the graph (RandomNormalLike)."""

    def __init__(self, model: nn.Module, tau: float | None = None):
        super().__init__()
        self.model = model
        self.tau = tau
        self.stochastic = isinstance(model, StochasticSR) and tau is None

    def forward(self, image: Tensor, noise: Tensor | None = None) -> Tensor:
        y = to_signed(image)
        if self.stochastic:
            out = self.model(y, noise)
        elif self.tau:  # baked sampling: z_h' = tau * eps drawn in the graph
            b, _, h, w = y.shape
            eps = torch.randn_like(y.new_zeros(b, self.model.config.hf_channels, h, w))
            out = self.model(y, self.tau * eps)
        else:
            out = self.model(y)
        return to_unit(out).clamp(0.0, 1.0)


class DSGraph(nn.Module):
    """``image`` in [0, 1] (sides multiples of ``ds_multiple``) -> LR in [0, 1]; a
    stochastic downscaler also takes ``noise`` (already scaled by tau) and ``component``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.stochastic = isinstance(model, StochasticDS)
        if self.stochastic and model.deg_prior.mode == "element":
            raise ExportError("the DS graph takes one mixture component per image; this "
                              "model draws one per latent element (mixture_mode element)")
        self.model = model

    def forward(self, image: Tensor, noise: Tensor | None = None,
                component: Tensor | None = None) -> Tensor:
        x = to_signed(image)
        z_c, features = self.model.ds_condition(x)
        z_deg = None
        if self.stochastic:  # the mixture latent mu_k + sigma_k * noise
            z_deg = self.model.deg_prior.latent(component.reshape(-1, 1, 1, 1),
                                                tuple(noise.shape), 1.0, noise)
        out = self.model.ds_decode(z_c, features, z_deg)
        return to_unit(out).clamp(0.0, 1.0)


def _export_sampling_sr(prepared: nn.Module, path: Path, tau: float,
                        check_image: np.ndarray | None) -> Verification:
    """The one-input SR graph with its noise drawn in the graph at ``tau``. Verified in two
    steps: the same graph at tau 0 against PyTorch (exactly, as any export), then the tau
    graph's samples: finite, two runs different, and their spread around the tau-0 output
    within a factor 2 of PyTorch's at the same tau."""
    zero = export_onnx(prepared, path, "sr", check_image=check_image, tau=0.0)
    graph = SRGraph(prepared, tau).eval()
    image, _ = _sample_image(check_image, 1)
    n, h, w = _dims()
    _export(graph, (image,), path, ["image"], "sr", ({0: n, 2: h, 3: w},))
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"image": image.numpy()}
    a, b = (session.run(None, feed)[0] for _ in range(2))
    with torch.no_grad():
        mode = SRGraph(prepared, 0.0)(image).numpy()
        g = torch.Generator().manual_seed(0)
        shape = prepared.sr_latent_shape(image.shape[2], image.shape[3], 1)
        ref = SRGraph(prepared)(image, tau * torch.randn(shape, generator=g)).numpy()
    spread, ref_spread = float(np.abs(a - mode).mean()), float(np.abs(ref - mode).mean())
    if not (np.isfinite(a).all() and np.abs(a - b).max() > 0
            and 0.5 * ref_spread <= spread <= 2.0 * ref_spread):
        raise ExportError(f"{path}: the sampling graph at tau {tau:g} does not sample like "
                          f"PyTorch (mean |sample - mode| {spread:.2e} vs {ref_spread:.2e}); "
                          "the file is left for inspection")
    return Verification(f"{zero.image} (the graph at tau 0; at tau {tau:g}: samples differ, "
                        f"mean |sample - mode| {spread * 255:.2f} grey levels, PyTorch "
                        f"{ref_spread * 255:.2f})", zero.max_abs_diff)


@dataclass(frozen=True)
class Verification:
    image: str  # what was checked
    max_abs_diff: float  # [0, 1] units

    def line(self) -> str:
        return (f"verified on {self.image}: max |onnxruntime - torch| = {self.max_abs_diff:.2e}"
                f" (tolerance {TOLERANCE:.1e}, i.e. {self.max_abs_diff * 255:.4f} grey levels)")


def _dims():
    n = torch.export.Dim("batch", min=1, max=1024)
    h = torch.export.Dim("height", min=2, max=8192)
    w = torch.export.Dim("width", min=2, max=8192)
    return n, h, w


def require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx extra ({exc.name} is missing): "
                          "pip install 'sdflow[onnx]'") from None


def _export(graph: nn.Module, args: tuple, path: Path, input_names: list[str],
            output_name: str, dynamic_shapes: tuple) -> None:
    """``torch.onnx.export`` to one self-contained file, written atomically."""
    import logging
    import warnings

    def write(tmp: str) -> None:
        torch.onnx.export(graph, args, tmp, input_names=input_names,
                          output_names=[output_name], dynamic_shapes=dynamic_shapes,
                          dynamo=True, optimize=True, verbose=False, external_data=False)

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logger.setLevel(logging.ERROR)  # the exporter's progress chatter, for this call only
        try:
            write_atomic(path, write)
        except Exception as exc:
            first = first_line(exc)
            raise ExportError(f"{path}: the ONNX export failed ({first})") from None
        finally:
            logger.setLevel(level)


def _sample_image(image: np.ndarray | None, multiple: int) -> tuple[Tensor, str]:
    """The verification input: a real image's crop (sides a multiple of ``multiple``), or a
    smooth synthetic pattern when none is given."""
    if image is None:
        yy, xx = np.mgrid[0:40, 0:48] / 40.0
        arr = np.stack([np.sin(3 * xx) * 0.4 + 0.5, yy, (xx + yy) / 2.2], axis=2)
        name = "a synthetic 48x40 pattern (pass --check-image for a real photo)"
    else:
        arr = image[:64, :64].astype(np.float64) / (65535.0 if image.dtype == np.uint16
                                                     else 255.0)
        name = None
    h, w = (arr.shape[0] // multiple) * multiple, (arr.shape[1] // multiple) * multiple
    name = name or f"a {w}x{h} crop of the check image"
    if h < 2 * multiple or w < 2 * multiple:
        raise ExportError(f"the check image is too small (needs {2 * multiple}x{2 * multiple})")
    t = torch.from_numpy(np.ascontiguousarray(arr[:h, :w, :3])).float().permute(2, 0, 1)
    return t[None], name


def _compare(path: Path, feeds: dict[str, np.ndarray], reference: Tensor) -> float:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, feeds)[0]
    except Exception as exc:  # onnxruntime raises its own exception types
        first = first_line(exc)
        raise ExportError(f"{path}: onnxruntime cannot run the exported graph ({first})") \
            from None
    return float(np.abs(out - reference.numpy()).max())


def export_onnx(model: nn.Module, path: str | os.PathLike, task: str = "sr", *,
                check_image: np.ndarray | None = None, tau: float | None = None
                ) -> Verification:
    """Write the ``task`` ("sr" or "ds") graph of ``model`` (prepared here, fp32) to
    ``path`` and verify it: ONNX Runtime against PyTorch on ``check_image`` (an RGB
    uint8/uint16 array; default a synthetic pattern) and on a second size, so that the
    dynamic axes are exercised. Raises :class:`ExportError` above :data:`TOLERANCE`.

    ``tau`` (SR of a stochastic model): bake the sampling in, so the graph takes the image
    alone. At tau 0 it is verified like any graph; at tau > 0 its noise is drawn by the
    runtime, so the check is that the noise-free part matches (the same graph at tau 0,
    verified first) and that two runs give different samples of the right spread."""
    require_onnx()
    path = Path(path)
    prepared = prepare(model, precision="fp32", channels_last=False)
    n, h, w = _dims()
    generator = torch.Generator().manual_seed(0)
    if tau is not None and not (math.isfinite(tau) and tau >= 0):
        raise ExportError(f"--tau must be a finite number >= 0, got {tau}")
    if tau is not None and not (task == "sr" and isinstance(prepared, StochasticSR)):
        raise ExportError("--tau bakes SR sampling into the graph: it applies to a stochastic "
                          "model's sr graph (SDFlow), not to this one")
    if tau is not None and tau > 0:
        return _export_sampling_sr(prepared, path, tau, check_image)
    if task == "sr":
        if not isinstance(prepared, SuperResolver):
            raise ExportError(f"{type(model).__name__} cannot super-resolve")
        graph = SRGraph(prepared, tau).eval()
        image, name = _sample_image(check_image, 1)

        def inputs(x: Tensor) -> tuple[Tensor, ...]:
            if not graph.stochastic:
                return (x,)
            shape = prepared.sr_latent_shape(x.shape[2], x.shape[3], x.shape[0])
            return (x, 0.8 * torch.randn(shape, generator=generator))

        names = ["image", "noise"] if graph.stochastic else ["image"]
        dynamic = ({0: n, 2: h, 3: w},) * len(names)
        output = "sr"
    elif task == "ds":
        if not downscales(prepared):
            raise ExportError(f"{type(model).__name__} cannot downscale; use a model with a "
                              "downscaling direction")
        graph = DSGraph(prepared).eval()
        m = prepared.ds_multiple
        image, name = _sample_image(check_image, m)
        hh, ww = torch.export.Dim("h_blocks", min=2, max=1024), \
            torch.export.Dim("w_blocks", min=2, max=1024)

        def inputs(x: Tensor) -> tuple[Tensor, ...]:
            if not graph.stochastic:
                return (x,)
            shape = prepared.ds_latent_shape(x.shape[2], x.shape[3], x.shape[0])
            k = prepared.config.mixture_components
            return (x, 0.8 * torch.randn(shape, generator=generator),
                    torch.arange(x.shape[0], dtype=torch.long) % k)

        if graph.stochastic:
            names = ["image", "noise", "component"]
            dynamic = ({0: n, 2: m * hh, 3: m * ww}, {0: n, 2: hh, 3: ww}, {0: n})
        else:
            names = ["image"]
            dynamic = ({0: n, 2: m * hh, 3: m * ww},)
        output = "lr"
    else:
        raise ValueError(f"task must be sr or ds, not {task!r}")
    args = inputs(image)
    _export(graph, args, path, names, output, dynamic)
    worst = 0.0
    step = 1 if task == "sr" else prepared.ds_multiple
    for x in (image, image[:, :, : image.shape[2] - step, : image.shape[3] - 2 * step]):
        a = inputs(x)
        with torch.no_grad():
            ref = graph(*a)
        feeds = {k: v.numpy() for k, v in zip(names, a, strict=True)}
        worst = max(worst, _compare(path, feeds, ref))
    result = Verification(name, worst)
    if not worst <= TOLERANCE:
        raise ExportError(f"{path}: the ONNX graph differs from PyTorch by {worst:.2e} "
                          f"(tolerance {TOLERANCE:.1e}); the file is left for inspection")
    return result
