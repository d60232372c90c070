"""Speed and memory of SR inference, tiled and untiled (not a test).

    python benchmarks/inference.py --preset lite
    python benchmarks/inference.py --model model.safetensors --threads 2
    python benchmarks/inference.py --preset paper --calibrate    # bytes per pixel
    python benchmarks/inference.py --preset lite --exactness     # overlap vs error

Each case runs in a fresh subprocess so that its peak RSS (ru_maxrss) is its own. Cases:
SR of a 128x128 LR (``val/LR/Canon_031.png``) and of the largest image of
``../shared/data/RealSR_x4/val/LR_full/``, each untiled and tiled (``--tile``, default
128 LR pixels, default overlap). A fresh model of ``--preset`` (random weights with
data-initialised ActNorm) is built unless ``--model`` names a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "src"))  # this checkout's sdflow, not an installed one


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _model(args):
    import torch

    import sdflow
    from sdflow.imageio import image_to_tensor, read_image
    from sdflow.models import SDFlow, SDFlowConfig

    if args.model:
        return sdflow.prepare(sdflow.load(args.model))  # as sdflow sr runs it
    model = SDFlow(SDFlowConfig.preset(args.preset), seed=0)
    hr = image_to_tensor(read_image(SHARED / "data/RealSR_x4/val/HR/Canon_031.png").rgb)
    hr = hr[:, :, 200:264, 200:264]
    model.initialize_actnorm(hr, torch.nn.functional.avg_pool2d(hr, 4))
    return sdflow.prepare(model)


def child(args) -> None:
    """One case; prints a JSON line."""
    import torch

    from sdflow.imageio import from_array, read_image
    from sdflow.inference import pipeline

    torch.set_num_threads(args.threads)
    model = _model(args)
    image = read_image(args.image)
    if args.crop:
        image = from_array(image.rgb[: args.crop, : args.crop])
    base = _rss_mb()
    start = time.perf_counter()
    res = pipeline.process(model, image, args.task, tau=0.8, tile=args.tile,
                           generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    h, w = image.size
    print(json.dumps({"image": f"{Path(args.image).name}", "lr": f"{w}x{h}",  # the input
                      "tile": res.tile, "tiles": res.tiles, "overlap": res.overlap,
                      "seconds": round(seconds, 2), "peak_rss_mb": round(peak),
                      "rss_before_mb": round(base), "lr_pixels": h * w}))


def run_case(args, image: Path, tile: int, crop: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--image", str(image), "--tile", str(tile),
           "--threads", str(args.threads), "--preset", args.preset, "--task", args.task]
    if args.model:
        cmd += ["--model", args.model]
    if crop:
        cmd += ["--crop", str(crop)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={
        "PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    if out.returncode != 0:
        raise SystemExit(f"case failed: {' '.join(cmd)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def largest_lr() -> Path:
    from PIL import Image

    files = sorted((SHARED / "data/RealSR_x4/val/LR_full").glob("*.png"))
    return max(files, key=lambda p: (lambda s: s[0] * s[1])(Image.open(p).size))


def calibrate(args) -> None:
    """Peak activation memory per input pixel (untiled; LR pixels for SR, HR pixels for
    --task ds) vs the planner's estimate."""
    from sdflow.inference.tiling import bytes_per_pixel

    model = _model(args)
    est = bytes_per_pixel(model, args.task)
    crops = (64, 128, 192) if args.task == "sr" else (256, 384, 512)
    image = SHARED / ("data/RealSR_x4/val/LR_full/Nikon_031.png" if args.task == "sr"
                      else "data/RealSR_x4/val/HR/Canon_031.png")
    rows = [run_case(args, image, 0, crop=c) for c in crops]
    for r in rows:
        print(f"  input {r['lr']}: peak {r['peak_rss_mb']} MB, before {r['rss_before_mb']} MB")
    (a, b) = rows[0], rows[-1]
    slope = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 2**20 / (b["lr_pixels"] - a["lr_pixels"])
    unit = "LR" if args.task == "sr" else "HR"
    print(f"measured {slope:.0f} bytes per {unit} pixel (peak RSS slope); planner estimate "
          f"{est:.0f}")


