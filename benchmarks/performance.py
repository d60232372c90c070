"""SDFlow inference speed against the reference path (prints figures; not a test).

    python benchmarks/performance.py [--presets paper lite] [--repeats 3] [--threads 2]
        [--variants reference optimised bf16 compiled] [--tiled] [--profile]

For each preset (a fresh model: random weights, ActNorm initialised on real crops, every
coupling perturbed off the identity) and each case, SR 128 -> 512 (a real RealSR LR crop)
and DS 512 -> 128 (a real HR image), it prints the median seconds over ``--repeats`` runs
after a warm-up (whose time is printed too: it includes compilation), the conv GMACs, the
achieved GFLOP/s (2 FLOP per MAC; the header prints the machine's peak for a plain large
conv, ``sdflow.profiling.conv_peak_gflops``), and the ratio to the reference path measured in the
same process (the model itself, unprepared: plain eager fp32, every
optimisation off); the other variants run ``sdflow.prepare(model, ...)`` copies.
Variants other than the reference also print their largest difference from the reference
output and the PSNR of its 8-bit image against the reference's 8-bit image. ``--tiled``
adds SR of the largest LR in ``val/LR_full`` and of a 750x600 LR (3000x2400 output),
tiled, each in a fresh process so that its peak RSS is its own. Like the CLI, the process
first tells glibc to keep freed memory (``sdflow.allocator``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from sdflow.allocator import keep_freed_memory
from sdflow.diagnostics import perturb_parameters_
from sdflow.hardware import cpu_features
from sdflow.imageio import image_to_tensor, read_image, tensor_to_image
from sdflow.metrics import psnr
from sdflow.models import SDFlow, SDFlowConfig
from sdflow.models.prepare import prepare
from sdflow.profiling import conv_rates, count_macs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "RealSR_x4"
#: name -> keywords of sdflow.prepare, or None for the unprepared reference path
VARIANTS = {
    "reference": None,
    "optimised": {},
    "no_channels_last": {"channels_last": False},  # optimised, minus one choice
    "bf16": {"precision": "bf16"},
    "compiled": {"compile": True},  # the first call includes compilation
    "onnxruntime": "onnxruntime",  # SR only: the exported graph in ONNX Runtime
}


def build(preset: str) -> SDFlow:
    if preset.endswith(".safetensors"):  # a trained checkpoint instead of a fresh model
        import sdflow

        return sdflow.load(preset)
    model = SDFlow(SDFlowConfig.preset(preset), seed=0).eval()
    hr = image_to_tensor(read_image(DATA / "train/HR/Canon_002.png").rgb)[:, :, :128, :128]
    lr = image_to_tensor(read_image(DATA / "train/LR/Canon_001.png").rgb)[:, :, :32, :32]
    model.initialize_actnorm(hr, lr)
    return perturb_parameters_(model, std=0.005, generator=torch.Generator().manual_seed(0))


def inputs() -> dict[str, torch.Tensor]:
    return {"sr": image_to_tensor(read_image(DATA / "val/LR/Canon_031.png").rgb),
            "ds": image_to_tensor(read_image(DATA / "val/HR/Canon_031.png").rgb)}


def onnxruntime_runner(model: SDFlow, name: str = "sr"):
    """The model's SR graph in ONNX Runtime (exported to a temporary folder, not the cache)."""
    import tempfile

    from sdflow.export.onnx import export_onnx
    from sdflow.export.onnxruntime_backend import OnnxRuntimeStochasticSR

    path = Path(tempfile.mkdtemp(prefix="sdflow-bench-")) / f"{Path(name).stem}.onnx"
    export_onnx(model, path, "sr")
    return OnnxRuntimeStochasticSR(path, model)


def run_case(model: SDFlow, task: str, x: torch.Tensor, tau: float = 0.8) -> torch.Tensor:
    """SR or DS at ``tau`` from fixed seeds (the ONNX Runtime runner is given the same eps)."""
    with torch.no_grad():
        if task == "sr" and not isinstance(model, SDFlow):  # ONNX Runtime: the same eps
            shape = model.sr_latent_shape(x.shape[2], x.shape[3], x.shape[0])
            eps = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            return model.sr(x, tau, noise=eps)
        if task == "sr":
            return model.sr(x, tau, seed=0)
        return model.downscale(x, tau, component=5, seed=0)


