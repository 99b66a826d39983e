"""Options shared by several commands, defined once.

Flow backend parameters become ``--<backend>-<parameter>`` options generated from each
backend's config dataclass, so a new backend brings its options with it. ``extract`` and
``flow`` take them hidden from ``--help``; ``flowkit backends NAME`` lists the same options.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable

import click

from flowkit.errors import ConfigError
from flowkit.flow import (SHARED_PARAMETERS, backend_config_class, list_backends,
                          make_backend_config, parameter_option)
from flowkit.flow.device import PRECISIONS

_FIELD_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def parameter_help(config_class: type) -> dict[str, str]:
    """Field descriptions from the ``Attributes:`` section of a config class docstring.

    A subclass that changes no field's meaning (TVL1TorchConfig) may leave the section to the
    first base class that has one.
    """
    doc = next((klass.__doc__ for klass in config_class.__mro__
                if "Attributes:" in (klass.__doc__ or "")), "")
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


def _option_name(backend: str, field: dataclasses.Field) -> str:
    """``--<backend>-<field>``; ``--<backend>-no-<field>`` for a boolean that is on by default
    (the option turns it off)."""
    return parameter_option(backend, field)


def _off_switch(field: dataclasses.Field) -> bool:
    return _field_type(field) is bool and field.default is True


def _field_type(field: dataclasses.Field) -> type:
    return _FIELD_TYPES[str(field.type).split("|")[0].strip()]


def _param_key(backend: str, field: str) -> str:
    return f"{backend}_{field.rstrip('_')}".replace("-", "_")


def _own_fields(config_class: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(config_class) if f.name not in SHARED_PARAMETERS]


def _shown_default(backend: str, config_class: type, field: dataclasses.Field) -> str:
    """What the help shows in brackets as the field's default."""
    by_preset = field.metadata.get("by_preset")
    if by_preset:  # e.g. DISConfig: the default depends on the preset field
        preset = next(f for f in dataclasses.fields(config_class)
                      if set(f.metadata.get("choices", ())) == set(by_preset))
        values = ", ".join(f"{name} {value}" for name, value in by_preset.items())
        return f"default: by {_option_name(backend, preset)}: {values}"
    if field.default in ("", None):
        return "required with this method"
    if _field_type(field) is bool:
        return "default: " + ("on" if field.default else "off")
    return f"default: {field.default}"


def _backend_option_specs(backend: str) -> list[tuple[list[str], dict[str, Any]]]:
    """Declarations and settings of backend ``backend``'s ``--<backend>-<param>`` options,
    built from its config dataclass.

    Boolean fields become flags: one that turns the field on when it is off by default
    (``--raft-small``), ``--<backend>-no-<param>`` that turns it off when it is on by default.
    A field whose default is empty is required by its backend, unless its metadata has
    ``by_preset`` (its default per value of the field with ``choices``: DISConfig's preset). A
    str field with ``metadata={"file": True}`` takes a FILE, one with ``metadata={"choices":
    (...)}`` one of those. The defaults are shown in the help text, not set: an option left out
    is None, so that it can be told from one given.
    """
    config_class = backend_config_class(backend)
    helps = parameter_help(config_class)
    specs = []
    for field in _own_fields(config_class):
        kind = _field_type(field)
        text = helps.get(field.name, field.name.rstrip("_").replace("_", " "))
        if field.metadata.get("file"):
            click_type: Any = click.Path(dir_okay=False)
        elif field.metadata.get("choices"):
            click_type = click.Choice(field.metadata["choices"])
        else:
            click_type = None if kind is bool else kind
        flag = {"flag_value": False} if _off_switch(field) else {}
        if flag:
            text = text.rstrip(".") + "; this option turns it off."
        specs.append(([_option_name(backend, field), _param_key(backend, field.name)],
                      {"type": click_type, "is_flag": kind is bool, "default": None, **flag,
                       "help": f"{text[:1].upper()}{text[1:]}  "
                               f"[{_shown_default(backend, config_class, field)}]"}))
    return specs


def backend_options(backend: str) -> list[click.Option]:
    """Backend ``backend``'s options as ``flowkit extract`` and ``flowkit flow`` take them (the
    same declarations), but shown in help: what ``flowkit backends NAME`` lists. Includes
    the shared ``--precision`` where the backend has that parameter."""
    options = [click.Option(decls, **settings)
               for decls, settings in _backend_option_specs(backend)]
    if backend in precision_users():
        options.append(click.Option(["--precision"], **_precision_settings()))
    return options


