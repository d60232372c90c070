"""Training configuration: typed sections, YAML presets, ``--set a.b=v`` overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sdflow.config import (
    ConfigError,
    FieldError,
    apply_overrides,
    check_ranges,
    from_dict,
    load_yaml,
    merge,
    to_dict,
)


def _preset_names() -> tuple[str, ...]:
    """The training presets: every ``presets/*.yaml`` shipped in the package, so adding one
    is adding its file."""
    folder = resources.files("sdflow.training").joinpath("presets")
    return tuple(sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                        if entry.name.endswith(".yaml")))


#: The training presets by name (``sdflow train --preset``).
PRESETS = _preset_names()


@dataclass
class ModelSection:
    architecture: str = "sdflow"
    preset: str = "lite"  # an architecture preset (e.g. SDFlow "paper" / "lite")
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the model config
    init: str = "random"  # initialisation scheme; SDFlow: random (authors') | haar


@dataclass
class DataSection:
    lr_dirs: list[str] = field(default_factory=list)  # real LR images (unpaired)
    hr_dirs: list[str] = field(default_factory=list)  # HR images (unpaired)
    val_dir: str | None = None  # paired validation folder with LR/ and HR/
    lr_crop: int = 24  # LR crop side; HR crop = scale x lr_crop
    batch_size: int = 8  # per process
    flips: bool = True
    rot90: bool = True
    dequantize: bool = True
    workers: int = 0  # data-loader worker processes
    init_batch: int = 32  # crops for the data-dependent ActNorm init
    val_lr_crop: int | None = 64  # centre crop of the validation LR (None: full images)
    val_limit: int | None = None  # at most this many validation pairs

    def __post_init__(self) -> None:
        check_ranges(self, {"lr_crop": (8, 4096), "batch_size": (1, 65536), "workers": (0, 256),
                            "init_batch": (1, 65536), "val_lr_crop": (8, None),
                            "val_limit": (1, None)})
        if self.lr_crop % 2:  # the flows squeeze the LR crop; downscaling needs HR / 8
            raise FieldError("lr_crop", f"must be even, got {self.lr_crop}")


@dataclass
class OptimSection:
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9, 0.95])
    gamma: float = 0.5  # LR factor at each milestone (fractions of run.iterations)
    grad_clip: float = 10.0  # global norm for the generator; 0 disables
    ema_decay: float = 0.999

    def __post_init__(self) -> None:
        check_ranges(self, {"lr_g": (0.0, 1.0), "lr_d": (0.0, 1.0), "gamma": (0.0, 1.0),
                            "grad_clip": (0.0, None), "ema_decay": (0.0, 1.0)})
        if self.gamma <= 0:
            raise FieldError("gamma", f"must be > 0, got {self.gamma}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise FieldError("betas", f"must be two numbers in [0, 1), got {self.betas}")
        bad = [m for m in self.milestones if not 0.0 <= m <= 1.0]
        if bad:
            raise FieldError("milestones", "must be fractions of run.iterations in [0, 1], "
                                           f"got {bad[0]}")


@dataclass
class RunSection:
    iterations: int = 1000
    seed: int = 0
    out_dir: str = "runs/sdflow"
    device: str = "auto"  # auto | cpu | cuda | mps
    threads: int = 0  # torch threads per process; 0 = torch default
    log_every: int = 10
    val_every: int = 500  # 0 disables periodic validation
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    max_consecutive_skips: int = 5  # then roll back to the last healthy checkpoint
    rollback_lr_factor: float = 0.5  # compounds: x0.5, x0.25, ...
    max_rollbacks: int = 4  # then the run stops (DivergenceError, exit 1)
    val_samples: int = 3  # SR/DS samples per validation image for diversity
    time_limit_minutes: float = 0.0  # stop (with a checkpoint) after this long; 0 = none
    # also log the scalars and validation grids for TensorBoard (RUN/tensorboard; the
    # tensorboard extra); metrics.jsonl stays the record
    tensorboard: bool = False
    # stop (with a checkpoint and the export) at this iteration, the schedule still planned
    # for ``iterations``: reproduces a run that a time limit stopped there; None = no stop
    stop_at: int | None = None
    weights_dir: str | None = None  # VGG16/LPIPS weights (sdflow.weights); None: search
    # Start from an exported model's weights (a path or registered name; a new optimiser,
    # schedule and iteration count): the next "leg" of a recipe trained in several runs.
    init_from: str | None = None
    # measure one image's training step before the first and refuse a batch size that
    # clearly does not fit in the free memory (sdflow.training.memory)
    memory_check: bool = True

    def __post_init__(self) -> None:
        check_ranges(self, {
            "iterations": (1, None), "seed": (0, 2**62), "threads": (0, 4096),
            "log_every": (1, None), "val_every": (0, None), "checkpoint_every": (1, None),
            "keep_checkpoints": (1, None), "max_consecutive_skips": (1, None),
            "max_rollbacks": (0, 1000),
            "rollback_lr_factor": (0.0, 1.0), "val_samples": (1, 1024),
            "time_limit_minutes": (0.0, None), "stop_at": (1, None)})
        if self.rollback_lr_factor <= 0:
            raise FieldError("rollback_lr_factor",
                             f"must be > 0, got {self.rollback_lr_factor}")
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise FieldError("device", f"must be auto, cpu, cuda, cuda:N or mps, "
                                       f"got {self.device!r}")


@dataclass
class SpeedSection:
    """Training speed-ups that change only float rounding (docs/performance.md); written
    to the run's config.json with everything else, so a run says which it used."""

    share_targets: bool = True  # low-passed targets and their VGG features once per step
    batch_frozen_passes: bool = True  # a frozen network's same-shaped inputs as one batch
    foreach_updates: bool = True  # Adam, clipping and the weight average with foreach kernels


@dataclass
class TrainConfig:
    model: ModelSection
    data: DataSection
    optim: OptimSection
    run: RunSection
    loss: Any  # the architecture's loss config dataclass
    speed: SpeedSection = field(default_factory=SpeedSection)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def loss_config_class(architecture: str) -> type:
    """The ``loss`` section's dataclass of an architecture (registered with its training
    task in ``training.tasks.TRAINABLE``, which imports this module, not the reverse)."""
    from sdflow.training.tasks import TRAINABLE

    if architecture not in TRAINABLE:
        raise ConfigError(f"model.architecture: no training task for {architecture!r}; "
                          f"choose from {sorted(TRAINABLE)}")
    return TRAINABLE[architecture].loss_config


def check_model_section(model: ModelSection) -> None:
    """The model config the section describes is valid (preset, overrides' types and
    ranges, init scheme), so a bad value fails at config time naming its key."""
    from sdflow.models import ARCHITECTURES
    from sdflow.training.tasks import TRAINABLE

    arch = ARCHITECTURES[model.architecture]
    if model.preset not in arch.presets:
        raise ConfigError(f"model.preset: {model.architecture} has no preset "
                          f"{model.preset!r}; choose from {', '.join(sorted(arch.presets))}")
    arch.config_cls.preset_from_dict(model.preset, model.overrides, "model.overrides")
    schemes = TRAINABLE[model.architecture].init_schemes
    if model.init not in schemes:
        raise ConfigError(f"model.init: {model.architecture} has the initialisation(s) "
                          f"{', '.join(schemes)}, got {model.init!r}")


def preset_dict(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown training preset {name!r}; choose from {list(PRESETS)}")
    text = resources.files("sdflow.training").joinpath(f"presets/{name}.yaml").read_text()
    import yaml

    return yaml.safe_load(text)


def build_config(data: dict[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from a nested dict; unknown keys and bad types are errors."""
    data = dict(data)
    unknown = set(data) - {"model", "data", "optim", "run", "loss", "speed"}
    if unknown:
        raise ConfigError(f"unknown top-level section(s): {', '.join(sorted(unknown))}")
    model = from_dict(ModelSection, data.get("model", {}), "model")
    loss_cls = loss_config_class(model.architecture)
    check_model_section(model)
    return TrainConfig(
        model=model,
        data=from_dict(DataSection, data.get("data", {}), "data"),
        optim=from_dict(OptimSection, data.get("optim", {}), "optim"),
        run=from_dict(RunSection, data.get("run", {}), "run"),
        loss=from_dict(loss_cls, data.get("loss", {}), "loss"),
        speed=from_dict(SpeedSection, data.get("speed", {}), "speed"),
    )


def load_config(preset: str | None = None, config_file: str | Path | None = None,
                overrides: list[str] | None = None) -> TrainConfig:
    """Preset, then a YAML file merged over it, then ``section.key=value`` overrides."""
    data: dict[str, Any] = preset_dict(preset) if preset else {}
    if config_file:
        data = merge(data, load_yaml(config_file))
    data = apply_overrides(data, overrides or [])
    return build_config(data)
