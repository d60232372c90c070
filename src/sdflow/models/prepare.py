"""Inference preparation, explicit: :func:`prepare` returns a prepared copy of a model.

A prepared model is an ordinary module in eval mode with frozen parameters: every flow
step's ActNorm is folded into its invertible 1x1 convolution and the weights of both
directions are baked into plain convolution weights once (so the inverse is never
recomputed and nothing is cached or keyed on tensor versions: a prepared model is safe to
share between threads and can be traced or exported), every coupling network's output
scale is folded into its last conv and its convs run in the memory format chosen here, and
the RRDB condition networks run in that memory format and the precision and (optionally)
compiled form chosen here. It
computes what the model computes, to float rounding (tested to 1e-4 against the model
itself). A prepared copy does not follow later changes of the original's parameters:
prepare again after training.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sdflow.errors import first_line
from sdflow.flows.base import Bakeable
from sdflow.hardware import cpu_features
from sdflow.nets.rrdb import ConditionNet

PRECISIONS = ("fp32", "bf16")
log = logging.getLogger("sdflow.prepare")


@dataclass(frozen=True)
class Preparation:
    """How a prepared model runs (recorded on it as ``model.preparation``)."""

    precision: str = "fp32"  # "bf16": the condition networks in bfloat16 autocast
    channels_last: bool = True  # condition and coupling networks in channels-last format
    compiled: bool = False  # the condition networks through torch.compile
    backend: str = "torch"  # or "onnxruntime" (sdflow.export.onnxruntime_backend)


def default_channels_last(device: torch.device) -> bool:
    """Channels-last condition networks where they were measured faster: on GPUs and on
    CPUs with AVX-512 or AMX (docs/performance.md); not on AVX2-only CPUs, where the
    optimised path was measured slower than the plain one."""
    if device.type != "cpu":
        return device.type == "cuda"
    cpu = cpu_features()
    return cpu.avx512 or cpu.amx


def prepare(model: nn.Module, *, precision: str = "fp32", channels_last: bool | None = None,
            compile: bool = False) -> nn.Module:
    """A prepared copy of ``model`` for inference (the module docstring says what that is).

    ``precision``: "fp32", or "bf16" for the condition networks (models that have some);
    ``channels_last``: None chooses by device and CPU (:func:`default_channels_last`);
    ``compile``: run the condition networks through ``torch.compile`` (falls back to eager
    code, with one warning, where compiling fails).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    prepared = copy.deepcopy(model).eval().requires_grad_(False)
    device = next(prepared.parameters()).device
    nets = [m for m in prepared.modules() if isinstance(m, ConditionNet)]
    if precision == "bf16" and not nets:
        from sdflow.models import architecture_of

        raise ValueError(f"--precision bf16 applies to SDFlow's condition networks and "
                         f"{architecture_of(model).name} has none; leave it out (fp32)")
    if channels_last is None:
        channels_last = default_channels_last(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in prepared.modules():
        if isinstance(module, Bakeable):  # whatever layer can fix its inference weights
            module.bake(fmt)
    for net in nets:
        net.to(memory_format=fmt)
        net.memory_format = fmt
        net.compute_dtype = torch.bfloat16 if precision == "bf16" else None
        net.compiled_features = _compiled_with_fallback(net) if compile else None
    prepared.preparation = Preparation(precision, bool(channels_last), compile)
    return prepared


def _compiled_with_fallback(net: ConditionNet) -> Callable[[Tensor], Tensor]:
    """``net.features`` through torch.compile; eager from the first failure on."""
    eager = net.features
    try:
        compiled = torch.compile(eager)
    except Exception as exc:  # torch.compile unsupported on this platform
        log.warning("torch.compile is unavailable (%s); running %s eagerly", exc,
                    type(net).__name__)
        return eager
    state = {"failed": False}

    def run(x: Tensor) -> Tensor:
        if state["failed"]:
            return eager(x)
        try:
            return compiled(x)
        except Exception as exc:  # e.g. no C++ compiler for inductor
            log.warning("torch.compile failed (%s: %s); running %s eagerly",
                        type(exc).__name__, first_line(exc), type(net).__name__)
            state["failed"] = True
            return eager(x)

    return run
