"""sdflow checkpoints: one safetensors file whose header metadata holds a JSON record.

The record (key ``"sdflow"`` of the safetensors metadata) says which architecture and
config the weights belong to, which sdflow version wrote them, what the model was trained
on and free-form notes. Loading never executes pickled code.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from sdflow.atomic import write_atomic
from sdflow.config import ConfigError
from sdflow.errors import CheckpointError, first_line
from sdflow.weights import state_mismatch

log = logging.getLogger("sdflow.checkpoint")

FORMAT_NAME = "sdflow.checkpoint"
FORMAT_VERSION = 1
METADATA_KEY = "sdflow"


#: Fields every record has, with their JSON types; the others have defaults.
_REQUIRED: dict[str, type] = {"architecture": str, "config": dict, "scale": int,
                              "sdflow_version": str}
_OPTIONAL: dict[str, type] = {"trained_on": str, "notes": str, "created": str, "extra": dict,
                              "format": str, "format_version": int}

#: Files whose unknown metadata fields were already reported (one note per file).
_NOTED: set[tuple[str, tuple[str, ...]]] = set()


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
    #: Top-level fields this sdflow does not know (from a newer version with the same
    #: format version): kept, written back by :meth:`to_json`, otherwise ignored.
    unknown_fields: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("unknown_fields")
        return json.dumps({**self.unknown_fields, **data}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike = "checkpoint") -> CheckpointInfo:
        """Parse a metadata record; anything malformed raises :class:`CheckpointError` with
        one line naming ``source``."""
        where = str(source)
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            detail = f"{exc.msg} at character {exc.pos}" if isinstance(
                exc, json.JSONDecodeError) else str(exc)
            raise CheckpointError(f"{where}: its sdflow metadata is not valid JSON "
                                  f"({detail}); the file is corrupt: export or convert the "
                                  "model again") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: its sdflow metadata is not a JSON object; the "
                                  "file is corrupt: export or convert the model again")
        if data.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{where}: not an sdflow checkpoint (format "
                                  f"{data.get('format')!r})")
        version = data.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            raise CheckpointError(f"{where}: metadata field format_version is {version!r}, "
                                  "not an integer; the file is corrupt: export it again")
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{where}: checkpoint format version {version} is newer than this sdflow "
                f"understands ({FORMAT_VERSION}); upgrade sdflow")
        missing = sorted(set(_REQUIRED) - set(data))
        if missing:
            raise CheckpointError(f"{where}: metadata lacks the field(s) {', '.join(missing)}; "
                                  "the file is corrupt: export or convert the model again")
        for name, tp in {**_REQUIRED, **_OPTIONAL}.items():
            value = data.get(name)
            if name in data and (not isinstance(value, tp) or
                                 (tp is int and isinstance(value, bool))):
                raise CheckpointError(f"{where}: metadata field {name} is {value!r}, not "
                                      f"{_JSON_TYPE[tp]}; the file is corrupt: export or "
                                      "convert the model again")
        known = {k: v for k, v in data.items() if k in _REQUIRED or k in _OPTIONAL}
        unknown = {k: v for k, v in data.items() if k not in known}
        return cls(**known, unknown_fields=unknown)


_JSON_TYPE = {str: "a string", dict: "a JSON object", int: "an integer"}


def _version_tuple(version: str) -> tuple[int, ...]:
    """``"0.3.1.dev2"`` -> ``(0, 3, 1)``: the leading numeric components."""
    parts = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) < len(part):
            break
    return tuple(parts)


def _written_by(info: CheckpointInfo) -> tuple[str, str]:
    """(who wrote the file versus this version, the fix) for metadata this version cannot
    use: upgrade when a newer sdflow wrote it, else the file was edited or is corrupt."""
    from sdflow.version import __version__

    who = f"written by sdflow {info.sdflow_version}; this is sdflow {__version__}"
    if _version_tuple(info.sdflow_version) > _version_tuple(__version__):
        return who, "upgrade sdflow"
    return who, "the metadata was edited or is corrupt: export or convert the model again"


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
    """The metadata record of a checkpoint, without loading the weights. Top-level fields
    this version does not know are kept in ``unknown_fields`` and noted once per file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file "
                              f"({first_line(exc)}); if it is truncated or corrupt, copy or "
                              "export it again") from exc
    if METADATA_KEY not in meta:
        raise CheckpointError(f"{path}: safetensors file without sdflow metadata; "
                              "convert the authors' weights with `sdflow convert`")
    info = CheckpointInfo.from_json(meta[METADATA_KEY], path)
    if info.unknown_fields:
        key = (str(path.resolve()), tuple(sorted(info.unknown_fields)))
        if key not in _NOTED:
            _NOTED.add(key)
            log.warning("%s: note: ignoring metadata field(s) %s unknown to this version "
                        "(%s)", path, ", ".join(key[1]), _written_by(info)[0])
    return info


