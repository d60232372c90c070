"""The typed sections of a training config and the config itself (what a run's
``config.json`` holds). Loading, presets and overrides live in :mod:`sdflow.training.config`;
this module imports nothing of the training package, so every part of it (the tasks
included) can name :class:`TrainConfig`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sdflow.config import FieldError, check_ranges, to_dict


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
