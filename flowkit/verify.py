"""Reading every frame and flow back and checking them against the manifest (``flowkit verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from flowkit.errors import FlowkitError
from flowkit.manifest import FAILED, OK, PENDING, ManifestEntry
from flowkit.reader import ArrayView, ShardReader


def verify(root: Path | str, on_video: Callable[[str], None] | None = None) -> list[str]:
    """Problems found in ``root``, one line each; an empty list means all is consistent.

    Checks, for every video the manifest holds as ok: its group exists in its shard; the frame
    and flow counts of the manifest, the group attributes and the datasets agree; the flow
    count is floor((frames - 1) / step); every frame decodes and every flow reads with the
    stored height and width. Pending videos and failed videos found in a shard are problems too.
    """
    reader = ShardReader(root)
    problems: list[str] = []
    stored: dict[str, set[str]] = {}  # shard -> ids of the groups it holds, read once
    with reader:
        for entry in reader.manifest:
            if on_video is not None:
                on_video(entry.video_id)
            if entry.status == PENDING:
                problems.append(f"{entry.video_id}: not extracted yet (rerun the extraction)")
            elif entry.status == FAILED:
                if entry.shard not in stored:
                    stored[entry.shard] = _stored_ids(reader, entry.shard)
                if entry.video_id in stored[entry.shard]:
                    problems.append(f"{entry.video_id}: failed in the manifest but present in "
                                    f"{entry.shard}")
            elif entry.status == OK:
                problems.extend(f"{entry.video_id}: {p}" for p in _check_video(reader, entry))
    return problems


def _stored_ids(reader: ShardReader, shard: str) -> set[str]:
    try:
        return set(reader.stored_ids(shard))
    except FlowkitError:  # a shard holding only failed videos may be absent: nothing stored
        return set()


def _check_video(reader: ShardReader, entry: ManifestEntry) -> list[str]:
    try:
        video = reader[entry.video_id]
        attrs = video.attrs
        shard = reader.shard_attrs(entry.shard)
        step = int(shard.get("flow_step", 1))
        has_flow = shard.get("flow_backend", "none") != "none"
        expected_flows = max(entry.num_frames - 1, 0) // step if has_flow else 0
        problems = []
        if attrs["num_frames"] != entry.num_frames:
            problems.append(f"{attrs['num_frames']} frames stored, manifest says {entry.num_frames}")
        if attrs["num_flows"] != entry.num_flows or entry.num_flows != expected_flows:
            problems.append(f"{attrs['num_flows']} flows stored, manifest says {entry.num_flows}, "
                            f"{entry.num_frames} frames with step {step} give {expected_flows}")
        size = (attrs["height"], attrs["width"])
        if video.has_frames:
            problems += _check_items(video.frames, "frame", entry.num_frames, (*size, 3))
        if has_flow and (video.has_flows or expected_flows):
            problems += _check_items(video.flows, "flow", entry.num_flows, (*size, 2))
        return problems
    except (FlowkitError, OSError, KeyError, ValueError) as exc:  # h5py raises these on damage
        return [f"unreadable ({exc})"]


def _check_items(view: ArrayView, kind: str, expected_count: int | None,
                 shape: tuple[int, ...]) -> list[str]:
    """Read every item of ``view``; report a count mismatch and the first bad item."""
    problems = []
    if len(view) != expected_count:
        problems.append(f"{len(view)} {kind}s in the dataset, manifest says {expected_count}")
    for index in range(len(view)):
        try:
            item = view[index]
        except (FlowkitError, OSError, ValueError) as exc:
            return problems + [f"{kind} {index} unreadable ({exc})"]
        if item.shape != shape:
            return problems + [f"{kind} {index} has shape {item.shape}, expected {shape}"]
    return problems
