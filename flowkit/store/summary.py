"""What an output folder holds: counts, failures, parameters, bytes on disk and how much flow
the bound clipped (``flowkit info``).

Everything comes from the manifest (flow statistics were recorded there at extraction), added up
by SQLite: a folder of 650k videos is summarised in seconds, without opening a shard. A video
without statistics is "unknown", never an error.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from flowkit.errors import ShardError
from flowkit.store.flowstats import NUM_BINS, FlowStats, bin_labels, json_edges
from flowkit.store.folder import CONFIG_NAME, flat_settings, read_saved_config
from flowkit.store.manifest import FAILED, OK, PENDING, Manifest, ManifestEntry

MOST_CLIPPED = 5  # videos listed by `flowkit info` as the most clipped

# ok videos whose recorded statistics are whole (FlowStats.from_json would read them)
_KNOWN = ("status = 'ok' AND flow_bound IS NOT NULL AND flow_components IS NOT NULL AND "
          f"flow_clipped IS NOT NULL AND flow_max_magnitude IS NOT NULL AND flow_bins = {NUM_BINS}")


@dataclasses.dataclass(frozen=True)
class FolderSummary:
    """Totals over every video of a folder, from its manifest and its files."""

    root: Path
    counts: dict[str, int]  # videos by status
    frames: int             # of the ok videos
    flows: int
    failures: list[ManifestEntry]
    warnings: list[ManifestEntry]  # stored ok, cut short by a decode error (on_decode_error keep)
    config: dict[str, Any] | None
    shard_files: int
    bytes_on_disk: int
    flow_total: FlowStats | None  # the ok videos with known statistics, added up
    flow_known: int               # ok videos with known statistics
    recorded_flow: bool           # a video of any status records statistics
    most_clipped: list[tuple[str, FlowStats]]  # largest clipped share first, above 0
    manifest: Manifest = dataclasses.field(repr=False, compare=False)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def has_flow(self) -> bool:
        """Whether the folder holds flow (by its config, or by recorded statistics)."""
        return (self.config or {}).get("flow", "none") != "none" or self.recorded_flow

    def _flow_stats_json(self) -> dict[str, Any] | None:
        total = self.flow_total
        if total is None:
            return None
        return {"videos_known": self.flow_known,
                "videos_unknown": self.count(OK) - self.flow_known,
                **_stats_json(total), "magnitude_edges_px": json_edges()}

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict with a ``videos`` list."""
        return {
            "root": str(self.root),
            "videos_total": self.total, "videos_ok": self.count(OK),
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
                       for e in self.manifest],
        }

    def to_text(self) -> str:
        """A human-readable report, videos kept with warnings and failures listed last."""
        lines = [
            f"{self.root}: {self.total} videos, {self.count(OK)} ok, "
            f"{self.count(FAILED)} failed, {self.count(PENDING)} pending",
            f"  frames {self.frames}, flows {self.flows}",
            f"  {self.shard_files} shard files, {_human_bytes(self.bytes_on_disk)} on disk",
        ]
        if self.config:
            lines.append("  parameters:")
            lines.extend(_parameter_lines(self.config))
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

    def _why_no_flow_stats(self) -> str:
        """Why there is no clipped share to show: no ok video yet, or ok videos stored without
        statistics."""
        if self.count(OK) == 0:
            return ("no video was extracted successfully"
                    if self.count(FAILED) and not self.count(PENDING) else
                    "no finished video yet")
        return ("unknown (no video records it: stored before flowkit recorded flow "
                "statistics, or imported without decoding)")

    def _flow_lines(self) -> list[str]:
        """The clipped share and length histogram of all flow, and the most clipped videos."""
        total = self.flow_total
        if total is None:
            return [f"  flow clipping: {self._why_no_flow_stats()}"]
        unknown = self.count(OK) - self.flow_known
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
            *_wrap([f"{label} {count / pixels:.1%}" for label, count
                    in zip(bin_labels(), total.histogram)], "  |flow| px: ", "    ", LINE_WIDTH)]
        worst = self.most_clipped
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
    manifest = Manifest.read(root)
    config_path = root / CONFIG_NAME
    config = read_saved_config(config_path) if config_path.exists() else None
    files = [path for path in root.iterdir() if path.is_file()]
    rows = manifest.query("SELECT status, COUNT(*), SUM(num_frames), SUM(num_flows) FROM videos "
                          "GROUP BY status")
    ok = next((row for row in rows if row[0] == OK), (OK, 0, 0, 0))
    known, total = _flow_total(manifest)
    return FolderSummary(
        root=root, counts={row[0]: row[1] for row in rows}, frames=ok[2] or 0, flows=ok[3] or 0,
        failures=manifest.with_status(FAILED),
        warnings=[entry for entry in manifest.with_warning() if entry.status == OK],
        config=config, shard_files=sum(path.suffix == ".h5" for path in files),
        bytes_on_disk=sum(path.stat().st_size for path in files),
        flow_total=total, flow_known=known,
        recorded_flow=bool(manifest.query(
            "SELECT 1 FROM videos WHERE flow_stats IS NOT NULL LIMIT 1")),
        most_clipped=[(video_id, FlowStats.from_json(json.loads(stats))) for video_id, stats in
                      manifest.query(
                          f"SELECT video_id, flow_stats FROM videos WHERE {_KNOWN} AND "
                          "flow_clipped > 0 AND flow_components > 0 ORDER BY "
                          "CAST(flow_clipped AS REAL) / flow_components DESC, position "
                          f"LIMIT {MOST_CLIPPED}")],
        manifest=manifest)


