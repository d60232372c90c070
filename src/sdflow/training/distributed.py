"""Process-group handling for multi-process training (``torchrun``).

A single process never creates a process group. Under ``torchrun`` (``WORLD_SIZE > 1``)
the group uses gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sdflow.hardware import resolve_device


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; otherwise a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank, world, local_rank, dev)


def teardown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_true(flag: bool, ctx: DistContext) -> bool:
    """True on every rank iff ``flag`` is true on every rank."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def parameters_in_sync(module: torch.nn.Module, ctx: DistContext) -> bool:
    """Whether every rank holds bit-identical parameters (compares a float64 fingerprint)."""
    if not ctx.enabled:
        return True
    with torch.no_grad():
        probe = torch.stack([p.detach().double().sum() for p in module.parameters()]
                            + [p.detach().double().abs().sum() for p in module.parameters()])
    gathered = [torch.zeros_like(probe) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, probe)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])
