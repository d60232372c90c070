"""A run folder and its training-state files: where ``sdflow train`` writes checkpoints,
what each holds, how they are read back (safely: tensors only), which one a resume or a
rollback starts from, and the check that a checkpoint fits the run resuming it.

The state itself is collected and restored by :class:`sdflow.training.trainer.Trainer`;
this module knows the file format, not the trainer."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdflow.errors import CheckpointError, SDFlowError
from sdflow.weights import state_mismatch

log = logging.getLogger("sdflow.train")

CHECKPOINT_PREFIX = "step_"


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    """Where the training state at ``iteration`` is written."""
    return run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{iteration:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint files of a run, newest first."""
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    files = [p for p in ckpt_dir.glob(f"{CHECKPOINT_PREFIX}*.pt") if p.stem[5:].isdigit()]
    return sorted(files, key=lambda p: int(p.stem[5:]), reverse=True)


#: What every training state written by :meth:`Trainer.save_checkpoint` holds.
STATE_KEYS = ("iteration", "generator", "ema", "discriminators", "opt_g", "opt_d", "schedule",
              "rng", "counters", "config")
_RESUME_FIX = "resume from a run's checkpoints/step_*.pt (or --resume auto)"


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return (len(head) == 9 and head[8:9] == b"{"
            and int.from_bytes(head[:8], "little") < path.stat().st_size)


def load_training_state(path: str | Path) -> dict[str, Any]:
    """A training checkpoint written by ``sdflow train`` (``torch.load`` with
    ``weights_only=True``: no pickled code runs). Anything else raises a one-line
    :class:`CheckpointError`; torch's advice to turn ``weights_only`` off is never passed
    on, and its exception is not chained."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such training checkpoint; {_RESUME_FIX}")
    try:
        exported = _is_safetensors(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if exported:
        raise CheckpointError(f"{path}: an exported model, not a training checkpoint; to "
                              "start a new run from its weights use --init-from (--resume "
                              "takes a run's checkpoints/step_*.pt)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        error = CheckpointError(f"{path}: refused: it holds pickled objects other than "
                                "tensors (not a checkpoint sdflow train wrote, and sdflow "
                                f"never runs code from a file); {_RESUME_FIX}")
    except Exception:  # torch raises RuntimeError, EOFError, KeyError... for corrupt files
        error = CheckpointError(f"{path}: not a readable training checkpoint (truncated or "
                                f"corrupt); {_RESUME_FIX}")
    else:
        missing = [k for k in STATE_KEYS if k not in state] if isinstance(state, dict) \
            else list(STATE_KEYS)
        if not missing:
            return state
        error = CheckpointError(f"{path}: not an sdflow training checkpoint (lacks "
                                f"{', '.join(missing[:3])}); {_RESUME_FIX}")
    raise error  # outside the except blocks: torch's message is not even chained


def newest_valid_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that loads; corrupt ones are reported and passed over."""
    for path in list_checkpoints(run_dir):
        try:
            return path, load_training_state(path)
        except CheckpointError as exc:  # a truncated or corrupt file: try the previous one
            log.warning("ignoring %s", str(exc).split("; ")[0])
    return None


def newest_healthy_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable checkpoint that was healthy when written (files from before
    health was recorded count as healthy)."""
    for path in list_checkpoints(run_dir):
        try:
            state = load_training_state(path)
        except CheckpointError as exc:
            log.warning("ignoring %s", str(exc).split("; ")[0])
            continue
        if state.get("healthy", True):
            return path, state
    return None




#: What a run writes into its folder: a folder holding any of them holds a run.
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoints", "model_ema.safetensors",
             "samples")


class RunFolderError(SDFlowError):
    """The run folder already holds a run and neither resume nor overwrite was asked for."""


def run_files(run_dir: Path) -> list[Path]:
    """The files and folders of a run in ``run_dir`` (empty: no run there)."""
    return [run_dir / name for name in RUN_FILES if (run_dir / name).exists()]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def check_resumable(state: dict[str, Any], path: Path, networks: dict[str, nn.Module | None],
                    config: dict[str, Any]) -> None:
    """The checkpoint's networks (``networks``: state key -> this run's module or None) have
    this run's shapes, else one line naming the settings that differ (the model and loss
    sections of the checkpoint's config and this run's ``config``)."""
    problems = []
    for name, module in networks.items():
        saved = state[name]
        if module is None or saved is None:
            if (module is None) != (saved is None):
                problems.append(f"{name}: present in only one of them")
            continue
        if not isinstance(saved, dict):
            problems.append(f"{name}: not a state dict")
            continue
        mismatch = state_mismatch(module, saved)
        if mismatch:
            problems.append(f"{name}: {mismatch}")
    if not problems:
        return
    saved_cfg = state["config"] if isinstance(state["config"], dict) else {}
    theirs = _flat({k: v for k, v in saved_cfg.items() if k in ("model", "loss")})
    ours = _flat({k: v for k, v in config.items() if k in ("model", "loss")})
    diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    shown = ", ".join(diff[:5]) + (f" and {len(diff) - 5} more" if len(diff) > 5 else "")
    raise CheckpointError(
        f"{path}: a training checkpoint of another model than this run's "
        f"({'settings differ in ' + shown if diff else problems[0]}); resume with the "
        "settings it was written with (its run's config.json), or start a new run from "
        "an exported model with --init-from")
