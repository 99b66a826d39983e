"""The extraction settings: one frozen dataclass, saved as JSON next to every output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flowkit.errors import ConfigError
from flowkit.flow import make_backend_config
from flowkit.store.folder import read_saved_config
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig
from flowkit.writing import write_text_atomic

NO_FLOW = "none"
DECODE_ERROR_CHOICES = ("fail", "keep")  # what ExtractConfig.on_decode_error may be
RUN_SETTINGS = ("device", "devices", "batch_size")  # where and how fast, not what is stored
# Output settings added after the first release, with the value that gives the old behaviour:
# a folder whose saved config lacks one was made with that value and resumes with it.
_LATER_OUTPUT_DEFAULTS = {"on_decode_error": "fail"}


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Everything that decides what ``flowkit extract`` writes.

    ``flow_params`` is the backend's own config dataclass (e.g. TVL1Config); None means the
    backend's defaults. ``device``, ``devices`` (several GPUs, one worker process each; overrides
    ``device``) and ``batch_size`` decide where and how fast flow is computed, not what.

    ``on_decode_error`` is what becomes of a video whose decoding fails part-way or that is
    truncated: "fail" records it as failed, "keep" stores the frames decoded before the error
    (and the flows between them) as ok with a warning. It decides what is stored, so it is an
    output setting: a resumed run must use the same value, or the folder would hold truncated
    videos under one rule and failures under the other.
    """

    decode: DecodeConfig = DecodeConfig()
    flow: str = "tvl1"
    flow_params: Any = None
    flow_step: int = 1
    storage: StorageConfig = StorageConfig()
    device: str = "cpu"
    devices: tuple[str, ...] = ()
    batch_size: int = 8
    on_decode_error: str = "fail"

    def __post_init__(self) -> None:
        if self.flow != NO_FLOW and self.flow_params is None:
            object.__setattr__(self, "flow_params", make_backend_config(self.flow))
        if self.flow == NO_FLOW and self.flow_params is not None:
            raise ConfigError("flow parameters given but flow is 'none'")
        if self.flow_step < 1:
            raise ConfigError(f"flow step must be >= 1, got {self.flow_step}")
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.on_decode_error not in DECODE_ERROR_CHOICES:
            raise ConfigError(f"on_decode_error must be one of {', '.join(DECODE_ERROR_CHOICES)}, "
                              f"got {self.on_decode_error!r}")

    def run_devices(self) -> list[str]:
        """The devices flow runs on: ``devices`` when given, else ``device``."""
        return list(self.devices) or [self.device]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def output_settings(self) -> dict[str, Any]:
        """The settings that change the stored arrays (not where or how fast they are computed),
        as JSON data, comparable with :func:`saved_output_settings`."""
        return _output_part(json.loads(json.dumps(self.to_dict())))

    def save(self, path: Path) -> None:
        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")


def saved_output_settings(path: Path) -> dict[str, Any]:
    """The output settings recorded in a saved extract_config.json."""
    return _output_part(read_saved_config(path))


def setting_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> str:
    """The settings that differ, as "key: old -> new" (nested keys dotted), comma-separated."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = setting_differences(a, b, f"{prefix}{key}.")
            changes.extend([inner] if inner else [])
        elif a != b:
            changes.append(f"{prefix}{key}: {a} -> {b}")
    return ", ".join(changes)


def _output_part(settings: dict[str, Any]) -> dict[str, Any]:
    settings = {**_LATER_OUTPUT_DEFAULTS, **settings}
    return {key: value for key, value in settings.items() if key not in RUN_SETTINGS}