def exactness(args) -> None:
    """Max |tiled - untiled| at tau = 0 for several overlaps (8-bit grey levels). Meant
    for a trained --model: a fresh model's couplings start as the identity."""
    import torch

    from sdflow.imageio import image_to_tensor, read_image
    from sdflow.inference import tiled_downscale, tiled_sr

    torch.set_num_threads(args.threads)
    model = _model(args)
    y = image_to_tensor(read_image(SHARED / "data/RealSR_x4/val/LR/Canon_031.png").rgb)
    y = y[:, :, :96, :96]
    with torch.no_grad():
        ref = model.sr(y, 0.0).clamp(-1, 1)
        for ov in (0, 2, 4, 8, 16, 24):
            out = tiled_sr(model, y, 0.0, tile=32, tile_overlap=ov).clamp(-1, 1)
            print(f"  overlap {ov:3d} LR px: max |tiled - untiled| = "
                  f"{(out - ref).abs().max().item() * 127.5:.4f} grey levels")
    if not hasattr(model, "downscale"):
        return
    x = image_to_tensor(read_image(SHARED / "data/RealSR_x4/val/HR/Canon_031.png").rgb)
    x = x[:, :, :384, :384]
    print("downscaling /4 at tau 0, component 0, tiles of 128 HR px:")
    with torch.no_grad():
        ref = model.downscale(x, 0.0, component=0).clamp(-1, 1)
        for ov in (0, 8, 16, 32, 48, 64, 96):
            out = tiled_downscale(model, x, 0.0, component=0, tile=128,
                                  tile_overlap=ov).clamp(-1, 1)
            print(f"  overlap {ov:3d} HR px: max |tiled - untiled| = "
                  f"{(out - ref).abs().max().item() * 127.5:.4f} grey levels")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper", choices=("paper", "lite"))
    p.add_argument("--model", help="a checkpoint instead of a fresh --preset model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tile", type=int, default=128, help="tile for the tiled runs (LR px)")
    p.add_argument("--skip-large-untiled", action="store_true",
                   help="leave out the untiled run on the largest image (slow for paper)")
    p.add_argument("--calibrate", action="store_true",
                   help="measure peak memory per pixel against the tile planner's estimate")
    p.add_argument("--task", default="sr", choices=("sr", "ds"),
                   help="for --calibrate: SR or downscaling (the timed cases are SR)")
    p.add_argument("--exactness", action="store_true",
                   help="max |tiled - untiled| at tau 0 for several overlaps")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--image", help=argparse.SUPPRESS)
    p.add_argument("--crop", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    what = args.model or f"fresh '{args.preset}' model"
    task = "downscaling" if args.calibrate and args.task == "ds" else "SR x4"
    tau = "0 (tiled vs untiled)" if args.exactness else "0.8"
    print(f"{task} at tau {tau} with {what}, {args.threads} thread(s)")
    if args.calibrate:
        return calibrate(args)
    if args.exactness:
        return exactness(args)
    small = SHARED / "data/RealSR_x4/val/LR/Canon_031.png"
    large = largest_lr()
    cases = [(small, 0), (small, args.tile), (large, args.tile)]
    if not args.skip_large_untiled:
        cases.append((large, 0))
    print(f"{'image':16s} {'LR':>9s} {'tiling':>16s} {'seconds':>8s} {'peak RSS':>9s}")
    for image, tile in cases:
        r = run_case(args, image, tile)
        tiling = "untiled" if r["tile"] == 0 else f"{r['tiles']} x {r['tile']}+{r['overlap']}"
        print(f"{r['image']:16s} {r['lr']:>9s} {tiling:>16s} {r['seconds']:8.1f} "
              f"{r['peak_rss_mb']:6d} MB", flush=True)


if __name__ == "__main__":
    main()
