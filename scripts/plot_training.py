"""Plot a training run's curves from its metrics.jsonl (needs matplotlib: the `report` extra).

    python scripts/plot_training.py RUN_DIR [--out RUN_DIR/curves.png] [--smooth 10]

Top row: the generator's loss terms (smoothed) and bits/dim; bottom row: validation PSNR
and LPIPS of SR at tau 0 / 0.8 and of DS at tau 0 next to bicubic on the same crops.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def smooth(values: list[float], k: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if k <= 1 or len(v) < k:
        return v
    return np.convolve(v, np.ones(k) / k, mode="valid")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--smooth", type=int, default=10)
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text()
               .splitlines() if line.strip()]
    train = [r for r in records if r["type"] == "train" and not r.get("skipped")]
    val = [r for r in records if r["type"] == "val"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    it = np.array([r["iteration"] for r in train])
    k = args.smooth
    ax = axes[0, 0]
    for key in ("nll_hr", "nll_lr", "content", "domain", "adversarial", "low_frequency"):
        pts = [(r["iteration"], r[key]) for r in train if key in r]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ys = smooth(list(ys), k)
            ax.plot(np.asarray(xs)[len(xs) - len(ys):], ys, label=key)
    ax.set_title(f"generator loss terms (moving mean of {k} logged steps)")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for key in ("bpd_hr", "bpd_lr"):
        ys = smooth([r[key] for r in train if key in r], k)
        ax.plot(it[len(it) - len(ys):], ys, label=f"train {key}")
    for key in ("bpd_hr", "bpd_lr"):
        if val and key in val[0]:
            ax.plot([r["iteration"] for r in val], [r[key] for r in val], "o--",
                    label=f"val {key}")
    ax.set_title("bits per dimension")
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    vi = [r["iteration"] for r in val]
    for ax, metric, keys in (
        (axes[1, 0], "PSNR (dB)", ("sr_t0.0_psnr", "sr_t0.8_psnr", "bicubic_psnr",
                                   "ds_t0.0_psnr", "ds_bicubic_psnr")),
        (axes[1, 1], "LPIPS", ("sr_t0.0_lpips", "sr_t0.8_lpips", "bicubic_lpips")),
    ):
        for key in keys:
            if val and key in val[0]:
                style = "--" if "bicubic" in key else "-o"
                ax.plot(vi, [r[key] for r in val], style, label=key)
        ax.set_title(f"validation {metric} ({args.run_dir.name})")
        ax.set_xlabel("iteration")
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = args.out or args.run_dir / "curves.png"
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
