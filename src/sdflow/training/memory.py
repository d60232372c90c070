"""How much memory a training step will take, measured before the first one.

A batch size or crop that does not fit used to end, after minutes of data loading and a
first step, in an allocator traceback (issue 24: 15 GB reached with ``batch_size=65536``).
Instead the trainer runs the generator's loss once on a single image, counts the bytes the
autograd graph keeps for the backward pass (``saved_tensors_hooks``: the activations that
dominate a step), and scales that to the batch:

    step ~ ACTIVATION_FACTOR * batch_size * per_image + STATE_FACTOR * parameter_bytes

(the backward pass allocates part of that again while it frees the rest; the parameters
carry their gradients, two Adam moments and the EMA copy). This is an estimate, checked
against the memory the system reports free (``MemAvailable`` on Linux, free CUDA memory on
a GPU); it refuses only what clearly does not fit, with a batch size that does. Measured
for ``cpu_x4`` at batch 8 (2026-12-06): 117 MiB saved per image, estimate 1.4 GiB; the
whole training process peaked at 1.46 GiB (VmHWM, data and validation included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from sdflow.hardware import available_ram

ACTIVATION_FACTOR = 1.5
STATE_FACTOR = 5.0
#: the share of the free memory a step may plan to use
HEADROOM = 0.9


@dataclass(frozen=True)
class StepMemory:
    per_image: int  # bytes saved for backward per image of the batch
    fixed: int  # parameters with their gradients, optimiser moments and EMA

    def step_bytes(self, batch_size: int) -> int:
        return int(ACTIVATION_FACTOR * batch_size * self.per_image + self.fixed)

    def largest_batch(self, available: int) -> int:
        """The largest batch size whose step fits in ``available`` bytes (0: none)."""
        room = HEADROOM * available - self.fixed
        return max(0, int(room // (ACTIVATION_FACTOR * max(self.per_image, 1))))


def saved_bytes(forward: Callable[[], object]) -> int:
    """Bytes of the distinct tensors the autograd graph saves while ``forward()`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        try:
            key = t.untyped_storage().data_ptr()
            size = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):  # tensor subclasses without storage
            key, size = id(t), t.numel() * t.element_size()
        seen[key] = max(seen.get(key, 0), size)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward()
    return sum(seen.values())


def measure_step(modules: list[nn.Module], forward_one: Callable[[], object]) -> StepMemory:
    """Run ``forward_one`` (the generator loss on one image) with every module's state and
    the random number generators restored afterwards: the probe leaves no trace (spectral
    norm's power iteration, for one, updates buffers in a forward pass)."""
    states = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
    with torch.random.fork_rng(devices=[]):
        per_image = saved_bytes(forward_one)
    for module, state in zip(modules, states, strict=True):
        module.load_state_dict(state)
        module.zero_grad(set_to_none=True)
    params = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
    return StepMemory(per_image, int(STATE_FACTOR * params))


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a step on ``device``: free CUDA memory, Linux's ``MemAvailable``
    for the CPU; None where it cannot be told (then nothing is refused)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return available_ram() if device.type == "cpu" else None


def human(n: float) -> str:
    """Bytes as MiB below a GiB, else GiB."""
    return f"{n / 2**20:.0f} MiB" if n < 2**30 else f"{n / 2**30:.1f} GiB"
