"""glibc keeping freed memory (sdflow.allocator) versus its default, for one large SR
(prints figures; not a test).

    python benchmarks/allocator.py [--model NAME] [--lr-size 400x300] [--threads 2] [--runs 2]

Each run is a fresh process (the allocator setting holds for a whole process): the same
tiled SR of a real LR (RealSR val/LR_full, reflect-padded to the size), default allocator
and kept-memory alternating, printing wall seconds, user and system CPU seconds, major and
minor page faults and peak RSS of each, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "RealSR_x4"


def child(model_name: str, width: int, height: int, keep: bool, tile: int | None) -> None:
    import torch

    import sdflow
    from sdflow.allocator import keep_freed_memory
    from sdflow.imageio import from_array, read_image
    from sdflow.inference import process

    applied = keep_freed_memory() if keep else False
    files = sorted((DATA / "val/LR_full").glob("*.png"))
    lr = read_image(files[0]).rgb
    reps = (-(-height // lr.shape[0]), -(-width // lr.shape[1]), 1)
    import numpy as np

    big = np.tile(np.concatenate([lr, lr[::-1]], 0), (reps[0], reps[1], 1))[:height, :width]
    model = sdflow.prepare(sdflow.load(model_name))
    image = from_array(np.ascontiguousarray(big))
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    with torch.no_grad():
        process(model, image, "sr", tau=0.0, tile=tile)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"keep_freed_memory": keep, "applied": applied,
                      "seconds": round(time.perf_counter() - t0, 2),
                      "user_s": round(r1.ru_utime - r0.ru_utime, 2),
                      "system_s": round(r1.ru_stime - r0.ru_stime, 2),
                      "minor_faults": r1.ru_minflt - r0.ru_minflt,
                      "major_faults": r1.ru_majflt - r0.ru_majflt,
                      "peak_rss_mb": round(r1.ru_maxrss / 1024)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sdflow-lite-realsr-x4")
    ap.add_argument("--lr-size", default="400x300", help="LR width x height")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=2, help="pairs of runs")
    ap.add_argument("--tile", type=int, default=None, help="LR tile (default: automatic)")
    ap.add_argument("--_child", nargs=2, metavar=("KEEP", "SIZE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    width, height = (int(v) for v in args.lr_size.lower().split("x"))
    if args._child:
        import torch

        torch.set_num_threads(args.threads)
        child(args.model, width, height, args._child[0] == "1", args.tile)
        return
    from sdflow.hardware import cpu_features

    print(f"CPU: {cpu_features().describe()}; {args.threads} threads; LR {width}x{height} -> "
          f"{4 * width}x{4 * height}", flush=True)
    results: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(args.runs):
        for keep in (False, True):
            cmd = [sys.executable, __file__, "--model", args.model, "--lr-size", args.lr_size,
                   "--threads", str(args.threads), "--_child", "1" if keep else "0", "x"]
            if args.tile is not None:
                cmd += ["--tile", str(args.tile)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            results[keep].append(row)
            print(json.dumps(row), flush=True)
    best = {k: min(r["seconds"] for r in v) for k, v in results.items()}
    rss = {k: max(r["peak_rss_mb"] for r in v) for k, v in results.items()}
    print(json.dumps({"speedup_keep_vs_default": round(best[False] / best[True], 2),
                      "peak_rss_ratio_keep_vs_default": round(rss[True] / rss[False], 2)}))


if __name__ == "__main__":
    main()
