"""One self-contained HTML page per evaluation: the table of means, a perception-distortion
plot (PSNR vs LPIPS, matplotlib) and per-image crops side by side, every image embedded as
a base64 PNG (the page loads nothing else)."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sdflow.errors import SDFlowError
from sdflow.evaluation.results import COLUMNS, EvalResult, format_table

REPORT_NAME = "index.html"


class ReportError(SDFlowError):
    """The report cannot be made (e.g. matplotlib is not installed)."""


def require_matplotlib() -> None:
    """Fail early, before a long evaluation, if the report could not be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ReportError("the HTML report needs matplotlib, which is not installed: "
                          "pip install 'sdflow[report]' (or pip install matplotlib)") from exc


def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _tau_text(tau: Any) -> str:
    return "" if tau is None else f"τ={tau:g}"


def perception_distortion_png(result: EvalResult) -> bytes | None:
    """PSNR (y) against LPIPS (x) of the means, one line per method through its taus;
    None when LPIPS was not computed."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    summary = [e for e in result.summary()
               if e.get("lpips") is not None and e.get("psnr") is not None]
    if not summary:
        return None
    fig = MplFigure(figsize=(5.5, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    methods: dict[str, list[dict[str, Any]]] = {}
    for entry in summary:
        methods.setdefault(entry["method"], []).append(entry)
    for method, entries in methods.items():
        xs = [e["lpips"] for e in entries]
        ys = [e["psnr"] for e in entries]
        ax.plot(xs, ys, marker="o", label=method)
        for e in entries:
            if e["tau"] is not None:
                ax.annotate(f"τ={e['tau']:g}", (e["lpips"], e["psnr"]),
                            textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel("LPIPS (lower is better)")
    ax.set_ylabel("PSNR [dB] (higher is better)")
    ax.set_title("Perception–distortion")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _means_table(result: EvalResult) -> str:
    cols = result.columns
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["method", "τ", "N", "images"] + [COLUMNS[c][0] for c in cols])
    body = []
    for e in result.summary():
        cells = [html.escape(str(e["method"])), "-" if e["tau"] is None else f"{e['tau']:g}",
                 str(e["samples"]), str(e["images"])]
        for c in cols:
            v = e.get(c)
            cells.append("-" if v is None else COLUMNS[c][1].format(v))
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _image_metrics(result: EvalResult, name: str) -> str:
    parts = []
    for row in result.rows:
        if row["image"] != name:
            continue
        label = html.escape(str(row["method"])) + (f" {_tau_text(row['tau'])}"
                                                   if row["tau"] is not None else "")
        vals = [f"{COLUMNS[c][0]} {COLUMNS[c][1].format(row[c])}" for c in ("psnr", "ssim",
                "lpips") if row.get(c) is not None and not np.isnan(row[c])]
        parts.append(f"<li><b>{label}</b>: {html.escape(', '.join(vals))}</li>")
    return f"<ul class='m'>{''.join(parts)}</ul>"


_CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.row { display: flex; flex-wrap: wrap; gap: 6px; }
figure { margin: 0; }
figure img { image-rendering: pixelated; display: block; }
figcaption { font-size: 0.8em; text-align: center; }
ul.m { font-size: 0.8em; margin: 0.3em 0 1.2em; }
pre { background: #f4f4f4; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
"""


def write_report(result: EvalResult, directory: str | os.PathLike) -> Path:
    """Write ``directory/index.html`` and return its path."""
    require_matplotlib()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    info = result.info
    title = f"sdflow eval {result.mode}"
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(title)}</h1>"]
    model = info.get("model")
    if model:
        out.append(f"<p>Model: {html.escape(str(model.get('path')))} "
                   f"(sha256 {html.escape(str(model.get('sha256')))})</p>")
    dataset = info.get("dataset", {})
    out.append(f"<p>Data: {html.escape(json.dumps(dataset))}</p>")
    out.append("<h2>Means</h2>" + _means_table(result))
    plot = perception_distortion_png(result)
    if plot is not None:
        out.append("<h2>Perception–distortion</h2>"
                   f"<img alt='PSNR against LPIPS' src='{_png_data_uri(plot)}'>")
    else:
        out.append("<p>No perception–distortion plot: LPIPS was not computed.</p>")
    if result.figures:
        out.append("<h2>Crops</h2>")
    for figure in result.figures:
        out.append(f"<h3>{html.escape(figure.name)}</h3><div class='row'>")
        for panel in figure.panels:
            h, w = panel.image.shape[:2]
            zoom = 2 if max(h, w) <= 128 else 1
            out.append(f"<figure><img alt='{html.escape(panel.label)}' width='{w * zoom}' "
                       f"height='{h * zoom}' src='{_png_data_uri(_image_png(panel.image))}'>"
                       f"<figcaption>{html.escape(panel.label)}</figcaption></figure>")
        out.append("</div>" + _image_metrics(result, figure.name))
    protocol = {k: v for k, v in info.items() if k != "dataset"}
    out.append("<h2>Protocol</h2><pre>" + html.escape(json.dumps(protocol, indent=2)) + "</pre>")
    out.append("<h2>Table</h2><pre>" + html.escape(format_table(result)) + "</pre>")
    out.append("</body></html>")
    path = directory / REPORT_NAME
    tmp = path.with_name(f".{REPORT_NAME}.tmp")
    tmp.write_text("\n".join(out), encoding="utf-8")
    os.replace(tmp, path)
    return path
