"""Quantization modes: one pure `QuantConfig` per mode, one file per mode (or family of modes).

Pure layer. Every module of this package is imported here and registers its configs, so adding a
mode is adding a file (docs/architecture.md, "Adding a quantization mode"). `QuantMode` is a mode's name: a
string that exists only for registered modes, one instance per name, so `mode is QuantMode.FP32`
and `QuantMode("fp32") == "fp32"` both hold.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Any, ClassVar

from bortnas.modes.base import FULL, TERNARY, QuantConfig, register, registry

__all__ = ["FULL", "TERNARY", "QuantConfig", "QuantMode", "get_config", "register"]

# The built-in modes first, in the order users know them; then any other mode file of the package.
_BUILTIN = ("fp32", "int8", "bitnet158", "bit", "bibert")
for _name in (*_BUILTIN, *sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base", *_BUILTIN))):
    importlib.import_module(f"{__name__}.{_name}")


class _QuantModeMeta(type):
    def __iter__(cls) -> Iterator[QuantMode]:
        return iter([QuantMode(name) for name in registry()])

    def __len__(cls) -> int:
        return len(registry())


class QuantMode(str, metaclass=_QuantModeMeta):
    """The name of a registered quantization mode; iterate the class for every mode."""

    FP32: ClassVar[QuantMode]
    INT8: ClassVar[QuantMode]
    BITNET158: ClassVar[QuantMode]
    BIT_W1A1: ClassVar[QuantMode]
    BIT_W1A2: ClassVar[QuantMode]
    BIT_W1A4: ClassVar[QuantMode]
    BIBERT: ClassVar[QuantMode]
    _instances: ClassVar[dict[str, QuantMode]] = {}

    def __new__(cls, value: Any) -> QuantMode:
        if isinstance(value, QuantMode):
            return value
        instance = cls._instances.get(value) if isinstance(value, str) else None
        if instance is None:
            if not isinstance(value, str) or value not in registry():
                raise ValueError(f"{value!r} is not a quantization mode (known: {', '.join(registry())})")
            instance = cls._instances[value] = super().__new__(cls, value)
        return instance

    @property
    def value(self) -> str:
        """The plain string name (as an enum's value reads)."""
        return str.__str__(self)

    @property
    def config(self) -> QuantConfig:
        return registry()[self.value]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(registry())

    def __repr__(self) -> str:
        return f"QuantMode({self.value!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (QuantMode, (self.value,))


for _name in registry():
    setattr(QuantMode, _name.upper(), QuantMode(_name))


def get_config(mode: QuantMode | QuantConfig | str) -> QuantConfig:
    """The config of a mode given by name, `QuantMode` or config.

    Raises:
        ValueError: an unknown mode name.
    """
    if isinstance(mode, QuantConfig):
        return mode
    return QuantMode(mode).config
