"""One SR graph on each CPU runtime, in one process (prints figures; not a test).

    python benchmarks/backends.py [--model sdflow-lite-realsr-x4] [--threads 2] [--repeats 3]

The model's prepared PyTorch module, its exported ONNX graph in ONNX Runtime, and (if the
``openvino`` package is installed) the same graph in OpenVINO at f32 and at its CPU
default precision hint (bf16 on CPUs with native bf16), alternating, on the SR of a real
RealSR LR at tau 0 (``val/LR/Canon_031.png``, 128 -> 512). Printed: median seconds, the
ratio to PyTorch, and the largest difference from PyTorch's output in [0, 1] units.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "RealSR_x4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sdflow-lite-realsr-x4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import onnxruntime as ort

    import sdflow
    from sdflow.export.onnx import SRGraph, export_onnx
    from sdflow.hardware import cpu_features
    from sdflow.imageio import image_to_tensor, read_image
    from sdflow.models.base import StochasticSR

    print(f"CPU: {cpu_features().describe()}; {args.threads} threads; model {args.model}",
          flush=True)
    model = sdflow.load(args.model)
    graph = SRGraph(sdflow.prepare(model)).eval()
    x = ((image_to_tensor(read_image(DATA / "val/LR/Canon_031.png").rgb) + 1) / 2).contiguous()
    feeds = {"image": x.numpy()}
    torch_args = (x,)
    if isinstance(model, StochasticSR):
        noise = torch.zeros(model.sr_latent_shape(x.shape[2], x.shape[3]))
        feeds["noise"], torch_args = noise.numpy(), (x, noise)
    path = Path(tempfile.mkdtemp(prefix="sdflow-backends-")) / "sr.onnx"
    export_onnx(model, path, "sr")

    def run_torch() -> np.ndarray:
        with torch.no_grad():
            return graph(*torch_args).numpy()

    runners = {"torch (prepared)": run_torch}
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    runners["onnxruntime"] = lambda: session.run(None, feeds)[0]
    try:
        import openvino as ov

        core = ov.Core()
        for label, hint in (("openvino f32", {"INFERENCE_PRECISION_HINT": "f32"}),
                            ("openvino default hint", {})):
            compiled = core.compile_model(str(path), "CPU",
                                          {"INFERENCE_NUM_THREADS": args.threads, **hint})
            runners[label] = lambda c=compiled: c(feeds)[0]
    except ImportError:
        print("openvino not installed: its rows are left out", flush=True)
    times: dict[str, list[float]] = {name: [] for name in runners}
    outputs = {}
    for name, fn in runners.items():
        outputs[name] = fn()  # warm-up
    for _ in range(args.repeats):
        for name, fn in runners.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["torch (prepared)"])
    for name in runners:
        sec = statistics.median(times[name])
        print(json.dumps({"backend": name, "seconds": round(sec, 3),
                          "speedup_vs_torch": round(base / sec, 2),
                          "max_abs_diff_vs_torch": float(np.abs(
                              outputs[name] - outputs["torch (prepared)"]).max())}),
              flush=True)


if __name__ == "__main__":
    main()
