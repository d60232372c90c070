"""What every architecture's config dataclass shares: dict round trip and named presets."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="PresetConfig")


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