def model_config(info: CheckpointInfo, path: str | os.PathLike):
    """``(architecture, config)`` of a checkpoint's record, validated (types, ranges, no
    unknown fields) before anything is built; errors are one-line :class:`CheckpointError`."""
    from sdflow.models import ARCHITECTURES

    if info.architecture not in ARCHITECTURES:
        who, fix = _written_by(info)
        raise CheckpointError(f"{path}: unknown architecture {info.architecture!r} ({who}, "
                              f"which knows {', '.join(sorted(ARCHITECTURES))}); {fix}")
    arch = ARCHITECTURES[info.architecture]
    unknown = sorted(set(info.config) - arch.config_cls.field_names())
    if unknown:
        who, fix = _written_by(info)
        raise CheckpointError(f"{path}: {info.architecture} config field(s) "
                              f"{', '.join(unknown)} unknown to this version ({who}); {fix}")
    try:
        config = arch.config_cls.from_dict(info.config, "config")
    except ConfigError as exc:
        raise CheckpointError(f"{path}: invalid {info.architecture} config in its metadata: "
                              f"{exc}; the file is corrupt or was edited: export or convert "
                              "the model again") from exc
    if int(config.scale) != info.scale:
        raise CheckpointError(f"{path}: metadata says scale {info.scale} but its config "
                              f"says {config.scale}; the file is corrupt: export it again")
    return arch, config


def parameter_count(path: str | os.PathLike, info: CheckpointInfo | None = None) -> int:
    """Number of model parameters from the tensor shapes in the header (no weights are
    read). The buffers are told from the parameters by the module itself: the recorded
    config is built on the ``meta`` device (no memory, no initialisation) and its buffer
    names are left out of the count."""
    info = info or read_info(path)
    arch, config = model_config(info, path)
    with torch.device("meta"):
        buffers = {name for name, _ in arch.build(config).named_buffers()}
    with safe_open(str(path), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()
                   if k not in buffers)


def compute_summary(extra: dict[str, Any]) -> str:
    """One line on the training compute a checkpoint records (``extra["compute"]``: legs,
    iterations, CPU-hours, wall hours), for ``sdflow info`` and model cards."""
    compute = extra.get("compute")
    if not compute:
        its = extra.get("iterations")
        return f"{its} iterations (no compute record)" if its is not None else "not recorded"
    if compute.get("kind") == "fit":  # a parametric model fitted by statistics (gaussian-fit)
        return (f"fitted by statistics in {compute.get('seconds')} s "
                f"({compute.get('total_cpu_hours')} CPU-hours), no training iterations")
    legs = compute.get("legs", [])
    text = f"{len(legs)} leg(s), {compute.get('total_iterations')} iterations"
    if compute.get("total_cpu_hours") is not None:
        text += f", {compute['total_cpu_hours']:.2f} CPU-hours"
    if compute.get("total_hours") is not None:
        text += f", {compute['total_hours']:.2f} h wall-clock"
    return text


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
    ``checkpoint_path``. The config is validated before the model is built.
    """
    info = read_info(path)
    arch, config = model_config(info, path)
    model = arch.build(config)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt data
        raise CheckpointError(f"{path}: its weights cannot be read ({first_line(exc)}); "
                              "the file is corrupt: export or convert the model again") from exc
    for name in arch.optional_modules:  # e.g. a da-iccv21 file from before G_t was kept
        if not any(key.startswith(f"{name}.") for key in state):
            setattr(model, name, None)
    problem = state_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{path}: weights do not match the {info.architecture} "
                              f"architecture in its metadata: {problem}; the file is "
                              "corrupt or was edited: export or convert the model again")
    model.load_state_dict(state, strict=True)
    model.checkpoint_info = info
    model.checkpoint_path = str(path)
    return model.to(device=device, dtype=dtype).eval()
