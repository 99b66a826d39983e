"""Planning: which shard each video goes to, and which shards a run must write.

The plan lives in the manifest: a video is assigned to its shard when first seen (or when it is
tried again), after the shards already planned, so a resumed run writes every video into the
shard an uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Sequence

from flowkit.extract.inputs import VideoSource
from flowkit.store.folder import SHARD_NAME, SHARD_PATTERN
from flowkit.store.manifest import FAILED, PENDING, Manifest, ManifestEntry
from flowkit.store.verify import DAMAGED, verify

MAX_AUTO_VIDEOS_PER_SHARD = 100
AUTO_MIN_SHARDS = 16


def auto_videos_per_shard(num_videos: int) -> int:
    """Enough shards to keep workers busy on small sets, at most 100 videos a shard."""
    return max(1, min(MAX_AUTO_VIDEOS_PER_SHARD, math.ceil(num_videos / AUTO_MIN_SHARDS)))


def _next_shard_number(manifest: Manifest) -> int:
    numbers = [int(match.group(1)) for name in manifest.shards()
               if (match := SHARD_NAME.fullmatch(name))]
    return max(numbers, default=-1) + 1


def plan_new_videos(manifest: Manifest, sources: Sequence[VideoSource],
                    videos_per_shard: int | None) -> None:
    """Put videos not yet in the manifest into new shards, in input order."""
    known = manifest.video_ids()
    new = [ManifestEntry(source.video_id, str(source.path), source.label, shard="")
           for source in sources if source.video_id not in known]
    assign_new_shards(manifest, new, videos_per_shard)


def replan_failed(manifest: Manifest, videos_per_shard: int | None) -> None:
    """Put failed videos into new shards, as pending, so that they are tried again."""
    assign_new_shards(manifest, manifest.with_status(FAILED), videos_per_shard)


def replan_damaged(out_dir: Path, manifest: Manifest, videos_per_shard: int | None,
                   workers: int = 1) -> list[str]:
    """Put the videos verify finds damaged (checking in ``workers`` processes) into new
    shards, as pending; return their ids."""
    if len(manifest) == 0:
        return []
    damaged = list(dict.fromkeys(problem.video_id for problem in verify(out_dir, workers=workers)
                                 if problem.kind == DAMAGED and problem.video_id in manifest))
    assign_new_shards(manifest, [manifest[video_id] for video_id in damaged], videos_per_shard)
    return damaged


def assign_new_shards(manifest: Manifest, entries: list[ManifestEntry],
                      videos_per_shard: int | None) -> None:
    """Add ``entries`` as pending, ``videos_per_shard`` to a shard, after the existing shards."""
    per_shard = videos_per_shard or auto_videos_per_shard(len(entries))
    first = _next_shard_number(manifest) if entries else 0
    manifest.put_many(dataclasses.replace(
        entry, shard=SHARD_PATTERN.format(first + position // per_shard), status=PENDING,
        num_frames=None, num_flows=None, error=None, warning=None, flow_stats=None)
        for position, entry in enumerate(entries))


def shards_to_run(manifest: Manifest, out_dir: Path) -> dict[str, list[ManifestEntry]]:
    """The shards a run must write, each with its videos, in planned order: those with a
    pending video, or whose file is missing. Found through the manifest's indices, so a
    resumed run with nothing left to do costs a look at each shard file, not a scan per shard."""
    pending = set(manifest.shards_with(PENDING))
    todo = [shard for shard in manifest.shards()
            if shard in pending or not (out_dir / shard).exists()]
    return {shard: manifest.in_shard(shard) for shard in todo}
