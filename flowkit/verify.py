"""Reading every frame and flow back and checking them against the manifest (``flowkit verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from flowkit.errors import FlowkitError
from flowkit.manifest import FAILED, OK, PENDING, ManifestEntry
from flowkit.reader import ShardReader
from flowkit.shards import group_name


def verify(root: Path | str, on_video: Callable[[str], None] | None = None) -> list[str]:
    """Problems found in ``root``, one line each; an empty list means all is consistent.

    Checks, for every video the manifest holds as ok: its group exists in its shard; the frame
    and flow counts of the manifest, the group attributes and the datasets agree; the flow
    count is floor((frames - 1) / step); every frame decodes and every flow reads with the
    stored height and width. Pending videos and failed videos found in a shard are problems too.
    """
    reader = ShardReader(root)
    problems: list[str] = []
    with reader:
        for entry in reader.manifest:
            if on_video is not None:
                on_video(entry.video_id)
            if entry.status == PENDING:
                problems.append(f"{entry.video_id}: not extracted yet (rerun the extraction)")
            elif entry.status == FAILED:
                if _group_exists(reader, entry.shard, entry.video_id):
                    problems.append(f"{entry.video_id}: failed in the manifest but present in "
                                    f"{entry.shard}")
            elif entry.status == OK:
                problems.extend(f"{entry.video_id}: {p}" for p in _check_video(reader, entry))
    return problems


def _group_exists(reader: ShardReader, shard: str, video_id: str) -> bool:
    try:
        return group_name(video_id) in reader._file(shard)["videos"]
    except FlowkitError:
        return False


def _check_video(reader: ShardReader, entry: ManifestEntry) -> list[str]:
    try:
        video = reader[entry.video_id]
        attrs = video.attrs
        problems = []
        step = int(reader.shard_attrs(entry.shard).get("flow_step", 1))
        has_flow = reader.shard_attrs(entry.shard).get("flow_backend", "none") != "none"
        expected_flows = max(entry.num_frames - 1, 0) // step if has_flow else 0
        if attrs["num_frames"] != entry.num_frames:
            problems.append(f"{attrs['num_frames']} frames stored, manifest says {entry.num_frames}")
        if attrs["num_flows"] != entry.num_flows or entry.num_flows != expected_flows:
            problems.append(f"{attrs['num_flows']} flows stored, manifest says {entry.num_flows}, "
                            f"{entry.num_frames} frames with step {step} give {expected_flows}")
        group = video._group()
        shape = (attrs["height"], attrs["width"])
        if "rgb" in group:
            if len(video.frames) != entry.num_frames:
                problems.append(f"rgb dataset holds {len(video.frames)} frames, "
                                f"manifest says {entry.num_frames}")
            for index in range(len(video.frames)):
                frame = video.frames[index]
                if frame.shape != (*shape, 3):
                    problems.append(f"frame {index} has shape {frame.shape}, expected {(*shape, 3)}")
                    break
        if has_flow:
            if "flow" not in group and expected_flows:
                return problems + ["no flow dataset"]
            if "flow" in group:
                if len(video.flows) != entry.num_flows:
                    problems.append(f"flow dataset holds {len(video.flows)} flows, "
                                    f"manifest says {entry.num_flows}")
                for index in range(len(video.flows)):
                    flow = video.flows[index]
                    if flow.shape != (*shape, 2):
                        problems.append(f"flow {index} has shape {flow.shape}, "
                                        f"expected {(*shape, 2)}")
                        break
        return problems
    except (FlowkitError, OSError, KeyError, ValueError) as exc:  # h5py raises these on damage
        return [f"unreadable ({exc})"]
