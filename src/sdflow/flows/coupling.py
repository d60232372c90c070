"""Affine coupling and affine injector layers (RealNVP / SRFlow style) with the atan soft clamp."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdflow.flows.base import Bijection, sum_except_batch

#: The log-scale of every affine layer is ``CLAMP_GAIN * atan(2 * raw)``, so it stays
#: within (-0.4995, 0.4995): each layer scales by at most e^0.5 (the authors' choice).
CLAMP_GAIN = 0.318


def soft_clamp(raw: Tensor) -> Tensor:
    return CLAMP_GAIN * torch.atan(2.0 * raw)


class ZeroConv2d(nn.Module):
    """3x3 zero-padded conv whose output is scaled by ``exp(3 * log_scale)``; all zero at
    init, so the layer it ends starts as the identity."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.log_scale = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * torch.exp(3.0 * self.log_scale)


def reflect_pad(x: Tensor) -> Tensor:
    """One pixel of reflect padding: what a coupling network's first conv sees."""
    return F.pad(x, (1, 1, 1, 1), mode="reflect")


class PaddedCondition(NamedTuple):
    """A condition and its one-pixel reflect padding, made once by a conditional flow
    (:meth:`of`) and passed to all its injectors and couplings instead of the bare tensor,
    so that their coupling networks do not pad it again each (reflect padding is per
    channel: padding a concatenation equals concatenating paddings, so the outputs are the
    same either way). A layer given a bare tensor pads it itself."""

    features: Tensor
    padded: Tensor

    @classmethod
    def of(cls, features: Tensor) -> PaddedCondition:
        return cls(features, reflect_pad(features))


def padded_condition(cond: Tensor | PaddedCondition) -> Tensor:
    """The condition reflect-padded by one pixel, padded here only if it is not yet."""
    return cond.padded if isinstance(cond, PaddedCondition) else reflect_pad(cond)


class CouplingNet(nn.Module):
    """3x3 conv -> 1x1 conv -> zero-initialised 3x3 conv, LeakyReLU(0.01) in between.

    The input comes reflect-padded by one pixel (:func:`reflect_pad`), so that a padded
    condition can be shared between layers; the output has the unpadded size."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, hidden, 3)
        self.conv_mid = nn.Conv2d(hidden, hidden, 1)
        self.conv_out = ZeroConv2d(hidden, out_channels)
        self.act = nn.LeakyReLU(0.01)
        for conv in (self.conv_in, self.conv_mid):
            nn.init.xavier_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)
        self.baked = False

    @torch.no_grad()
    def bake(self, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        """For :func:`sdflow.prepare` (the network is then for inference only): fold the
        output scale ``exp(3 log_scale)`` into the last conv and run the three convs in
        ``memory_format``. Channels-last pays most here, on the 64-channel hidden layers at
        the HR flow's full resolution (docs/performance.md); input and output keep their
        format, so only the narrow ends are converted. Non-persistent buffers: the
        checkpoint format is unchanged."""
        scale = torch.exp(3.0 * self.conv_out.log_scale).reshape(-1)
        weights = {"in": self.conv_in.weight, "mid": self.conv_mid.weight,
                   "out": self.conv_out.conv.weight * scale[:, None, None, None]}
        for name, w in weights.items():
            self.register_buffer(f"baked_{name}_weight",
                                 w.detach().clone().contiguous(memory_format=memory_format),
                                 persistent=False)
        self.register_buffer("baked_out_bias", (self.conv_out.conv.bias * scale).clone(),
                             persistent=False)
        self.memory_format = memory_format
        self.baked = True

    def forward(self, x_padded: Tensor) -> Tensor:
        if not self.baked:
            return self.conv_out(self.act(self.conv_mid(self.act(self.conv_in(x_padded)))))
        slope = self.act.negative_slope
        h = F.conv2d(x_padded.contiguous(memory_format=self.memory_format),
                     self.baked_in_weight, self.conv_in.bias)
        h = F.leaky_relu(h, slope, inplace=True)
        h = F.leaky_relu(F.conv2d(h, self.baked_mid_weight, self.conv_mid.bias), slope,
                         inplace=True)
        return F.conv2d(h, self.baked_out_weight, self.baked_out_bias, padding=1).contiguous()


def _scale_shift(h: Tensor) -> tuple[Tensor, Tensor]:
    """Network output channels are interleaved (scale, shift, scale, shift, ...)."""
    return soft_clamp(h[:, 0::2]), h[:, 1::2]


class AffineCoupling(Bijection):
    """``y_b = (x_b + t) * exp(s)`` with ``(s, t) = net([x_a, cond])``; ``x_a`` passes through.

    ``x_a`` is the first ``channels // 2`` channels. With ``cond_channels > 0`` the layer
    is conditional and the condition (a tensor or a :class:`PaddedCondition`) is
    concatenated after ``x_a``.
    """

    def __init__(self, channels: int, cond_channels: int = 0, hidden: int = 64):
        super().__init__()
        self.split = channels // 2
        self.conditional = cond_channels > 0
        self.net = CouplingNet(self.split + cond_channels, 2 * (channels - self.split), hidden)

    def _params(self, xa: Tensor, cond: Tensor | PaddedCondition | None
                ) -> tuple[Tensor, Tensor]:
        xa = reflect_pad(xa)
        h = self.net(xa if cond is None else torch.cat([xa, padded_condition(cond)], dim=1))
        return _scale_shift(h)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        xa, xb = x[:, : self.split], x[:, self.split :]
        s, t = self._params(xa, cond)
        yb = (xb + t) * torch.exp(s)
        return torch.cat([xa, yb], dim=1), sum_except_batch(s)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        ya, yb = y[:, : self.split], y[:, self.split :]
        s, t = self._params(ya, cond)
        xb = yb * torch.exp(-s) - t
        return torch.cat([ya, xb], dim=1), -sum_except_batch(s)


class AffineInjector(Bijection):
    """``y = (x + t) * exp(s)`` with ``(s, t) = net(cond)``: an affine map of all channels
    that depends on the condition only (SRFlow's conditional affine injector)."""

    conditional = True

    def __init__(self, channels: int, cond_channels: int, hidden: int = 64):
        super().__init__()
        self.net = CouplingNet(cond_channels, 2 * channels, hidden)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        s, t = _scale_shift(self.net(padded_condition(cond)))
        return (x + t) * torch.exp(s), sum_except_batch(s)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check_cond(cond)
        s, t = _scale_shift(self.net(padded_condition(cond)))
        return y * torch.exp(-s) - t, -sum_except_batch(s)
