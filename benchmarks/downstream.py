"""The downstream test: does a degradation model's LR help an SR network on real photos?

    python benchmarks/downstream.py [--model NAME_OR_PATH] [--baseline NAME_OR_PATH]
        [--iterations 1500]
        [--hr-dirs DIR ...] [--val ../shared/data/RealSR_x4/val] [--work runs/downstream]

One fixed SR network (sdflow.evaluation.downstream.DownstreamSR, L1, fixed seed and
iterations) is trained on pairs made from the same clean HR photos by each degradation
source: (a) MATLAB bicubic x1/4, (b) `sdflow make-pairs` with the baseline downscaler
(`--baseline`, default the registered gaussian-fit-realsr-x4: a Gaussian blur fitted by
unpaired statistics) at tau 0, (c) with the model at tau 0 and at tau 0.8 (one sample per
image, component drawn per image). Each trained network
super-resolves the real LR of `--val` and is scored against its HR with the protocol of
`sdflow eval folders` (Y PSNR/SSIM with shave 4, LPIPS-alex). Only the pairs differ
between rows. The HR side defaults to every clean HR set in ../shared/data (RealSR
train/HR, BSD100, Set14, Set5, skimage photos), never val/.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from sdflow import registry
from sdflow.evaluation import EvalOptions, EvalResult, evaluate_folders, format_table
from sdflow.evaluation.downstream import DownstreamConfig, super_resolve_folder, train_downstream
from sdflow.imageio import read_image, write_image
from sdflow.inference.inputs import collect_inputs
from sdflow.inference.metadata import ModelIdentity
from sdflow.inference.pairs import PairOptions, hr_box, make_pairs
from sdflow.metrics import imresize_uint8

DATA = Path("../shared/data")
HR_DIRS = [DATA / "RealSR_x4/train/HR", DATA / "BSD100_x4/HR", DATA / "Set14_x4/HR",
           DATA / "Set5_x4/HR", DATA / "skimage_photos/HR"]


def bicubic_pairs(hr_dirs: list[Path], out: Path) -> None:
    jobs, errors = collect_inputs([str(d) for d in hr_dirs])
    if errors:
        raise SystemExit("\n".join(errors))
    for job in jobs:
        image = read_image(job.source)
        y0, x0, y1, x1 = hr_box(image, 4)
        hr = image.rgb[y0:y1, x0:x1]
        name = f"{job.rel.with_suffix('').as_posix()}.png"
        write_image(out / "HR" / name, hr, overwrite=True)
        write_image(out / "LR" / name, imresize_uint8(hr, scale=0.25), overwrite=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a model that downscales (default: the "
                    "registered downscaling default)")
    ap.add_argument("--baseline", default=registry.DEFAULT_DS_BASELINE,
                    help="a second downscaler, one row at tau 0 ('none': no row)")
    ap.add_argument("--hr-dirs", nargs="+", type=Path, default=HR_DIRS)
    ap.add_argument("--val", type=Path, default=DATA / "RealSR_x4/val")
    ap.add_argument("--work", type=Path, default=Path("runs/downstream"))
    ap.add_argument("--iterations", type=int, default=DownstreamConfig.iterations)
    ap.add_argument("--weights", default="../shared/weights")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--only", nargs="+", choices=("bicubic", "baseline", "tau0", "tau0.8"),
                    help="run these rows only; rows finished before (their rows.json in "
                    "--work, same iterations and model) are read back, not re-run")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = DownstreamConfig(iterations=args.iterations)
    resolved = registry.resolve(args.model, "ds")
    model = registry.load(args.model, task="ds")
    model_id = ModelIdentity(resolved.name, registry.sha256_of(resolved))
    # key -> (row label, downscaler and its identity, tau); bicubic has no downscaler
    sources = {"bicubic": ("bicubic x1/4", None, None, None)}
    if args.baseline.lower() != "none":
        base_resolved = registry.resolve(args.baseline, "ds")
        sources["baseline"] = (f"{base_resolved.name} tau 0",
                               registry.load(args.baseline, task="ds"),
                               ModelIdentity(base_resolved.name,
                                             registry.sha256_of(base_resolved)), 0.0)
    sources["tau0"] = (f"{resolved.name} tau 0", model, model_id, 0.0)
    sources["tau0.8"] = (f"{resolved.name} tau 0.8", model, model_id, 0.8)
    rows = []
    for key, (label, downscaler, identity, tau) in sources.items():
        folder = args.work / label.replace(" ", "_").replace("/", "")
        stamp = {"iterations": cfg.iterations,
                 "model_sha256": None if identity is None else identity.sha256}
        done = folder / "rows.json"
        if done.is_file() and json.loads(done.read_text())["stamp"] == stamp:
            rows.extend(json.loads(done.read_text())["rows"])
            print(f"{label}: read back from {done}", file=sys.stderr)
            continue
        if args.only and key not in args.only:
            continue
        start = time.monotonic()
        if tau is None:
            bicubic_pairs(args.hr_dirs, folder / "pairs")
        else:
            jobs, _ = collect_inputs([str(d) for d in args.hr_dirs])
            make_pairs(downscaler, identity, jobs, PairOptions(tau=tau, seed=0),
                       folder / "pairs", progress_enabled=False)
        print(f"{label}: pairs in {time.monotonic() - start:.0f} s; training "
              f"{cfg.iterations} iterations", file=sys.stderr)
        start = time.monotonic()
        net = train_downstream(folder / "pairs", cfg, log=lambda t: print(t, file=sys.stderr))
        train_s = time.monotonic() - start
        super_resolve_folder(net, args.val / "LR", folder / "sr")
        result = evaluate_folders(folder / "sr", args.val / "HR",
                                  EvalOptions(weights_dir=args.weights),
                                  lr_dir=args.val / "LR", method=label.replace(" ", "_"))
        rows.extend(result.rows)
        done.write_text(json.dumps({"stamp": stamp, "train_seconds": round(train_s),
                                    "rows": result.rows}, indent=1))
        print(f"{label}: trained in {train_s:.0f} s", file=sys.stderr)
    if not rows:
        raise SystemExit("no rows run or finished")
    print(format_table(EvalResult(mode="folders", rows=rows, info={})))


if __name__ == "__main__":
    main()
