"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from sdflow.diagnostics import perturb_parameters_
from sdflow.imageio import image_to_tensor, read_image
from sdflow.models import SDFlow, SDFlowConfig


def real_crops(shared: Path, hr_size: int = 64, name: str = "Canon_031.png"
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """An HR crop of a real RealSR val image and its 4x box-downscaled LR, in [-1, 1]."""
    hr = image_to_tensor(read_image(shared / "data/RealSR_x4/val/HR" / name).rgb)
    top = (hr.shape[2] - hr_size) // 2
    hr = hr[:, :, top : top + hr_size, top : top + hr_size]
    return hr, F.avg_pool2d(hr, 4)


def tiny_model(shared: Path, preset: str = "tiny", dtype=torch.float32, seed: int = 0,
               std: float = 0.02, **overrides) -> SDFlow:
    """A model (the ``tiny`` preset unless told) with data-initialised ActNorm and
    perturbed (non-identity) couplings: the one small SDFlow of the tests."""
    model = SDFlow(SDFlowConfig.preset(preset, **overrides), seed=seed).to(dtype)
    hr, lr = real_crops(shared, 32)
    model.initialize_actnorm(hr.to(dtype), lr.to(dtype))
    perturb_parameters_(model, std=std, generator=torch.Generator().manual_seed(seed))
    return model.eval()


def without_g_t(src: Path, dst: Path) -> Path:
    """A copy of da-iccv21 file ``src`` without its G_t (``lr_decoder.*``) weights, as
    sdflow 0.1 exported them."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), framework="pt") as f:
        metadata = f.metadata()
    save_file({k: v for k, v in load_file(str(src)).items()
               if not k.startswith("lr_decoder.")}, str(dst), metadata=metadata)
    return dst
