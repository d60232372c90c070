"""Training-step speed of the shipped presets (prints figures; not a test).

    python benchmarks/training.py [--presets paper_x4 cpu_x4] [--steps 3] [--threads 2]

For each preset: median seconds per iteration over ``--steps`` timed iterations after one
warm-up, in stage 1 (NLL, content, domain terms) and in stage 2 (plus SR/DS samples and
their discriminators), at the preset's batch and crop size, with peak RSS. Data are the
preset's folders (RealSR under ../shared by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time

import torch

from sdflow.training.config import load_config
from sdflow.training.ema import EMA
from sdflow.training.trainer import Trainer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(preset: str, stage2: bool, steps: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(preset, None, [f"run.out_dir={tmp}", "data.val_dir=null",
                                         f"loss.n_pre={0 if stage2 else 10**9}", *extra])
        trainer = Trainer(cfg)
        trainer.task.initialize(trainer._init_batch())
        trainer.ema = EMA(trainer.generator, cfg.optim.ema_decay)
        batches = trainer._loader(0)
        times = []
        for i in range(steps + 1):
            batch = next(batches)
            t0 = time.perf_counter()
            trainer._step(batch, trainer._g_call, trainer._d_call)
            trainer.iteration += 1
            if i > 0:
                times.append(time.perf_counter() - t0)
        sec = statistics.median(times)
        return {"preset": preset, "stage": 2 if stage2 else 1,
                "batch": cfg.data.batch_size, "lr_crop": cfg.data.lr_crop,
                "sec_per_it": round(sec, 3), "it_per_s": round(1 / sec, 3),
                "samples_per_s": round(cfg.data.batch_size / sec, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["cpu_x4", "paper_x4"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], dest="extra",
                    help="extra config overrides, e.g. data.batch_size=4")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for preset in args.presets:
        for stage2 in (False, True):
            res = time_steps(preset, stage2, args.steps, args.extra)
            res["peak_rss_mb"] = round(peak_rss_mb())
            print(json.dumps(res))


if __name__ == "__main__":
    main()