def flow_parameter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every registered backend's ``--<backend>-<param>`` options, hidden from --help
    (``flowkit backends NAME`` lists them)."""
    for backend in reversed(list_backends()):
        for decls, settings in reversed(_backend_option_specs(backend)):
            command = click.option(*decls, hidden=True, **settings)(command)
    return command


def precision_users() -> list[str]:
    """The backends that take ``--precision`` (their config has a ``precision`` field)."""
    return [name for name in list_backends() if "precision" in
            {f.name for f in dataclasses.fields(backend_config_class(name))}]


def _precision_settings() -> dict[str, Any]:
    return {"type": click.Choice(PRECISIONS), "default": "fp32", "show_default": True,
            "help": "Arithmetic of the PyTorch methods (" + ", ".join(precision_users()) +
                    "): fp32, or bf16 / fp16 autocast (faster on GPUs)."}


def precision_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--precision`` for the backends that have a ``precision`` parameter."""
    return click.option("--precision", **_precision_settings())(command)


def flow_config_from_options(method: str, options: dict[str, Any],
                             precision: str = "fp32") -> Any:
    """Build backend ``method``'s config from the generated options; reject other backends'."""
    params: dict[str, Any] = {}
    if method != "none" and "precision" in {
            f.name for f in dataclasses.fields(backend_config_class(method))}:
        params["precision"] = precision
    elif precision != "fp32":
        raise ConfigError(f"--precision {precision} applies to PyTorch backends, not {method}")
    for backend in list_backends():
        for field in _own_fields(backend_config_class(backend)):
            value = options.pop(_param_key(backend, field.name), None)
            if value is None:
                continue
            if backend != method:
                raise ConfigError(f"{_option_name(backend, field)} applies to --flow "
                                  f"{backend}, not {method}")
            params[field.name] = value
    if method == "none":
        return None
    try:
        return make_backend_config(method, **params)
    except ConfigError as exc:
        raise ConfigError(_with_option_names(str(exc), method)) from None


def _with_option_names(message: str, method: str) -> str:
    """Config field names in ``message`` (``TVL1Config.tau``) as the options that set them
    (``--tvl1-tau``), so that the user reads what to change on the command line."""
    config_class = backend_config_class(method)
    owners = "|".join(klass.__name__ for klass in config_class.__mro__
                      if dataclasses.is_dataclass(klass))  # checks inherited name their class
    for field in dataclasses.fields(config_class):
        option = parameter_option(method, field)
        message = re.sub(rf"\b(?:{owners})\.{field.name}\b", option, message)
    return message


# The line under the Flow options of extract and flow: where the hidden options are listed.
BACKENDS_NOTE = ("Flow-method parameters (--tvl1-tau, --raft-weights, ...): see "
                 "`flowkit backends NAME`.")


def parse_size(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> tuple[int, int] | None:
    """Click callback: 'WxH' -> (W, H)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 340x256, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def parse_devices(ctx: click.Context, param: click.Parameter, value: str | None
                  ) -> tuple[str, ...]:
    """Click callback: '0,1' -> ('cuda:0', 'cuda:1'); names such as cpu or cuda:2 pass as they are."""
    if not value:
        return ()
    names = [part.strip() for part in value.split(",")]
    if not all(names):
        raise click.BadParameter(f"expected a comma-separated list such as 0,1, got {value!r}")
    return tuple(f"cuda:{name}" if name.isdigit() else name for name in names)


def protocol_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--segments``, ``--clips`` and ``--crops``: the TSN / I3D test protocol of a trained
    network (flowkit eval, flowkit predict)."""
    options = [
        click.option("--segments", type=click.IntRange(min=1), default=25, show_default=True,
                     help="Segments per video for 2D models (TSN tests on 25)."),
        click.option("--clips", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Clips per video for 3D models, evenly spread."),
        click.option("--crops", type=click.Choice(["1", "3", "10"]), default="1",
                     show_default=True, help="Crops per frame: centre; 3 along the long side; "
                                             "or 10 (corners, centre and their flips)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def png_path(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Click callback: a picture file to write must be named .png (it is written as PNG)."""
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"{value} is written as a PNG picture: name it .png")
    return value
