"""SDFlow against the authors' released modules on the same weights, one process (prints
figures; not a test).

    python benchmarks/authors.py --authors-code DIR [--weights DIR] [--repeats 5] [--threads 2]
        [--variants prepared bf16 onnxruntime]

``--authors-code`` is a checkout of https://github.com/sunwj/sdflow (measured at commit
30c6433; it needs scipy and einops, which sdflow does not). Nothing of it is part of this
repository: the script imports their ``models`` and ``modules`` from that folder and runs
them exactly as their ``sdflow_sr.py`` / ``sdflow_ds.py`` do, on the CPU instead of CUDA.
Their code is CUDA-only in two places: the scripts call ``.cuda()`` (not used here) and
the HF prior passes ``tensor.get_device()`` as a device, which is -1 on a CPU; while their
modules run, ``Tensor.get_device`` answers the tensor's device instead (nothing else
changes, and our modules never run under it).

``--weights`` is a folder of the four state-dict files in the authors' layout
(default: the parity fixture, the paper architecture with random weights). Both sides read
the same files: theirs with ``load_state_dict``, ours with ``sdflow.official.load_official``
and then ``sdflow.prepare`` (the default preparation the CLI uses). Cases: SR 128 -> 512 of a
real RealSR LR at tau 0.8, DS 512 -> 128 of its HR at tau 0.8 (theirs as their script:
HR flow including the HF flow, then the degradation and LR flows). The two sides alternate,
``--repeats`` times each after a warm-up; medians, their ratio, our conv GFLOP/s against
the machine's best plain conv (``sdflow.profiling.conv_peak_gflops``), and the largest
difference from the authors' output at tau 0 (the same function; in [-1, 1] units).
Variants of ours: ``prepared`` (fp32, the default), ``bf16``
(``sdflow.prepare(precision="bf16")``: condition networks under bf16 autocast) and, for SR,
``onnxruntime`` (the exported SR graph, as ``sdflow sr --backend onnxruntime``). Like the
CLI, the process keeps freed memory (``sdflow.allocator``); both sides run under it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from sdflow.allocator import keep_freed_memory
from sdflow.hardware import cpu_features
from sdflow.models.prepare import prepare
from sdflow.official import OFFICIAL_FILES, load_official
from sdflow.profiling import conv_peak_gflops, count_macs

sys.path.insert(0, str(Path(__file__).resolve().parent))
from performance import inputs, onnxruntime_runner, run_case  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "official_parity"


@contextlib.contextmanager
def device_answers_device():
    """Their HF prior builds zeros on ``u.get_device()``; make that valid on a CPU."""
    original = torch.Tensor.get_device
    torch.Tensor.get_device = lambda self: self.device
    try:
        yield
    finally:
        torch.Tensor.get_device = original


class AuthorsModel:
    """The authors' four networks, built and called as their SR and DS scripts do."""

    def __init__(self, code: Path, weights: Path):
        sys.path.insert(0, str(code))
        import models  # noqa: PLC0415  (their files, importable only from that folder)
        import modules

        self.encoder = modules.LRImageEncoderFM(3, 3, is_downscale=False,
                                                with_uncertainty=False).eval()
        self.hr_net = models.HRFlow().eval()
        self.content_net = models.ContentFlow().eval()
        self.deg_net = models.DegFlow(3, 3, 16).eval()
        nets = {"lrencoder.pth": self.encoder, "hrnet.pth": self.hr_net,
                "contentnet.pth": self.content_net, "degnet.pth": self.deg_net}
        assert set(nets) == set(OFFICIAL_FILES)
        for name, net in nets.items():
            net.load_state_dict(torch.load(weights / name, map_location="cpu",
                                           weights_only=True))

    def sr(self, y: torch.Tensor, tau: float) -> torch.Tensor:
        with torch.no_grad(), device_answers_device():
            z = self.encoder(y)
            out, _ = self.hr_net(z, None, tau=tau, reverse=True)
        return out

    def downscale(self, x: torch.Tensor, tau: float) -> torch.Tensor:
        with torch.no_grad(), device_answers_device():
            z_hr, _ = self.hr_net(x, torch.zeros(1))
            deg, _ = self.deg_net(None, None, z_hr, tau=tau, reverse=True)
            out, _ = self.content_net(z_hr + deg, None, reverse=True)
        return out


def alternate(fns: dict[str, callable], repeats: int) -> dict[str, float]:
    """Median seconds of each function, called in turn ``repeats`` times after a warm-up."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-code", type=Path, required=True,
                        help="a checkout of github.com/sunwj/sdflow")
    parser.add_argument("--weights", type=Path, default=FIXTURE,
                        help="the four .pth files in the authors' layout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", nargs="+", default=["prepared"],
                        choices=["prepared", "bf16", "onnxruntime"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    allocator = keep_freed_memory()  # as the CLI does; both sides run under it

    theirs = AuthorsModel(args.authors_code, args.weights)
    reference = load_official(args.weights)
    ours = {name: runtime(reference, name) for name in args.variants}
    lr, hr = inputs()["sr"], inputs()["ds"]
    print(json.dumps({"threads": args.threads, "cpu": cpu_features().describe(),
                      "conv_peak_gflops": conv_peak_gflops(),
                      "allocator_keeps_memory": allocator,
                      "torch": torch.__version__}), flush=True)

    for case in ("SR 128->512", "DS 512->128"):
        task = "sr" if case.startswith("SR") else "ds"
        sr = task == "sr"
        x = lr if sr else hr
        with count_macs(reference) as macs, torch.no_grad():
            run_case(reference, task, x)
        gmac = macs["total"] / 1e9
        fns = {"authors": (lambda x=x: theirs.sr(x, 0.8)) if sr
               else (lambda x=x: theirs.downscale(x, 0.8))}
        fns.update({name: (lambda m=m, x=x, task=task: run_case(m, task, x))
                    for name, m in ours.items()
                    if sr or name != "onnxruntime"})
        with torch.no_grad():
            sec = alternate(fns, args.repeats)
            authors_tau0 = theirs.sr(lr, 0.0) if sr else None
            for name in fns:
                if name == "authors":
                    continue
                row = {"case": case, "variant": name, "authors_s": round(sec["authors"], 3),
                       "sdflow_s": round(sec[name], 3),
                       "speedup": round(sec["authors"] / sec[name], 2),
                       "sdflow_gmac": round(gmac, 1),
                       "sdflow_gflops": round(2 * gmac / sec[name], 1)}
                if sr:
                    row["max_abs_diff_tau0"] = float(
                        (run_case(ours[name], "sr", lr, 0.0) - authors_tau0).abs().max())
                print(json.dumps(row), flush=True)


def runtime(model, variant: str):
    """Our model as one of the variants: a prepared copy or the ONNX Runtime SR backend."""
    if variant == "onnxruntime":
        return onnxruntime_runner(model)
    return prepare(model, precision="bf16" if variant == "bf16" else "fp32")


if __name__ == "__main__":
    main()
