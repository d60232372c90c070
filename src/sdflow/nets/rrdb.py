"""Residual-in-residual dense blocks (ESRGAN) and the RRDB condition network."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def scaled_xavier_(module: nn.Module, gain: float = 0.1) -> None:
    """Xavier-normal init scaled by ``gain`` and zero bias for every conv in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
            m.weight.data.mul_(gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def conv3x3(cin: int, cout: int, reflect: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect" if reflect else "zeros")


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs (growth ``gc``); output ``x + 0.2 * conv5(...)``."""

    def __init__(self, channels: int = 64, growth: int = 32):
        super().__init__()
        self.conv1 = conv3x3(channels, growth, reflect=False)
        self.conv2 = conv3x3(channels + growth, growth, reflect=False)
        self.conv3 = conv3x3(channels + 2 * growth, growth, reflect=False)
        self.conv4 = conv3x3(channels + 3 * growth, growth, reflect=False)
        self.conv5 = conv3x3(channels + 4 * growth, channels, reflect=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.act(conv(torch.cat(feats, dim=1))))
        return x + 0.2 * self.conv5(torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """Three residual dense blocks with a scaled residual: ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""

    def __init__(self, channels: int = 64, growth: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(channels, growth)
        self.rdb2 = ResidualDenseBlock(channels, growth)
        self.rdb3 = ResidualDenseBlock(channels, growth)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class ConditionNet(nn.Module):
    """The "conditional feature extractor": conv -> RRDB x n -> conv with a long skip, then
    a conv-LReLU-conv head. Output has ``channels`` features at the input resolution."""

    def __init__(self, in_channels: int, num_blocks: int, channels: int = 64, growth: int = 32):
        super().__init__()
        self.conv_in = conv3x3(in_channels, channels)
        self.trunk = nn.Sequential(*(RRDB(channels, growth) for _ in range(num_blocks)))
        self.conv_trunk = conv3x3(channels, channels)
        self.head = nn.Sequential(conv3x3(channels, channels), nn.LeakyReLU(0.2),
                                  conv3x3(channels, channels))
        for part in (self.conv_in, self.trunk, self.head):
            scaled_xavier_(part)
        # How inference runs the network; plain (contiguous fp32 eager) unless
        # sdflow.prepare sets them on a prepared copy.
        self.memory_format = torch.contiguous_format
        self.compute_dtype: torch.dtype | None = None
        self.compiled_features: Callable[[Tensor], Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.memory_format == torch.contiguous_format and self.compute_dtype is None \
                and self.compiled_features is None:
            return self.features(x)
        features = self.compiled_features or self.features
        with torch.autocast(device_type=x.device.type, dtype=self.compute_dtype or x.dtype,
                            enabled=self.compute_dtype is not None):
            out = features(x.contiguous(memory_format=self.memory_format))
        return out.to(x.dtype).contiguous()

    def features(self, x: Tensor) -> Tensor:
        """The network itself (``forward`` adds the memory format, precision and compiled
        code a prepared copy was given, :func:`sdflow.prepare`)."""
        f0 = self.conv_in(x)
        return self.head(self.conv_trunk(self.trunk(f0)) + f0)
