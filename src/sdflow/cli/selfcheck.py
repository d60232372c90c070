"""``sdflow selfcheck``: build (or load) a model and verify, on a real image, that its flows
are exactly invertible and that their log-determinants match the autograd Jacobian."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sdflow.diagnostics import check_bijection, perturb_parameters_
from sdflow.errors import SDFlowError
from sdflow.flows import all_initialized
from sdflow.imageio import image_to_tensor, read_image
from sdflow.models import SDFLOW_PRESETS, SDFlow, SDFlowConfig, bits_per_dim
from sdflow.registry import load

ROUNDTRIP_TOL = 1e-9  # float64
LOGDET_TOL = 1e-8  # relative, float64


@dataclass
class Row:
    check: str
    value: float
    limit: float | None
    unit: str = ""

    @property
    def ok(self) -> bool:
        return self.limit is None or (np.isfinite(self.value) and self.value <= self.limit)


def register(sub) -> None:
    p = sub.add_parser(
        "selfcheck", help="verify a model's invertibility and log-determinants on an image",
        description="Build the model (or load --model), then check in float64 on crops of a "
        "real image that every flow inverts exactly and that its log-determinant equals the "
        "log|det| of the autograd Jacobian; also runs SR and downscaling once. Exit code 1 "
        "if a check fails.")
    p.add_argument("--image", help="an RGB image to check on (default: a synthetic pattern)")
    p.add_argument("--model", help="an sdflow checkpoint or registered model name (default: a "
                   "fresh model of --preset)")
    p.add_argument("--preset", default="paper", choices=sorted(SDFLOW_PRESETS),
                   help="architecture of the fresh model (default: paper)")
    p.add_argument("--crop", type=int, default=64,
                   help="HR crop size for round trips and SR/DS (multiple of 8; default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def _synthetic(size: int) -> np.ndarray:
    """A deterministic colour pattern with edges, gradients and texture."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    r = 0.5 + 0.5 * np.sin(12 * xx + 3 * yy)
    g = (xx + yy) / 2
    b = ((np.floor(xx * 8) + np.floor(yy * 8)) % 2) * 0.6 + 0.2
    return (np.stack([r, g, b], axis=2) * 255).round().astype(np.uint8)


def _center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    h, w = t.shape[2:]
    if h < size or w < size:
        raise SDFlowError(f"the image ({w}x{h}) is smaller than the crop {size}x{size}; "
                          "use --crop with a smaller size")
    top, left = (h - size) // 2, (w - size) // 2
    return t[:, :, top : top + size, left : left + size]


