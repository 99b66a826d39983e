"""Rows of a shard dataset read as whole stored chunks and inflated with ISA-L.

Flow (and raw RGB) is stored one row per chunk, deflate-compressed, and a loader reads scattered
rows of it over and over. Through h5py, each row costs HDF5's filter pipeline (zlib's inflate)
and a chunk-cache copy. Reading the stored chunk bytes and inflating them with ISA-L
(python-isal) gives the same array 2.5x as fast (docs/benchmarks.md, compression filter). Datasets of
any other layout or filter (lzf, vlen JPEG planes, several rows per chunk) take h5py's path.
"""

from __future__ import annotations

import h5py
import numpy as np
from isal import isal_zlib

from flowkit.errors import ShardError

# Bit i of a chunk's filter mask says that filter i of the pipeline was skipped for that chunk.
_FIRST_FILTER_SKIPPED = 1


class RowReader:
    """Reads rows (index 0 of the first axis) of one dataset, in any order, repeats allowed."""

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset = dataset
        self._row_shape = tuple(dataset.shape[1:])
        filters = _filter_codes(dataset) if _one_row_per_chunk(dataset) else None
        self._direct = filters in ([], [h5py.h5z.FILTER_DEFLATE])
        self._deflated = filters == [h5py.h5z.FILTER_DEFLATE]
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * dataset.dtype.itemsize

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Rows at ``positions`` (valid, non-negative) as one array."""
        out = np.empty((len(positions), *self._row_shape), dtype=self.dataset.dtype)
        if not self._direct:
            return _read_runs(self.dataset, positions, out)
        first_row: dict[int, int] = {}
        for row, position in enumerate(positions.tolist()):
            if position in first_row:
                out[row] = out[first_row[position]]
            else:
                first_row[position] = row
                out[row] = self._chunk(position)
        return out

    def _chunk(self, position: int) -> np.ndarray:
        offset = (position,) + (0,) * len(self._row_shape)
        try:
            mask, stored = self.dataset.id.read_direct_chunk(offset)
        except RuntimeError:  # never written: h5py gives the fill value
            return self.dataset[position]
        if self._deflated and not mask & _FIRST_FILTER_SKIPPED:
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
