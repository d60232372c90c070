"""Counting multiply-accumulates (MACs) of convolutions, for benchmarks and docs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from sdflow.flows.invconv import InvertibleConv1x1


@contextmanager
def count_macs(model: nn.Module) -> Iterator[dict[str, int]]:
    """Count conv MACs of everything run inside the context::

        with count_macs(model) as macs:
            model.sr(y, 0.8)
        print(macs["total"] / 1e9, "GMAC")

    Counts ``nn.Conv2d`` layers and the invertible 1x1 convolutions (forward and inverse);
    element-wise work is not counted.
    """
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
