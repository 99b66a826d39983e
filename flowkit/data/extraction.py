"""How far the extraction into a folder has got, for a reader about to train on it.

A folder's manifest lists every video planned, done or not: ``ok`` (stored), ``pending``
(planned, not extracted yet: a run still going, or one that stopped) and ``failed`` (tried;
final unless ``flowkit extract --retry-failed`` plans it again). A Dataset reads the ok ones;
training on a folder with pending videos, or one a run is still writing, would silently train
on a subset, so the training package asks here first. Labels are read for every video of the
manifest, so that the number of classes never depends on how far the extraction has got.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from flowkit.errors import NotOutputFolderError
from flowkit.lock import holder
from flowkit.store.manifest import FAILED, OK, PENDING, Manifest


@dataclass(frozen=True)
class ExtractionState:
    """The videos of a folder (or of a split of it) by status, and the run writing it now.

    Attributes:
        root: the folder.
        ok: videos stored.
        pending: videos planned but not extracted yet.
        failed: videos that failed at extraction (final until ``--retry-failed``).
        pending_ids: the ids of the pending videos counted.
        writer: pid of the flowkit run holding the folder's lock ("" when it wrote none),
            or None when no run is writing the folder.
    """

    root: Path
    ok: int
    pending: int
    failed: int
    pending_ids: frozenset[str]
    writer: str | None

    @property
    def total(self) -> int:
        return self.ok + self.pending + self.failed

    @property
    def finished(self) -> bool:
        """Nothing pending and no run writing: the videos will not change by themselves."""
        return not self.pending and self.writer is None

    def counts(self, whose: str = "") -> str:
        """'5 of 16 videos done, 9 pending, 2 failed' (the parts that are not zero);
        ``whose`` goes before the total ("5 of the split's 16 videos done")."""
        parts = [f"{self.ok} of {whose}{self.total} videos done"]
        parts += [f"{n} {what}" for n, what in ((self.pending, "pending"),
                                                 (self.failed, "failed")) if n]
        return ", ".join(parts)


def extraction_state(root: Path | str,
                     video_ids: Collection[str] | None = None) -> ExtractionState:
    """The statuses of the videos of ``root``'s manifest (only of ``video_ids`` when given,
    e.g. a split's; ids the manifest does not list are not counted), and whether a flowkit
    run is writing ``root`` now (its lock is held).

    Raises:
        NotOutputFolderError: ``root`` holds no manifest and no run is writing it.
        ShardError: the manifest is unreadable.
    """
    root = Path(root)
    writer = holder(root)
    try:
        manifest = Manifest.read(root)
    except NotOutputFolderError:
        if writer is None:
            raise
        return ExtractionState(root, 0, 0, 0, frozenset(), writer)  # a run not planned yet
    try:
        wanted = None if video_ids is None else set(video_ids)
        counts = {OK: 0, PENDING: 0, FAILED: 0}
        pending = set()
        for video_id, status in manifest.rows("video_id, status"):
            if wanted is not None and video_id not in wanted:
                continue
            counts[status] = counts.get(status, 0) + 1
            if status == PENDING:
                pending.add(video_id)
    finally:
        manifest.close()
    return ExtractionState(root, counts[OK], counts[PENDING], counts[FAILED],
                           frozenset(pending), writer)


def manifest_labels(root: Path | str) -> dict[str, int]:
    """Every video of ``root``'s manifest, whatever its status (pending and failed too), with
    its label as extracted from a list file (-1 where it has none).

    Raises:
        NotOutputFolderError: ``root`` holds no manifest.
        ShardError: the manifest is unreadable.
    """
    manifest = Manifest.read(Path(root))
    try:
        return {video_id: -1 if label is None else int(label)
                for video_id, label in manifest.rows("video_id, label")}
    finally:
        manifest.close()
