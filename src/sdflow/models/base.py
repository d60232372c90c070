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
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        if name not in cls._presets:
            raise ValueError(f"unknown {cls._name} preset {name!r}; "
                             f"choose from {sorted(cls._presets)}")
        return replace(cls._presets[name], **overrides)
