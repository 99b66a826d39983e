"""Validation of config dataclass fields, shared by every config so messages read alike."""

from __future__ import annotations

from typing import Callable

import numpy as np

from flowkit.errors import ConfigError


def require_number(owner: str, name: str, value: object, in_range: Callable[[float], bool],
                   valid: str) -> None:
    """Raise ConfigError unless ``value`` is a finite real number for which ``in_range`` holds."""
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value) or not in_range(float(value))):
        raise ConfigError(f"{owner}.{name} must be a number {valid}, got {value!r}")


def require_int(owner: str, name: str, value: object, minimum: int) -> None:
    """Raise ConfigError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
