"""What an output folder holds, by file name: shards, the manifest, the saved settings.

    OUT/
      shard-00000.h5 ...        the shards (docs/format.md), numbered in the order planned
      manifest.sqlite           every video and its fate (flowkit.store.manifest; SQLite)
      extract_config.json       the settings the shards were made with (flowkit.config)
      .flowkit.lock             held by the run writing the folder (flowkit.lock)
      *.tmp                     a killed run's leftovers: never whole, never read
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flowkit.errors import ConfigError
from flowkit.store.manifest import LEGACY_MANIFEST_NAME, MANIFEST_NAME
from flowkit.store.writer import TMP_SUFFIX

SHARD_PATTERN = "shard-{:05d}.h5"
SHARD_NAME = re.compile(r"shard-(\d+)\.h5")
CONFIG_NAME = "extract_config.json"


def output_files(out_dir: Path) -> list[Path]:
    """What a flowkit run writes in ``out_dir`` (shards, manifest, config), present or not."""
    manifest = out_dir / MANIFEST_NAME
    return [*out_dir.glob("shard-*.h5"), manifest, manifest.with_name(manifest.name + "-journal"),
            out_dir / LEGACY_MANIFEST_NAME, out_dir / CONFIG_NAME]


def remove_temporaries(out_dir: Path) -> None:
    """Leftovers of a killed run: never whole, never read, safe to drop while we hold the lock."""
    for path in out_dir.glob("*" + TMP_SUFFIX):
        path.unlink(missing_ok=True)


def flat_settings(settings: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every setting in nested dicts (a saved config's groups)."""
    items = []
    for key, value in settings.items():
        if isinstance(value, dict):
            items.extend(flat_settings(value, f"{prefix}{key}."))
        else:
            items.append((f"{prefix}{key}", value))
    return items


def read_saved_config(path: Path) -> dict[str, Any]:
    """A saved extract_config.json as plain data, whichever tool wrote it (extract or import)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable extraction config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: unreadable extraction config (not a JSON object)")
    return data
