"""The compute record a trained model carries: one entry per training leg (iterations,
wall hours, device, processes, CPU threads, the model the leg started from), with totals.

A model trained in legs (each ``--init-from`` the last leg's export) takes the earlier legs
over from the file it starts from, so the exported file always states the whole cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def leg_record(iterations: int, seconds: float, device: str, processes: int, threads: int,
               init_from: dict[str, Any] | None) -> dict[str, Any]:
    """One leg: ``seconds`` of training-loop wall time on ``processes`` processes of
    ``device`` ("cpu", "cuda", ...), with ``threads`` CPU threads each."""
    hours = seconds / 3600.0
    on_cpu = device == "cpu"
    return {
        "iterations": iterations, "hours": round(hours, 4), "device": device,
        "processes": processes, "threads_per_process": threads if on_cpu else None,
        "cpu_hours": round(hours * threads * processes, 4) if on_cpu else None,
        "device_hours": round(hours * processes, 4) if not on_cpu else None,
        "init_from": init_from,
    }


def with_totals(legs: list[dict[str, Any]]) -> dict[str, Any]:
    """The record of ``legs``: a total is None when any leg lacks it (hours of a model
    exported before compute was recorded; CPU hours when a leg ran on a GPU)."""

    def total(key: str) -> float | None:
        values = [leg.get(key) for leg in legs]
        return None if any(v is None for v in values) else round(sum(values), 4)

    return {"legs": legs, "total_iterations": sum(int(leg["iterations"]) for leg in legs),
            "total_hours": total("hours"), "total_cpu_hours": total("cpu_hours")
            if all(leg.get("device") == "cpu" for leg in legs) else None}


def earlier_legs(extra: dict[str, Any]) -> list[dict[str, Any]]:
    """The legs recorded in an exported model's metadata (``checkpoint_info.extra``); a
    model exported before compute was recorded counts as one leg of unknown hours."""
    legs = list((extra.get("compute") or {}).get("legs", []))
    if not legs and "iterations" in extra:
        legs = [{"iterations": int(extra["iterations"]), "hours": None, "cpu_hours": None,
                 "device": None, "note": "no compute record in the model"}]
    return legs


def init_source(name_or_path: str, sha256: str) -> dict[str, Any]:
    """How a leg names the model it started from: file name and hash, no local path."""
    return {"model": Path(name_or_path).name, "sha256": sha256}
