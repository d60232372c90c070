"""Training configuration: YAML presets, ``--set a.b=v`` overrides and the checks that turn
them into a :class:`~sdflow.training.sections.TrainConfig` (the typed sections live in
:mod:`sdflow.training.sections`, which the tasks import; this module reads the tasks'
``TRAINABLE`` table, so the imports run one way)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from sdflow.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_yaml,
    merge,
)
from sdflow.training.sections import (  # the typed sections, importable from here too
    DataSection,
    ModelSection,
    OptimSection,
    RunSection,
    SpeedSection,
    TrainConfig,
)


def _preset_names() -> tuple[str, ...]:
    """The training presets: every ``presets/*.yaml`` shipped in the package, so adding one
    is adding its file."""
    folder = resources.files("sdflow.training").joinpath("presets")
    return tuple(sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir()
                        if entry.name.endswith(".yaml")))


#: The training presets by name (``sdflow train --preset``).
PRESETS = _preset_names()


def loss_config_class(architecture: str) -> type:
    """The ``loss`` section's dataclass of an architecture (registered with its training
    task in ``training.tasks.TRAINABLE``; the tasks import the sections, not this module)."""
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
