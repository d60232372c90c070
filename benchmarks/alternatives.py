"""Optimisations that were measured and not adopted (prints figures; not a test).

    python benchmarks/alternatives.py [--threads 2] [--steps 5] [--cases inference training]

Each against the eager path of the same process:

1. inference: ``torch.compile`` (inductor) of the `paper` model's HF condition network
   (8 RRDBs, the largest network of SR) on a 128x128 LR latent, with and without
   ``freezing`` (weights pre-packed for oneDNN). Median of ``--steps`` calls after the
   first, which is reported separately (it includes compilation).
2. training: ``cpu_x4`` stage-2 steps (a) with the coupling networks and the VGG features
   compiled (fwd + bwd through AOTAutograd), (b) with the discriminators and VGG under
   bfloat16 autocast, (c) as (b) plus the RRDB condition networks, (d) with every network
   in the channels-last memory format.

docs/performance.md gives the figures; none pays here, so the package does none of this.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed_calls(fn, steps: int) -> tuple[float, float]:
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(times[0], 2), round(statistics.median(times[1:]), 3)


def condition_net_inference(steps: int) -> None:
    import torch._inductor.config as inductor_config

    from sdflow.models import SDFlow, SDFlowConfig

    model = SDFlow(SDFlowConfig.preset("paper")).eval()
    net = model.hr_flow.split.flow.cond_net
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        first, eager = timed_calls(lambda: net(x), steps)
        print(json.dumps({"case": "paper HF condition net, 128x128", "path": "eager",
                          "first_s": first, "median_s": eager}), flush=True)
        for freezing in (False, True):
            torch._dynamo.reset()
            inductor_config.freezing = freezing
            compiled = torch.compile(net)
            first, median = timed_calls(lambda c=compiled: c(x), steps)
            diff = float((compiled(x) - net(x)).abs().max())
            print(json.dumps({"case": "paper HF condition net, 128x128",
                              "path": f"compiled, freezing={freezing}", "first_s": first,
                              "median_s": median, "speedup": round(eager / median, 2),
                              "max_abs_diff": diff}), flush=True)
        inductor_config.freezing = False


def _bf16_autocast(module: nn.Module) -> None:
    """Run ``module`` under bfloat16 autocast, returning fp32 (instance attribute)."""
    forward = module.forward

    def wrapped(*args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = forward(*args)
        return [o.float() for o in out] if isinstance(out, list) else out.float()

    module.forward = wrapped


def training_variant(variant: str, steps: int) -> tuple[float, float]:
    """(first step s, median step s) of ``cpu_x4`` stage 2 with ``variant`` applied."""
    import torch._dynamo
    from training import SteppedTrainer

    from sdflow.flows.coupling import CouplingNet
    from sdflow.nets.backbones import VGGPerceptualFeatures
    from sdflow.nets.rrdb import ConditionNet

    originals = CouplingNet.forward, VGGPerceptualFeatures.forward
    if variant == "compiled coupling nets + VGG":
        torch._dynamo.reset()
        torch._dynamo.config.cache_size_limit = 64  # one graph per coupling shape
        coupling, vgg = torch.compile(originals[0]), torch.compile(originals[1])
        CouplingNet.forward = lambda self, x: coupling(self, x)
        VGGPerceptualFeatures.forward = lambda self, x: vgg(self, x)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = SteppedTrainer("cpu_x4", ["loss.n_pre=0"], False, tmp)
            task = run.trainer.task
            d = task.discriminators
            if variant.startswith("bf16"):
                for m in (d.hr, d.lr, d.content, task.objective.perceptual.features):
                    _bf16_autocast(m)
                if "condition" in variant:
                    for m in task.generator.modules():
                        if isinstance(m, ConditionNet):
                            _bf16_autocast(m)
            if variant == "channels-last everywhere":
                run.modules().to(memory_format=torch.channels_last)
            for _ in range(steps + 1):
                run.step()
    finally:
        CouplingNet.forward, VGGPerceptualFeatures.forward = originals
    return run.times[0], statistics.median(run.times[1:])


TRAINING_VARIANTS = ("eager (optimised switches)", "compiled coupling nets + VGG",
                     "bf16 discriminators + VGG", "bf16 discriminators + VGG + condition nets",
                     "channels-last everywhere")


def training_steps(steps: int) -> None:
    base = None
    for variant in TRAINING_VARIANTS:
        first, median = training_variant(variant, steps)
        base = base or median
        print(json.dumps({"case": "cpu_x4 stage-2 step", "path": variant,
                          "first_s": round(first, 2), "median_s": round(median, 3),
                          "speedup": round(base / median, 2)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--cases", nargs="+", default=["inference", "training"],
                    choices=["inference", "training"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from sdflow.hardware import cpu_features

    print(f"torch {torch.__version__}, {args.threads} threads; CPU: {cpu_features().describe()}")
    if "inference" in args.cases:
        condition_net_inference(args.steps)
    if "training" in args.cases:
        training_steps(args.steps)


if __name__ == "__main__":
    main()
