"""``sdflow sr --backend onnxruntime``: SR through the exported ONNX graph in ONNX Runtime.

:func:`onnxruntime_model` exports the model's SR graph once (cached under
``$XDG_CACHE_HOME/sdflow/onnx/``, keyed by the checkpoint's sha256 and the sdflow version,
verified when written) and returns a module with the protocol the tiled pipeline runs:
``sr_condition`` passes the tile through, ``sr_decode`` runs the whole graph on it with the
tile's latent, so tiling, one noise field per image, retries and uncertainty maps work as
with PyTorch (and each sample costs a whole forward pass).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from sdflow.errors import first_line
from sdflow.export.onnx import ExportError, export_onnx, require_onnx
from sdflow.inference import tiling
from sdflow.models.base import StochasticSR
from sdflow.models.prepare import Preparation
from sdflow.value_range import to_signed, to_unit
from sdflow.version import __version__
from sdflow.weights import user_cache


def cache_dir() -> Path:
    return user_cache("onnx")


class OnnxRuntimeSR(nn.Module):
    """A deterministic model's SR graph in ONNX Runtime (CPU), tensors in [-1, 1]."""

    def __init__(self, path: Path, source: nn.Module):
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.path = path
        self.scale = source.scale
        self.config = source.config
        self.label = f"{source.label} (ONNX Runtime)"
        self.checkpoint_info = getattr(source, "checkpoint_info", None)
        self.checkpoint_path = getattr(source, "checkpoint_path", None)
        self._bytes_per_pixel = tiling.bytes_per_pixel(source, "sr")
        self.preparation = Preparation(channels_last=False, backend="onnxruntime")

    def _run(self, y: Tensor, latent: Tensor | None) -> Tensor:
        feeds = {"image": to_unit(y.float()).cpu().numpy()}
        if latent is not None:
            feeds["noise"] = latent.float().cpu().numpy()
        out = self.session.run(None, feeds)[0]
        return to_signed(torch.from_numpy(np.ascontiguousarray(out)))

    def sr_condition(self, y: Tensor) -> tuple[Tensor, None]:
        return y, None

    def sr_decode(self, y: Tensor, _features: None, _latent: Tensor | None) -> Tensor:
        return self._run(y, None)

    def sr(self, y: Tensor) -> Tensor:
        return self._run(y, None)

    def forward(self, y: Tensor) -> Tensor:
        return self.sr(y)

    def bytes_per_pixel(self, task: str) -> float:
        if task != "sr":
            raise ValueError("the onnxruntime backend only super-resolves")
        return self._bytes_per_pixel


class OnnxRuntimeStochasticSR(OnnxRuntimeSR):
    """SDFlow's SR graph in ONNX Runtime: the latent is an input of the graph."""

    def __init__(self, path: Path, source: nn.Module):
        super().__init__(path, source)
        self._channels = source.sr_latent_shape(1, 1)[1]

    def sr_latent_shape(self, lr_height: int, lr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        return (batch, self._channels, lr_height, lr_width)

    def sr_decode(self, y: Tensor, _features: None, latent: Tensor | None) -> Tensor:
        if latent is None:
            latent = torch.zeros(self.sr_latent_shape(y.shape[2], y.shape[3], y.shape[0]))
        return self._run(y, latent)

    def sr(self, y: Tensor, tau: float = 0.0, noise: Tensor | None = None) -> Tensor:
        """Tau 0 unless ``noise`` (eps) is given."""
        return self.sr_decode(y, None, None if noise is None else tau * noise)

    def forward(self, y: Tensor, noise: Tensor | None = None) -> Tensor:
        return self.sr_decode(y, None, noise)


def onnxruntime_model(model: nn.Module, sha256: str, say=print) -> OnnxRuntimeSR:
    """``model``'s SR as an ONNX Runtime module (exported on first use; ``say`` is told)."""
    require_onnx()
    path = cache_dir() / f"{sha256[:16]}-sr-sdflow{__version__}.onnx"
    cls = OnnxRuntimeStochasticSR if isinstance(model, StochasticSR) else OnnxRuntimeSR
    if path.is_file():
        try:
            return cls(path, model)
        except Exception as exc:  # onnxruntime's own types: a damaged or foreign cache file
            say(f"the cached graph {path} does not load ({first_line(exc)[:80]}); "
                "exporting it again")
            path.unlink(missing_ok=True)
    say(f"exporting the SR graph for onnxruntime once, to {path}")
    try:
        export_onnx(model, path, "sr")
    except ExportError:
        path.unlink(missing_ok=True)
        raise
    return cls(path, model)
