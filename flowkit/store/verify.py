"""Reading every frame and flow back and checking them against the manifest and their stored
checksums (``flowkit verify``; ``flowkit extract --repair`` re-extracts what it finds damaged)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from flowkit.errors import ChecksumError, FlowkitError
from flowkit.store.manifest import FAILED, OK, PENDING, ManifestEntry
from flowkit.store.reader import ArrayView, ShardReader

DAMAGED = "damaged"            # an ok video's stored data is wrong: re-extracting it repairs it
INCONSISTENT = "inconsistent"  # the manifest's plan disagrees with the shards (pending, failed)
UNCHECKED = "unchecked"        # a note: data stored without checksums (shard schema 1)


@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding of :func:`verify`: the video it concerns (None: a whole shard), what is
    wrong, and its kind (DAMAGED, INCONSISTENT, or UNCHECKED, a note that is no failure)."""

    video_id: str | None
    text: str
    kind: str = DAMAGED

    def __str__(self) -> str:
        return self.text if self.video_id is None else f"{self.video_id}: {self.text}"

    @property
    def is_failure(self) -> bool:
        """Whether verification fails on it (every kind but the UNCHECKED note)."""
        return self.kind != UNCHECKED


def verify(root: Path | str, on_video: Callable[[str], None] | None = None) -> list[Problem]:
    """Problems found in ``root``; none (or only UNCHECKED notes) means all is consistent.

    Checks, for every video the manifest holds as ok: its group exists in its shard; the frame
    and flow counts of the manifest, the group attributes and the datasets agree; the flow
    count is floor((frames - 1) / step); every frame and flow matches its stored checksum
    (all damaged indices are named), decodes, and has the stored height and width. Pending
    videos and failed videos found in a shard are INCONSISTENT; shards without checksums get
    one UNCHECKED note each.
    """
    reader = ShardReader(root, check=True)  # one read of each item checks and decodes it
    problems: list[Problem] = []
    stored: dict[str, set[str]] = {}  # shard -> ids of the groups it holds, read once
    unchecked: set[str] = set()       # shards already noted as holding no checksums
    with reader:
        for entry in reader.manifest:
            if on_video is not None:
                on_video(entry.video_id)
            if entry.status == PENDING:
                problems.append(Problem(entry.video_id, "not extracted yet (rerun the "
                                        "extraction)", INCONSISTENT))
            elif entry.status == FAILED:
                if entry.shard not in stored:
                    stored[entry.shard] = _stored_ids(reader, entry.shard)
                if entry.video_id in stored[entry.shard]:
                    problems.append(Problem(entry.video_id, "failed in the manifest but present "
                                            f"in {entry.shard}", INCONSISTENT))
            elif entry.status == OK:
                found, has_checksums = _check_video(reader, entry)
                problems.extend(Problem(entry.video_id, text) for text in found)
                if not has_checksums and entry.shard not in unchecked:
                    unchecked.add(entry.shard)
                    problems.append(Problem(None, f"{entry.shard}: no checksums stored (written "
                                            "before shard schema 2): damaged bytes cannot be "
                                            "detected", UNCHECKED))
    return problems


def _stored_ids(reader: ShardReader, shard: str) -> set[str]:
    try:
        return set(reader.stored_ids(shard))
    except FlowkitError:  # a shard holding only failed videos may be absent: nothing stored
        return set()


def _check_video(reader: ShardReader, entry: ManifestEntry) -> tuple[list[str], bool]:
    """The problems of one ok video, and whether all its data carries checksums."""
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
        checked = True
        for view, kind, count, shape, present in (
                (video.frames, "frame", entry.num_frames, (*size, 3), video.has_frames),
                (video.flows, "flow", entry.num_flows, (*size, 2),
                 has_flow and (video.has_flows or expected_flows))):
            if present:
                checked = checked and view.has_checksums
                problems += _check_items(view, kind, count, shape, entry.shard)
        return problems, checked
    except (FlowkitError, OSError, KeyError, ValueError) as exc:  # h5py raises these on damage
        return [f"unreadable ({exc})"], True


def _check_items(view: ArrayView, kind: str, expected_count: int | None,
                 shape: tuple[int, ...], shard: str) -> list[str]:
    """Read every item of ``view`` once, checked: name every damaged index, then a count
    mismatch and the first other bad item."""
    problems = []
    if len(view) != expected_count:
        problems.append(f"{len(view)} {kind}s in the dataset, manifest says {expected_count}")
    damaged: list[int] = []
    bad: str | None = None
    for index in range(len(view)):
        try:
            item = view[index]
        except ChecksumError:
            damaged.append(index)
            continue
        except (FlowkitError, OSError, ValueError) as exc:
            bad = bad or f"{kind} {index} unreadable ({exc})"
            continue
        if item.shape != shape:
            bad = bad or f"{kind} {index} has shape {item.shape}, expected {shape}"
    if damaged:
        problems.insert(0, f"{kind} {', '.join(map(str, damaged))} checksum mismatch ({shard})")
    return problems + ([bad] if bad else [])
