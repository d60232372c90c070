"""The LR content extractor E: z_c = E(y), with a degradation-modulation branch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sdflow.nets.rrdb import conv3x3


class FeatureModulation(nn.Module):
    """``feat * gamma + beta`` with ``(a, beta) = conv1x1(m)`` and a bounded scale
    ``gamma = kappa * tanh(a / kappa)``, ``kappa = exp(log_kappa)`` (learned, starts at 1).
    Note the product is ``feat * gamma``, not ``feat * (1 + gamma)``."""

    def __init__(self, channels: int, mod_channels: int):
        super().__init__()
        self.log_kappa = nn.Parameter(torch.zeros(1))
        self.proj = nn.Conv2d(mod_channels, 2 * channels, 1)

    def forward(self, feat: Tensor, mod: Tensor) -> Tensor:
        a, beta = self.proj(mod).chunk(2, dim=1)
        kappa = torch.exp(self.log_kappa)
        return feat * (kappa * torch.tanh(a / kappa)) + beta


class ModulatedResBlock(nn.Module):
    """``feat + 0.1 * conv2(mod2(lrelu(conv1(mod1(feat, m))), m))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.mod1 = FeatureModulation(channels, channels)
        self.conv1 = conv3x3(channels, channels)
        self.mod2 = FeatureModulation(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, feat: Tensor, mod: Tensor) -> Tensor:
        h = self.act(self.conv1(self.mod1(feat, mod)))
        return feat + 0.1 * self.conv2(self.mod2(h, mod))


class ContentExtractor(nn.Module):
    """E: LR image ``[B, 3, h, w]`` -> content latent ``[B, 3, h, w]``.

    A conv head gives features f; a plain conv branch turns f into modulation features m
    ("degradation modulation"); a trunk of modulated residual blocks refines a copy of f
    under m; the tail maps ``f + trunk`` to 3 channels (no output activation).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, channels: int = 64,
                 num_blocks: int = 16, num_mod_layers: int = 8):
        super().__init__()
        act = nn.LeakyReLU(0.2)
        self.head = nn.Sequential(conv3x3(in_channels, channels), act)
        mod_layers: list[nn.Module] = []
        for _ in range(num_mod_layers):
            mod_layers += [conv3x3(channels, channels), act]
        self.modulation = nn.Sequential(*mod_layers)
        self.trunk = nn.ModuleList(ModulatedResBlock(channels) for _ in range(num_blocks))
        self.tail = nn.Sequential(conv3x3(channels, channels), act,
                                  nn.Conv2d(channels, out_channels, 1))

    def forward(self, y: Tensor) -> Tensor:
        f = self.head(y)
        m = self.modulation(f)
        t = f
        for block in self.trunk:
            t = block(t, m)
        return self.tail(f + t)
