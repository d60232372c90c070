"""Exponential moving average of a model's weights (for evaluation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = decay * shadow + (1 - decay) * param`` after every step.

    The effective decay warms up as ``min(decay, (1 + n) / (10 + n))`` over the first
    updates, so a short run's average is not dominated by the initial weights. Buffers
    (e.g. ActNorm flags) are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, foreach: bool = True):
        self.decay = decay
        self.foreach = foreach  # one multi-tensor kernel instead of a loop (speed.foreach_updates)
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        shadow, params = list(self.shadow.parameters()), [p.detach() for p in model.parameters()]
        if self.foreach:  # checks that the two lists match, like zip(strict)
            torch._foreach_lerp_(shadow, params, 1.0 - d)
        else:
            for s, p in zip(shadow, params, strict=True):
                s.lerp_(p, 1.0 - d)
        for s, b in zip(self.shadow.buffers(), model.buffers(), strict=True):
            s.copy_(b)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "model": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.updates = state["updates"]
        self.shadow.load_state_dict(state["model"])
