"""Reading every frame and flow back and checking them against the manifest and their stored
checksums (``flowkit verify``; ``flowkit extract --repair`` re-extracts what it finds damaged).

The work splits by shard: one process checks them one after another, or worker processes
check whole shards each (:func:`verify` with ``workers``) and the findings are put back into
manifest order, so that the result does not depend on the number of workers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from flowkit.checks import require_int
from flowkit.errors import ChecksumError, FlowkitError, ShardError
from flowkit.lifecycle import die_with_parent, ignore_interrupts
from flowkit.store.manifest import (
    FAILED,
    MANIFEST_NAME,
    OK,
    PENDING,
    Manifest,
    ManifestEntry,
)
from flowkit.store.reader import ArrayView, ShardReader

DAMAGED = "damaged"            # an ok video's stored data is wrong: re-extracting it repairs it
INCONSISTENT = "inconsistent"  # the manifest's plan disagrees with the shards (pending, failed)
UNCHECKED = "unchecked"        # a note: data stored without checksums (shard schema 1)
_TASKS_PER_WORKER = 4          # tasks of a parallel verify: shards dealt out in this many rounds


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


def verify(root: Path | str, on_video: Callable[[str], None] | None = None, workers: int = 1,
           on_shard: Callable[[str, int, int], None] | None = None) -> list[Problem]:
    """Problems found in ``root``, in manifest order; none (or only UNCHECKED notes) means all
    is consistent.

    Checks, for every video the manifest holds as ok: its group exists in its shard; the frame
    and flow counts of the manifest, the group attributes and the datasets agree; the flow
    count is floor((frames - 1) / step); every frame and flow matches its stored checksum
    (all damaged indices are named), decodes, and has the stored height and width; every flow
    is finite (float16 flow can hold NaN and infinities, which flowkit no longer writes but
    older versions stored as a backend returned them: those indices are named). Pending
    videos and failed videos found in a shard are INCONSISTENT; shards without checksums get
    one UNCHECKED note each.

    ``workers`` > 1 checks whole shards in that many processes, each with its own reader; the
    problems are the same, in the same order, as with one. ``on_video(video_id)`` is called
    once per video: with one worker just before the video is checked (shard by shard, in
    manifest order within a shard), with more when its shard's check has ended (shards in the
    order they end). ``on_shard(shard, done, total)`` is called when a shard's check ends,
    with the number of shards checked so far and in all.

    Raises:
        ConfigError: ``workers`` is not an integer >= 1.
        NotOutputFolderError: ``root`` holds no manifest.
        ShardError: the manifest is unreadable, or a worker process died.
    """
    require_int("verify", "workers", workers, 1)
    root = Path(root)
    with Manifest.read(root / MANIFEST_NAME) as manifest:
        shards = manifest.shards()
    found: list[tuple[int, Problem]] = []  # (manifest position of the video, problem)
    if workers == 1 or len(shards) <= 1:
        with ShardReader(root, check=True) as reader:
            results = ((shard, *_check_shard(reader, shard, on_video)) for shard in shards)
            _merge(results, found, None, on_shard, len(shards))
    else:
        _merge(_check_in_workers(root, shards, workers), found, on_video, on_shard, len(shards))
    found.sort(key=lambda item: item[0])  # stable: a video's problems keep their order
    return [problem for _, problem in found]


def _merge(results: Iterable[tuple[str, list[tuple[int, Problem]], list[str]]],
           found: list[tuple[int, Problem]], on_video: Callable[[str], None] | None,
           on_shard: Callable[[str, int, int], None] | None, total: int) -> None:
    """Collect each checked shard's problems into ``found``, telling the callbacks."""
    for done, (shard, problems, video_ids) in enumerate(results, 1):
        found.extend(problems)
        if on_video is not None:
            for video_id in video_ids:
                on_video(video_id)
        if on_shard is not None:
            on_shard(shard, done, total)


