"""Options defined once: dataclass fields that describe their own command-line flag.

A batch job's options are a dataclass the library takes (:class:`sdflow.inference.batch.
Options`); the CLI generates its flags from the fields with :func:`add_flags` and builds the
dataclass back from the parsed arguments with :func:`from_args`, so a new option is one
field, not a field plus a flag plus a line copying one into the other.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Union

T = TypeVar("T")


@dataclass(frozen=True)
class Flag:
    """How a field appears on the command line.

    ``help`` may hold ``{name}`` placeholders filled from the ``context`` given to
    :func:`add_flags` (e.g. the pixel unit of a tile size differs between SR and DS);
    ``only`` lists the commands the flag exists in (None: all)."""

    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    choices: tuple[Any, ...] | None = None
    only: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None  # argparse ``type``; default: the field's


def flag(*names: str, default: Any, help: str, metavar: str | None = None,
         choices: tuple[Any, ...] | None = None, only: tuple[str, ...] | None = None,
         parse: Callable[[str], Any] | None = None) -> Any:
    """A dataclass field with ``default`` and the flag ``names`` (e.g. ``"-t", "--tile"``)."""
    return dataclasses.field(default=default, metadata={
        "flag": Flag(tuple(names), help, metavar, choices, only, parse)})


def _scalar_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; other types unchanged."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def flag_fields(cls: type, command: str) -> list[tuple[dataclasses.Field, Flag]]:
    """The fields of ``cls`` that have a flag in ``command``."""
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("flag")
        if spec is not None and (spec.only is None or command in spec.only):
            out.append((f, spec))
    return out


def add_flags(parser: argparse.ArgumentParser, cls: type, command: str,
              context: dict[str, Any] | None = None) -> None:
    """Add one argument per flagged field of ``cls`` (booleans are switches)."""
    hints = typing.get_type_hints(cls)
    for f, spec in flag_fields(cls, command):
        kwargs: dict[str, Any] = {"dest": f.name, "default": f.default,
                                  "help": spec.help.format(**(context or {}))}
        tp = _scalar_type(hints[f.name])
        if tp is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = spec.parse or tp
            if spec.metavar:
                kwargs["metavar"] = spec.metavar
            if spec.choices:
                kwargs["choices"] = spec.choices
        parser.add_argument(*spec.names, **kwargs)


def from_args(cls: type[T], args: argparse.Namespace, command: str, **fixed: Any) -> T:
    """``cls`` from the parsed flags of ``command`` plus ``fixed`` values (fields without a
    flag, or values the command resolved itself)."""
    values = {f.name: getattr(args, f.name) for f, _ in flag_fields(cls, command)}
    values.update(fixed)
    return cls(**values)


def positive_int(text: str) -> int:
    """argparse type of counts such as ``--threads``: an integer >= 1, else the usage
    error names the value (never a traceback from the library it is passed to)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value
