"""What an output folder holds: counts, failures, parameters and bytes on disk (``flowkit info``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flowkit.config import CONFIG_NAME, read_saved_config
from flowkit.manifest import FAILED, MANIFEST_NAME, OK, PENDING, Manifest, ManifestEntry


@dataclasses.dataclass(frozen=True)
class FolderSummary:
    """Totals over every video of a folder, from its manifest and its files."""

    root: Path
    entries: list[ManifestEntry]
    config: dict[str, Any] | None
    shard_files: int
    bytes_on_disk: int

    def count(self, status: str) -> int:
        return sum(entry.status == status for entry in self.entries)

    @property
    def frames(self) -> int:
        return sum(entry.num_frames or 0 for entry in self.entries if entry.status == OK)

    @property
    def flows(self) -> int:
        return sum(entry.num_flows or 0 for entry in self.entries if entry.status == OK)

    @property
    def failures(self) -> list[ManifestEntry]:
        return [entry for entry in self.entries if entry.status == FAILED]

    @property
    def warnings(self) -> list[ManifestEntry]:
        """Videos stored ok but cut short by a decode error (extracted with on_decode_error keep)."""
        return [entry for entry in self.entries if entry.status == OK and entry.warning]

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict with a ``videos`` list."""
        return {
            "root": str(self.root),
            "videos_total": len(self.entries), "videos_ok": self.count(OK),
            "videos_failed": self.count(FAILED), "videos_pending": self.count(PENDING),
            "videos_with_warnings": len(self.warnings),
            "frames": self.frames, "flows": self.flows,
            "shard_files": self.shard_files, "bytes_on_disk": self.bytes_on_disk,
            "config": self.config,
            "videos": [{"id": e.video_id, "status": e.status, "num_frames": e.num_frames,
                        "num_flows": e.num_flows, "error": e.error, "warning": e.warning,
                        "label": e.label,
                        "shard": e.shard, "source": e.source} for e in self.entries],
        }

    def to_text(self) -> str:
        """A human-readable report, videos kept with warnings and failures listed last."""
        lines = [
            f"{self.root}: {len(self.entries)} videos, {self.count(OK)} ok, "
            f"{self.count(FAILED)} failed, {self.count(PENDING)} pending",
            f"  frames {self.frames}, flows {self.flows}",
            f"  {self.shard_files} shard files, {_human_bytes(self.bytes_on_disk)} on disk",
        ]
        if self.config:
            lines.append("  parameters: " + _flatten(self.config))
        if self.warnings:
            lines.append("stored with warnings (frames before a decode error kept):")
            lines.extend(f"  {e.video_id}: {e.num_frames} frames; {e.warning}"
                         for e in self.warnings)
        if self.failures:
            lines.append("failed:")
            lines.extend(f"  {e.video_id}: {e.error}" for e in self.failures)
        return "\n".join(lines)


def summarize(root: Path | str) -> FolderSummary:
    """Read a folder's manifest and config and measure its files.

    Raises:
        ShardError: there is no readable manifest in ``root``.
    """
    root = Path(root)
    manifest = Manifest.read(root / MANIFEST_NAME)
    config_path = root / CONFIG_NAME
    config = read_saved_config(config_path) if config_path.exists() else None
    files = [path for path in root.iterdir() if path.is_file()]
    return FolderSummary(
        root=root, entries=list(manifest), config=config,
        shard_files=sum(path.suffix == ".h5" for path in files),
        bytes_on_disk=sum(path.stat().st_size for path in files))


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def _flatten(config: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in config.items():
        if isinstance(value, dict):
            parts.append(_flatten(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}={json.dumps(value)}")
    return ", ".join(part for part in parts if part)
