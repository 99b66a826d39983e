"""Rows of a shard dataset read as whole stored chunks and inflated with ISA-L, and checked.

Flow (and raw RGB) is stored one row per chunk, deflate-compressed, and a loader reads scattered
rows of it over and over. Through h5py, each row costs HDF5's filter pipeline (zlib's inflate)
and a chunk-cache copy. Reading the stored chunk bytes and inflating them with ISA-L
(python-isal) gives the same array 2.5x as fast (docs/benchmarks.md, compression filter). Datasets of
any other layout or filter (lzf, vlen JPEG planes, several rows per chunk) take h5py's path.

Stored chunks end with HDF5's fletcher32 checksum (schema 2): it is stripped, and compared when
``check`` is asked; JPEG items are compared with their stored CRC32 (flowkit.store.checksums).
"""

from __future__ import annotations

import h5py
import numpy as np
from isal import isal_zlib

from flowkit.errors import ChecksumError, ShardError
from flowkit.store.checksums import crc_dataset, item_crcs, strip_fletcher32

_ITEM_NAMES = {"rgb": "frame", "flow": "flow"}  # what one row of a video's dataset is called


class RowReader:
    """Reads rows (index 0 of the first axis) of one dataset, in any order, repeats allowed.

    With ``check``, every row read is compared with its stored checksum first (ChecksumError
    on a mismatch); without, the checksum trailers are only stripped.
    """

    def __init__(self, dataset: h5py.Dataset, check: bool = False) -> None:
        self.dataset = dataset
        self.check = check
        self._row_shape = tuple(dataset.shape[1:])
        filters = _filter_codes(dataset)
        self._fletcher = filters[-1:] == [h5py.h5z.FILTER_FLETCHER32]
        self._fletcher_skipped = 1 << max(len(filters) - 1, 0)  # its bit in a chunk mask
        codes = filters[:-1] if self._fletcher else filters
        self._chunked_rows = _one_row_per_chunk(dataset)
        self._direct = self._chunked_rows and codes in ([], [h5py.h5z.FILTER_DEFLATE])
        self._deflated = codes == [h5py.h5z.FILTER_DEFLATE]  # deflate is then filter 0: bit 1
        self._crcs = crc_dataset(dataset) if dataset.dtype.kind == "O" else None
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * dataset.dtype.itemsize

    @property
    def has_checksums(self) -> bool:
        """Whether the dataset stores checksums (shards of schema 2 on; not older ones)."""
        return (self._fletcher and self._chunked_rows) or self._crcs is not None

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` (valid, non-negative) as one array."""
        out = np.empty((len(positions), *self._row_shape), dtype=self.dataset.dtype)
        if not self._direct:
            return self._read_h5py(positions, out)
        first_row: dict[int, int] = {}
        for row, position in enumerate(positions.tolist()):
            if position in first_row:
                out[row] = out[first_row[position]]
            else:
                first_row[position] = row
                out[row] = self._chunk(position)
        return out

    def _read_h5py(self, positions: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.check and self._fletcher and self._chunked_rows:
            for position in np.unique(positions).tolist():
                self._stored_chunk(position, check=True)
        try:
            rows = _read_runs(self.dataset, positions, out)
        except OSError as exc:  # HDF5's filters (lzf, its own fletcher32) refuse damaged chunks
            raise ShardError(f"{self._where(int(positions[0]))}: unreadable ({exc}); rerun "
                             "flowkit extract --repair") from None
        if self.check and self._crcs is not None:
            self._check_items(positions, rows)
        return rows

    def _check_items(self, positions: np.ndarray, rows: np.ndarray) -> None:
        """Compare JPEG items with their stored CRC32s."""
        assert self._crcs is not None
        stored = _read_runs(self._crcs, positions,
                            np.empty((len(positions), *self._crcs.shape[1:]), np.uint32))
        mismatched = (item_crcs(rows) != stored).reshape(len(positions), -1).any(axis=1)
        if mismatched.any():
            raise self._mismatch(int(positions[np.argmax(mismatched)]))

    def _stored_chunk(self, position: int, check: bool) -> tuple[int, bytes | memoryview] | None:
        """(filter mask, stored bytes without the fletcher32 trailer) of row ``position``'s
        chunk, or None when the chunk was never written."""
        offset = (position,) + (0,) * len(self._row_shape)
        try:
            mask, stored = self.dataset.id.read_direct_chunk(offset)
        except RuntimeError:  # never written: h5py gives the fill value
            return None
        if self._fletcher and not mask & self._fletcher_skipped:
            payload = strip_fletcher32(stored, check)
            if payload is None:
                raise self._mismatch(position)
            stored = payload
        return mask, stored

    def _chunk(self, position: int) -> np.ndarray:
        found = self._stored_chunk(position, self.check)
        if found is None:
            return self.dataset[position]
        mask, stored = found
        if self._deflated and not mask & 1:
            try:
                stored = isal_zlib.decompress(stored, bufsize=self._row_bytes)
            except isal_zlib.error as exc:
                raise ShardError(f"{self.dataset.file.filename}: chunk {position} of "
                                 f"{self.dataset.name} does not inflate ({exc})") from None
        if len(stored) != self._row_bytes:
            raise ShardError(f"{self.dataset.file.filename}: chunk {position} of "
                             f"{self.dataset.name} holds {len(stored)} bytes, "
                             f"expected {self._row_bytes}")
        return np.frombuffer(stored, dtype=self.dataset.dtype).reshape(self._row_shape)

    def _where(self, position: int) -> str:
        """'<file>: video '<id>' frame <position>' (or the dataset's path outside a video)."""
        group = self.dataset.parent
        name = self.dataset.name.rsplit("/", 1)[-1]
        video = group.attrs.get("video_id")
        if video is None or name not in _ITEM_NAMES:
            return f"{self.dataset.file.filename}: row {position} of {self.dataset.name}"
        return f"{self.dataset.file.filename}: video {video!r} {_ITEM_NAMES[name]} {position}"

    def _mismatch(self, position: int) -> ChecksumError:
        return ChecksumError(f"{self._where(position)}: checksum mismatch (stored bytes "
                             "damaged); rerun flowkit extract --repair")


def _one_row_per_chunk(dataset: h5py.Dataset) -> bool:
    """Whether each chunk holds exactly one row of a plain numeric (not vlen: kind "O") dataset;
    only chunked datasets, never scalars, have ``chunks``."""
    return (dataset.chunks is not None and tuple(dataset.chunks) == (1, *dataset.shape[1:])
            and dataset.dtype.kind in "uif")


def _filter_codes(dataset: h5py.Dataset) -> list[int]:
    plist = dataset.id.get_create_plist()
    return [plist.get_filter(index)[0] for index in range(plist.get_nfilters())]


def _read_runs(dataset: h5py.Dataset, positions: np.ndarray, out: np.ndarray) -> np.ndarray:
    """h5py's path: each run of consecutive rows read as one slice.

    h5py's array (point) selection on compressed chunked data is about 70x slower for the
    scattered stacks a TSN sample reads.
    """
    if positions.size == 0:
        return out
    unique, inverse = np.unique(positions, return_inverse=True)
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    runs = [dataset[int(run[0]):int(run[-1]) + 1] for run in np.split(unique, breaks)]
    rows = runs[0] if len(runs) == 1 else np.concatenate(runs)
    return np.take(rows, inverse, axis=0, out=out)
