"""Training-step speed of the shipped presets against their reference path (prints figures;
not a test).

    python benchmarks/training.py [--presets cpu_x4 da_cpu_x4] [--steps 5] [--threads 2]
                                  [--set data.batch_size=2]

For each preset and stage (SDFlow: stage 1 = NLL, content and domain terms; stage 2 = plus
the SR/DS samples, their discriminators and perceptual terms; DA: without / with the
adversarial terms) two trainers are built from the same seed: one steps with the config's
``speed`` section as it is (the optimised path), one with it off (``speed.*=false``: plain
eager fp32). Their steps
alternate in this one process, so machine noise hits both alike. Printed per case: median
seconds per step over ``--steps`` steps after one warm-up step each, the forward convolution
GMACs of one step of each path (counted, generator + discriminators + VGG), the achieved
GFLOP/s counting a step as 3x its forward (backward ~ 2x forward), the speed-up of the
optimised path, and the peak RSS of the process so far. The data: --data (LR/ and HR/).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time

import torch
from torch import nn

from sdflow.hardware import cpu_features
from sdflow.profiling import count_macs
from sdflow.training.config import load_config
from sdflow.training.trainer import Trainer


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stage_overrides(stage2: bool) -> list[str]:
    """Both objectives switch their adversarial terms on at ``loss.n_pre``."""
    return [f"loss.n_pre={0 if stage2 else 10**9}"]


class SteppedTrainer:
    """A trainer ready to step outside ``fit`` (no validation, no checkpoints)."""

    def __init__(self, preset: str, overrides: list[str], reference: bool, out_dir: str):
        self.reference = reference
        speed = ["speed.share_targets=false", "speed.batch_frozen_passes=false",
                 "speed.foreach_updates=false"] if reference else []
        cfg = load_config(preset, None, [f"run.out_dir={out_dir}", "data.val_dir=null",
                                         *overrides, *speed])
        self.cfg = cfg
        self.trainer = Trainer(cfg)
        self.trainer.start()
        self.batches = self.trainer.batches(0)
        self.times: list[float] = []

    def modules(self) -> nn.Module:
        task = self.trainer.task
        parts = [task.generator, task.discriminators, getattr(task.objective, "perceptual", None)]
        return nn.ModuleList([p for p in parts if p is not None])

    def step(self, record: bool = True) -> None:
        batch = next(self.batches)
        t0 = time.perf_counter()
        self.trainer.train_step(batch)
        elapsed = time.perf_counter() - t0
        if record:
            self.times.append(elapsed)


def bench_case(preset: str, stage2: bool, steps: int, extra: list[str]) -> dict:
    overrides = [*stage_overrides(stage2), *extra]
    with tempfile.TemporaryDirectory() as tmp_ref, tempfile.TemporaryDirectory() as tmp_opt:
        ref = SteppedTrainer(preset, overrides, True, tmp_ref)
        opt = SteppedTrainer(preset, overrides, False, tmp_opt)
        with count_macs(opt.modules()) as macs:
            opt.step(record=False)  # warm-up, counted
        with count_macs(ref.modules()) as ref_macs:
            ref.step(record=False)
        for _ in range(steps):
            ref.step()
            opt.step()
    cfg = opt.cfg
    gmac, ref_gmac = macs["total"] / 1e9, ref_macs["total"] / 1e9
    t_ref, t_opt = statistics.median(ref.times), statistics.median(opt.times)
    return {"preset": preset, "stage": 2 if stage2 else 1, "batch": cfg.data.batch_size,
            "lr_crop": cfg.data.lr_crop, "reference_fwd_gmac": round(ref_gmac, 2),
            "optimised_fwd_gmac": round(gmac, 2),
            "reference_s": round(t_ref, 3), "optimised_s": round(t_opt, 3),
            "speedup": round(t_ref / t_opt, 2),
            "reference_gflops": round(6 * ref_gmac / t_ref, 1),
            "optimised_gflops": round(6 * gmac / t_opt, 1),
            "optimised_it_per_s": round(1 / t_opt, 2), "peak_rss_mb": round(peak_rss_mb())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["cpu_x4", "da_cpu_x4"])
    ap.add_argument("--stages", nargs="+", type=int, default=[1, 2], choices=[1, 2])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="../shared/data/RealSR_x4/train",
                    help="a folder with LR/ and HR/ (unpaired crops are drawn from each)")
    ap.add_argument("--weights", default="../shared/weights", help="VGG16/LPIPS weights")
    ap.add_argument("--set", action="append", default=[], dest="extra",
                    help="extra config overrides, e.g. data.batch_size=2")
    args = ap.parse_args()
    data = [f"data.lr_dirs={json.dumps([f'{args.data}/LR'])}",
            f"data.hr_dirs={json.dumps([f'{args.data}/HR'])}",
            f"run.weights_dir={json.dumps(args.weights)}"]
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; CPU: "
          f"{cpu_features().describe()}")
    for preset in args.presets:
        for stage in args.stages:
            print(json.dumps(bench_case(preset, stage == 2, args.steps,
                                        [f"run.threads={args.threads}", *data, *args.extra])),
                  flush=True)


if __name__ == "__main__":
    main()
