"""Model architectures of the toolkit and the registry that names them in checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from sdflow.models.da_iccv21 import DA_PRESETS, DAICCV21, DAICCV21Config
from sdflow.models.gaussian_fit import GaussianDownscaler, GaussianFitConfig
from sdflow.models.sdflow import SDFLOW_PRESETS, SDFlow, SDFlowConfig, bits_per_dim


@dataclass(frozen=True)
class Architecture:
    """How to rebuild a model from a checkpoint: its typed config and its class."""

    name: str
    config_cls: type
    model_cls: type[nn.Module]
    presets: dict[str, Any]
    label: str = ""  # what users are told the architecture is
    #: Submodules a file may lack because it was written before they were kept; such a
    #: file loads with the attribute set to None (the model says what it then cannot do).
    optional_modules: tuple[str, ...] = ()

    def build(self, config: Any) -> nn.Module:
        return self.model_cls(config)


#: Every architecture a checkpoint may name (explicit, no import-time registration).
ARCHITECTURES: dict[str, Architecture] = {
    "sdflow": Architecture("sdflow", SDFlowConfig, SDFlow, SDFLOW_PRESETS, SDFlow.label),
    "da-iccv21": Architecture("da-iccv21", DAICCV21Config, DAICCV21, DA_PRESETS,
                              DAICCV21.label, optional_modules=("lr_decoder",)),
    "gaussian-fit": Architecture("gaussian-fit", GaussianFitConfig, GaussianDownscaler,
                                 GaussianFitConfig._presets, GaussianDownscaler.label),
}


def architecture_of(model: nn.Module) -> Architecture:
    for arch in ARCHITECTURES.values():
        if type(model) is arch.model_cls:
            return arch
    raise TypeError(f"{type(model).__name__} is not a registered architecture")


__all__ = [
    "ARCHITECTURES",
    "DAICCV21",
    "DA_PRESETS",
    "DAICCV21Config",
    "SDFLOW_PRESETS",
    "Architecture",
    "GaussianDownscaler",
    "GaussianFitConfig",
    "SDFlow",
    "SDFlowConfig",
    "architecture_of",
    "bits_per_dim",
]
