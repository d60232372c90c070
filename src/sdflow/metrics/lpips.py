"""LPIPS v0.1 (Zhang et al., CVPR 2018) with AlexNet or VGG16 features, in plain torch.

Recipe (as the official ``lpips`` package, version 0.1): inputs in [-1, 1]; the scaling
layer ``(x - shift) / scale``; the five ReLU outputs of the backbone; each feature
unit-normalised over channels (``x / (||x|| + 1e-10)``); squared difference; a 1x1 linear
head without bias; spatial mean; sum over the layers. Weights come from local safetensors
files (see :mod:`sdflow.weights`); the module is frozen but differentiable in its inputs.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor, nn

from sdflow.metrics.psnr_ssim import as_uint8_tensor
from sdflow.nets.backbones import AlexNetFeatures, VGG16Features
from sdflow.value_range import to_signed
from sdflow.weights import find_weights, load_weights_into

VERSION = "0.1"
NETS = ("alex", "vgg")
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_LAYERS = {
    "alex": ("relu1", "relu2", "relu3", "relu4", "relu5"),
    "vgg": ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"),
}
_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
EPS = 1e-10


class LPIPS(nn.Module):
    """``LPIPS(net)(a, b)`` -> distance per image ``[B]``; ``a``, ``b`` in [-1, 1]."""

    def __init__(self, net: str = "alex", weights_dir: str | os.PathLike | None = None,
                 pretrained: bool = True):
        super().__init__()
        if net not in NETS:
            raise ValueError(f"LPIPS net must be one of {NETS}, got {net!r}")
        self.net_name = net
        self.backbone = AlexNetFeatures() if net == "alex" else VGG16Features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False)
                                  for c in _CHANNELS[net])
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        if pretrained:
            self.backbone.load_weights(find_weights("alexnet" if net == "alex" else "vgg16",
                                                    weights_dir))
            # the file's "lin0.weight".. are the ModuleList's "0.weight"..
            load_weights_into(self.lins, find_weights(f"lpips_{net}", weights_dir),
                              key_map=lambda key: key.removeprefix("lin"))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # no dropout/batch statistics: always eval

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        if a.shape != b.shape:
            raise ValueError(f"LPIPS inputs differ in shape: {tuple(a.shape)} vs "
                             f"{tuple(b.shape)}")
        layers = _LAYERS[self.net_name]
        fa = self.backbone((a - self.shift) / self.scale, layers)
        fb = self.backbone((b - self.shift) / self.scale, layers)
        total = a.new_zeros(a.shape[0])
        for lin, x, y in zip(self.lins, fa, fb, strict=True):
            nx = x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            ny = y / (y.pow(2).sum(dim=1, keepdim=True).sqrt() + EPS)
            total = total + lin((nx - ny) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def distance(self, a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
        """LPIPS of two 8-bit images (uint8 ``H x W x 3`` arrays or ``[3, H, W]`` tensors)."""
        device = self.shift.device
        ta = to_signed(as_uint8_tensor(a).to(device=device, dtype=torch.float32) / 255.0)
        tb = to_signed(as_uint8_tensor(b).to(device=device, dtype=torch.float32) / 255.0)
        return float(self(ta.unsqueeze(0), tb.unsqueeze(0))[0])
