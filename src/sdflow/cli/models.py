"""``sdflow models``: the registered models, what they do and their recorded numbers."""

from __future__ import annotations

import argparse
import json
import sys

from sdflow import registry
from sdflow.checkpoint import model_config, parameter_count, read_info
from sdflow.errors import SDFlowError
from sdflow.models.base import Downscaler, StochasticSR, SuperResolver


def register(sub) -> None:
    p = sub.add_parser("models", help="list the registered models",
                       description="List the registered models: tasks, size, which is a "
                       "default, and the RealSR x4 val/ numbers recorded in each file (the "
                       "model's own rows of its sdflow eval runs, at tau 0).")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def _recorded(extra: dict, architecture: str) -> dict[str, float]:
    """The model's own tau-0 means from the ``sdflow eval`` runs its file records."""
    out: dict[str, float] = {}
    for run in extra.get("evidence") or []:
        for row in run.get("means") or []:
            if row.get("method") == architecture and row.get("tau") == 0.0:
                for key in ("psnr", "lpips"):
                    if row.get(key) is not None:
                        out[f"{run.get('mode')}_{key}"] = round(float(row[key]), 4)
    return out


def rows() -> list[dict]:
    out = []
    for name in registry.available():
        resolved = registry.resolve(name)
        info = read_info(resolved.path)
        arch, _ = model_config(info, resolved.path)
        tasks = (["sr"] if issubclass(arch.model_cls, SuperResolver) else []) + \
            (["ds"] if issubclass(arch.model_cls, Downscaler) else [])
        defaults = [task for task in registry.TASKS if registry.default_model(task) == name]
        out.append({"name": name, "architecture": info.architecture, "tasks": tasks,
                    "stochastic_sr": issubclass(arch.model_cls, StochasticSR),
                    "parameters": parameter_count(resolved.path, info),
                    "default_for": defaults, **_recorded(info.extra, info.architecture)})
    return out


def run(args: argparse.Namespace) -> int:
    try:
        table = rows()
    except (SDFlowError, OSError) as exc:
        print(f"sdflow models: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(table, indent=2))
        return 0

    def num(row: dict, key: str, fmt: str) -> str:
        return format(row[key], fmt) if key in row else "-"

    header = ("name", "tasks", "params", "default", "SR PSNR", "SR LPIPS", "DS PSNR")
    lines = [header]
    for row in table:
        lines.append((row["name"], "+".join(row["tasks"]), f"{row['parameters'] / 1e6:.2f} M",
                      ",".join(row["default_for"]) or "-", num(row, "sr_psnr", ".2f"),
                      num(row, "sr_lpips", ".4f"), num(row, "ds_psnr", ".2f")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    print("(RealSR x4 val/, tau 0, as recorded in each file: sdflow info NAME for the rest)")
    return 0
