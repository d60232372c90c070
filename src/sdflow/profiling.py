"""Counting multiply-accumulates (MACs) of convolutions, for benchmarks and docs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from sdflow.flows.invconv import InvertibleConv1x1


@contextmanager
def count_macs(model: nn.Module) -> Iterator[dict[str, int]]:
    """Count conv MACs of everything run inside the context::

        with count_macs(model) as macs:
            model.sr(y, 0.8)
        print(macs["total"] / 1e9, "GMAC")

    Counts ``nn.Conv2d`` layers and the invertible 1x1 convolutions (forward and inverse);
    element-wise work is not counted. A prepared copy (:func:`sdflow.prepare`) runs baked
    weights through ``F.conv2d`` that no hook sees, so it is refused: count the model it
    was prepared from (the same arithmetic).
    """
    if getattr(model, "preparation", None) is not None:
        raise ValueError("count_macs needs the unprepared model: a prepared copy's baked "
                         "convolutions are invisible to module hooks")
    counter = {"total": 0}
    handles = []

    def conv_hook(module: nn.Conv2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        kh, kw = module.kernel_size
        counter["total"] += output.numel() * (module.in_channels // module.groups) * kh * kw

    def invconv_hook(module: InvertibleConv1x1, inputs: tuple[Tensor, ...], output) -> None:
        counter["total"] += output[0].numel() * module.channels

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, InvertibleConv1x1):
            handles.append(m.register_forward_hook(invconv_hook))
            original: Callable = m.inverse

            def inverse(y, cond=None, _m=m, _orig=original):
                out = _orig(y, cond)
                counter["total"] += out[0].numel() * _m.channels
                return out

            m.inverse = inverse  # instance attribute shadows the method while counting
    try:
        yield counter
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            if isinstance(m, InvertibleConv1x1) and "inverse" in m.__dict__:
                del m.inverse


def conv_rates(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a plain 64-channel 3x3 conv (the condition and coupling networks' width),
    fp32, median of ``repeats`` calls, at 128x128 and 256x256 in both memory formats: keys
    like ``"nchw 256"`` and ``"channels_last 128"``."""
    rates = {}
    conv = nn.Conv2d(64, 64, 3, padding=1).eval()
    with torch.no_grad():
        for side in (128, 256):
            for name, fmt in (("nchw", torch.contiguous_format),
                              ("channels_last", torch.channels_last)):
                x = torch.randn(1, 64, side, side).contiguous(memory_format=fmt)
                layer = conv.to(memory_format=fmt)
                layer(x)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    layer(x)
                    times.append(time.perf_counter() - t0)
                flop = 2 * 64 * 64 * 9 * side * side
                rates[f"{name} {side}"] = round(flop / statistics.median(times) / 1e9, 1)
    return rates


def conv_peak_gflops(repeats: int = 5) -> float:
    """What this machine's convolutions reach at best, the ceiling a model's GFLOP/s are
    read against: the fastest of :func:`conv_rates`. Both memory formats count because they
    differ by up to 1.9x (NCHW 117-122 GFLOP/s, channels-last 218-225 in one run on a 2-core
    AVX-512 machine); the best of them is what the arithmetic could reach."""
    return max(conv_rates(repeats).values())
