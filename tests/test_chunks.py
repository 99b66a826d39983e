"""RowReader: whole-chunk reads inflated with ISA-L give exactly what h5py gives."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from flowkit.store import chunks
from flowkit.errors import ChecksumError, ShardError
from flowkit.store.chunks import RowReader

POSITIONS = np.array([7, 1, 2, 3, 9, 8, 1, 7])


def _dataset(handle: h5py.File, name: str, dtype=np.uint8, rows: int = 10, **filters):
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, (rows, 6, 5, 2)) if dtype == np.uint8
            else rng.normal(size=(rows, 6, 5, 2))).astype(dtype)
    data[:, :3] = data[0, :3]  # some redundancy so that deflate shrinks the chunks
    dataset = handle.create_dataset(name, data=data, chunks=(1, 6, 5, 2), **filters)
    return dataset, data


@pytest.mark.parametrize("filters", [{}, {"compression": "gzip", "compression_opts": 1},
                                     {"compression": "gzip", "compression_opts": 9}])
@pytest.mark.parametrize("dtype", [np.uint8, np.float16])
def test_direct_reads_equal_h5py(tmp_path, filters, dtype):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", dtype, **filters)
        reader = RowReader(dataset)
        assert reader._direct
        rows = reader.read(POSITIONS)
    assert rows.dtype == dtype
    np.testing.assert_array_equal(rows, data[POSITIONS])


def test_deflate_goes_through_isal(tmp_path, monkeypatch):
    calls = []
    real = chunks.isal_zlib.decompress
    monkeypatch.setattr(chunks.isal_zlib, "decompress",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", compression="gzip")
        np.testing.assert_array_equal(RowReader(dataset).read(POSITIONS), data[POSITIONS])
    assert len(calls) == len(set(POSITIONS.tolist()))  # each distinct row inflated once


@pytest.mark.parametrize("filters", [{"compression": "lzf"},
                                     {"compression": "gzip", "shuffle": True}])
def test_other_filters_take_h5py_path(tmp_path, filters):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", **filters)
        reader = RowReader(dataset)
        assert not reader._direct
        np.testing.assert_array_equal(reader.read(POSITIONS), data[POSITIONS])


def test_several_rows_per_chunk_take_h5py_path(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        data = np.arange(10 * 4 * 2, dtype=np.uint8).reshape(10, 4, 2)
        dataset = handle.create_dataset("flow", data=data, chunks=(2, 4, 2), compression="gzip")
        reader = RowReader(dataset)
        assert not reader._direct
        np.testing.assert_array_equal(reader.read(POSITIONS), data[POSITIONS])


def test_chunk_stored_without_its_filter(tmp_path):
    """HDF5 may skip an optional filter for a chunk (mask bit 0): the bytes are then raw."""
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", compression="gzip")
        data[3] = 77
        dataset.id.write_direct_chunk((3, 0, 0, 0), data[3].tobytes(), filter_mask=1)
        np.testing.assert_array_equal(RowReader(dataset).read(POSITIONS), data[POSITIONS])


def test_unwritten_rows_read_as_fill_value(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset = handle.create_dataset("flow", shape=(4, 3, 2), chunks=(1, 3, 2),
                                        dtype=np.uint8, compression="gzip", fillvalue=9)
        dataset[0] = 1
        rows = RowReader(dataset).read(np.array([2, 0]))
    np.testing.assert_array_equal(rows, [np.full((3, 2), 9), np.ones((3, 2))])


@pytest.mark.parametrize("stored", [b"not deflate at all", zlib.compress(bytes(7))])
def test_corrupt_chunk_names_file_and_row(tmp_path, stored):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as handle:
        dataset, _ = _dataset(handle, "flow", compression="gzip")
        dataset.id.write_direct_chunk((2, 0, 0, 0), stored)
        with pytest.raises(ShardError, match=r"a\.h5: chunk 2 of /flow"):
            RowReader(dataset).read(np.array([1, 2]))


def test_empty_selection(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, _ = _dataset(handle, "flow", compression="gzip")
        assert RowReader(dataset).read(np.zeros(0, np.int64)).shape == (0, 6, 5, 2)
        dataset, _ = _dataset(handle, "lzf", compression="lzf")
        assert RowReader(dataset).read(np.zeros(0, np.int64)).shape == (0, 6, 5, 2)


def _damaged_rows(dataset: h5py.Dataset) -> list[int]:
    """The rows a checking reader refuses, each read on its own."""
    reader = RowReader(dataset, check=True)
    damaged = []
    for position in range(dataset.shape[0]):
        try:
            reader.read(np.array([position]))
        except ChecksumError:
            damaged.append(position)
    return damaged


@pytest.mark.parametrize("filters", [{}, {"compression": "gzip"}, {"compression": "lzf"}])
def test_fletcher32_chunks_read_checked_and_damage_is_named(tmp_path, filters):
    """Chunks ending with HDF5's fletcher32 read as h5py reads them; a damaged one is refused
    with check, by its row, and (uncompressed) read as it is without."""
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", fletcher32=True, **filters)
        assert RowReader(dataset).has_checksums
        assert RowReader(dataset)._direct == ("lzf" not in filters.values())
        np.testing.assert_array_equal(RowReader(dataset, check=True).read(POSITIONS),
                                      data[POSITIONS])
        assert _damaged_rows(dataset) == []
        mask, stored = dataset.id.read_direct_chunk((3, 0, 0, 0))
        damaged = bytes([stored[0] ^ 1]) + stored[1:]
        dataset.id.write_direct_chunk((3, 0, 0, 0), damaged, filter_mask=mask)
        assert _damaged_rows(dataset) == [3]
        with pytest.raises(ChecksumError, match=r"a\.h5: row 3 of /flow: checksum mismatch"):
            RowReader(dataset, check=True).read(np.array([1, 3]))
        if not filters:
            row = RowReader(dataset).read(np.array([3]))[0]
            assert np.count_nonzero(row != data[3]) == 1


def test_fletcher32_skipped_for_a_chunk_is_not_stripped(tmp_path):
    """A chunk whose mask says fletcher32 was skipped holds no trailer."""
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        dataset, data = _dataset(handle, "flow", fletcher32=True)
        data[3] = 77
        dataset.id.write_direct_chunk((3, 0, 0, 0), data[3].tobytes(), filter_mask=1)
        np.testing.assert_array_equal(RowReader(dataset, check=True).read(POSITIONS),
                                      data[POSITIONS])
