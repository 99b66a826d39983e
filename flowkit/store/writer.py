"""The HDF5 shard format: an atomic writer and a lazy, fork-safe reader.

One shard file holds many videos, one group each under ``/videos``. docs/format.md is the
specification; this module is its implementation. Shards are written under ``<name>.tmp`` and
renamed only once complete and flushed, so a file named ``*.h5`` is always whole. HDF5 writes
through a :class:`flowkit.store.shard_file.ShardFile`, which keeps an OS error from it (HDF5
cannot close a file whose writes failed without crashing): the writer raises it as OutputError.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np

from flowkit.errors import BackendError, ConfigError, OutputError, ShardError
from flowkit.store.checksums import CRC_SUFFIX, crc32
from flowkit.store.codec import encode_jpeg, quantize_flow
from flowkit.store.flowstats import FlowStats
from flowkit.store.shard_file import ShardFile
from flowkit.writing import output_error, writing

SCHEMA_VERSION = 2  # 2: checksums (fletcher32 chunks, <name>_crc32 of JPEG items)
FORMAT_NAME = "flowkit-shard"
TMP_SUFFIX = ".tmp"
_GROW_BY = 64  # datasets grow in blocks of this many frames, trimmed on finish

RGB_FORMATS = ("jpeg", "raw", "none")
FLOW_DTYPES = ("uint8", "float16", "jpeg")
COMPRESSIONS = ("lzf", "gzip", "none")


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """How frames and flow are stored in a shard."""

    rgb: str = "jpeg"            # jpeg (bytes as written by libjpeg), raw (uint8 arrays), none
    jpeg_quality: int = 95
    flow_dtype: str = "uint8"    # uint8 (quantised with bound), float16, or jpeg (uint8 x/y as JPEG)
    bound: float = 20.0          # flow range [-bound, bound] px kept by uint8 quantisation
    compression: str = "gzip"    # HDF5 filter for flow and raw RGB chunks (chosen in docs/benchmarks.md)
    gzip_level: int = 1

    def __post_init__(self) -> None:
        _check_choice("rgb", self.rgb, RGB_FORMATS)
        _check_choice("flow_dtype", self.flow_dtype, FLOW_DTYPES)
        _check_choice("compression", self.compression, COMPRESSIONS)
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be within 1..100, got {self.jpeg_quality}")
        if not self.bound > 0:
            raise ConfigError(f"bound must be positive, got {self.bound}")
        if not 0 <= self.gzip_level <= 9:
            raise ConfigError(f"gzip_level must be within 0..9, got {self.gzip_level}")


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def group_name(video_id: str) -> str:
    """HDF5 group name of a video: its id with '%' and '/' percent-encoded ('/' nests groups)."""
    return video_id.replace("%", "%25").replace("/", "%2F")


def _filter_kwargs(storage: StorageConfig) -> dict[str, Any]:
    """HDF5 filters of numeric datasets: the shard's compression, then fletcher32 (last, so
    that it covers the compressed bytes as stored)."""
    if storage.compression == "lzf":
        return {"compression": "lzf", "fletcher32": True}
    if storage.compression == "gzip":
        return {"compression": "gzip", "compression_opts": storage.gzip_level, "fletcher32": True}
    return {"fletcher32": True}


class _Guard:
    """Around every operation on one shard: an OS error, kept by its :class:`ShardFile` (HDF5
    saw none) or raised by h5py (of whatever type, :mod:`flowkit.writing`), becomes an
    OutputError; once one happened, every later operation raises it again: a shard whose
    write failed is never finished."""

    def __init__(self, file: ShardFile) -> None:
        self.file = file

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.check()
        try:
            with writing(self.file.path):
                yield
        except Exception:
            self.check()  # an OS error underneath is the cause of whatever HDF5 made of it
            raise
        self.check()

    def check(self) -> None:
        if self.file.error is not None:
            raise output_error(self.file.path, self.file.error) from None

    @property
    def failed(self) -> bool:
        return self.file.error is not None


class _GrowingDataset:
    """An HDF5 dataset appended to one item at a time, created on the first item.

    Variable-length (JPEG) items get a CRC32 each in ``<name>_crc32`` (HDF5 checksums no
    heap data); numeric chunks are checksummed by the fletcher32 filter in ``filters``.
    """

    def __init__(self, group: h5py.Group, name: str, dtype: Any, filters: dict[str, Any],
                 attrs: Mapping[str, Any], guard: _Guard,
                 vlen_shape: tuple[int, ...] = ()) -> None:
        self._group, self._name, self._dtype = group, name, dtype
        self._filters, self._attrs, self._vlen_shape = filters, attrs, vlen_shape
        self._guard = guard
        self._vlen = h5py.check_vlen_dtype(np.dtype(dtype)) is not None
        self._dataset: h5py.Dataset | None = None
        self._crcs: h5py.Dataset | None = None
        self.count = 0

    def append(self, item: np.ndarray | list[np.ndarray]) -> None:
        with self._guard():
            self._append(item)

    def _append(self, item: np.ndarray | list[np.ndarray]) -> None:
        vlen = self._vlen
        if self._dataset is None:
            item_shape = self._vlen_shape if vlen else item.shape
            self._dataset = self._group.create_dataset(
                self._name, shape=(0, *item_shape), maxshape=(None, *item_shape),
                chunks=(1, *item_shape), dtype=self._dtype, **({} if vlen else self._filters))
            self._dataset.attrs.update(self._attrs)
            if vlen:
                self._crcs = self._create_crcs(item_shape)
        if self.count == self._dataset.shape[0]:
            for dataset in (self._dataset, self._crcs):
                if dataset is not None:
                    dataset.resize(self.count + _GROW_BY, axis=0)
        if vlen and self._vlen_shape:
            # Element by element: h5py would read equal-length byte strings as a 2-D array.
            # (Numeric items are written whole: row by row, a 240-row flow took 240 writes.)
            for position, part in enumerate(item):
                self._dataset[self.count, position] = part
        else:
            self._dataset[self.count] = item
        if self._crcs is not None:
            parts = item if self._vlen_shape else [item]
            self._crcs[self.count] = np.array([crc32(part) for part in parts],
                                              dtype=np.uint32).reshape(self._crcs.shape[1:])
        self.count += 1

    def _create_crcs(self, item_shape: tuple[int, ...]) -> h5py.Dataset | None:
        """The ``<name>_crc32`` dataset of a JPEG dataset: a uint32 per JPEG item."""
        return self._group.create_dataset(
            self._name + CRC_SUFFIX, shape=(0, *item_shape), maxshape=(None, *item_shape),
            chunks=(_GROW_BY, *item_shape), dtype=np.uint32, fletcher32=True)

    def finish(self) -> None:
        with self._guard():
            for dataset in (self._dataset, self._crcs):
                if dataset is not None:
                    dataset.resize(self.count, axis=0)


class VideoWriter:
    """Appends the frames and flows of one video to its group. Made by ShardWriter.video().

    ``flow_stats``, set by the caller (who has the float flow), is recorded on finish.
    """

    def __init__(self, group: h5py.Group, storage: StorageConfig, flow_attrs: Mapping[str, Any],
                 guard: _Guard) -> None:
        self.group = group
        self._storage = storage
        self._guard = guard
        self._flow_attrs = dict(flow_attrs)
        filters = _filter_kwargs(storage)
        rgb_dtype = h5py.vlen_dtype(np.uint8) if storage.rgb == "jpeg" else np.uint8
        self._rgb = _GrowingDataset(group, "rgb", rgb_dtype, filters, {"encoding": storage.rgb},
                                    guard)
        flow_dtype = {"uint8": np.uint8, "float16": np.float16,
                      "jpeg": h5py.vlen_dtype(np.uint8)}[storage.flow_dtype]
        self._flow = _GrowingDataset(group, "flow", flow_dtype, filters,
                                     {"dtype": storage.flow_dtype, **flow_attrs}, guard,
                                     vlen_shape=(2,))
        self.num_frames = 0
        self.flow_stats: FlowStats | None = None

    @property
    def num_flows(self) -> int:
        return self._flow.count

    def append_frame(self, frame: np.ndarray) -> None:
        """Store one (H, W, 3) uint8 RGB frame (or only count it when RGB storage is none)."""
        if self._storage.rgb == "jpeg":
            self._rgb.append(encode_jpeg(frame, self._storage.jpeg_quality))
        elif self._storage.rgb == "raw":
            self._rgb.append(frame)
        self.num_frames += 1

    def append_flow(self, flow: np.ndarray) -> None:
        """Store one (H, W, 2) float32 flow field in the configured dtype.

        Raises:
            BackendError: the flow is not finite (NaN or infinite values), or does not fit
                float16 storage: uint8 quantisation would store NaN as -bound and infinity as
                +-bound without a trace, float16 would keep it. Every backend's flow is
                stored here, so this is where it is checked (np.isfinite: 0.02 ms per
                320x240 flow, 0.1% of Farneback's time; docs/benchmarks.md).
        """
        self._check_finite(flow)
        if self._storage.flow_dtype == "float16":
            with np.errstate(over="ignore"):  # beyond float16's range: refused just below
                half = flow.astype(np.float16)
            self._check_finite(half, stored=True)
            self._flow.append(half)
            return
        quantized = quantize_flow(flow, self._storage.bound)
        if self._storage.flow_dtype == "uint8":
            self._flow.append(quantized)
        else:
            self._flow.append([encode_jpeg(quantized[..., axis], self._storage.jpeg_quality)
                               for axis in (0, 1)])

    def _check_finite(self, flow: np.ndarray, stored: bool = False) -> None:
        """BackendError naming the frames of the next flow, what is wrong and the backend,
        unless every value of ``flow`` is finite (``stored``: ``flow`` is the float16 array
        made of finite float32 flow, whose infinities are values beyond float16's range)."""
        if np.isfinite(flow).all():
            return
        infinite = int(np.count_nonzero(np.isinf(flow)))
        if stored:
            cause = f"does not fit float16 storage ({infinite} values beyond 65504 px)"
        else:
            nan = int(np.count_nonzero(np.isnan(flow)))
            counts = " and ".join(f"{count} {kind} value{'s' * (count != 1)}" for count, kind
                                  in ((nan, "NaN"), (infinite, "infinite")) if count)
            cause = f"is not finite ({counts})"
        step = int(self._flow_attrs.get("step", 1))
        first = self._flow.count * step
        backend = self._flow_attrs.get("backend")
        source = f"backend {backend}" if backend else "the flow backend"
        raise BackendError(f"flow of frames {first}->{first + step} {cause} from {source}")

    def append_jpeg_frame(self, data: bytes) -> None:
        """Store the JPEG bytes of one RGB frame as they are (``rgb="jpeg"`` storage only)."""
        if self._storage.rgb != "jpeg":
            raise ShardError(f"cannot store JPEG bytes with rgb={self._storage.rgb!r} storage")
        self._rgb.append(np.frombuffer(data, dtype=np.uint8))
        self.num_frames += 1

    def append_jpeg_flow(self, x: bytes, y: bytes) -> None:
        """Store the grayscale JPEG bytes of one flow's u (x) and v (y) planes as they are
        (``flow_dtype="jpeg"`` storage only)."""
        if self._storage.flow_dtype != "jpeg":
            raise ShardError("cannot store JPEG flow bytes with "
                             f"flow_dtype={self._storage.flow_dtype!r} storage")
        self._flow.append([np.frombuffer(x, dtype=np.uint8), np.frombuffer(y, dtype=np.uint8)])

    def append_quantized_flow(self, quantized: np.ndarray) -> None:
        """Store one (H, W, 2) uint8 flow already quantised with the bound, as it is
        (``flow_dtype="uint8"`` storage only: lossless flow images brought in by an import)."""
        if self._storage.flow_dtype != "uint8" or quantized.dtype != np.uint8:
            raise ShardError(f"cannot store {quantized.dtype} quantised flow with "
                             f"flow_dtype={self._storage.flow_dtype!r} storage")
        self._flow.append(quantized)

    def finish(self, attrs: Mapping[str, Any]) -> None:
        """Trim the datasets and record the counts, ``attrs`` and ``flow_stats`` on the group."""
        self._rgb.finish()
        self._flow.finish()
        stats = self.flow_stats.to_attrs() if self.flow_stats is not None else {}
        with self._guard():
            self.group.attrs.update({k: _attr_value(v) for k, v in {**attrs, **stats}.items()})
            self.group.attrs["num_frames"] = self.num_frames
            self.group.attrs["num_flows"] = self.num_flows


def _attr_value(value: Any) -> Any:
    """HDF5 attributes cannot hold None or nested containers: store those as JSON text."""
    if value is None or isinstance(value, (dict, list, tuple)):
        return json.dumps(value)
    return value


class ShardWriter:
    """Writes one shard file atomically.

    Use as a context manager: on a clean exit the file is flushed, fsynced and renamed from
    ``<path>.tmp`` to ``<path>``; on an exception the temporary file is removed. ``tmp_tag``
    makes the temporary name ``<path>.<tag>.tmp``, unique to one writer, for when two writers
    may write the same shard at once (a task rerun on a cluster while its first try still runs).
    An OS error writing the file (disk full, read-only, I/O error) is raised as OutputError, at
    the operation it happened in (or the next), and the file is dropped: the writer refuses
    every later operation with the same error.

        with ShardWriter(path, storage, attrs) as shard:
            with shard.video("class/clip.avi", {"source": ...}) as video:
                video.append_frame(frame)
    """

    def __init__(self, path: Path, storage: StorageConfig, attrs: Mapping[str, Any],
                 tmp_tag: str = "") -> None:
        self.path = Path(path)
        tag = f".{tmp_tag}" if tmp_tag else ""
        self.tmp_path = self.path.with_name(f"{self.path.name}{tag}{TMP_SUFFIX}")
        self.storage = storage
        self._attrs = dict(attrs)
        self._io: ShardFile | None = None
        self._guard: _Guard | None = None
        self._file: h5py.File | None = None
        self._videos: h5py.Group | None = None

    def __enter__(self) -> "ShardWriter":
        try:
            with writing(self.tmp_path):
                self._io = ShardFile(self.tmp_path)
            self._guard = _Guard(self._io)
            with self._guard():
                self._file = h5py.File(self._io, "w", libver=("v110", "latest"))
                self._file.attrs.update({
                    "format": FORMAT_NAME, "schema_version": SCHEMA_VERSION,
                    **{k: _attr_value(v) for k, v in self._attrs.items()},
                })
                self._videos = self._file.create_group("videos")
        except BaseException:
            self._discard()
            raise
        return self

    def video(self, video_id: str, flow_attrs: Mapping[str, Any]) -> "_VideoContext":
        """A context manager yielding a VideoWriter; the group is removed if the body raises."""
        if self._videos is None or self._guard is None:
            raise ShardError(f"{self.tmp_path}: shard is not open for writing")
        name = group_name(video_id)
        with self._guard():
            if name in self._videos:
                raise ShardError(f"{self.tmp_path}: video {video_id!r} is already in this shard")
            group = self._videos.create_group(name)
            group.attrs["video_id"] = video_id
        return _VideoContext(self._videos, name,
                             VideoWriter(group, self.storage, flow_attrs, self._guard),
                             self._guard)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            assert self._file is not None and self._io is not None and self._guard is not None
            with self._guard():  # also refuses if a write failed before (and was caught)
                self._file.flush()
                self._file.close()  # HDF5 writes what it still caches: a full disk fails here
                self._file = self._videos = None
                self._io.fsync()
            self._io.close()
            with writing(self.tmp_path):
                os.replace(self.tmp_path, self.path)
                fsync_path(self.path.parent)
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        """Drop the temporary file: its space is freed at once. HDF5 closes it cleanly, as
        none of its writes failed (the ShardFile kept the error, and holds what came after)."""
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001  nothing of it is kept either way
                pass
            self._file = self._videos = None
        if self._io is not None:
            self._io.close()
        self.tmp_path.unlink(missing_ok=True)


class _VideoContext:
    def __init__(self, videos: h5py.Group, name: str, writer: VideoWriter, guard: _Guard
                 ) -> None:
        self._videos, self._name, self._writer, self._guard = videos, name, writer, guard

    def __enter__(self) -> VideoWriter:
        return self._writer

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # After a failed write the file is dropped whole: nothing more is written to it.
        failed_video = isinstance(exc, Exception) and not isinstance(exc, OutputError)
        if failed_video and not self._guard.failed:
            with self._guard():
                if self._name in self._videos:
                    del self._videos[self._name]


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (its links and renames), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """HDF5 attributes as plain Python values (numpy scalars unwrapped, JSON text kept as text)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out
