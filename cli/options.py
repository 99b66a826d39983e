"""Options shared by several commands, defined once.

Flow backend parameters become ``--<backend>-<parameter>`` options generated from each
backend's config dataclass, so a new backend brings its options with it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable

import click

from flowkit.errors import ConfigError
from flowkit.flow import backend_config_class, backend_summary, list_backends, make_backend_config


def parameter_help(config_class: type) -> dict[str, str]:
    """Field descriptions from the ``Attributes:`` section of a config class docstring."""
    doc = config_class.__doc__ or ""
    section = doc.split("Attributes:", 1)[1] if "Attributes:" in doc else ""
    helps: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"\s+(\w+):\s*(.*)", line)
        if match and match.group(1) in {f.name for f in dataclasses.fields(config_class)}:
            current = match.group(1)
            helps[current] = match.group(2).strip()
        elif current and line.strip():
            helps[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return helps


def _option_name(backend: str, field: str) -> str:
    return f"--{backend}-{field.rstrip('_').replace('_', '-')}"


def _param_key(backend: str, field: str) -> str:
    return f"{backend}_{field.rstrip('_')}"


def flow_parameter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--<backend>-<param>`` options for every registered backend's parameters."""
    for backend in reversed(list_backends()):
        config_class = backend_config_class(backend)
        helps = parameter_help(config_class)
        for field in reversed(dataclasses.fields(config_class)):
            kind = bool if isinstance(field.default, bool) else type(field.default)
            command = click.option(
                _option_name(backend, field.name), _param_key(backend, field.name),
                type=kind, default=None,
                help=f"{backend}: {helps.get(field.name, field.name)}  "
                     f"[default: {field.default}]")(command)
    return command


def flow_config_from_options(method: str, options: dict[str, Any]) -> Any:
    """Build backend ``method``'s config from the generated options; reject other backends'."""
    params: dict[str, Any] = {}
    for backend in list_backends():
        for field in dataclasses.fields(backend_config_class(backend)):
            value = options.pop(_param_key(backend, field.name), None)
            if value is None:
                continue
            if backend != method:
                raise ConfigError(f"{_option_name(backend, field.name)} applies to --flow "
                                  f"{backend}, not {method}")
            params[field.name] = value
    return None if method == "none" else make_backend_config(method, **params)


def flow_methods_help() -> str:
    return "; ".join(f"{name}: {backend_summary(name)}" for name in list_backends())


def parse_size(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> tuple[int, int] | None:
    """Click callback: 'WxH' -> (W, H)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 340x256, got {value!r}")
    return int(match.group(1)), int(match.group(2))
