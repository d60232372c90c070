"""Invertible layers with one interface: ``forward(x, cond) -> (y, logdet)`` (data to latent)
and ``inverse(y, cond) -> (x, logdet_inv)``; log-determinants per sample, shape ``[B]``."""

from sdflow.flows.actnorm import (
    ActNorm,
    DataInitialized,
    all_initialized,
    data_init,
    mark_initialized,
)
from sdflow.flows.base import Bakeable, Bijection, FlowSequence, sum_except_batch
from sdflow.flows.coupling import (
    AffineCoupling,
    AffineInjector,
    CouplingNet,
    PaddedCondition,
    ZeroConv2d,
    soft_clamp,
)
from sdflow.flows.invconv import InvertibleConv1x1
from sdflow.flows.predict import LinearPredictor
from sdflow.flows.reshape import Squeeze, Unsqueeze
from sdflow.flows.steps import (
    ConditionalFlow,
    ConditionalSplit,
    FlowLevel,
    FlowStep,
    transition_block,
)

__all__ = [
    "ActNorm",
    "Bakeable",
    "AffineCoupling",
    "AffineInjector",
    "Bijection",
    "ConditionalFlow",
    "ConditionalSplit",
    "DataInitialized",
    "CouplingNet",
    "FlowSequence",
    "FlowLevel",
    "PaddedCondition",
    "FlowStep",
    "InvertibleConv1x1",
    "LinearPredictor",
    "Squeeze",
    "Unsqueeze",
    "ZeroConv2d",
    "all_initialized",
    "data_init",
    "mark_initialized",
    "soft_clamp",
    "sum_except_batch",
    "transition_block",
]
