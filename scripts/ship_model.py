"""Copy a trained model into the package with its provenance and evidence in the metadata.

    python scripts/ship_model.py runs/x/model_ema.safetensors \
        src/sdflow/weights/NAME.safetensors --name NAME \
        --trained-on "RealSR V3 x4, unpaired: ..." --notes "..." \
        --evidence runs/eval/x_sr/metrics.json runs/eval/x_ds/metrics.json

The weights are copied unchanged (the tensors are re-read and re-written, so the sha256
changes only with the metadata); the metadata record keeps every field of the source and
gets ``extra["registered_name"]`` and ``extra["evidence"]``: the per-(method, tau) means of
each ``sdflow eval`` JSON given, with its mode and dataset. Prints the new file's sha256
for the registry entry.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from sdflow.atomic import write_atomic
from sdflow.checkpoint import METADATA_KEY, file_sha256, read_info
from sdflow.provenance import portable_evidence


def evidence_record(path: Path) -> dict:
    record = json.loads(path.read_text())
    return {"mode": record["mode"], "created": record.get("created"),
            "dataset": record.get("dataset"), "taus": record.get("taus"),
            "samples": record.get("samples"), "seed": record.get("seed"),
            "means": record["means"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("dest")
    ap.add_argument("--name", required=True)
    ap.add_argument("--trained-on")
    ap.add_argument("--notes")
    ap.add_argument("--evidence", nargs="*", default=[])
    ap.add_argument("--compute", help="JSON compute record for a model exported before "
                    "the trainer recorded one (same keys as Trainer.compute_record)")
    args = ap.parse_args()
    info = read_info(args.source)
    extra = dict(info.extra)
    extra["registered_name"] = args.name
    extra["evidence"] = portable_evidence([evidence_record(Path(p)) for p in args.evidence])
    if args.compute:
        if "compute" in extra:
            raise SystemExit("the model already has a compute record; --compute is for "
                             "models exported without one")
        extra["compute"] = json.loads(args.compute)
    info = dataclasses.replace(info, extra=extra,
                               trained_on=args.trained_on or info.trained_on,
                               notes=args.notes or info.notes)
    with safe_open(args.source, framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    write_atomic(args.dest, lambda tmp: save_file(tensors, tmp,
                                                  metadata={METADATA_KEY: info.to_json()}))
    print(f"{args.dest}: sha256 {file_sha256(args.dest, length=64)}")


if __name__ == "__main__":
    main()
