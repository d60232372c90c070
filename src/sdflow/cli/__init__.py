"""The ``sdflow`` command line. Each subcommand lives in its own module with
``register(subparsers)``; the list below is the whole command set."""

from __future__ import annotations

import argparse
import os
import sys

from sdflow.allocator import keep_freed_memory
from sdflow.cli import (
    convert,
    demo,
    downscale,
    evaluate,
    export,
    fit_degradation,
    info,
    make_pairs,
    models,
    selfcheck,
    sr,
    train,
)
from sdflow.errors import Interrupted
from sdflow.version import __version__

COMMANDS = (sr, downscale, make_pairs, train, fit_degradation, evaluate, selfcheck, convert,
            export, info, models, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdflow",
        description="Unpaired real-world super-resolution and realistic downscaling.",
    )
    parser.add_argument("--version", action="version", version=f"sdflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if os.environ.get("SDFLOW_SYSTEM_MALLOC", "") in ("", "0"):
        keep_freed_memory()  # large images: no page-fault storm (sdflow.allocator)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback, exit 130
        text = str(exc) if isinstance(exc, Interrupted) and str(exc) else "interrupted"
        print(f"\nsdflow {args.command}: {text}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
