"""The HDF5 shard format: an atomic writer and a lazy, fork-safe reader.

One shard file holds many videos, one group each under ``/videos``. docs/format.md is the
specification; this module is its implementation. Shards are written under ``<name>.tmp`` and
renamed only once complete and flushed, so a file named ``*.h5`` is always whole.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from flowkit.errors import ConfigError, OutputError, ShardError
from flowkit.store.checksums import CRC_SUFFIX, crc32
from flowkit.store.codec import encode_jpeg, quantize_flow
from flowkit.store.flowstats import FlowStats
from flowkit.writing import writing

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


class _GrowingDataset:
    """An HDF5 dataset appended to one item at a time, created on the first item.

    Variable-length (JPEG) items get a CRC32 each in ``<name>_crc32`` (HDF5 checksums no
    heap data); numeric chunks are checksummed by the fletcher32 filter in ``filters``.
    """

    def __init__(self, group: h5py.Group, name: str, dtype: Any, filters: dict[str, Any],
                 attrs: Mapping[str, Any], vlen_shape: tuple[int, ...] = ()) -> None:
        self._group, self._name, self._dtype = group, name, dtype
        self._filters, self._attrs, self._vlen_shape = filters, attrs, vlen_shape
        self._dataset: h5py.Dataset | None = None
        self._crcs: h5py.Dataset | None = None
        self.count = 0

    def append(self, item: np.ndarray | list[np.ndarray]) -> None:
        with writing(self._group.file.filename):
            self._append(item)

    def _append(self, item: np.ndarray | list[np.ndarray]) -> None:
        if self._dataset is None:
            vlen = h5py.check_vlen_dtype(np.dtype(self._dtype)) is not None
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
        if self._vlen_shape:
            # Element by element: h5py would read equal-length byte strings as a 2-D array.
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
        with writing(self._group.file.filename):
            for dataset in (self._dataset, self._crcs):
                if dataset is not None:
                    dataset.resize(self.count, axis=0)


class VideoWriter:
    """Appends the frames and flows of one video to its group. Made by ShardWriter.video().

    ``flow_stats``, set by the caller (who has the float flow), is recorded on finish.
    """

    def __init__(self, group: h5py.Group, storage: StorageConfig, flow_attrs: Mapping[str, Any]):
        self.group = group
        self._storage = storage
        filters = _filter_kwargs(storage)
        rgb_dtype = h5py.vlen_dtype(np.uint8) if storage.rgb == "jpeg" else np.uint8
        self._rgb = _GrowingDataset(group, "rgb", rgb_dtype, filters, {"encoding": storage.rgb})
        flow_dtype = {"uint8": np.uint8, "float16": np.float16,
                      "jpeg": h5py.vlen_dtype(np.uint8)}[storage.flow_dtype]
        self._flow = _GrowingDataset(group, "flow", flow_dtype, filters,
                                     {"dtype": storage.flow_dtype, **flow_attrs}, vlen_shape=(2,))
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
        """Store one (H, W, 2) float32 flow field in the configured dtype."""
        if self._storage.flow_dtype == "float16":
            self._flow.append(flow.astype(np.float16))
            return
        quantized = quantize_flow(flow, self._storage.bound)
        if self._storage.flow_dtype == "uint8":
            self._flow.append(quantized)
        else:
            self._flow.append([encode_jpeg(quantized[..., axis], self._storage.jpeg_quality)
                               for axis in (0, 1)])

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

    def finish(self, attrs: Mapping[str, Any]) -> None:
        """Trim the datasets and record the counts, ``attrs`` and ``flow_stats`` on the group."""
        self._rgb.finish()
        self._flow.finish()
        stats = self.flow_stats.to_attrs() if self.flow_stats is not None else {}
        with writing(self.group.file.filename):
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
    An OSError writing the file (disk full, read-only, I/O error) is raised as OutputError.

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
        self._file: h5py.File | None = None

    def __enter__(self) -> "ShardWriter":
        try:
            with writing(self.tmp_path):
                self._file = h5py.File(self.tmp_path, "w", libver=("v110", "latest"))
                self._file.attrs.update({
                    "format": FORMAT_NAME, "schema_version": SCHEMA_VERSION,
                    **{k: _attr_value(v) for k, v in self._attrs.items()},
                })
                self._file.create_group("videos")
        except OutputError:
            self._discard()
            raise
        return self

    def video(self, video_id: str, flow_attrs: Mapping[str, Any]) -> "_VideoContext":
        """A context manager yielding a VideoWriter; the group is removed if the body raises."""
        if self._file is None:
            raise ShardError(f"{self.tmp_path}: shard is not open for writing")
        name = group_name(video_id)
        if name in self._file["videos"]:
            raise ShardError(f"{self.tmp_path}: video {video_id!r} is already in this shard")
        with writing(self.tmp_path):
            group = self._file["videos"].create_group(name)
            group.attrs["video_id"] = video_id
        return _VideoContext(self._file["videos"], name,
                             VideoWriter(group, self.storage, flow_attrs))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            with writing(self.tmp_path):
                assert self._file is not None
                self._file.flush()  # a full disk fails here, while the file can still be dropped
                self._file.close()
                self._file = None
                fsync_path(self.tmp_path)
                os.replace(self.tmp_path, self.path)
                fsync_path(self.path.parent)
        except OutputError:
            self._discard()
            raise

    def _discard(self) -> None:
        """Drop the temporary file: its space is freed at once, and HDF5 closes cleanly.

        HDF5 keeps a file whose writes failed (disk full) open with unwritten data, retries on
        every later close and may crash the process at exit. Its descriptor is pointed at
        /dev/null first, so that those writes succeed into nothing.
        """
        if self._file is not None:
            _redirect_to_devnull(self._file)
            try:
                self._file.close()
            except Exception:  # noqa: BLE001  nothing of it is kept either way
                pass
            self._file = None
        self.tmp_path.unlink(missing_ok=True)


class _VideoContext:
    def __init__(self, videos: h5py.Group, name: str, writer: VideoWriter) -> None:
        self._videos, self._name, self._writer = videos, name, writer

    def __enter__(self) -> VideoWriter:
        return self._writer

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # After a failed write the file is dropped whole: touching it more may crash HDF5.
        failed_video = isinstance(exc, Exception) and not isinstance(exc, OutputError)
        if failed_video and self._name in self._videos:
            with writing(self._videos.file.filename):
                del self._videos[self._name]


def _redirect_to_devnull(file: h5py.File) -> None:
    """Point the descriptor under ``file`` (HDF5's default sec2 driver) at /dev/null."""
    try:
        fd = file.id.get_vfd_handle()
    except Exception:  # noqa: BLE001  another driver, or already closed: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)


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
