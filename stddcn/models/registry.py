"""Registries of plain functions, looked up by name: model families and backbones (archs).

As in timm, each entry is a small function: a family takes a ``ModelConfig`` and returns an
``ActionModel``; an arch takes ``(in_channels, width_mult)`` and returns a backbone module
mapping a batch to pooled features (N, feature_dim). Modules register themselves when
``stddcn.models`` is imported.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from torch import nn

from stddcn.errors import ModelError
from stddcn.models.base import ActionModel
from stddcn.config import ModelConfig
from stddcn.models.cross import check_connections

ModelFactory = Callable[[ModelConfig], ActionModel]
ArchFactory = Callable[..., nn.Module]

KINDS = ("2d", "3d")
DEFAULT_ARCHS = {"2d": "resnet50", "3d": "r2plus1d-18"}
"""The arch a family of each kind builds when ``ModelConfig.arch`` is None."""

_MODELS: dict[str, ModelFactory] = {}
_ARCHS: dict[str, tuple[str, ArchFactory]] = {}


def _listing(names: list[str]) -> str:
    return ", ".join(names) or "none"


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: register a model family ``fn(config) -> ActionModel`` under ``name``."""
    def decorate(fn: ModelFactory) -> ModelFactory:
        if name in _MODELS:
            raise ModelError(f"model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn
    return decorate


def register_arch(name: str, kind: str) -> Callable[[ArchFactory], ArchFactory]:
    """Decorator: register a backbone ``fn(in_channels, width_mult)`` of ``kind`` "2d"/"3d"."""
    if kind not in KINDS:
        raise ModelError(f"arch kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def decorate(fn: ArchFactory) -> ArchFactory:
        if name in _ARCHS:
            raise ModelError(f"arch {name!r} is registered twice")
        _ARCHS[name] = (kind, fn)
        return fn
    return decorate


def list_models() -> list[str]:
    """Names of the registered model families, sorted."""
    return sorted(_MODELS)


def list_archs(kind: str | None = None) -> list[str]:
    """Names of the registered backbones, sorted; ``kind`` ("2d"/"3d") keeps that kind only."""
    if kind is not None and kind not in KINDS:
        raise ModelError(f"arch kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return sorted(name for name, (k, _) in _ARCHS.items() if kind is None or k == kind)


def arch_kind(name: str) -> str:
    """"2d" or "3d": the kind of registered arch ``name``."""
    if name not in _ARCHS:
        raise ModelError(f"unknown arch {name!r}; valid archs: {_listing(list_archs())}")
    return _ARCHS[name][0]


def create_backbone(name: str, in_channels: int = 3, width_mult: float = 1.0,
                    kind: str | None = None) -> nn.Module:
    """Build backbone ``name`` with ``in_channels`` inputs; it exposes ``feature_dim``.

    Raises:
        ModelError: unknown arch, an arch of the other kind than ``kind``, or bad sizes.
    """
    if name not in _ARCHS or (kind is not None and _ARCHS[name][0] != kind):
        what = f"{kind.upper()} arch" if kind else "arch"
        raise ModelError(f"unknown {what} {name!r}; valid {what}s: {_listing(list_archs(kind))}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ModelError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not width_mult > 0:
        raise ModelError(f"width_mult must be > 0, got {width_mult!r}")
    return _ARCHS[name][1](in_channels=in_channels, width_mult=width_mult)


def default_arch(config: ModelConfig, kind: str) -> str:
    """``config.arch``, or the default arch of ``kind`` when it is None."""
    return config.arch if config.arch is not None else DEFAULT_ARCHS[kind]


def check_config(config: ModelConfig) -> None:
    """Raise ModelError saying which setting of ``config`` is out of range and what fits."""
    if config.name not in _MODELS:
        raise ModelError(f"unknown model {config.name!r}; valid models: "
                         f"{_listing(list_models())}")
    if isinstance(config.num_classes, bool) or not isinstance(config.num_classes, int) \
            or config.num_classes < 1:
        raise ModelError(f"num_classes must be an integer >= 1, got {config.num_classes!r}")
    if not 0 <= config.dropout < 1:
        raise ModelError(f"dropout must be in [0, 1), got {config.dropout!r}")
    if not config.width_mult > 0:
        raise ModelError(f"width_mult must be > 0, got {config.width_mult!r}")
    if isinstance(config.flow_length, bool) or not isinstance(config.flow_length, int) \
            or config.flow_length < 1:
        raise ModelError(f"flow_length must be an integer >= 1, got {config.flow_length!r}")
    if not config.fusion_weights or any(not w > 0 for w in config.fusion_weights):
        raise ModelError(f"fusion_weights must be positive numbers, one per stream, got "
                         f"{config.fusion_weights!r}")
    if config.arch is not None and config.arch not in _ARCHS:
        raise ModelError(f"unknown arch {config.arch!r}; valid archs: {_listing(list_archs())}")
    check_connections(config.connections, config.connect_blocks)


def create_model(config_or_name: ModelConfig | str, **overrides: Any) -> ActionModel:
    """Build a model from its config, or from a family name and ModelConfig fields.

    ``create_model("flow", arch="resnet18", flow_length=10)`` equals
    ``create_model(ModelConfig(name="flow", arch="resnet18", flow_length=10))``; with a config,
    ``overrides`` replace its fields.

    Raises:
        ModelError: unknown family, unknown field, or a setting out of range.
    """
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ModelError(f"unknown ModelConfig field(s) {', '.join(unknown)}; valid fields: "
                         f"{', '.join(known)}")
    if isinstance(config_or_name, str):
        if "name" in overrides:
            raise ModelError("give the model name once: as the first argument or as name=")
        config = ModelConfig(name=config_or_name, **overrides)
    elif isinstance(config_or_name, ModelConfig):
        config = dataclasses.replace(config_or_name, **overrides)
    else:
        raise ModelError(f"create_model takes a ModelConfig or a model name, got "
                         f"{type(config_or_name).__name__}")
    if not isinstance(config.fusion_weights, tuple):  # keep the frozen config hashable
        config = dataclasses.replace(config, fusion_weights=tuple(config.fusion_weights))
    check_config(config)
    return _MODELS[config.name](config)
