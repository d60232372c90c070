"""Exceptions with messages meant for users."""

from __future__ import annotations

from torch import Tensor


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what a
    one-line error report quotes of an underlying library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


#: What allocators say when memory runs out (PyTorch's CPU and CUDA allocators, numpy).
OOM_MESSAGES = ("out of memory", "can't allocate", "cannot allocate", "not enough memory")


def is_oom(exc: BaseException) -> bool:
    """Whether an exception is an allocation failure (CPU or accelerator)."""
    import torch

    oom_type = getattr(torch, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in OOM_MESSAGES))


class SDFlowError(Exception):
    """Base class of the errors sdflow raises on purpose."""


class NonFiniteOutputError(SDFlowError):
    """A model produced NaN/Inf for some samples.

    ``finite_mask`` (bool, one entry per sample) says which samples are usable and
    ``output`` holds all of them, so a caller can keep the good ones or retry the rest
    (e.g. at a lower temperature).
    """

    def __init__(self, message: str, finite_mask: Tensor, output: Tensor):
        super().__init__(message)
        self.finite_mask = finite_mask
        self.output = output


class CheckpointError(SDFlowError):
    """A checkpoint file is missing, unreadable or does not match the architecture."""


class OutputIsInputError(SDFlowError):
    """A command would write one of its outputs over one of its own input files."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command; the message is the one line that says what
    was kept and how to continue (``sdflow`` prints it and exits with 130)."""
