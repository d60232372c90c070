"""``sdflow convert``: the authors' released weights -> an sdflow checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdflow.checkpoint import file_sha256, save
from sdflow.errors import SDFlowError
from sdflow.official import OFFICIAL_FILES, load_official


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="convert the authors' SDFlow weights to an sdflow checkpoint",
        description="Read the authors' four files (" + ", ".join(OFFICIAL_FILES) + ") with "
        "weights_only=True and write one safetensors checkpoint with metadata.")
    p.add_argument("--official", required=True, metavar="DIR",
                   help="directory holding the authors' four .pth files")
    p.add_argument("-o", "--out", required=True, metavar="FILE", help="output .safetensors file")
    p.add_argument("--mixture-mode", default="official", choices=("official", "element", "image"),
                   help="how the converted model samples the degradation mixture "
                        "(default: official = one component per image, as the authors' code)")
    p.add_argument("--trained-on", default="", help="what the weights were trained on")
    p.add_argument("--notes", default="", help="free-form notes stored in the checkpoint")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        model = load_official(args.official, mixture_mode=args.mixture_mode)
        # provenance without the local path (a checkpoint may be shared): names and digests
        sources = [{"file": name, "sha256": file_sha256(Path(args.official) / name, length=64)}
                   for name in OFFICIAL_FILES]
        notes = args.notes or ("converted from the authors' released files "
                               f"({', '.join(OFFICIAL_FILES)}; sha256 in extra.converted_from)")
        save(model, args.out, trained_on=args.trained_on, notes=notes,
             extra={"converted_from": sources})
    except (SDFlowError, OSError) as exc:
        print(f"sdflow convert: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({model.num_parameters():,} parameters)")
    return 0
