"""Evaluation results: per-image rows, means per method and tau, CSV/JSON/table output."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Every metric column a row may have, in output order, with its table heading and format.
COLUMNS: dict[str, tuple[str, str]] = {
    "psnr": ("PSNR", "{:.2f}"),
    "ssim": ("SSIM", "{:.4f}"),
    "lpips": ("LPIPS", "{:.4f}"),
    "psnr_best": ("PSNR best", "{:.2f}"),
    "ssim_best": ("SSIM best", "{:.4f}"),
    "lpips_best": ("LPIPS best", "{:.4f}"),
    "lr_psnr": ("LR-PSNR", "{:.2f}"),
    "div_lpips": ("div LPIPS", "{:.4f}"),
    "div_std": ("div std", "{:.2f}"),
    "block": ("block", "{:.2f}"),
    "unc_err_rho": ("unc~err", "{:.3f}"),
    "unc_grad_rho": ("unc~grad", "{:.3f}"),
    "noise_gen": ("noise gen", "{:.2f}"),
    "noise_real": ("noise real", "{:.2f}"),
    "blur_gen": ("blur gen", "{:.3f}"),
    "blur_real": ("blur real", "{:.3f}"),
    "band_ratio": ("band ratio", "{:.2f}"),
    "colour_ratio": ("colour ratio", "{:.2f}"),
    "nonfinite": ("non-finite", "{:.0f}"),
}
KEY_COLUMNS = ("image", "method", "tau", "samples")


@dataclass
class Panel:
    """One image of a report row (an 8-bit crop) and its label."""

    label: str
    image: np.ndarray


@dataclass
class Figure:
    """The crops of one evaluated image, shown side by side in the report."""

    name: str
    panels: list[Panel]


@dataclass
class EvalResult:
    mode: str
    rows: list[dict[str, Any]]
    info: dict[str, Any]
    figures: list[Figure] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Metric columns present in at least one row, in :data:`COLUMNS` order."""
        present = {k for row in self.rows for k in row}
        return [c for c in COLUMNS if c in present]

    def summary(self) -> list[dict[str, Any]]:
        """Means over images for each (method, tau), in first-seen order (None where a
        metric does not apply). NaN values (a metric that could not be computed for an
        image, e.g. all its samples were non-finite) are left out of a mean and counted in
        ``missing``."""
        groups: dict[tuple[str, Any], list[dict[str, Any]]] = {}
        for row in self.rows:
            groups.setdefault((row["method"], row["tau"]), []).append(row)
        out = []
        for (method, tau), rows in groups.items():
            entry: dict[str, Any] = {"method": method, "tau": tau,
                                     "samples": rows[0]["samples"], "images": len(rows)}
            missing = 0
            for col in self.columns:
                values = [r[col] for r in rows if col in r]  # rows the metric applies to
                finite = [v for v in values
                          if v is not None and not (isinstance(v, float) and math.isnan(v))]
                missing = max(missing, len(values) - len(finite))
                entry[col] = float(np.mean(finite)) if finite else None
            if missing:
                entry["missing"] = missing
            out.append(entry)
        return out


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return spec.format(value)


def _tau_text(tau: Any) -> str:
    return "-" if tau is None else f"{tau:g}"


def format_table(result: EvalResult) -> str:
    """The means as a fixed-width text table."""
    cols = result.columns
    header = ["method", "tau", "N", "images"] + [COLUMNS[c][0] for c in cols]
    lines = []
    for entry in result.summary():
        lines.append([entry["method"], _tau_text(entry["tau"]), str(entry["samples"]),
                      str(entry["images"])] + [_fmt(entry[c], COLUMNS[c][1]) for c in cols])
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), rule] + [fmt.format(*line) for line in lines])


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_csv(result: EvalResult, path: str | os.PathLike) -> Path:
    """One line per image and (method, tau); empty cells where a metric does not apply."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(KEY_COLUMNS) + result.columns
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in result.rows:
            writer.writerow({k: ("" if row.get(k) is None else
                                 (repr(row[k]) if isinstance(row[k], float) else row[k]))
                             for k in fields})
    return path


def write_json(result: EvalResult, path: str | os.PathLike, csv_name: str | None = None
               ) -> Path:
    """Means and the full protocol record."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = dict(result.info)
    record["means"] = [{k: _json_value(v) for k, v in entry.items()}
                       for entry in result.summary()]
    if csv_name:
        record["per_image_csv"] = csv_name
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
