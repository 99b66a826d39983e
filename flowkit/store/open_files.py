"""The shard files a reader holds open: at most ``max_open_files``, least recently used closed
first.

A DataLoader worker reads every shard of a folder in an epoch. Each open HDF5 file costs a
descriptor and about 0.9 MB (HDF5's metadata cache), so keeping all of them open runs out of
descriptors ("Too many open files") and memory at Kinetics scale (2,400 shards). The h5py
objects resolved from a file (groups, datasets, chunk readers) are kept with it and go when it
closes: closing a file invalidates them, and HDF5's close takes longer the more dead objects are
still referenced (17 ms each with 14,000 of them), so none may outlive it elsewhere. A forked
child starts with no open file and never touches its parent's handles (h5py handles must not
cross a fork); pickling drops them too.
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import h5py

from flowkit.checks import require_int
from flowkit.errors import ShardError
from flowkit.store.writer import FORMAT_NAME, SCHEMA_VERSION

DEFAULT_MAX_OPEN_FILES = 32  # a descriptor and ~0.9 MB each; far below the usual 1,024 limit
MAX_VIDEO_HANDLES = 256  # videos whose h5py objects are kept resolved, ~190 KB each


@dataclasses.dataclass
class OpenShard:
    """One open shard file and what was read from it while open: its root attributes, and the
    h5py objects of each video by video id (``handles[video_id][name]``)."""

    file: h5py.File
    attrs: dict[str, Any] | None = None
    handles: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def close(self) -> None:
        """Drop the objects resolved from the file, then close it."""
        self.handles, self.attrs = {}, None
        self.file.close()


class OpenFiles:
    """Shard files of folder ``root``, opened on first use and kept in least-recently-used
    order, at most ``max_open_files`` at once.

    Raises:
        ConfigError: ``max_open_files`` is not an integer >= 1.
    """

    def __init__(self, root: Path, max_open_files: int = DEFAULT_MAX_OPEN_FILES) -> None:
        require_int("ShardReader", "max_open_files", max_open_files, 1)
        self.root = root
        self.max_open_files = int(max_open_files)
        self._open: OrderedDict[str, OpenShard] = OrderedDict()
        self._videos: OrderedDict[tuple[str, str], None] = OrderedDict()  # with handles kept
        self.openings = 0  # files opened so far in this process and its parents
        self._pid = os.getpid()

    def get(self, shard: str) -> OpenShard:
        """The open file of ``shard`` (marked as just used), opened if need be, after closing
        the least recently used file when ``max_open_files`` are open.

        Raises:
            ShardError: the file cannot be opened as a flowkit shard (see :func:`open_shard`).
        """
        if self._pid != os.getpid():  # forked: never touch the parent's handles
            self._open, self._videos, self._pid = OrderedDict(), OrderedDict(), os.getpid()
        opened = self._open.get(shard)
        if opened is not None:
            self._open.move_to_end(shard)
            return opened
        while len(self._open) >= self.max_open_files:
            self._open.popitem(last=False)[1].close()
        opened = self._open[shard] = OpenShard(open_shard(self.root / shard))
        self.openings += 1
        return opened

    def video_handles(self, shard: str, video_id: str) -> dict[str, Any]:
        """The h5py objects resolved for ``video_id`` in the open file of ``shard`` (opened if
        need be). Those of at most ``MAX_VIDEO_HANDLES`` videos are kept, the least recently
        used dropped first: each holds HDF5 metadata and chunk caches (~190 KB a video read),
        and a file holds many videos."""
        opened = self.get(shard)
        key = (shard, video_id)
        handles = opened.handles.get(video_id)
        if handles is None:
            handles = opened.handles[video_id] = {}
        self._videos[key] = None
        self._videos.move_to_end(key)
        while len(self._videos) > MAX_VIDEO_HANDLES:
            (old_shard, old_video), _ = self._videos.popitem(last=False)
            if old_shard in self._open:
                self._open[old_shard].handles.pop(old_video, None)
        return handles

    def __len__(self) -> int:
        """How many shard files are open in this process."""
        return len(self._open) if self._pid == os.getpid() else 0

    def close(self) -> None:
        """Close every open file of this process (they reopen on the next ``get``)."""
        if self._pid == os.getpid():
            for opened in self._open.values():
                opened.close()
        self._open, self._videos, self._pid = OrderedDict(), OrderedDict(), os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": OrderedDict(), "_videos": OrderedDict()}


def open_shard(path: Path) -> h5py.File:
    """One shard file, open for reading.

    Raises:
        ShardError: the file is missing, damaged or truncated (HDF5 cannot open it, or its
            root attributes cannot be read), not a flowkit shard, or of a newer schema.
    """
    if not path.is_file():
        raise ShardError(f"{path}: cannot open shard (no such file)")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ShardError(f"{path}: damaged or truncated file (cannot open as HDF5: "
                         f"{_first_line(exc)}); rerun flowkit extract --repair") from None
    try:
        kind, schema = handle.attrs.get("format"), handle.attrs.get("schema_version", 0)
        holds_videos = "videos" in handle
    except (OSError, KeyError, RuntimeError) as exc:
        handle.close()
        raise ShardError(f"{path}: damaged or truncated file (cannot read its attributes: "
                         f"{_first_line(exc)}); rerun flowkit extract --repair") from None
    if kind != FORMAT_NAME:
        handle.close()
        if holds_videos:  # a flowkit layout whose root attributes were lost
            raise ShardError(f"{path}: damaged or truncated file (its format attribute is "
                             "lost); rerun flowkit extract --repair")
        raise ShardError(f"{path}: not a flowkit shard")
    if schema > SCHEMA_VERSION:
        handle.close()
        raise ShardError(f"{path}: shard schema {schema} is newer than this flowkit reads "
                         f"({SCHEMA_VERSION}); upgrade flowkit")
    return handle


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
