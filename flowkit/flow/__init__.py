"""Optical flow backends and the registry that names them.

A backend is one module holding a frozen config dataclass and a :class:`FlowBackend` subclass.
Backend modules are imported only when asked for, so heavy dependencies (torch for RAFT) load
only when used. Adding a backend means adding one line to ``_ENTRIES``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, NamedTuple

from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import FlowBackend


class _Entry(NamedTuple):
    module: str
    backend_class: str
    config_class: str
    summary: str


_ENTRIES: dict[str, _Entry] = {
    "tvl1": _Entry("flowkit.flow.tvl1", "TVL1Flow", "TVL1Config",
                   "TV-L1 (OpenCV contrib DualTVL1), CPU; the standard for two-stream networks"),
    "farneback": _Entry("flowkit.flow.farneback", "FarnebackFlow", "FarnebackConfig",
                        "Farneback polynomial expansion (OpenCV), CPU; fast and coarse"),
}


def list_backends() -> list[str]:
    """Names accepted by :func:`get_backend`."""
    return list(_ENTRIES)


def backend_summary(name: str) -> str:
    """One line describing a backend."""
    return _entry(name).summary


def _entry(name: str) -> _Entry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise BackendError(
            f"unknown flow backend {name!r}; choose one of: {', '.join(_ENTRIES)}"
        ) from None


def backend_config_class(name: str) -> type:
    """The frozen dataclass holding the parameters of backend ``name``."""
    entry = _entry(name)
    return getattr(importlib.import_module(entry.module), entry.config_class)


def make_backend_config(name: str, **options: Any) -> Any:
    """Build backend ``name``'s config from keyword options, defaults for the rest.

    Raises:
        ConfigError: an option is not a parameter of that backend.
    """
    config_class = backend_config_class(name)
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"backend {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(sorted(known))}"
        )
    return config_class(**options)


def get_backend(name: str, config: Any = None, device: str = "cpu") -> FlowBackend:
    """Create backend ``name`` with ``config`` (defaults when None) on ``device``."""
    entry = _entry(name)
    module = importlib.import_module(entry.module)
    if config is None:
        config = getattr(module, entry.config_class)()
    return getattr(module, entry.backend_class)(config, device=device)


__all__ = [
    "FlowBackend",
    "backend_config_class",
    "backend_summary",
    "get_backend",
    "list_backends",
    "make_backend_config",
]
