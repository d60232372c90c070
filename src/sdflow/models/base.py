"""What every architecture shares: its config dataclass (dict round trip, named presets)
and the contract of what a model can do (protocols checked by ``isinstance``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from torch import Tensor

C = TypeVar("C", bound="PresetConfig")


def numbered_children(state: Mapping[str, Any], prefix: str) -> int:
    """How many numbered submodules ``prefix.0``, ``prefix.1``, ... hold weights in a state
    dict: the length of an ``nn.ModuleList``, or the number of layers with weights in an
    ``nn.Sequential`` (activations between them hold none)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return len({m.group(1) for key in state if (m := pattern.match(key))})


class PresetConfig:
    """Mixin for the frozen config dataclass of an architecture. Subclasses set ``_name``
    (for messages) and, once the presets exist, ``_presets`` (name -> config)."""

    _name: ClassVar[str] = ""
    _presets: ClassVar[dict[str, Any]] = {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], path: str = "") -> C:
        """The config from ``data`` with types and ranges checked; raises
        :class:`~sdflow.config.ConfigError` (a ValueError) naming the key (under ``path``)."""
        from sdflow.config import from_dict

        return from_dict(cls, data, path)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        if name not in cls._presets:
            raise ValueError(f"unknown {cls._name} preset {name!r}; "
                             f"choose from {sorted(cls._presets)}")
        return replace(cls._presets[name], **overrides)

    @classmethod
    def preset_from_dict(cls: type[C], name: str, overrides: dict[str, Any],
                         path: str = "overrides") -> C:
        """Preset ``name`` with ``overrides`` type- and range-checked like :meth:`from_dict`
        (errors name ``path.key``)."""
        from sdflow.config import ConfigError, from_dict

        if name not in cls._presets:
            raise ConfigError(f"unknown {cls._name} preset {name!r}; "
                              f"choose from {sorted(cls._presets)}")
        # the preset's own values are valid, so an error names an override
        return from_dict(cls, {**cls._presets[name].to_dict(), **overrides}, path)


# ---------------------------------------------------------------------------- the contract
# What a model can do, as typed protocols checked with ``isinstance(model, P)`` (or
# ``issubclass(model_class, P)`` before a model is built), never by probing attributes.
# Images are tensors ``[B, 3, H, W]`` in [-1, 1]; ``s`` is the model's ``scale``. PIL and
# numpy images go through the image API (``sdflow.super_resolve`` / ``sdflow.downscale``).


@runtime_checkable
class SuperResolver(Protocol):
    """x``s`` super-resolution, in two steps the tiled pipeline can run per tile."""

    def sr(self, y: Tensor) -> Tensor:
        """``[B, 3, h, w] -> [B, 3, s*h, s*w]`` (a deterministic model's only output; a
        stochastic one's at tau 0 unless told otherwise)."""
        ...

    def sr_condition(self, y: Tensor) -> tuple[Tensor, Tensor | None]:
        """What decoding needs from the LR image (computed once per tile)."""
        ...

    def sr_decode(self, condition: Tensor, features: Tensor | None,
                  latent: Tensor | None) -> Tensor:
        """The HR tile from the condition and, for a stochastic model, its latent."""
        ...


@runtime_checkable
class StochasticSR(SuperResolver, Protocol):
    """SR as one-to-many sampling: the HR detail latent has this shape, drawn at a
    temperature tau (``z = tau * eps``); tau 0 is the mode."""

    def sr_latent_shape(self, lr_height: int, lr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        ...


@runtime_checkable
class Downscaler(Protocol):
    """Realistic /``s`` downscaling of HR images padded to multiples of ``ds_multiple``, in
    two steps the tiled pipeline can run per tile. Every downscaler also has the property
    ``can_downscale`` (False for a file that lacks its downscaling part): use
    :func:`downscales`."""

    def downscale(self, x: Tensor) -> Tensor:
        """``[B, 3, H, W] -> [B, 3, ceil(H/s), ceil(W/s)]``."""
        ...

    def ds_condition(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ...

    def ds_decode(self, z_c: Tensor, features: Tensor, z_deg: Tensor | None) -> Tensor:
        ...


@runtime_checkable
class StochasticDS(Downscaler, Protocol):
    """Downscaling as one-to-many sampling: a degradation latent drawn by the model's draw
    plan (mixture components, then noise fields at a temperature tau);
    :class:`~sdflow.models.sampling.MixtureDownscaling` implements it."""

    def ds_latent_shape(self, hr_height: int, hr_width: int, batch: int = 1
                        ) -> tuple[int, int, int, int]:
        ...

    def draw_ds_latents(self, padded_size: tuple[int, int], batch: int, tau: float,
                        num_samples: int, component=None, generator=None,
                        truncate: float | None = None) -> tuple[list[Tensor], list]:
        ...


def is_stochastic(model: object, task: str = "sr") -> bool:
    """Whether ``model`` samples ``task`` ("sr" or "ds") at a temperature (SDFlow; for DS
    also gaussian-fit) or is deterministic there (da-iccv21): one output per image, no
    tau, no seed."""
    if task not in ("sr", "ds"):
        raise ValueError(f"task must be 'sr' or 'ds', got {task!r}")
    return isinstance(model, StochasticSR if task == "sr" else StochasticDS)


def downscales(model: object) -> bool:
    """Whether ``model`` can downscale: a :class:`Downscaler` whose file holds its
    downscaling part."""
    return isinstance(model, Downscaler) and bool(model.can_downscale)


@runtime_checkable
class LatentModel(Protocol):
    """Exact encoding to latents and reconstruction from them (a normalizing flow)."""

    def encode_hr(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ...

    def decode_hr(self, z_c: Tensor, z_hf: Tensor) -> Tensor:
        ...

    def encode_lr(self, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ...

    def decode_lr(self, z_c: Tensor, z_deg: Tensor) -> Tensor:
        ...


@runtime_checkable
class DensityModel(Protocol):
    """Log-densities of HR and LR images (nats per image)."""

    def log_prob_hr(self, x: Tensor) -> Tensor:
        ...

    def log_prob_lr(self, y: Tensor) -> Tensor:
        ...


@runtime_checkable
class KnowsItsMemory(Protocol):
    """A model that states its peak activation bytes per input pixel of a tile (else the
    tiler's estimate for SDFlow widths applies)."""

    def bytes_per_pixel(self, task: str) -> float:
        ...
