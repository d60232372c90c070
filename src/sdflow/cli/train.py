"""``sdflow train``: unpaired training from a preset, a YAML file and overrides."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from sdflow.config import ConfigError
from sdflow.errors import SDFlowError, first_line
from sdflow.hardware import DEVICE_HELP
from sdflow.training.config import PRESETS, load_config


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train a model on unpaired LR/HR folders",
        description="Train on unpaired real LR and HR images. Settings come from --preset, "
        "then --config (YAML, merged over it), then the options below and --set "
        "section.key=value overrides (values are YAML). Multi-process: "
        "torchrun --nproc-per-node N -m sdflow train ...")
    p.add_argument("--preset", choices=PRESETS, default="cpu_x4",
                   help="training preset (default: cpu_x4)")
    p.add_argument("--config", metavar="YAML", help="a YAML file merged over the preset")
    p.add_argument("--lr-dir", action="append", metavar="DIR",
                   help="folder of real LR images (required, repeatable; presets hold no "
                   "data paths)")
    p.add_argument("--hr-dir", action="append", metavar="DIR",
                   help="folder of HR images, unpaired with the LR (required, repeatable)")
    p.add_argument("--val-dir", metavar="DIR",
                   help="optional paired validation folder with LR/ and HR/ (same file "
                   "names), scored during training")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="run directory (checkpoints, logs, model)")
    p.add_argument("--weights", metavar="DIR",
                   help="folder of the VGG16/LPIPS weights for the perceptual loss and "
                   "validation (default: $SDFLOW_WEIGHTS, then ~/.cache/sdflow/weights)")
    p.add_argument("--iterations", type=int, help="total training iterations")
    p.add_argument("--device", metavar="DEVICE", help=DEVICE_HELP)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   dest="overrides", help="override any setting, e.g. loss.n_pre=2000")
    p.add_argument("--resume", metavar="auto|CKPT",
                   help="continue from the newest valid checkpoint of the run (auto) or a file")
    p.add_argument("--init-from", metavar="MODEL",
                   help="start from an exported model's weights (a .safetensors path or a "
                   "registered name) with a fresh optimiser and schedule: the next leg of a "
                   "run trained in several sessions (its compute adds up in the metadata)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a folder that holds one, deleting its "
                   "checkpoints, metrics and model (without it such a folder is refused "
                   "unless --resume is given)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log losses, validation numbers and grids for TensorBoard in "
                   "RUN/tensorboard (needs: pip install 'sdflow[tensorboard]'); "
                   "metrics.jsonl stays the record")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration and exit")
    p.set_defaults(run=run)


def _overrides(args: argparse.Namespace) -> list[str]:
    out = []
    if args.lr_dir:
        out.append(f"data.lr_dirs={json.dumps(args.lr_dir)}")
    if args.hr_dir:
        out.append(f"data.hr_dirs={json.dumps(args.hr_dir)}")
    if args.val_dir:
        out.append(f"data.val_dir={json.dumps(args.val_dir)}")
    if args.out:
        out.append(f"run.out_dir={json.dumps(args.out)}")
    if args.iterations is not None:
        out.append(f"run.iterations={args.iterations}")
    if args.device:
        out.append(f"run.device={args.device}")
    if args.weights:
        out.append(f"run.weights_dir={json.dumps(args.weights)}")
    if args.init_from:
        out.append(f"run.init_from={json.dumps(args.init_from)}")
    if args.tensorboard:
        out.append("run.tensorboard=true")
    return out + list(args.overrides)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        cfg = load_config(args.preset, args.config, _overrides(args))
    except (ConfigError, OSError) as exc:
        print(f"sdflow train: config error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from sdflow.training import distributed
    from sdflow.training.trainer import Trainer

    if args.resume and args.overwrite:
        print("sdflow train: config error: --resume continues the run in the folder; "
              "--overwrite deletes it and starts over: give one of them", file=sys.stderr)
        return 2
    if args.resume and cfg.run.init_from:
        print("sdflow train: config error: --resume continues a run exactly; --init-from "
              "starts a new one from a model's weights: give one of them", file=sys.stderr)
        return 2
    missing = [flag for flag, dirs in (("--lr-dir", cfg.data.lr_dirs),
                                       ("--hr-dir", cfg.data.hr_dirs)) if not dirs]
    if missing:
        print(f"sdflow train: error: {' and '.join(missing)} required (presets hold no data "
              "paths), e.g. sdflow train --preset cpu_x4 --lr-dir data/train/LR --hr-dir "
              "data/train/HR [--val-dir data/val] -o runs/mine", file=sys.stderr)
        return 2
    try:
        ctx = distributed.setup(cfg.run.device)
    except SDFlowError as exc:
        print(f"sdflow train: error: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError) as exc:  # the process group itself
        print(f"sdflow train: error: run.device={cfg.run.device}: {first_line(exc)}; use "
              "--device cpu or a device this machine has", file=sys.stderr)
        return 1
    try:
        trainer = Trainer(cfg, ctx)
        out = trainer.fit(resume=args.resume, overwrite=args.overwrite)
        # Every rank leaves together: a rank that tears the group down while another still
        # works (rank 0 exports) aborted at exit in 3 of 11 two-process gloo runs.
        distributed.barrier(ctx)
    except (SDFlowError, ValueError, OSError) as exc:
        text = first_line(exc)
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            text = f"{exc.filename}: {exc.strerror.lower()}; check the folders given"
        print(f"sdflow train: error: {text}", file=sys.stderr)
        return 1
    finally:
        distributed.teardown(ctx)
    if out is not None:
        print(f"\nmodel (EMA weights): {out}")
    return 0