def timed(fn, repeats: int) -> tuple[float, float, torch.Tensor]:
    """(first call s, median s of ``repeats`` later calls, output)."""
    t0 = time.perf_counter()
    out = fn()  # warm-up (and caches, compilation)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def bench_preset(preset: str, variants: list[str], repeats: int) -> None:
    model = build(preset)
    data = inputs()
    for task, x in data.items():
        with count_macs(model) as macs:
            run_case(model, task, x)
        gmac = macs["total"] / 1e9
        results = {}
        for name in variants:
            keywords = VARIANTS[name]
            if keywords == "onnxruntime":
                if task != "sr":
                    continue
                runner = onnxruntime_runner(model, preset)
            else:
                runner = model if keywords is None else prepare(model, **keywords)
            first, sec, out = timed(lambda task=task, x=x, m=runner: run_case(m, task, x),
                                    repeats)
            results[name] = (first, sec, out)
        _, ref_sec, ref_out = results.get("reference", (None, None, None))
        for name, (first, sec, out) in results.items():
            row = {"preset": preset, "case": "SR 128->512" if task == "sr" else "DS 512->128",
                   "variant": name, "seconds": round(sec, 3), "first_call_s": round(first, 2),
                   "gmac": round(gmac, 1),
                   "gflops": round(2 * gmac / sec, 1)}
            if ref_sec is not None:
                row["speedup_vs_reference"] = round(ref_sec / sec, 2)
                if name != "reference":
                    row["max_abs_diff"] = float((out - ref_out).abs().max())
                    row["psnr_vs_reference_8bit"] = round(psnr(
                        tensor_to_image(out), tensor_to_image(ref_out), color="rgb"), 2)
            print(json.dumps(row), flush=True)


def profile_preset(preset: str, top: int = 8) -> None:
    """Top operators by self CPU time of one optimised run of each case."""
    from torch.profiler import ProfilerActivity, profile

    model = prepare(build(preset))
    for task, x in inputs().items():
        run_case(model, task, x)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_case(model, task, x)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        shares = {e.key: round(100 * e.self_cpu_time_total / total, 1) for e in events[:top]}
        print(json.dumps({"preset": preset, "case": task, "profile_self_cpu_percent": shares}),
              flush=True)


def tiled_case(preset: str, which: str, tile: int) -> dict:
    """One tiled SR in this process; returns seconds and this process's peak RSS."""
    from sdflow.inference import tiled_sr

    model = prepare(build(preset))
    if which == "largest_val":
        files = sorted((DATA / "val/LR_full").glob("*.png"),
                       key=lambda p: read_image(p).size[0] * read_image(p).size[1])
        lr = image_to_tensor(read_image(files[-1]).rgb)
        name = files[-1].name
    else:  # 750 x 600 LR -> 3000 x 2400 SR: the largest real LR, reflect-padded to 600 rows
        files = sorted((DATA / "train/LR_full").glob("*.png"),
                       key=lambda p: read_image(p).size[0] * read_image(p).size[1])
        lr = image_to_tensor(read_image(files[-1]).rgb)[:, :, :600, :750]
        pad_h, pad_w = 600 - lr.shape[2], 750 - lr.shape[3]
        lr = torch.nn.functional.pad(lr, (0, pad_w, 0, pad_h), mode="reflect")
        name = f"{files[-1].name} padded to 750x600"
    t0 = time.perf_counter()
    with torch.no_grad():
        out = tiled_sr(model, lr, tau=0.8, tile=tile, generator=torch.Generator().manual_seed(0))
    sec = time.perf_counter() - t0
    return {"preset": preset, "case": f"SR tiled ({tile}) {name}",
            "lr": list(lr.shape[2:]), "sr": list(out.shape[-2:]), "seconds": round(sec, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["paper", "lite"],
                    help="SDFlow presets (fresh models) or .safetensors checkpoints")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiled", action="store_true")
    ap.add_argument("--tile", type=int, default=128, help="LR tile size for --tiled")
    ap.add_argument("--profile", action="store_true",
                    help="also print where the optimised path spends its time (torch.profiler, "
                    "top operators by self CPU time) for each case")
    ap.add_argument("--_tiled_case", nargs=2, metavar=("PRESET", "WHICH"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._tiled_case:
        print(json.dumps(tiled_case(*args._tiled_case, args.tile)), flush=True)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU: "
          f"{cpu_features().describe()}", flush=True)
    rates = conv_rates()
    print(json.dumps({"conv_peak_gflops": max(rates.values()), "conv_gflops": rates,
                      "allocator_keeps_memory": keep_freed_memory(),
                      "what": "3x3 conv 64->64, fp32, median of 5; the peak is the fastest"}),
          flush=True)
    for preset in args.presets:
        bench_preset(preset, args.variants, args.repeats)
        if args.profile:
            profile_preset(preset)
        if args.tiled:
            for which in ("largest_val", "3000x2400"):
                subprocess.run([sys.executable, __file__, "--threads", str(args.threads),
                                "--tile", str(args.tile), "--_tiled_case", preset, which],
                               check=True)


if __name__ == "__main__":
    main()