def run(args: argparse.Namespace) -> int:
    try:
        rows, header = _run_checks(args)
    except (SDFlowError, OSError, ValueError) as exc:
        print(f"sdflow selfcheck: error: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in rows if not r.ok]
    if args.json:
        print(json.dumps({**header, "passed": not failed,
                          "checks": [{**r.__dict__, "ok": r.ok} for r in rows]}, indent=2))
    else:
        for key, value in header.items():
            print(f"{key:12s} {value}")
        print()
        print(f"{'check':44s} {'value':>12s} {'limit':>10s}  result")
        for r in rows:
            limit = "" if r.limit is None else f"{r.limit:.0e}"
            print(f"{r.check:44s} {r.value:12.4g} {limit:>10s}  "
                  f"{'ok' if r.ok else 'FAIL'} {r.unit}")
        print()
        print("selfcheck " + ("passed" if not failed else f"FAILED ({len(failed)} checks)"))
    return 1 if failed else 0


def _run_checks(args: argparse.Namespace) -> tuple[list[Row], dict]:
    if args.crop % 8 or args.crop < 16:
        raise SDFlowError(f"--crop must be a multiple of 8 and >= 16, got {args.crop}")
    torch.manual_seed(args.seed)
    if args.image:
        image = read_image(args.image).rgb
        source = args.image
    else:
        image = _synthetic(max(args.crop, 64))
        source = "synthetic pattern"
    hr = _center_crop(image_to_tensor(image), args.crop).double()
    lr = F.avg_pool2d(hr, 4)

    t0 = time.perf_counter()
    if args.model:
        model = load(args.model, dtype=torch.float64)
        what = f"{args.model} ({model.checkpoint_info.architecture})"
        if not isinstance(model, SDFlow):
            raise SDFlowError(f"{args.model}: selfcheck applies to SDFlow models only")
    else:
        model = SDFlow(SDFlowConfig.preset(args.preset), seed=args.seed).double().eval()
        # A fresh model: initialise ActNorm on the image, then move every zero-initialised
        # coupling off the identity so the checks exercise the whole computation.
        model.initialize_actnorm(hr, lr)
        perturb_parameters_(model, std=0.005, generator=torch.Generator().manual_seed(args.seed))
        what = f"fresh '{args.preset}' model (random weights, perturbed; not trained)"
    if not all_initialized(model):
        raise SDFlowError("the model has uninitialised ActNorm layers")
    build_s = time.perf_counter() - t0
    header = {"model": what, "parameters": f"{model.num_parameters():,}", "image": source,
              "crop": f"HR {args.crop}x{args.crop}, LR {args.crop // 4}x{args.crop // 4}",
              "dtype": "float64", "torch": torch.__version__}

    rows: list[Row] = []
    # 1. log-det vs autograd Jacobian on tiny crops (the Jacobian is D x D).
    x8 = _center_crop(hr, 8)
    y4 = _center_crop(lr, 4)
    with torch.no_grad():
        z_c4 = model.content_from_lr(y4)
        z_d4 = model.lr_flow(y4)[0] - z_c4
    for name, layer, x, cond in (
        ("f_HR+f_HF, HR 3x8x8", model.hr_flow, x8, None),
        ("f_LR, LR 3x4x4", model.lr_flow, y4, None),
        ("f_Deg|z_c, 3x4x4", model.deg_flow, z_d4, z_c4),
    ):
        res = check_bijection(name, layer, x, cond)
        rows.append(Row(f"log-det vs Jacobian, {name}", res.logdet_error, LOGDET_TOL, "rel"))
        rows.append(Row(f"round trip, {name}", res.roundtrip_error, ROUNDTRIP_TOL, "abs"))

    # 2. exact reconstruction of whole crops through the model API.
    with torch.no_grad():
        z_c, z_h, lp_hr = model.encode_hr(hr)
        rows.append(Row(f"HR encode/decode ({args.crop}x{args.crop})",
                        float((model.decode_hr(z_c, z_h) - hr).abs().max()), ROUNDTRIP_TOL))
        z_cl, z_dl, lp_lr = model.encode_lr(lr)
        rows.append(Row(f"LR encode/decode ({args.crop // 4}x{args.crop // 4})",
                        float((model.decode_lr(z_cl, z_dl) - lr).abs().max()), ROUNDTRIP_TOL))
        t1 = time.perf_counter()
        sr0 = model.sr(lr, tau=0.0)
        sr0b = model.sr(lr, tau=0.0)
        rows.append(Row("SR at tau=0 is deterministic", float((sr0 - sr0b).abs().max()), 0.0))
        model.sr(lr, tau=0.8, generator=torch.Generator().manual_seed(args.seed))
        ds = model.downscale(hr, tau=0.0, generator=torch.Generator().manual_seed(args.seed))
        gen_s = time.perf_counter() - t1
        if sr0.shape[2:] != hr.shape[2:] or ds.shape[2:] != lr.shape[2:]:
            rows.append(Row("SR/DS output shapes", 1.0, 0.0))
    rows.append(Row("bits/dim of the HR crop", float(bits_per_dim(lp_hr, hr[0].numel())[0]),
                    None, "(informative)"))
    rows.append(Row("bits/dim of the LR crop", float(bits_per_dim(lp_lr, lr[0].numel())[0]),
                    None, "(informative)"))
    header["time"] = f"build {build_s:.1f} s, SR x3 + DS {gen_s:.1f} s"
    return rows, header
