"""``sdflow info``: what a checkpoint holds."""

from __future__ import annotations

import argparse
import json
import sys

from sdflow import registry
from sdflow.checkpoint import compute_summary, model_config, parameter_count, read_info
from sdflow.errors import SDFlowError


def register(sub) -> None:
    p = sub.add_parser("info", help="show a checkpoint's metadata",
                       description="Print a checkpoint's architecture, config, provenance "
                       "and parameter count.")
    p.add_argument("checkpoint", help="an sdflow .safetensors checkpoint or a registered name")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Reads the header only: the model is not built, so a file whose metadata claims a
    huge architecture is refused at once (its config is validated) instead of built."""
    try:
        resolved = registry.resolve(args.checkpoint)
        digest = registry.sha256_of(resolved)  # checked against the registry when registered
        info = read_info(resolved.path)
        arch, _ = model_config(info, resolved.path)
        parameters = parameter_count(resolved.path, info)
    except (SDFlowError, OSError) as exc:
        print(f"sdflow info: error: {exc}", file=sys.stderr)
        return 1
    record = {
        "path": str(resolved.path),
        "sha256": digest[:12],
        "architecture": info.architecture,
        "label": arch.label,
        "parameters": parameters,
        "scale": info.scale,
        "sdflow_version": info.sdflow_version,
        "trained_on": info.trained_on,
        "notes": info.notes,
        "created": info.created,
        "compute": compute_summary(info.extra),
        "config": info.config,
    }
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    for key, value in record.items():
        if key != "config":
            print(f"{key:15s} {value}")
    print("config:")
    for key, value in info.config.items():
        print(f"  {key:22s} {value}")
    return 0
