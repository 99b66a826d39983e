"""Settings as files and plain data: YAML for people, nested dicts for checkpoints.

Reading checks names and types against the dataclasses of stddcn.config, so a misspelt or
mistyped setting is an error naming it, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from stddcn.config import TrainConfig
from stddcn.errors import SettingsError

BEFORE_DEFAULTS = {"data": {"rgb_frame": "first"},
                   "model": {"cross_norm": False, "fusion": "pooled"}}
"""Settings whose default changed, or that came later, with the value that reproduces a run
stored without them (a checkpoint's or run folder's config, always resolved)."""


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config dataclass (tuples become lists), for YAML and checkpoints."""
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Build dataclass ``cls`` from a nested dict, checking names and types.

    Unknown keys are errors (a typo must not be ignored); missing keys take defaults.
    """
    if not isinstance(data, dict):
        raise SettingsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SettingsError(f"{where}: unknown setting {unknown[0]!r}; valid: "
                          f"{', '.join(sorted(names))}")
    values = {name: _convert(hints[name], value, f"{where}.{name}")
              for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    """``value`` as type ``hint`` (dataclass, tuple, optional, int, float, str, bool)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [option for option in options if option is not type(None)]
        return _convert(inner, value, where)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        (inner, _) = typing.get_args(hint)
        return tuple(_convert(inner, item, where) for item in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint)
                                               and not (hint is int and isinstance(value, bool))):
        raise SettingsError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def stored_config(data: dict[str, Any], where: str) -> TrainConfig:
    """The TrainConfig of a stored run (checkpoint or RUN/config.yaml): as :func:`from_dict`,
    but a setting of :data:`BEFORE_DEFAULTS` that it lacks takes the value it was trained
    with, not today's default."""
    if isinstance(data, dict):
        data = dict(data)
        for section, settings in BEFORE_DEFAULTS.items():
            if isinstance(data.get(section, {}), dict):
                data[section] = {**settings, **data.get(section, {})}
    return from_dict(TrainConfig, data, where=where)


def save_yaml(config: TrainConfig, path: Path) -> None:
    """Write ``config`` as YAML (atomic: a reader never sees half a file)."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    partial.replace(path)


def load_yaml(path: Path, stored: bool = False) -> TrainConfig:
    """Read a TrainConfig from YAML; every setting may be left out (defaults apply, or for a
    ``stored`` run's config.yaml the values of :func:`stored_config`)."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read the configuration ({exc})") from None
    if stored:
        return stored_config(data, where=str(path))
    return from_dict(TrainConfig, data, where=str(path))


def differences(old: TrainConfig, new: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """'name: old -> new' for every leaf setting that differs, skipping dotted names in
    ``ignore``."""
    def leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for key, value in data.items():
            name = f"{prefix}{key}"
            out.update(leaves(value, name + ".") if isinstance(value, dict) else {name: value})
        return out
    before, after = leaves(to_dict(old)), leaves(to_dict(new))
    return [f"{name}: {before.get(name)!r} -> {after.get(name)!r}"
            for name in sorted(set(before) | set(after))
            if name not in ignore and before.get(name) != after.get(name)]
