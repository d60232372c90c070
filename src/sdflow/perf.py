"""Speed switches for inference and training, all on by default except reduced precision.

Every switch keeps what the model computes (the fp32 switches to within float rounding,
tested to 1e-4 against the reference path); ``with sdflow.perf.reference():`` turns them
all off, which is the plain eager fp32 path the benchmarks compare against.

- ``cache_invconv``: at inference (eval mode, no autograd) each invertible 1x1 conv
  computes its weight and inverse once and reuses them until its parameters change (the
  authors' code recomputes the inverse on every call).
- ``fold_actnorm``: at inference each flow step's ActNorm is folded into the following 1x1
  conv, one convolution (with bias) instead of an element-wise affine plus a convolution.
- ``channels_last``: at inference the RRDB condition networks run in the channels-last
  memory format (weights converted once, in place; converted back when the switch is off),
  which oneDNN's CPU convolutions run faster; their outputs are returned contiguous.
- ``bf16_condition``: the RRDB condition networks (the bulk of the MACs) run in bfloat16
  autocast and return fp32; the flows and their inverses stay fp32. Off by default:
  docs/performance.md reports its measured effect on real images.
- ``compile_condition``: at inference the RRDB condition networks run through
  ``torch.compile`` (inductor). Off by default and not offered by the CLI: on the 2-core
  CPU of docs/performance.md a whole `paper` SR gained about 2 % after 17 s of compilation
  per input shape. Where compilation fails (no C++ compiler, unsupported platform) the
  network runs eagerly, with a warning.
- ``share_condition_padding``: within one pass of a conditional flow, the condition
  features are reflect-padded once for all its injectors and couplings, instead of once
  per coupling network (and the couplings pad only their own half before concatenating).
- ``share_targets`` (training): what the step derives from its data crops for several
  loss terms (the low-passed targets and their VGG features) is computed once per step,
  not once per term.
- ``batch_frozen_passes`` (training): a frozen network that the step runs on several
  same-shaped inputs runs once on their concatenation (SDFlow: the two content decodes
  through the frozen ``f_LR``; the VGG features of all generated images). Every layer
  involved is per-sample, so only float rounding changes.
- ``foreach_updates`` (training): Adam and the weight average update all tensors with
  the multi-tensor (``foreach``) kernels instead of a Python loop over parameters.
"""

from __future__ import annotations

import functools
import logging
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields

import torch
from torch import Tensor, nn


@dataclass
class PerfSettings:
    cache_invconv: bool = True
    fold_actnorm: bool = True
    channels_last: bool = True
    bf16_condition: bool = False
    compile_condition: bool = False
    share_condition_padding: bool = True
    share_targets: bool = True
    batch_frozen_passes: bool = True
    foreach_updates: bool = True


#: The process-wide switches (see the module docstring).
SETTINGS = PerfSettings()


@contextmanager
def configured(**switches: bool) -> Iterator[PerfSettings]:
    """Temporarily set switches, e.g. ``with configured(bf16_condition=True): ...``."""
    names = {f.name for f in fields(PerfSettings)}
    unknown = set(switches) - names
    if unknown:
        raise ValueError(f"unknown performance switches {sorted(unknown)}; know {sorted(names)}")
    saved = {n: getattr(SETTINGS, n) for n in names}
    for k, v in switches.items():
        setattr(SETTINGS, k, bool(v))
    try:
        yield SETTINGS
    finally:
        for k, v in saved.items():
            setattr(SETTINGS, k, v)


def reference() -> AbstractContextManager[PerfSettings]:
    """All optimisations off: plain eager fp32."""
    return configured(**{f.name: False for f in fields(PerfSettings)})


def inference_mode_for(module: nn.Module) -> bool:
    """Caches apply only when nothing can change or differentiate the weights."""
    return not module.training and not torch.is_grad_enabled()


def param_key(*tensors: Tensor) -> tuple:
    """Changes whenever one of the tensors is modified in place or replaced."""
    return tuple((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors)


def condition_memory_format(module: nn.Module) -> torch.memory_format:
    """The memory format a condition network should run in now, with its 4-D weights
    converted to it (once; a no-op when they already are)."""
    fmt = torch.channels_last if SETTINGS.channels_last and inference_mode_for(module) \
        else torch.contiguous_format
    weight = next((p for p in module.parameters() if p.dim() == 4), None)
    if weight is not None and not weight.is_contiguous(memory_format=fmt):
        with torch.no_grad():
            module.to(memory_format=fmt)
    return fmt


def autocast_condition(x: Tensor):
    """The autocast context for a condition network's forward (a no-op unless
    ``bf16_condition`` is on and autograd is off)."""
    enabled = SETTINGS.bf16_condition and not torch.is_grad_enabled()
    return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=enabled)


log = logging.getLogger("sdflow.perf")
#: module -> its compiled method, or _EAGER once compiling failed. Values hold no strong
#: reference to their module, so compiled modules can still be freed.
_COMPILED: weakref.WeakKeyDictionary[nn.Module, Callable[..., Tensor] | str] = \
    weakref.WeakKeyDictionary()
_EAGER = "eager"


def maybe_compiled(module: nn.Module, method: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``method`` (bound to ``module``) compiled with ``torch.compile`` when
    ``compile_condition`` is on and ``module`` is at inference; else ``method`` itself.

    It is compiled once per module. If compiling or running the compiled code fails, the
    module runs ``method`` eagerly from then on and one warning says why (an error that
    is ``method``'s own is then raised by ``method``).
    """
    if not (SETTINGS.compile_condition and inference_mode_for(module)):
        return method
    compiled = _COMPILED.get(module)
    if compiled is None:
        compiled = _COMPILED[module] = _compile_with_fallback(module, method.__func__)
    return method if compiled == _EAGER else functools.partial(compiled, module)


def _compile_with_fallback(module: nn.Module, function: Callable[..., Tensor]
                           ) -> Callable[..., Tensor] | str:
    name = type(module).__name__
    try:
        compiled = torch.compile(function)
    except Exception as exc:  # torch.compile unsupported on this platform
        log.warning("torch.compile is unavailable (%s); running %s eagerly", exc, name)
        return _EAGER

    def call(owner: nn.Module, *args: Tensor) -> Tensor:
        try:
            return compiled(owner, *args)
        except Exception as exc:  # e.g. no C++ compiler for inductor
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            log.warning("torch.compile failed (%s: %s); running %s eagerly",
                        type(exc).__name__, first_line, name)
            _COMPILED[owner] = _EAGER
            return function(owner, *args)

    return call