def _flow_total(manifest: Manifest) -> tuple[int, FlowStats | None]:
    """How many ok videos have known statistics, and those statistics added up."""
    bins = ", ".join(f"SUM(flow_bin{i})" for i in range(NUM_BINS))
    known, low, high, components, clipped, largest, *histogram = manifest.query(
        f"SELECT COUNT(*), MIN(flow_bound), MAX(flow_bound), SUM(flow_components), "
        f"SUM(flow_clipped), MAX(flow_max_magnitude), {bins} FROM videos WHERE {_KNOWN}")[0]
    if not known:
        return 0, None
    if low != high:
        raise ShardError(f"flow statistics against different bounds ({low:g} and {high:g} px) "
                         "cannot be added")
    return known, FlowStats(float(low), int(components), int(clipped), float(largest),
                            tuple(int(count) for count in histogram))


def _stats_json(stats: FlowStats | None) -> dict[str, Any] | None:
    """A video's (or a total's) statistics for JSON, with the clipped share; None: unknown."""
    return None if stats is None else {**stats.to_json(), "clipped_share": stats.clipped_share}


def _human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


LINE_WIDTH = 100  # columns of `flowkit info`'s wrapped lines (parameters, the histogram)


def _parameter_lines(config: dict[str, Any], width: int = LINE_WIDTH) -> list[str]:
    """The saved settings as `flowkit info` prints them: the top-level ones on one line, then
    a line per group (decode, flow_params, storage), each wrapped at ``width`` columns between
    settings (a setting is never split), so that the ~900 characters stay readable."""
    groups = [("", [(key, value) for key, value in config.items()
                    if not isinstance(value, dict)])]
    groups += [(key, flat_settings(value)) for key, value in config.items()
               if isinstance(value, dict)]
    lines = []
    for group, settings in groups:
        items = [f"{key}={_shown_value(f'{group}.{key}', value)}" for key, value in settings]
        heading = f"    {group}: " if group else "    "
        lines.extend(_wrap(items, heading, "      ", width) if items else [])
    return lines


def _shown_value(key: str, value: Any) -> str:
    """A saved setting as the user gave it: JSON, except a short side of 0 or null, which
    ``--short-side 0`` meant (the native size; folders made before 0 was saved hold null)."""
    if key == "decode.short_side" and not value:
        return "0 (native size)"
    return json.dumps(value)


def _wrap(items: list[str], first: str, indent: str, width: int) -> list[str]:
    """``items`` joined by ", " after ``first``, breaking lines between items before
    ``width`` columns (an item longer than a line gets a line of its own)."""
    lines, line = [], first
    for number, item in enumerate(items):
        piece = item + ("," if number < len(items) - 1 else "")
        if line == first:
            line += piece
        elif len(line) + 1 + len(piece) > width:
            lines.append(line)
            line = indent + piece
        else:
            line += " " + piece
    lines.append(line)
    return lines
