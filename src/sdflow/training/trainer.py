"""The generic trainer: optimisation, EMA, non-finite handling, checkpoints, resume,
logging, validation and multi-process data parallelism.

Per iteration: one generator step on the task's weighted loss (discriminators frozen),
then one discriminator step on detached inputs. A non-finite loss or gradient skips the
step and is counted; after ``run.max_consecutive_skips`` skips in a row the run rolls back
to its last checkpoint and lowers the learning rate by ``run.rollback_lr_factor``.

Everything random in an iteration is seeded by ``(run.seed, iteration)`` and every batch
is a function of its iteration number, so ``--resume`` continues a run exactly as if it
had not stopped.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from sdflow.atomic import remove_stale_temporaries, write_atomic
from sdflow.checkpoint import save as save_model
from sdflow.errors import CheckpointError, Interrupted, SDFlowError, is_oom
from sdflow.hardware import resolve_device
from sdflow.progress import Progress
from sdflow.provenance import data_name, portable_train_config
from sdflow.training import compute, memory
from sdflow.training import distributed as D
from sdflow.training.config import TrainConfig
from sdflow.training.data import IterationSampler, UnpairedDataset, load_pairs
from sdflow.training.ema import EMA
from sdflow.training.state import (
    RunFolderError,
    check_resumable,
    checkpoint_path,
    list_checkpoints,
    load_training_state,
    newest_healthy_checkpoint,
    newest_valid_checkpoint,
    run_files,
)
from sdflow.training.tasks import TrainingTask, build_task
from sdflow.training.validation import save_grid
from sdflow.version import __version__

log = logging.getLogger("sdflow.train")

class _Call(nn.Module):
    """Owns ``owner``'s parameters and runs ``fn`` in ``forward``, so that
    DistributedDataParallel can wrap a computation that is not ``owner.forward``."""

    def __init__(self, owner: nn.Module, fn: Callable[..., Any]):
        super().__init__()
        self.owner = owner
        self._fn = fn

    def forward(self, *args: Any) -> Any:
        return self._fn(*args)


def iteration_seed(seed: int, iteration: int) -> int:
    return (seed * 1_000_003 + iteration * 7919 + 12345) % (2**63 - 1)


def lr_factor(iteration: int, total: int, milestones: list[float], gamma: float) -> float:
    """Multi-step decay: ``gamma`` at each milestone (fractions of ``total`` iterations)."""
    passed = sum(1 for m in milestones if iteration >= int(round(m * total)))
    return gamma**passed


class DivergenceError(SDFlowError):
    """Training diverged and rollbacks with smaller learning rates did not help."""


#: Rollbacks replay their iterations with other batches and noise: the seeds of replay r
#: are those of the iteration plus r times this stride.
REPLAY_STRIDE = 1 << 40
#: A checkpoint is healthy when the median loss of its last HEALTH_RECENT steps is within
#: HEALTH_SPREADS median absolute deviations (at least 5 % of the level) above the median
#: of the steps before them; with under HEALTH_MIN_HISTORY losses it is not judged.
HEALTH_RECENT, HEALTH_MIN_HISTORY, HEALTH_SPREADS = 3, 8, 50.0


def losses_look_healthy(losses: Sequence[float]) -> bool:
    """Whether the newest losses are in line with the run's history (too little history:
    yes). A loss far above everything before it (weights exploded but still finite) is not:
    such a checkpoint must not become a rollback target."""
    if len(losses) < HEALTH_MIN_HISTORY:
        return True
    older = sorted(losses[:-HEALTH_RECENT])
    recent = sorted(losses[-HEALTH_RECENT:])
    ref = older[len(older) // 2]
    spread = sorted(abs(v - ref) for v in older)[len(older) // 2]
    spread = max(spread, 0.05 * abs(ref), 1e-8)
    return recent[len(recent) // 2] <= ref + HEALTH_SPREADS * spread


class StopRequest:
    """While active, the first SIGINT (Ctrl-C) or SIGTERM only asks the training loop to
    stop at the next step boundary, where it writes a checkpoint; a second Ctrl-C raises
    at once. Signal handlers exist only in the main thread; elsewhere this does nothing."""

    def __init__(self, say: Callable[[str], None]):
        self.requested = False
        self._say = say
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self._say("interrupt received: stopping after this step with a checkpoint (Ctrl-C "
                  "again to stop at once, without one)")

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    def __init__(self, cfg: TrainConfig, ctx: D.DistContext | None = None):
        self.cfg = cfg
        self.ctx = ctx or D.DistContext(device=resolve_device(cfg.run.device))
        self.device = self.ctx.device
        self.run_dir = Path(cfg.run.out_dir)
        if cfg.run.tensorboard:  # refused before any work, not after a first checkpoint
            try:
                import tensorboard  # noqa: F401
            except ImportError:
                raise ValueError("run.tensorboard needs the tensorboard package: pip install "
                                 "'sdflow[tensorboard]' (or leave --tensorboard out)") from None
        self.board = None  # the TensorBoard writer while fit runs with run.tensorboard
        self._bar: Progress | None = None  # the progress bar while fit runs (main process)
        self.ema: EMA | None = None
        self.iteration = 0
        self.lr_scale = 1.0
        self.counters = {"skipped_g": 0, "skipped_d": 0, "consecutive": 0, "rollbacks": 0}
        self.losses: deque[float] = deque(maxlen=500)  # recent finite losses (health checks)
        self.last_healthy: Path | None = None  # the newest healthy checkpoint (kept)
        self.train_seconds = 0.0  # wall time spent in the training loop (kept across resume)
        self.previous_legs: list[dict[str, Any]] = []  # compute of the runs before this one
        self.init_source: dict[str, Any] | None = None
        # The networks are initialised from run.seed without changing the process's random
        # state: the seeded generator is forked here, and fit()/start() continue from it.
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(cfg.run.seed)
            self.task: TrainingTask = build_task(cfg, self.device)
            self.generator = self.task.generator
            self.discriminators = self.task.discriminators
            betas = tuple(cfg.optim.betas)
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=cfg.optim.lr_g,
                                          betas=betas)
            self.opt_d = torch.optim.Adam(self.discriminators.parameters(), lr=cfg.optim.lr_d,
                                          betas=betas) if self.discriminators is not None else None
            self.dataset = UnpairedDataset(
                cfg.data.lr_dirs, cfg.data.hr_dirs, cfg.data.lr_crop, self._scale(),
                flips=cfg.data.flips, rot90=cfg.data.rot90, dequantize=cfg.data.dequantize,
                seed=cfg.run.seed)
            fitted = self.task.fit_to_data(self.dataset.lr.images, self.dataset.hr.images)
            #: what was fitted to the training images (logged by fit)
            self.fitted = fitted
            self.val_pairs = load_pairs(cfg.data.val_dir, self._scale(), cfg.data.val_lr_crop,
                                        cfg.data.val_limit) if cfg.data.val_dir else []
            self._g_call = _Call(self.generator, self.task.generator_loss)
            self._d_call = _Call(self.discriminators, self.task.discriminator_loss) \
                if self.discriminators is not None else None
            self._rng_after_init = (torch.get_rng_state(),
                                    {d: torch.cuda.get_rng_state(d) for d in cuda})

    def _continue_init_rng(self) -> None:
        """Set the random state to where building the run left the seeded generator (the
        process-wide state belongs to fit and start, not to the constructor)."""
        cpu, cuda = self._rng_after_init
        torch.set_rng_state(cpu)
        for index, state in cuda.items():
            torch.cuda.set_rng_state(state, index)

    def _scale(self) -> int:
        return int(getattr(self.task.generator, "scale", 4))

    # ------------------------------------------------------------------ logging
    def _log_record(self, record: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None and record.get("type") in ("train", "val"):
            for key, value in record.items():
                if key not in ("type", "iteration") and isinstance(value, (int, float)) \
                        and not isinstance(value, bool):
                    self.board.add_scalar(f"{record['type']}/{key}", value,
                                          record["iteration"])

    def _open_board(self):
        """The TensorBoard writer (``run.tensorboard``; main process only), or None."""
        if not (self.cfg.run.tensorboard and self.ctx.is_main):
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def _say(self, text: str) -> None:
        if not self.ctx.is_main:
            return
        if self._bar is not None:
            self._bar.message(text)  # above the bar, which is redrawn below it
        else:
            print(text, flush=True)

    def _truncate_log(self, start: int) -> None:
        """On resume, drop records of iterations the resumed run will redo."""
        path = self.run_dir / "metrics.jsonl"
        if not self.ctx.is_main or not path.exists():
            return
        keep = [line for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("iteration", -1) < start]
        path.write_text("".join(line + "\n" for line in keep))

    # ------------------------------------------------------------------ checkpoints
    def _state(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "generator": self.generator.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "discriminators": self.discriminators.state_dict() if self.discriminators else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "schedule": {"lr_scale": self.lr_scale, "milestones": self.cfg.optim.milestones,
                         "gamma": self.cfg.optim.gamma},
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            "counters": dict(self.counters),
            "healthy": self.healthy(),
            "compute": {"train_seconds": self.train_seconds, "previous_legs": self.previous_legs,
                        "init_source": self.init_source},
            "config": self.cfg.to_dict(),
            "sdflow_version": __version__,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.generator.load_state_dict(state["generator"])
        if self.ema is None:
            self.ema = EMA(self.generator, self.cfg.optim.ema_decay,
                           self.cfg.speed.foreach_updates)
        if state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.discriminators is not None and state["discriminators"] is not None:
            self.discriminators.load_state_dict(state["discriminators"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None and state["opt_d"] is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        self.lr_scale = float(state["schedule"]["lr_scale"])
        torch.set_rng_state(state["rng"]["torch"])
        if torch.cuda.is_available() and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.counters.update(state["counters"])
        compute = state.get("compute") or {}
        self.train_seconds = float(compute.get("train_seconds", 0.0))
        self.previous_legs = list(compute.get("previous_legs", []))
        self.init_source = compute.get("init_source")

    # ------------------------------------------------------------------ training legs
    def _init_from(self, name_or_path: str) -> None:
        """Load an exported model's weights into the generator (same architecture and config
        required; parts the file lacks, such as the G_t of a da-iccv21 file exported before
        G_t was kept, start fresh) and take over its compute record."""
        from sdflow.checkpoint import file_sha256
        from sdflow.registry import load as load_model

        try:
            source = load_model(name_or_path, device=self.device)
        except (CheckpointError, OSError) as exc:
            raise ValueError(f"run.init_from: {exc}") from exc
        target = self.generator
        ours, theirs = target.config.to_dict(), source.config.to_dict()
        if type(source) is not type(target) or ours != theirs:
            diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
            raise ValueError(f"run.init_from: {name_or_path} is a {type(source).__name__} "
                             f"with another architecture than this run's "
                             f"{type(target).__name__} (differs in: {', '.join(diff) or 'type'});"
                             " use the same model preset and overrides as the run it came from")
        missing = target.load_state_dict(source.state_dict(), strict=False).missing_keys
        legs = compute.earlier_legs(source.checkpoint_info.extra)
        self.previous_legs = legs
        self.init_source = compute.init_source(
            name_or_path, file_sha256(source.checkpoint_path, length=64))
        fresh = len(missing)
        self._say(f"initialised from {name_or_path} ({len(legs)} earlier leg(s), "
                  f"{sum(int(leg.get('iterations') or 0) for leg in legs)} iterations)"
                  + (f"; {fresh} tensors the file lacks start fresh" if fresh else ""))

    def compute_record(self) -> dict[str, Any]:
        """Training compute of this run plus the legs it was initialised from."""
        leg = compute.leg_record(self.iteration, self.train_seconds, self.device.type,
                                 self.ctx.world_size, torch.get_num_threads(), self.init_source)
        return compute.with_totals(self.previous_legs + [leg])

    def save_checkpoint(self) -> Path | None:
        """Write the training state atomically (rank 0) and prune old checkpoints."""
        in_sync = D.parameters_in_sync(self.generator, self.ctx)
        if not self.ctx.is_main:
            return None
        path = checkpoint_path(self.run_dir, self.iteration)
        healthy = self.healthy()
        write_atomic(path, lambda tmp: torch.save(self._state(), tmp))  # makes the folder
        if healthy:
            self.last_healthy = path
        for old in list_checkpoints(self.run_dir)[max(self.cfg.run.keep_checkpoints, 1):]:
            if old != self.last_healthy:  # the rollback target survives pruning
                old.unlink(missing_ok=True)
        self._log_record({"type": "checkpoint", "iteration": self.iteration, "path": str(path),
                          "ranks_in_sync": in_sync, "healthy": healthy})
        return path

    def healthy(self) -> bool:
        """Whether the run looks sound now: no skipped step pending and the latest losses in
        line with its history (:func:`losses_look_healthy`)."""
        return self.counters["consecutive"] == 0 and losses_look_healthy(list(self.losses))

    def export(self, name: str = "model_ema.safetensors") -> Path | None:
        """The EMA model in sdflow's checkpoint format (usable by ``sdflow.load``)."""
        if not self.ctx.is_main or self.ema is None:
            return None
        path = self.run_dir / name
        data = ", ".join(map(data_name, self.cfg.data.lr_dirs)) + " (LR) / " + \
            ", ".join(map(data_name, self.cfg.data.hr_dirs))
        model = self.ema.shadow
        label = getattr(model, "label", "")
        # no local paths in what others read: data by what it is, the run by its name
        save_model(model, path, trained_on=f"unpaired: {data} (HR)",
                   notes=(f"{label}; " if label else "") +
                   f"sdflow train, {self.iteration} iterations, EMA weights",
                   extra={"iterations": self.iteration,
                          "train_config": portable_train_config(self.cfg.to_dict()),
                          "compute": self.compute_record()})
        return path

    # ------------------------------------------------------------------ data
    def _loader(self, start: int) -> Iterator[dict[str, torch.Tensor]]:
        sampler = IterationSampler(self.cfg.data.batch_size, start, self.ctx.rank,
                                   replay=self.counters["rollbacks"] * REPLAY_STRIDE)
        loader = DataLoader(self.dataset, batch_sampler=sampler,
                            num_workers=self.cfg.data.workers,
                            persistent_workers=self.cfg.data.workers > 0)
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _init_batch(self, count: int | None = None) -> dict[str, torch.Tensor]:
        n = self.cfg.data.init_batch if count is None else count
        items = [self.dataset[(-1, self.ctx.rank * n + i)] for i in range(n)]
        return {k: torch.stack([it[k] for it in items]).to(self.device) for k in items[0]}

    def _check_step_memory(self) -> None:
        """Refuse a batch size whose training step clearly does not fit in the free memory
        (:mod:`sdflow.training.memory`), naming one that does; every rank agrees."""
        one = {k: v[:1] for k, v in self._init_batch(count=1).items()}
        last = self.cfg.run.iterations - 1  # the last stage: every loss term on
        modules = [m for m in (self.generator, self.discriminators) if m is not None]
        step = memory.measure_step(
            modules, lambda: self._g_call(one, last, torch.Generator().manual_seed(0), 0, 1))
        free = memory.available_memory(self.device)
        data = self.cfg.data
        need = step.step_bytes(data.batch_size)
        fits = free is None or need <= memory.HEADROOM * free
        if D.all_true(fits, self.ctx):
            return
        largest = step.largest_batch(free)
        fix = (f"--set data.batch_size={largest} fits" if largest >= 1 else
               f"even data.batch_size=1 does not: lower data.lr_crop (now {data.lr_crop})")
        raise SDFlowError(
            f"a training step needs about {memory.human(need)} at data.batch_size="
            f"{data.batch_size} and data.lr_crop={data.lr_crop} ({memory.human(step.per_image)}"
            f" of activations per image), but only {memory.human(free)} is free on "
            f"{self.device}: {fix} (or --set run.memory_check=false to try anyway)")

    # ------------------------------------------------------------------ the loop
    def _set_lr(self) -> None:
        f = lr_factor(self.iteration, self.cfg.run.iterations, self.cfg.optim.milestones,
                      self.cfg.optim.gamma) * self.lr_scale
        for group in self.opt_g.param_groups:
            group["lr"] = self.cfg.optim.lr_g * f
        if self.opt_d is not None:
            for group in self.opt_d.param_groups:
                group["lr"] = self.cfg.optim.lr_d * f

    def _set_update_kernels(self) -> bool | None:
        """``speed.foreach_updates`` for Adam and gradient clipping; None is torch's
        default (a Python loop over tensors on CPU)."""
        foreach = True if self.cfg.speed.foreach_updates else None
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups if opt is not None else ():
                group["foreach"] = foreach
        return foreach

    def _step(self, batch: dict[str, torch.Tensor], g_runner, d_runner) -> dict[str, Any]:
        it = self.iteration
        key = it + self.counters["rollbacks"] * REPLAY_STRIDE  # replays draw anew
        torch.manual_seed(iteration_seed(self.cfg.run.seed, key))
        gen = torch.Generator().manual_seed(iteration_seed(self.cfg.run.seed, key) + 1)
        bs = self.cfg.data.batch_size
        self._set_lr()
        foreach = self._set_update_kernels()
        self.generator.train()
        total, logs, cache = g_runner(batch, it, gen, self.ctx.rank * bs,
                                      bs * self.ctx.world_size)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        params = [p for p in self.generator.parameters() if p.grad is not None]
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=foreach)
        ok = D.all_true(bool(torch.isfinite(total)) and bool(torch.isfinite(grad_norm)), self.ctx)
        record: dict[str, Any] = {"type": "train", "iteration": it, "loss": float(total.detach()),
                                  "grad_norm": float(grad_norm), **logs}
        if not ok:
            self.opt_g.zero_grad(set_to_none=True)
            self.counters["skipped_g"] += 1
            self.counters["consecutive"] += 1
            record["skipped"] = True
            return record
        self.counters["consecutive"] = 0
        self.opt_g.step()
        self.task.after_generator_step()
        self.ema.update(self.generator)
        if d_runner is not None:
            d_total, d_logs = d_runner(cache, it)
            if d_total is not None:
                self.opt_d.zero_grad(set_to_none=True)
                d_total.backward()
                d_norm = torch.nn.utils.clip_grad_norm_(self.discriminators.parameters(),
                                                        math.inf, foreach=foreach)
                if D.all_true(bool(torch.isfinite(d_total)) and bool(torch.isfinite(d_norm)),
                              self.ctx):
                    self.opt_d.step()
                else:
                    self.opt_d.zero_grad(set_to_none=True)
                    self.counters["skipped_d"] += 1
                record.update(d_logs)
        return record

    def _rollback(self) -> None:
        """Back to the newest *healthy* checkpoint with the learning rate cut again (the cuts
        compound) and other batches and noise for the replayed iterations; after
        ``run.max_rollbacks`` rollbacks, or with no healthy checkpoint, the run stops with a
        :class:`DivergenceError` (the checkpoints stay, nothing is exported)."""
        cfg = self.cfg.run
        diverged_at = self.iteration
        rollbacks = self.counters["rollbacks"] + 1
        lr_scale = self.lr_scale * cfg.rollback_lr_factor
        found = newest_healthy_checkpoint(self.run_dir) \
            if rollbacks <= cfg.max_rollbacks else None
        D.barrier(self.ctx)  # every rank reads the same files and so picks the same target
        if found is None:
            kept = newest_healthy_checkpoint(self.run_dir)
            tried = (f"{rollbacks - 1} rollback(s) with the learning rate cut to "
                     f"x{self.lr_scale:g} did not help" if rollbacks > 1 else
                     "no healthy checkpoint to roll back to")
            where = f"the last healthy checkpoint is {kept[0]}" if kept else \
                "no healthy checkpoint was kept"
            self._log_record({"type": "diverged", "iteration": diverged_at,
                              "rollbacks": rollbacks - 1, "lr_scale": self.lr_scale})
            raise DivergenceError(
                f"training diverged at iteration {diverged_at}: {cfg.max_consecutive_skips} "
                f"steps in a row had non-finite losses or gradients; {tried}; lower "
                f"optim.lr_g (now {self.cfg.optim.lr_g:g}) and optim.lr_d (now "
                f"{self.cfg.optim.lr_d:g}) or set optim.grad_clip, and start again; {where}")
        path, state = found
        counters = dict(self.counters)
        self._restore(state)
        self.counters.update(skipped_g=counters["skipped_g"], skipped_d=counters["skipped_d"],
                             consecutive=0, rollbacks=rollbacks)
        self.lr_scale = lr_scale
        self.losses.clear()
        self._say(f"rolled back to {path.name} after {cfg.max_consecutive_skips} skipped "
                  f"steps at iteration {diverged_at}; learning rate x{self.lr_scale:g}, "
                  f"other batches (rollback {rollbacks} of at most {cfg.max_rollbacks})")
        self._log_record({"type": "rollback", "iteration": self.iteration,
                          "diverged_at": diverged_at, "lr_scale": self.lr_scale,
                          "from": str(path)})

    def validate(self) -> dict[str, float] | None:
        if not self.val_pairs or self.ema is None:
            return None
        metrics = None
        if self.ctx.is_main:
            t0 = time.perf_counter()
            metrics, grid = self.task.validate(self.ema.shadow, self.val_pairs,
                                               self.cfg.run.val_samples, self.cfg.run.seed)
            if grid is not None:
                save_grid(grid, self.run_dir / "samples" / f"val_{self.iteration:08d}.png")
                if self.board is not None:
                    self.board.add_image("val/samples", grid, self.iteration, dataformats="HWC")
            self._log_record({"type": "val", "iteration": self.iteration,
                              "seconds": time.perf_counter() - t0, **metrics})
            self._say("val " + " ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
        D.barrier(self.ctx)
        return metrics

    def fit(self, resume: str | None = None, overwrite: bool = False) -> Path | None:
        """Train (see :meth:`_fit`) with ``run.threads`` CPU threads for its duration (the
        process's own setting is restored afterwards: a Trainer changes no global state
        beyond its run)."""
        threads = torch.get_num_threads()
        if self.cfg.run.threads > 0:
            torch.set_num_threads(self.cfg.run.threads)
        try:
            return self._fit(resume, overwrite)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, resume: str | None = None, overwrite: bool = False) -> Path | None:
        """Train to ``run.iterations``; returns the exported model's path (main process).

        ``resume``: "auto" (the newest valid checkpoint of the run folder, or a fresh start
        if it has none) or a checkpoint file. A folder that already holds a run is refused
        unless it is resumed or ``overwrite`` is given (then that run's files are deleted
        first). Every argument is checked before anything is written to the folder."""
        cfg = self.cfg
        self._continue_init_rng()
        state = self._resume_state(resume)
        if state is None:
            held = run_files(self.run_dir)
            if held and not overwrite:
                raise RunFolderError(
                    f"{self.run_dir} holds a run ({', '.join(p.name for p in held[:3])}): "
                    "continue it with --resume auto, or start over with --overwrite (its "
                    "checkpoints, metrics and model are deleted), or choose another -o")
            if cfg.run.init_from:  # a bad model must not leave a half-written folder
                self._init_from(cfg.run.init_from)
            if cfg.run.memory_check:  # a batch that cannot fit: refused before any write
                self._check_step_memory()
            D.barrier(self.ctx)
            if held and self.ctx.is_main:
                for path in held:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.run_dir)  # a killed run's half-written checkpoint
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            for line in self.dataset.report_lines():
                self._say(line)
            if self.fitted:
                self._say("fitted to the training images: " + json.dumps(self.fitted))
                if state is None:  # a resumed run has the record from its start
                    self._log_record({"type": "fitted", "iteration": 0, **self.fitted})
            if self.val_pairs:
                self._say(f"validation: {len(self.val_pairs)} pairs from {cfg.data.val_dir}")
        D.barrier(self.ctx)
        if state is not None:
            self._restore(state)
            self._truncate_log(self.iteration)
            self._say(f"resumed at iteration {self.iteration}")
        else:
            self.task.initialize(self._init_batch())  # only what init_from did not set
            self.ema = EMA(self.generator, cfg.optim.ema_decay, cfg.speed.foreach_updates)
            self.save_checkpoint()  # iteration 0: a rollback target from the start
        g_runner, d_runner = self._runners()
        start_time = time.perf_counter()
        batches = self._loader(self.iteration)
        last_log = (time.perf_counter(), self.iteration)
        clock = time.perf_counter()  # train_seconds: the loop's wall time, validation included
        self.board = self._open_board()
        if self.ctx.is_main:
            self._bar = Progress(cfg.run.iterations, sys.stdout, unit="it",
                                 initial=self.iteration)
        try:
            with StopRequest(self._say) as interrupt:
                clock = self._loop(batches, g_runner, d_runner, start_time, last_log, clock,
                                   interrupt)
            if cfg.run.val_every and self.iteration % cfg.run.val_every:
                self.validate()
            self.train_seconds += time.perf_counter() - clock
            if self.iteration % cfg.run.checkpoint_every:
                self.save_checkpoint()
            return self.export()
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
            if self.board is not None:
                self.board.close()
                self.board = None

    def _loop(self, batches, g_runner, d_runner, start_time: float,
              last_log: tuple[float, int], clock: float, interrupt: StopRequest) -> float:
        """The training loop from the current iteration to the end, a stop or an interrupt
        (then a checkpoint is written and :class:`~sdflow.errors.Interrupted` raised);
        returns the clock of the last step."""
        cfg = self.cfg
        while self.iteration < cfg.run.iterations:
            try:
                record = self._step(next(batches), g_runner, d_runner)
            except (RuntimeError, MemoryError) as exc:
                if not is_oom(exc):
                    raise
                data = cfg.data
                raise SDFlowError(
                    f"out of memory at iteration {self.iteration} with data.batch_size="
                    f"{data.batch_size} and data.lr_crop={data.lr_crop}: lower them (e.g. "
                    f"--set data.batch_size={max(1, data.batch_size // 2)}), or train on a "
                    "machine with more memory; the run's checkpoints are kept") from None
            self.iteration += 1
            now = time.perf_counter()
            self.train_seconds += now - clock
            clock = now
            if math.isfinite(record["loss"]):  # skipped steps too: a rising loss is news
                self.losses.append(record["loss"])
            if record.get("skipped") and \
                    self.counters["consecutive"] >= cfg.run.max_consecutive_skips:
                self._rollback()  # or DivergenceError when rollbacks did not help
                batches = self._loader(self.iteration)
                last_log = (time.perf_counter(), self.iteration)
                continue
            if self.iteration % cfg.run.log_every == 0 or record.get("skipped") \
                    or self.iteration == cfg.run.iterations:
                now = time.perf_counter()
                record["it_per_s"] = (self.iteration - last_log[1]) / max(now - last_log[0], 1e-9)
                record["lr_g"] = self.opt_g.param_groups[0]["lr"]
                record["skipped_total"] = self.counters["skipped_g"]
                last_log = (now, self.iteration)
                self._log_record(record)
                self._progress(record)
            stop = cfg.run.time_limit_minutes > 0 and \
                (time.perf_counter() - start_time) / 60 > cfg.run.time_limit_minutes
            stop = D.broadcast_flag(stop, self.ctx)
            interrupted = not D.all_true(not interrupt.requested, self.ctx)  # any rank
            stop = stop or interrupted
            at_stop = cfg.run.stop_at is not None and self.iteration >= cfg.run.stop_at
            if self.iteration % cfg.run.checkpoint_every == 0 or stop:
                self.save_checkpoint()
                if self.healthy():  # an exploding model never replaces the last good one
                    self.export()
            if at_stop:
                self._say(f"stopped at iteration {self.iteration} (run.stop_at)")
                break
            if cfg.run.val_every and self.iteration % cfg.run.val_every == 0:
                self.validate()
            if interrupted:
                raise Interrupted(f"interrupted at iteration {self.iteration}; checkpoint "
                                  "saved; continue with --resume auto")
            if stop:
                self._say(f"time limit of {cfg.run.time_limit_minutes} min reached at "
                          f"iteration {self.iteration}")
                break
        return clock

    def _resume_state(self, resume: str | None) -> dict[str, Any] | None:
        if not resume:
            return None
        if resume == "auto":
            found = newest_valid_checkpoint(self.run_dir)
            if found is None:
                return None
            path, state = found
        else:
            path, state = Path(resume), load_training_state(Path(resume))
        check_resumable(state, path, {"generator": self.generator,
                                      "discriminators": self.discriminators},
                        self.cfg.to_dict())
        return state

    # ------------------------------------------------------------------ stepping by hand
    def start(self) -> None:
        """What :meth:`fit` does before step 0 of a fresh run (data-dependent init, the EMA),
        for code that steps the trainer itself (benchmarks, tests)."""
        self._continue_init_rng()
        self.task.initialize(self._init_batch())
        self.ema = EMA(self.generator, self.cfg.optim.ema_decay, self.cfg.speed.foreach_updates)

    def batches(self, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """The training batches from iteration ``start`` on (the crops :meth:`fit` uses)."""
        return self._loader(start)

    def train_step(self, batch: dict[str, torch.Tensor], discriminator: bool = True
                   ) -> dict[str, Any]:
        """One training step as :meth:`fit` takes it (generator, then the discriminators
        unless ``discriminator`` is False), advancing the iteration; returns its log
        record. Call :meth:`start` first."""
        g_runner, d_runner = self._runners()
        record = self._step(batch, g_runner, d_runner if discriminator else None)
        self.iteration += 1
        return record

    def _runners(self):
        if not self.ctx.enabled:
            return self._g_call, self._d_call
        ids = [self.device.index] if self.device.type == "cuda" else None
        g = DistributedDataParallel(self._g_call, device_ids=ids,
                                    find_unused_parameters=True)
        d = DistributedDataParallel(self._d_call, device_ids=ids,
                                    find_unused_parameters=True) if self._d_call else None
        return g, d

    def _progress(self, record: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        keys = getattr(self.task, "progress_keys", ("loss",))
        shown = " ".join(f"{k}={record[k]:.4g}" for k in keys if k in record)
        skipped = f"skipped={self.counters['skipped_g']}"
        if self._bar is not None and self._bar.enabled:  # a terminal: sdflow sr's bar
            self._bar.advance(self.iteration, f"{shown} {skipped}")
        else:  # a pipe or log file: one line per log_every iterations
            print(f"it {self.iteration}/{self.cfg.run.iterations} {shown} "
                  f"{record['it_per_s']:.2f} it/s {skipped}", flush=True)
