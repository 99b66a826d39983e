"""Checksums of stored frames and flows: HDF5's fletcher32 on chunks, CRC32 on JPEG items.

Chunked numeric datasets (raw RGB, uint8 and float16 flow) carry HDF5's fletcher32 filter: each
stored chunk ends with a 4-byte checksum of the (compressed) bytes before it. HDF5 keeps no
checksum of variable-length data (JPEG frames and flow planes live in its global heap), so the
writer stores a CRC32 per JPEG item in a uint32 dataset ``<name>_crc32`` next to the data.
flowkit reads chunks without HDF5's filter pipeline (flowkit.store.chunks), hence its own
fletcher32.
"""

from __future__ import annotations

import h5py
import numpy as np
from isal import isal_zlib

CRC_SUFFIX = "_crc32"
FLETCHER32_BYTES = 4


def crc32(data: bytes | np.ndarray) -> int:
    """CRC32 of a JPEG item (ISA-L's: the same value as zlib.crc32, several times as fast;
    docs/benchmarks.md, checksums)."""
    return isal_zlib.crc32(data)


def fletcher32(data: bytes | memoryview) -> int:
    """HDF5's fletcher32 of ``data``: sums of big-endian 16-bit words (a last odd byte is the
    high byte of a word) modulo 65535, each kept in 1..65535 once non-zero, as H5checksum.c."""
    octets = np.frombuffer(data, dtype=np.uint8)
    if octets.size % 2:
        octets = np.append(octets, np.uint8(0))
    words = octets.view(">u2").astype(np.uint64)
    low = int(words.sum())
    high = int(np.cumsum(words).sum()) if words.size else 0  # sum over i of (n - i) * word i
    return (_fold(high) << 16) | _fold(low)


def _fold(total: int) -> int:
    """``total`` modulo 65535 as HDF5's end-around-carry sums give it: 65535, not 0, once > 0."""
    return 0 if total == 0 else (total - 1) % 65535 + 1


def strip_fletcher32(stored: bytes, check: bool) -> memoryview | None:
    """The chunk bytes before their fletcher32 trailer (not copied); None when ``check`` and
    they disagree with it."""
    payload = memoryview(stored)[:-FLETCHER32_BYTES]
    if check and fletcher32(payload) != int.from_bytes(stored[-FLETCHER32_BYTES:], "little"):
        return None
    return payload


def crc_dataset(dataset: h5py.Dataset) -> h5py.Dataset | None:
    """The ``<name>_crc32`` dataset stored next to a JPEG dataset, or None (older shards)."""
    found = dataset.parent.get(dataset.name.rsplit("/", 1)[-1] + CRC_SUFFIX)
    return found if isinstance(found, h5py.Dataset) else None


def item_crcs(items: np.ndarray) -> np.ndarray:
    """CRC32 of each JPEG item of ``items`` (an object array of uint8 arrays), same shape."""
    flat = [crc32(item) for item in items.reshape(-1)]
    return np.asarray(flat, dtype=np.uint32).reshape(items.shape)
