"""Device presets: the built-in names and one preset as a read-only mapping from
parameter name to value, each parameter with its unit and published source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from . import _xbar


class Parameter(NamedTuple):
    """One documented parameter of a preset."""

    value: Any
    """The value (float, int, bool or a list of numbers)."""
    unit: str
    """Its unit (``S``, ``V``, ``s``, ``1`` for dimensionless ...)."""
    source: str
    """The published source of the value, or why it is a representative value."""


def presets() -> list[str]:
    """Names of the built-in device presets (``xbar devices`` lists them by family)."""
    return list(_xbar.presets())


class Preset(Mapping):
    """A device preset: ``preset["g_max_s"]`` is a value, ``preset.params["g_max_s"]`` the
    value with its unit and source. Pass it as a tile's ``device`` to use it with the
    overrides it was made with."""

    def __init__(self, name_or_path: str, overrides: dict[str, Any]):
        table = _xbar.preset_table(name_or_path, dict(overrides))
        self.name_or_path: str = name_or_path
        """The built-in name or the file path it was read from."""
        self.overrides: dict[str, Any] = dict(overrides)
        """Parameters replaced by the caller."""
        self.name: str = table["name"]
        self.model: str = table["model"]
        self.family: str = table["family"]
        self.description: str = table["description"]
        self.origin: str = table["origin"]
        self.params: dict[str, Parameter] = {
            k: Parameter(v["value"], v["unit"], v["source"]) for k, v in table["params"].items()
        }

    def __getitem__(self, name: str) -> Any:
        try:
            return self.params[name].value
        except KeyError:
            raise KeyError(
                f"{self.origin} has no parameter `{name}` (it has: {', '.join(self.params)})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def unit(self, name: str) -> str:
        """The unit of parameter ``name``."""
        self[name]
        return self.params[name].unit

    def source(self, name: str) -> str:
        """The source of parameter ``name``."""
        self[name]
        return self.params[name].source

    def __repr__(self) -> str:
        extra = f", overrides={self.overrides}" if self.overrides else ""
        return f"Preset({self.name!r}, model={self.model!r}{extra})"


def preset(name_or_path: str, **overrides: Any) -> Preset:
    """A built-in preset by name, or a preset TOML file by path, with parameters replaced by
    ``overrides`` (validated by building the device: an unknown name or a value out of range
    is a ``ValueError`` naming the parameter)."""
    return Preset(name_or_path, overrides)
