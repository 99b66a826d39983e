"""The extraction settings: one frozen dataclass, saved as JSON next to every output."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flowkit.errors import BackendError, ConfigError
from flowkit.flow import backend_config_class, make_backend_config, parameter_option
from flowkit.store.folder import flat_settings, read_saved_config
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig
from flowkit.writing import write_text_atomic

NO_FLOW = "none"
DECODE_ERROR_CHOICES = ("fail", "keep")  # what ExtractConfig.on_decode_error may be
# where and how fast, not what is stored
RUN_SETTINGS = ("device", "devices", "batch_size", "check_decode")
# Flow parameters that choose how flow is computed, not what (tvl1-torch's kernels give the same
# flows up to float rounding): like RUN_SETTINGS, a store resumes whatever they are.
RUN_FLOW_PARAMETERS = ("kernels",)
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

    ``check_decode`` decodes each video to its end (without converting a frame) before its flow
    is computed, under "fail": a video that does not decode fully then fails in seconds, not
    after its flow. It changes nothing stored, and costs a decoding pass (docs/benchmarks.md).
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
    check_decode: bool = True

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


# The ``flowkit extract`` option that sets each output setting (dotted keys), so that a message
# about settings names what the user types; flow parameters are named by parameter_option.
SETTING_OPTIONS = {
    "decode.short_side": "--short-side", "decode.size": "--size", "decode.fps": "--fps",
    "flow": "--flow", "flow_step": "--step", "on_decode_error": "--on-decode-error",
    "storage.rgb": "--rgb", "storage.jpeg_quality": "--jpeg-quality",
    "storage.flow_dtype": "--flow-dtype", "storage.bound": "--bound",
    "storage.compression": "--compression", "storage.gzip_level": "--gzip-level",
}
_MISSING = object()  # a setting a saved config does not record


def setting_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The output settings that differ, as "option: old -> new", comma-separated.

    Settings are named by the ``flowkit extract`` option that sets them (``--short-side``,
    ``--tvl1-tau``; dotted keys for the few no option sets) and shown as typed (``0``,
    ``340x256``, ``on``; ``(default)`` for a parameter left to its method), because the user acts
    on the message by changing options. When the flow method differs, only ``--flow`` is listed:
    another method's parameters are other options, not changed ones.
    """
    flat_old, flat_new = dict(flat_settings(old)), dict(flat_settings(new))
    method_changed = old.get("flow") != new.get("flow")
    changes = []
    for key in sorted(set(flat_old) | set(flat_new)):
        if key.startswith("flow_params.") and method_changed:
            continue
        a, b = flat_old.get(key, _MISSING), flat_new.get(key, _MISSING)
        if a != b:
            method = new.get("flow") or old.get("flow")
            changes.append(f"{_option_of(key, method)}: {_typed(key, a, method)} -> "
                           f"{_typed(key, b, method)}")
    return ", ".join(changes)


def _parameter_field(key: str, method: str | None) -> dataclasses.Field | None:
    """The config field of flow method ``method`` that dotted ``flow_params.<name>`` is."""
    if not key.startswith("flow_params.") or not method:
        return None
    try:
        fields = dataclasses.fields(backend_config_class(method))
    except BackendError:  # a method of another flowkit version
        return None
    return next((f for f in fields if f.name == key.split(".", 1)[1]), None)


def _option_of(key: str, method: str | None) -> str:
    """The option that sets dotted setting ``key`` (the key itself when none does)."""
    field = _parameter_field(key, method)
    return parameter_option(method, field) if field else SETTING_OPTIONS.get(key, key)


def _typed(key: str, value: Any, method: str | None) -> str:
    """Setting ``key``'s ``value`` as the user types it: a flag is on when given (so an
    off-switch such as --dis-no-mean-normalization is on when its parameter is off), a size
    WxH, a native short side 0 (saved None or 0)."""
    field = _parameter_field(key, method)
    if field is not None and field.default is True and isinstance(value, bool):
        value = not value
    elif key == "decode.short_side" and value is not _MISSING:
        value = value or 0
    elif key == "decode.size" and isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return _shown(value)


def _shown(value: Any) -> str:
    """A setting's value as the user types it: flags on / off, None as (default)."""
    if value is _MISSING:
        return "(not recorded)"
    if value is None:
        return "(default)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _output_part(settings: dict[str, Any]) -> dict[str, Any]:
    """The output settings of a saved config, with the values that mean the same made equal:
    a short side of None (what ``--short-side 0`` saved before 0 was saved as typed) is 0; and
    without the flow parameters that only say how flow is computed (RUN_FLOW_PARAMETERS)."""
    settings = {**_LATER_OUTPUT_DEFAULTS, **settings}
    decode = settings.get("decode")
    if isinstance(decode, dict) and "short_side" in decode and decode["short_side"] is None:
        settings["decode"] = {**decode, "short_side": 0}
    flow_params = settings.get("flow_params")
    if isinstance(flow_params, dict):
        settings["flow_params"] = {key: value for key, value in flow_params.items()
                                   if key not in RUN_FLOW_PARAMETERS}
    return {key: value for key, value in settings.items() if key not in RUN_SETTINGS}
