"""Does tiling pay for speed, not only for memory? (prints figures; not a test)

    python benchmarks/tiles.py [--model NAME|paper] [--sides 128 256 384 512]
        [--lr-size 625x575] [--tiles auto 128 256 320] [--threads 2]

1. One large image, each tile choice in a fresh process (as the CLI runs one image): wall
   seconds, system CPU, minor page faults and peak RSS (``benchmarks/allocator.py``'s
   child, with the CLI's allocator setting).
2. Throughput against size, one process: SR at tau 0 of square LR crops of a real RealSR
   LR (``val/LR_full``, mirrored to the size), untiled, best of two calls per side after a
   warm-up; microseconds per LR pixel. A flat curve means a region's per-pixel cost does
   not depend on its size, so the fastest tiling is the one that computes the fewest
   pixels: untiled when the image fits, else the largest tile that fits (overlaps are
   computed twice).

``paper`` is a fresh model of the authors' architecture (benchmarks/performance.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "RealSR_x4"


def load(name: str):
    import sdflow

    if name == "paper":
        from performance import build

        return sdflow.prepare(build("paper"))
    return sdflow.prepare(sdflow.load(name))


def throughput_curve(name: str, sides: list[int]) -> None:
    from sdflow.imageio import image_to_tensor, read_image

    lr = read_image(sorted((DATA / "val/LR_full").glob("*.png"))[0]).rgb
    side = max(sides)
    mirrored = np.concatenate([lr, lr[::-1]], 0)
    reps = (-(-side // mirrored.shape[0]), -(-side // mirrored.shape[1]), 1)
    big = np.tile(mirrored, reps)
    model = load(name)
    with torch.no_grad():
        model.sr(image_to_tensor(np.ascontiguousarray(big[:64, :64])), 0.0)  # warm-up
        for s in sides:
            x = image_to_tensor(np.ascontiguousarray(big[:s, :s]))
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                model.sr(x, 0.0)
                times.append(time.perf_counter() - t0)
            print(json.dumps({"model": name, "lr_side": s, "seconds": round(min(times), 3),
                              "us_per_lr_pixel": round(min(times) / s / s * 1e6, 2)}),
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sdflow-lite-realsr-x4")
    ap.add_argument("--sides", nargs="*", type=int, default=[128, 256, 384, 512])
    ap.add_argument("--lr-size", default="625x575", help="LR width x height of part 1")
    ap.add_argument("--tiles", nargs="*", default=["auto", "128", "256", "320"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sdflow.allocator import keep_freed_memory
    from sdflow.hardware import cpu_features

    keep_freed_memory()
    print(f"CPU: {cpu_features().describe()}; {args.threads} threads; torch "
          f"{torch.__version__}", flush=True)
    # Part 1 first: a child's peak RSS starts at its parent's (Linux keeps the high-water
    # mark across fork and exec), so the children start before this process grows.
    for tile in args.tiles if args.model != "paper" else []:  # registered models only
        cmd = [sys.executable, str(Path(__file__).with_name("allocator.py")), "--model",
               args.model, "--lr-size", args.lr_size, "--threads", str(args.threads),
               "--_child", "1", "x"]
        if tile != "auto":
            cmd += ["--tile", tile]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({"lr_size": args.lr_size, "tile": tile, **{
            k: row[k] for k in ("seconds", "system_s", "minor_faults", "peak_rss_mb")}}),
            flush=True)
    if args.sides:
        throughput_curve(args.model, args.sides)


if __name__ == "__main__":
    main()
