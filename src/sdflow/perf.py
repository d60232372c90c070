"""Speed switches that keep what the code computes, all on by default.

Inference speed is not a switch: :func:`sdflow.prepare` returns a prepared copy of a model
(ActNorm folded and the 1x1 weights and their inverses baked into plain convolutions,
condition networks channels-last, optionally bfloat16 or compiled). What remains here are
switches of computations shared by training and inference that change only float
rounding; ``with sdflow.perf.reference():`` turns them all off, the plain eager path the
benchmarks compare against.

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

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields


@dataclass
class PerfSettings:
    share_condition_padding: bool = True
    share_targets: bool = True
    batch_frozen_passes: bool = True
    foreach_updates: bool = True


#: The process-wide switches (see the module docstring).
SETTINGS = PerfSettings()


@contextmanager
def configured(**switches: bool) -> Iterator[PerfSettings]:
    """Temporarily set switches, e.g. ``with configured(share_targets=False): ...``."""
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
