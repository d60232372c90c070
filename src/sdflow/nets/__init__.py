"""Ordinary (non-invertible) networks: condition feature extractors and the LR content
extractor."""

from sdflow.nets.content import ContentExtractor, FeatureModulation, ModulatedResBlock
from sdflow.nets.rrdb import RRDB, ConditionNet, ResidualDenseBlock

__all__ = [
    "RRDB",
    "ConditionNet",
    "ContentExtractor",
    "FeatureModulation",
    "ModulatedResBlock",
    "ResidualDenseBlock",
]
