"""The one process-wide speed switch left, and the reference path of the benchmarks.

Inference speed is :func:`sdflow.prepare` (a prepared copy of a model); training speed-ups
are the ``speed`` section of the training config (written to each run's config.json).
What remains here changes only float rounding in both:

- ``share_condition_padding``: within one pass of a conditional flow, the condition
  features are reflect-padded once for all its injectors and couplings, instead of once
  per coupling network (and the couplings pad only their own half before concatenating).

``with sdflow.perf.reference():`` turns it off: with an unprepared model and the speed
section off, the plain eager path the benchmarks and equivalence tests compare against.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, fields


@dataclass
class PerfSettings:
    share_condition_padding: bool = True


#: The process-wide switches (see the module docstring).
SETTINGS = PerfSettings()


@contextmanager
def configured(**switches: bool) -> Iterator[PerfSettings]:
    """Temporarily set switches, e.g. ``with configured(share_condition_padding=False)``."""
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
