"""sdflow checkpoints: one safetensors file whose header metadata holds a JSON record.

The record (key ``"sdflow"`` of the safetensors metadata) says which architecture and
config the weights belong to, which sdflow version wrote them, what the model was trained
on and free-form notes. Loading never executes pickled code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from sdflow.atomic import write_atomic
from sdflow.errors import CheckpointError

FORMAT_NAME = "sdflow.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "sdflow"


@dataclass
class CheckpointInfo:
    architecture: str
    config: dict[str, Any]
    scale: int
    sdflow_version: str
    trained_on: str = ""
    notes: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CheckpointInfo:
        data = json.loads(text)
        if data.get("format") != FORMAT_NAME:
            raise CheckpointError(f"not an sdflow checkpoint (format {data.get('format')!r})")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint format version {data['format_version']} is newer than this sdflow "
                f"understands ({FORMAT_VERSION}); upgrade sdflow")
        return cls(**data)


def save(model: nn.Module, path: str | os.PathLike, *, trained_on: str = "", notes: str = "",
         extra: dict[str, Any] | None = None) -> CheckpointInfo:
    """Write ``model`` (weights, buffers and config) to ``path`` atomically."""
    from sdflow.models import architecture_of
    from sdflow.version import __version__

    arch = architecture_of(model)
    info = CheckpointInfo(
        architecture=arch.name,
        config=model.config.to_dict(),
        scale=int(model.config.scale),
        sdflow_version=__version__,
        trained_on=trained_on,
        notes=notes,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        extra=dict(extra or {}),
    )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    write_atomic(path, lambda tmp: save_file(tensors, tmp, metadata={METADATA_KEY: info.to_json()}))
    return info


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The metadata record of a checkpoint, without loading the weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    if METADATA_KEY not in meta:
        raise CheckpointError(f"{path}: safetensors file without sdflow metadata; "
                              "convert the authors' weights with `sdflow convert`")
    return CheckpointInfo.from_json(meta[METADATA_KEY])


def file_sha256(path: str | os.PathLike, length: int = 12) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


def load(path: str | os.PathLike, device: str | torch.device = "cpu",
         dtype: torch.dtype = torch.float32) -> nn.Module:
    """Build the model a checkpoint describes, load its weights and return it in eval mode.

    The returned model has a ``checkpoint_info`` attribute (:class:`CheckpointInfo`) and a
    ``checkpoint_path``.
    """
    from sdflow.models import ARCHITECTURES

    info = read_info(path)
    if info.architecture not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {info.architecture!r}; "
                              f"this sdflow knows {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[info.architecture]
    try:
        config = arch.config_cls.from_dict(info.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid {info.architecture} config: {exc}") from exc
    model = arch.build(config)
    state = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            state[key] = f.get_tensor(key)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match the {info.architecture} "
                              f"architecture in its metadata: {exc}") from exc
    model.checkpoint_info = info
    model.checkpoint_path = str(path)
    return model.to(device=device, dtype=dtype).eval()