def _check_in_workers(root: Path, shards: list[str], workers: int
                      ) -> Iterator[tuple[str, list[tuple[int, Problem]], list[str]]]:
    """:func:`_check_shard` of every shard in joblib worker processes, as shards end.

    Only shard names travel to the workers: a task is a few shards, for which a worker opens
    the folder once. Ctrl-C stops the parent, which stops the workers; a parent killed
    outright leaves them to end themselves.
    """
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    jobs = Parallel(n_jobs=min(workers, len(shards)), return_as="generator_unordered")
    tasks = max(1, min(len(shards), workers * _TASKS_PER_WORKER))
    try:
        for results in jobs(delayed(_check_shards_in_worker)(str(root), shards[part::tasks],
                                                             os.getpid())
                            for part in range(tasks)):
            yield from results
    except TerminatedWorkerError as exc:
        raise ShardError(f"a verify worker process died ({exc.__class__.__name__}: out of "
                         "memory, or a crash in a native library on damaged data); rerun with "
                         "--workers 1 to see the video it dies on") from None


def _check_shards_in_worker(root: str, shards: list[str], parent_pid: int
                            ) -> list[tuple[str, list[tuple[int, Problem]], list[str]]]:
    """:func:`_check_shard` of ``shards`` in a worker, with one reader. The worker leaves
    Ctrl-C to the verifying process and ends when it does (idle loky workers would outlive a
    parent killed outright)."""
    if os.getpid() != parent_pid:  # a process, not a thread joblib runs in the parent
        ignore_interrupts()
        die_with_parent(parent_pid)
    with ShardReader(root, check=True) as reader:
        return [(shard, *_check_shard(reader, shard)) for shard in shards]


def _check_shard(reader: ShardReader, shard: str, on_video: Callable[[str], None] | None = None
                 ) -> tuple[list[tuple[int, Problem]], list[str]]:
    """The problems of the videos planned into ``shard``, each with its video's manifest
    position, and the ids of those videos."""
    planned = reader.manifest.positioned_in_shard(shard)
    problems: list[tuple[int, Problem]] = []
    stored: set[str] | None = None  # ids of the groups the shard holds, read once
    noted = False                   # whether the shard is noted as holding no checksums
    for position, entry in planned:
        if on_video is not None:
            on_video(entry.video_id)
        if entry.status == PENDING:
            problems.append((position, Problem(entry.video_id, "not extracted yet (rerun "
                                               "the extraction)", INCONSISTENT)))
        elif entry.status == FAILED:
            stored = _stored_ids(reader, shard) if stored is None else stored
            if entry.video_id in stored:
                problems.append((position, Problem(entry.video_id, "failed in the manifest "
                                                   f"but present in {shard}", INCONSISTENT)))
        elif entry.status == OK:
            found, has_checksums = _check_video(reader, entry)
            problems.extend((position, Problem(entry.video_id, text)) for text in found)
            if not has_checksums and not noted:
                noted = True
                problems.append((position, Problem(None, f"{shard}: no checksums stored "
                                                   "(written before shard schema 2): "
                                                   "damaged bytes cannot be detected",
                                                   UNCHECKED)))
    return problems, [entry.video_id for _, entry in planned]


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
    """Read every item of ``view`` once, checked: name every damaged index and every flow that
    is not finite, then a count mismatch and the first other bad item."""
    problems = []
    if len(view) != expected_count:
        problems.append(f"{len(view)} {kind}s in the dataset, manifest says {expected_count}")
    damaged: list[int] = []
    not_finite: list[int] = []
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
        elif kind == "flow" and not np.isfinite(item).all():
            not_finite.append(index)
    if not_finite:
        problems.insert(0, f"{kind} {', '.join(map(str, not_finite))} not finite (NaN or "
                           f"infinite values) ({shard})")
    if damaged:
        problems.insert(0, f"{kind} {', '.join(map(str, damaged))} checksum mismatch ({shard})")
    return problems + ([bad] if bad else [])
