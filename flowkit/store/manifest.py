"""The manifest: one small JSON file listing every video of an output folder and its fate.

It doubles as the extraction plan: a video is assigned to its shard when first seen, so a
resumed run writes every video into the same shard an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from flowkit.errors import NotOutputFolderError, ShardError
from flowkit.writing import write_text_atomic

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1

PENDING, OK, FAILED = "pending", "ok", "failed"


@dataclasses.dataclass(frozen=True)
class ManifestEntry:
    """What is known of one video: where it came from, where it went, and how it ended.

    ``warning`` is set on an ok video stored incompletely (a decode error or truncation kept
    under ``on_decode_error="keep"``): the error that ended it. Manifests written before the
    field existed read as None. ``flow_stats`` is the video's flow statistics
    (:meth:`flowkit.store.flowstats.FlowStats.to_json`), None when unknown (no flow, or written
    before they were recorded).
    """

    video_id: str
    source: str
    label: int | None
    shard: str
    status: str = PENDING
    num_frames: int | None = None
    num_flows: int | None = None
    error: str | None = None
    warning: str | None = None
    flow_stats: dict[str, Any] | None = None


class Manifest:
    """Entries by video id, in the order videos were first planned."""

    def __init__(self, entries: Iterable[ManifestEntry] = ()) -> None:
        self._entries: dict[str, ManifestEntry] = {}
        for entry in entries:
            self.put(entry)

    def put(self, entry: ManifestEntry) -> None:
        """Add an entry or replace the one with the same video id (keeping its position)."""
        self._entries[entry.video_id] = entry

    def __getitem__(self, video_id: str) -> ManifestEntry:
        return self._entries[video_id]

    def __contains__(self, video_id: object) -> bool:
        return video_id in self._entries

    def __iter__(self) -> Iterator[ManifestEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def with_status(self, status: str) -> list[ManifestEntry]:
        return [entry for entry in self if entry.status == status]

    def with_warning(self) -> list[ManifestEntry]:
        """Videos stored with a warning (kept despite a decode error), in manifest order."""
        return [entry for entry in self if entry.warning]

    def shards(self) -> list[str]:
        """Shard file names in first-planned order."""
        return list(dict.fromkeys(entry.shard for entry in self))

    @classmethod
    def read(cls, path: Path) -> "Manifest":
        """Load a manifest file.

        Raises:
            ShardError: the file is missing, not JSON, or of an unknown schema.
        """
        try:
            document = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise NotOutputFolderError(f"{path}: no manifest here; is this a flowkit output "
                                       "folder?") from None
        except (OSError, ValueError) as exc:
            raise ShardError(f"{path}: unreadable manifest ({exc})") from None
        if document.get("schema_version") != MANIFEST_SCHEMA_VERSION:
            raise ShardError(f"{path}: manifest schema {document.get('schema_version')!r} is not "
                             f"{MANIFEST_SCHEMA_VERSION}; written by another flowkit version")
        try:
            return cls(ManifestEntry(**item) for item in document["videos"])
        except (KeyError, TypeError) as exc:
            raise ShardError(f"{path}: malformed manifest entry ({exc})") from None

    def write(self, path: Path) -> None:
        """Write atomically: to a temporary file, fsync, then rename over ``path``."""
        document = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "videos": [dataclasses.asdict(entry) for entry in self],
        }
        write_text_atomic(Path(path), json.dumps(document, indent=1) + "\n")
