"""Optical flow: the backends and the registry that names them, flow files, metrics, colours.

- this module: the registry (:func:`get_backend`, :func:`list_backends`, ...);
- ``base``, ``device``: what a backend is, and where it runs;
- ``tvl1``, ``farneback``, ``dis``, ``opencv``: OpenCV's methods; ``tvl1_torch``,
  ``tvl1_triton``: TV-L1 in PyTorch (and its fused GPU kernels); ``raft``: RAFT;
- ``files``: single flow fields as .flo / .png / .npy files; ``metrics``: endpoint error
  against ground truth; ``viz``: the Middlebury colour wheel.

The bottom layer beside ``flowkit.video``: imports nothing of flowkit but its base modules
(``flowkit.errors``, ``flowkit.checks``, ``flowkit.writing``, ``flowkit.lifecycle``;
docs/architecture.md).

A backend is a frozen config dataclass and a :class:`FlowBackend` subclass, named here as
``module:Class``. Modules are imported only when asked for, and the config classes of the
PyTorch backends live in modules without torch, so the CLI starts without loading torch.
Adding a backend means adding one line to ``_ENTRIES``.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, NamedTuple

from flowkit.errors import BackendError, ConfigError
from flowkit.flow.base import FlowBackend


class _Entry(NamedTuple):
    backend: str  # "module:Class" of the FlowBackend subclass
    config: str   # "module:Class" of its config dataclass
    title: str    # what it is
    devices: str  # where it runs: "cpu", or "cpu, cuda"
    summary: str  # when to choose it, in a few words


class BackendInfo(NamedTuple):
    """What ``flowkit backends`` shows of a backend: one line, without importing it."""

    name: str
    title: str
    devices: str
    summary: str


_ENTRIES: dict[str, _Entry] = {
    "tvl1": _Entry("flowkit.flow.tvl1:TVL1Flow", "flowkit.flow.tvl1:TVL1Config",
                   "TV-L1 (OpenCV contrib DualTVL1)", "cpu",
                   "the standard for two-stream networks"),
    "farneback": _Entry("flowkit.flow.farneback:FarnebackFlow",
                        "flowkit.flow.farneback:FarnebackConfig",
                        "Farneback polynomial expansion (OpenCV)", "cpu", "fast and coarse"),
    "dis": _Entry("flowkit.flow.dis:DISFlow", "flowkit.flow.dis:DISConfig",
                  "DIS, dense inverse search (OpenCV)", "cpu",
                  "tens of times faster than tvl1, a little less accurate"),
    "tvl1-torch": _Entry("flowkit.flow.tvl1_torch:TVL1TorchFlow",
                         "flowkit.flow.tvl1:TVL1TorchConfig",
                         "TV-L1 in PyTorch (OpenCV DualTVL1's algorithm)", "cpu, cuda",
                         "no OpenCV CUDA build needed"),
    "raft": _Entry("flowkit.flow.raft.backend:RAFTFlow", "flowkit.flow.raft.config:RAFTConfig",
                   "RAFT, learned (PyTorch)", "cpu, cuda",
                   "needs the original or torchvision weights file"),
}


def _load(qualified: str) -> Any:
    module, name = qualified.split(":")
    return getattr(importlib.import_module(module), name)


def list_backends() -> list[str]:
    """Names accepted by :func:`get_backend`."""
    return list(_ENTRIES)


def backend_summary(name: str) -> str:
    """One line describing a backend: what it is, where it runs, when to choose it."""
    entry = _entry(name)
    return f"{entry.title}, {entry.devices}; {entry.summary}"


def backend_info(name: str) -> BackendInfo:
    """What backend ``name`` is, where it runs and when to choose it."""
    entry = _entry(name)
    return BackendInfo(name, entry.title, entry.devices, entry.summary)


def _entry(name: str) -> _Entry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise BackendError(
            f"unknown flow backend {name!r}; choose one of: {', '.join(_ENTRIES)}"
        ) from None


def backend_config_class(name: str) -> type:
    """The frozen dataclass holding the parameters of backend ``name``."""
    return _load(_entry(name).config)


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


# Parameters every backend that has them shares take one option, not --<backend>-<parameter>.
SHARED_PARAMETERS = ("precision",)


def parameter_option(name: str, field: dataclasses.Field) -> str:
    """The command-line option that sets parameter ``field`` of backend ``name``:
    ``--<backend>-<parameter>``, ``--<backend>-no-<parameter>`` for a flag that turns off a
    parameter on by default, or ``--precision`` for a shared one.

    Named here, below the CLI that declares the options, so that library messages (a resume with
    other settings) name what the user types.
    """
    if field.name in SHARED_PARAMETERS:
        return f"--{field.name}"
    parameter = field.name.rstrip("_").replace("_", "-")
    return f"--{name}-{'no-' if field.default is True else ''}{parameter}"


def get_backend(name: str, config: Any = None, device: str = "cpu") -> FlowBackend:
    """Create backend ``name`` with ``config`` (defaults when None) on ``device``."""
    entry = _entry(name)
    if config is None:
        config = _load(entry.config)()
    return _load(entry.backend)(config, device=device)


def check_backend(name: str, config: Any, devices: list[str]) -> None:
    """Raise now, not in every video of a run, if backend ``name`` cannot run as configured.

    Checks each device and builds the backend once on the CPU (which reads model weights).

    Raises:
        ConfigError: a device is unusable, or the config (e.g. a weights file) is refused.
    """
    backend_class = _load(_entry(name).backend)
    for device in devices:
        backend_class.check_device(device)
    backend_class(config, device="cpu")


__all__ = [
    "BackendInfo",
    "FlowBackend",
    "check_backend",
    "backend_config_class",
    "backend_info",
    "backend_summary",
    "get_backend",
    "list_backends",
    "make_backend_config",
    "parameter_option",
]
