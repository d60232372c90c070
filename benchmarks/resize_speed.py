"""Speed of ``imresize``'s two paths in one process (prints figures; not a test).

    python benchmarks/resize_speed.py [--threads 2] [--repeats 50] [--batch 8] [--size 96]

The general path (MATLAB's weights, one gather per tap and axis) against the fast path
(mirror padding + ``interpolate(mode="bicubic", antialias=True)`` + crop) on a
training-sized float32 batch ``B x 3 x S x S``: x1/4 (what the training losses do to HR
crops and SR output) and x4 of the x1/4 result. Forward alone and forward + backward
(of a weighted sum, as a loss would). The calls of the two paths alternate, and the
median of ``--repeats`` each is reported, so that a busy machine slows both alike. The
figures in the docstring of ``sdflow.metrics.resize`` come from this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from sdflow.metrics import resize


def _time(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(x: torch.Tensor, scale: float, repeats: int) -> dict:
    factors = resize.fast_plan(x, scale=scale)
    if factors is None:
        raise SystemExit(f"{tuple(x.shape)} x{scale} does not take the fast path")
    paths = {"general": lambda t: resize._resize_general(t, scale, None, True),
             "fast": lambda t: resize._resize_interpolate(t, factors)}
    weight = torch.rand(paths["general"](x).shape)
    x64 = torch.rand(x.shape, dtype=torch.float64)
    err = (paths["fast"](x64) - paths["general"](x64)).abs().max().item()

    def forward(path: str) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                paths[path](x)
        return run

    def forward_backward(path: str) -> Callable[[], None]:
        def run() -> None:
            t = x.detach().requires_grad_(True)
            (paths[path](t) * weight).sum().backward()
        return run

    row: dict = {"input": list(x.shape), "scale": scale, "max_abs_diff_float64": err}
    for name, make in (("forward", forward), ("forward_backward", forward_backward)):
        runs = {p: make(p) for p in paths}
        for p in paths:  # warm-up
            runs[p]()
        times: dict[str, list[float]] = {p: [] for p in paths}
        for _ in range(repeats):
            for p in paths:
                times[p].append(_time(runs[p]))
        med = {p: statistics.median(v) for p, v in times.items()}
        row[name] = {"general_ms": round(1e3 * med["general"], 3),
                     "fast_ms": round(1e3 * med["fast"], 3),
                     "ratio": round(med["general"] / med["fast"], 2)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=96)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads,
                      "cpu": platform.processor() or platform.machine()}), flush=True)
    hr = torch.rand(args.batch, 3, args.size, args.size)
    print(json.dumps(compare(hr, 0.25, args.repeats)), flush=True)
    lr = resize.imresize(hr, scale=0.25)
    print(json.dumps(compare(lr, 4, args.repeats)), flush=True)


if __name__ == "__main__":
    main()
