"""Patch discriminators with spectral normalisation (fully convolutional: any input size)."""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def _conv(cin: int, cout: int, kernel: int, stride: int, sn: bool) -> nn.Module:
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2 if stride == 1 else 1)
    return spectral_norm(conv) if sn else conv


class PatchDiscriminator(nn.Module):
    """PatchGAN: a 3x3 input conv, ``n_down`` stride-2 4x4 convs doubling the width (capped
    at 8x base) and a 3x3 conv to one score per patch; LeakyReLU(0.2), no normalisation
    layers, spectral norm on every conv by default. Scores are raw (LSGAN: 1 real, 0 fake).

    Receptive field: ``n_down = 2``: 22 px, 3: 46 px, 4: 94 px. With ``base = 64`` and
    ``n_down = 2`` this is the latent discriminator D_c of SDFlow's objective
    (docs/training.md; about 0.66 M).
    """

    def __init__(self, in_channels: int = 3, base: int = 64, n_down: int = 3,
                 spectral: bool = True):
        super().__init__()
        layers: list[nn.Module] = [_conv(in_channels, base, 3, 1, spectral), nn.LeakyReLU(0.2)]
        ch = base
        for _ in range(n_down):
            out = min(ch * 2, base * 8)
            layers += [_conv(ch, out, 4, 2, spectral), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(_conv(ch, 1, 3, 1, spectral))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
