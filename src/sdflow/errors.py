"""Exceptions with messages meant for users."""

from __future__ import annotations

from torch import Tensor


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): what a
    one-line error report quotes of an underlying library's exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
