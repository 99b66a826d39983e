"""What an output folder holds: counts, failures, parameters, bytes on disk and how much flow
the bound clipped (``flowkit info``).

Flow statistics come from the manifest (recorded at extraction), so that a folder of 13k videos
is summarised without opening a shard; a video without them is "unknown", never an error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from flowkit.store.flowstats import FlowStats, bin_labels, combined, json_edges
from flowkit.store.folder import CONFIG_NAME, read_saved_config
from flowkit.store.manifest import FAILED, MANIFEST_NAME, OK, PENDING, Manifest, ManifestEntry

MOST_CLIPPED = 5  # videos listed by `flowkit info` as the most clipped


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

    @property
    def has_flow(self) -> bool:
        """Whether the folder holds flow (by its config, or by recorded statistics)."""
        flow = (self.config or {}).get("flow", "none")
        return flow != "none" or any(entry.flow_stats for entry in self.entries)

    @functools.cached_property
    def flow_stats(self) -> dict[str, FlowStats | None]:
        """Recorded flow statistics of each ok video, by id; None where unknown."""
        return {entry.video_id: FlowStats.from_json(entry.flow_stats)
                for entry in self.entries if entry.status == OK}

    def total_flow_stats(self) -> FlowStats | None:
        """The statistics of all ok videos with known ones added up; None if none known."""
        return combined(stats for stats in self.flow_stats.values() if stats is not None)

    def most_clipped(self, count: int = MOST_CLIPPED) -> list[tuple[str, FlowStats]]:
        """Up to ``count`` videos with the largest clipped share above 0, largest first."""
        clipped = [(video_id, stats) for video_id, stats in self.flow_stats.items()
                   if stats is not None and stats.clipped]
        return sorted(clipped, key=lambda item: -(item[1].clipped_share or 0.0))[:count]

    def _flow_stats_json(self) -> dict[str, Any] | None:
        total = self.total_flow_stats()
        if total is None:
            return None
        known = sum(stats is not None for stats in self.flow_stats.values())
        return {"videos_known": known, "videos_unknown": len(self.flow_stats) - known,
                **_stats_json(total), "magnitude_edges_px": json_edges()}

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
            "flow_stats": self._flow_stats_json(),
            "videos": [{"id": e.video_id, "status": e.status, "num_frames": e.num_frames,
                        "num_flows": e.num_flows, "error": e.error, "warning": e.warning,
                        "label": e.label,
                        "shard": e.shard, "source": e.source,
                        "flow_stats": _stats_json(FlowStats.from_json(e.flow_stats))}
                       for e in self.entries],
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
        if self.has_flow:
            lines.extend(self._flow_lines())
        if self.warnings:
            lines.append("stored with warnings (frames before a decode error kept):")
            lines.extend(f"  {e.video_id}: {e.num_frames} frames; {e.warning}"
                         for e in self.warnings)
        if self.failures:
            lines.append("failed:")
            lines.extend(f"  {e.video_id}: {e.error}" for e in self.failures)
        return "\n".join(lines)

    def _flow_lines(self) -> list[str]:
        """The clipped share and length histogram of all flow, and the most clipped videos."""
        total = self.total_flow_stats()
        if total is None:
            return ["  flow clipping: unknown (no video records it: stored before flowkit "
                    "recorded flow statistics, or imported without decoding)"]
        unknown = sum(stats is None for stats in self.flow_stats.values())
        unknown_text = f"; {unknown} videos unknown" if unknown else ""
        storage = (self.config or {}).get("storage") or {}
        unclipped = storage.get("flow_dtype") == "float16"
        verb = "beyond" if unclipped else "clipped at"
        where = f"{verb} +-{total.bound:g} px" + (" (float16: stored unclipped)" if unclipped
                                                  else "")
        if total.clipped_share is None:
            return [f"  flow {where}: no flow values{unknown_text}"]
        pixels = sum(total.histogram)
        lines = [
            f"  flow {where}: {total.clipped_share:.2%} of "
            f"{total.components} components; largest |flow| {total.max_magnitude:.3g} px"
            f"{unknown_text}",
            "  |flow| px: " + ", ".join(f"{label} {count / pixels:.1%}" for label, count
                                        in zip(bin_labels(), total.histogram))]
        worst = self.most_clipped()
        if worst:
            lines.append(f"most {verb} +-{total.bound:g} px (share of their flow components):")
            lines.extend(f"  {video_id}: {stats.clipped_share:.2%}" for video_id, stats in worst)
        return lines


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


def _stats_json(stats: FlowStats | None) -> dict[str, Any] | None:
    """A video's (or a total's) statistics for JSON, with the clipped share; None: unknown."""
    return None if stats is None else {**stats.to_json(), "clipped_share": stats.clipped_share}


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
