"""The stored videos of a folder as a reader needs them, held compactly.

A reader (and every DataLoader worker, which gets a pickled copy) needs, for each video stored
ok: its id, shard, label and counts. As Python objects that is 500 bytes or more a video (over
300 MB for Kinetics-700); here the ids are one bytes string with offsets and the rest numpy
arrays: the id's bytes plus 44 bytes a video, pickled in one piece.
"""

from __future__ import annotations

import bisect
from typing import Iterator, Sequence

import numpy as np

from flowkit.store.manifest import Manifest

class VideoIndex:
    """The ok videos of a manifest, in manifest order: row ``i`` is the i-th stored video."""

    def __init__(self, ids: Sequence[str], shards: Sequence[str], labels: Sequence[int | None],
                 num_frames: Sequence[int | None], num_flows: Sequence[int | None]) -> None:
        encoded = [video_id.encode() for video_id in ids]
        self._blob = b"".join(encoded)
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(item) for item in encoded], out=self._offsets[1:])
        names: dict[str, int] = {}
        self._shard_codes = np.array([names.setdefault(s, len(names)) for s in shards],
                                     dtype=np.int32)
        self.shard_names = list(names)
        self.labels = np.array([-1 if label is None else label for label in labels],
                               dtype=np.int64)
        self.num_frames = np.array([n or 0 for n in num_frames], dtype=np.int64)
        self.num_flows = np.array([n or 0 for n in num_flows], dtype=np.int64)
        self._sorted = np.array(sorted(range(len(encoded)), key=encoded.__getitem__),
                                dtype=np.int64)

    @classmethod
    def of(cls, manifest: Manifest) -> "VideoIndex":
        """The videos ``manifest`` holds as ok."""
        columns: list[list] = [[], [], [], [], []]
        for row in manifest.rows("video_id, shard, label, num_frames, num_flows",
                                 "WHERE status = 'ok'"):
            for column, value in zip(columns, row):
                column.append(value)
        return cls(*columns)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def video_id(self, row: int) -> str:
        return self._blob[self._offsets[row]:self._offsets[row + 1]].decode()

    def video_ids(self) -> Iterator[str]:
        return (self.video_id(row) for row in range(len(self)))

    def shard(self, row: int) -> str:
        return self.shard_names[self._shard_codes[row]]

    @property
    def shard_codes(self) -> np.ndarray:
        """Each row's shard as a number: its position in :attr:`shard_names`."""
        return self._shard_codes

    def find(self, video_id: str) -> int | None:
        """The row of ``video_id``, or None when it is not stored (binary search by id)."""
        key = video_id.encode()
        position = bisect.bisect_left(_SortedIds(self), key)
        if position < len(self) and self._encoded(int(self._sorted[position])) == key:
            return int(self._sorted[position])
        return None

    def _encoded(self, row: int) -> bytes:
        return self._blob[self._offsets[row]:self._offsets[row + 1]]


class _SortedIds(Sequence[bytes]):
    """The encoded ids in sorted order, for bisect."""

    def __init__(self, index: VideoIndex) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, position: int) -> bytes:  # type: ignore[override]
        return self._index._encoded(int(self._index._sorted[position]))
