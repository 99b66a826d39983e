"""Reading shards back: ``open_shards(DIR)`` gives a mapping from video id to a lazy Video.

Frames and flows slice like arrays and read only what is asked for, so a Dataset can fetch
single frames. HDF5 files open lazily and are reopened after a fork (h5py handles must not
cross a fork), which makes a reader safe to hand to DataLoader workers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import cv2
import h5py
import numpy as np

from flowkit.errors import NotOutputFolderError, ShardError
from flowkit.store.chunks import RowReader
from flowkit.store.codec import decode_jpeg, dequantize_flow
from flowkit.store.flowstats import FlowStats
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.writer import FORMAT_NAME, SCHEMA_VERSION, group_name, read_attrs

Index = Union[int, slice, Sequence[int], np.ndarray]


class ArrayView:
    """Array-like access to one dataset of a video: len(), shape, and [index] reads."""

    def __init__(self, video: "Video", name: str) -> None:
        self._video = video
        self._name = name

    def _dataset(self) -> h5py.Dataset | None:
        return self._video._dataset(self._name)

    def __len__(self) -> int:
        return self._video._count(self._name)

    def __getitem__(self, index: Index) -> np.ndarray:
        return self._read(index, self._decode)

    def _read(self, index: Index,
              decode: Callable[[h5py.Dataset, np.ndarray], np.ndarray]) -> np.ndarray:
        """``decode`` the rows at ``index``; an int index drops the leading axis, as numpy does."""
        dataset = self._dataset()
        if dataset is None:
            self._positions(index)  # IndexError for any int index: there are no items
            empty = self._empty()
            if empty is None:
                raise ShardError(f"video {self._video.video_id!r} stores no {self._name} data")
            return empty
        data = decode(dataset, self._positions(index))
        return data[0] if isinstance(index, (int, np.integer)) else data

    def _positions(self, index: Index) -> np.ndarray:
        length = len(self)
        if isinstance(index, slice):
            return np.arange(length)[index]
        positions = np.atleast_1d(np.asarray(index, dtype=np.int64))
        if positions.ndim != 1:
            raise IndexError("index must be an int, a slice or a 1-D sequence of ints")
        bad = (positions < -length) | (positions >= length)
        if bad.any():
            raise IndexError(f"index {positions[bad][0]} out of range for {length} "
                             f"{self._name} items of video {self._video.video_id!r}")
        return positions % length if length else positions

    def _decode(self, dataset: h5py.Dataset, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _empty(self) -> np.ndarray | None:
        """What a video with no dataset of this kind reads as; None: it stores no such data."""
        return None

    @property
    def has_checksums(self) -> bool:
        """Whether the stored items carry checksums (not in shards of schema 1); true when
        there are none to carry them."""
        return self._dataset() is None or self._video._rows(self._name).has_checksums


class FrameView(ArrayView):
    """RGB frames of a video as (N, H, W, 3) uint8; ``view[i]`` is one (H, W, 3) frame."""

    def __init__(self, video: "Video") -> None:
        super().__init__(video, "rgb")

    def _decode(self, dataset: h5py.Dataset, positions: np.ndarray) -> np.ndarray:
        height, width = self._video._size()
        if self._video._stored_attr("rgb", "encoding", "jpeg") != "jpeg":
            frames = self._video._rows("rgb").read(positions)
            if frames.shape[1:] != (height, width, 3):
                raise ShardError(f"frames of video {self._video.video_id!r} have shape "
                                 f"{frames.shape[1:]}, its attributes say {(height, width, 3)}")
            return frames
        out = np.empty((len(positions), height, width, 3), dtype=np.uint8)
        for row, (position, jpeg) in enumerate(zip(positions,
                                                   self._video._rows("rgb").read(positions))):
            frame = decode_jpeg(jpeg)
            if frame.shape != out.shape[1:]:
                raise ShardError(f"frame {position} of video {self._video.video_id!r} has shape "
                                 f"{frame.shape}, its attributes say {out.shape[1:]}")
            out[row] = frame
        return out

    def jpeg_bytes(self, index: int) -> bytes:
        """The stored JPEG bytes of frame ``index``, untouched (for export without re-encoding)."""
        dataset = self._dataset()
        if dataset is None or self._video._stored_attr("rgb", "encoding") != "jpeg":
            raise ShardError(f"video {self._video.video_id!r} does not store RGB as JPEG")
        return self._video._rows("rgb").read(self._positions(index)[:1])[0].tobytes()


class FlowView(ArrayView):
    """Flows of a video as (N-1, H, W, 2) float32 pixels; ``view[t]`` maps frame t*step to (t+1)*step."""

    def __init__(self, video: "Video") -> None:
        super().__init__(video, "flow")

    def _decode(self, dataset: h5py.Dataset, positions: np.ndarray) -> np.ndarray:
        data = self._stored(dataset, positions)
        if data.dtype == np.uint8:
            return dequantize_flow(data, self._video.flow_bound)
        return data.astype(np.float32)

    def _stored(self, dataset: h5py.Dataset, positions: np.ndarray) -> np.ndarray:
        rows = self._video._rows("flow").read(positions)
        if self._video._stored_attr("flow", "dtype") != "jpeg":
            return rows
        height, width = self._video._size()
        out = np.empty((len(rows), height, width, 2), dtype=np.uint8)
        for row, planes in enumerate(rows):
            x, y = (decode_jpeg(plane, gray=True) for plane in planes)
            if x.shape != (height, width) or y.shape != (height, width):
                raise ShardError(f"flow of video {self._video.video_id!r} decodes to "
                                 f"{x.shape} / {y.shape}, its attributes say {(height, width)}")
            cv2.merge([x, y], out[row])  # interleaves u, v faster than two strided copies
        return out

    def _empty(self) -> np.ndarray | None:
        """A one-frame video of a shard with flow has no flow dataset: zero flows, not none."""
        if not self._video.has_flows:
            return None
        return np.empty((0, *self._video._size(), 2), dtype=np.float32)

    def quantized(self, index: Index) -> np.ndarray:
        """The values at ``index`` as stored: uint8 (also for jpeg, decoded) or float16."""
        return self._read(index, self._stored)

    def jpeg_bytes(self, index: int) -> tuple[bytes, bytes]:
        """The stored JPEG bytes of the x and y components of flow ``index`` (jpeg storage)."""
        dataset = self._dataset()
        if dataset is None or self._video._stored_attr("flow", "dtype") != "jpeg":
            raise ShardError(f"video {self._video.video_id!r} does not store flow as JPEG")
        planes = self._video._rows("flow").read(self._positions(index)[:1])[0]
        return planes[0].tobytes(), planes[1].tobytes()


class Video:
    """One stored video: ``frames`` and ``flows`` views plus its attributes."""

    def __init__(self, reader: "ShardReader", entry: ManifestEntry) -> None:
        self._reader = reader
        self.entry = entry
        self.video_id = entry.video_id
        self.frames = FrameView(self)
        self.flows = FlowView(self)
        self._attrs: dict[str, Any] | None = None
        self._some_attrs: dict[tuple[str, str], Any] = {}
        self._frame_size: tuple[int, int] | None = None
        self._handles_pid = -1
        self._handles: dict[str, Any] = {}

    def _group(self) -> h5py.Group:
        return self._handle("group", lambda: self._reader._group(self.entry))

    def _dataset(self, name: str) -> h5py.Dataset | None:
        return self._handle(name, lambda: self._group().get(name))

    def _rows(self, name: str) -> RowReader:
        """The row reader of dataset ``name`` (whole-chunk reads where the layout allows)."""
        return self._handle(f"{name} rows",
                            lambda: RowReader(self._dataset(name), self._reader.check))

    def _handle(self, key: str, open_handle: Callable[[], Any]) -> Any:
        """h5py objects, opened once per process (they must not cross a fork)."""
        if self._handles_pid != os.getpid():
            self._handles, self._handles_pid = {}, os.getpid()
        if key not in self._handles:
            self._handles[key] = open_handle()
        return self._handles[key]

    def _stored_attr(self, name: str, key: str, default: Any = None) -> Any:
        """Attribute ``key`` of dataset ``name``, read once (files are read-only).

        Reads go one attribute at a time: HDF5 costs ~50 us per attribute, and a loader touches
        each video once an epoch, so reading all of them would be most of its metadata cost.
        """
        if (name, key) not in self._some_attrs:
            dataset = self._dataset(name)
            value = default if dataset is None else dataset.attrs.get(key, default)
            self._some_attrs[name, key] = value.item() if isinstance(value, np.generic) else value
        return self._some_attrs[name, key]

    def _size(self) -> tuple[int, int]:
        """(height, width) of the stored frames and flows, read once."""
        if self._frame_size is None:
            attrs = self._group().attrs
            self._frame_size = (int(attrs["height"]), int(attrs["width"]))
        return self._frame_size

    def _count(self, name: str) -> int:
        dataset = self._dataset(name)
        if dataset is not None:
            return dataset.shape[0]
        return self.attrs["num_frames"] if name == "rgb" else self.attrs["num_flows"]

    @property
    def has_frames(self) -> bool:
        """Whether RGB frames are stored (not with ``--rgb none``)."""
        return self._dataset("rgb") is not None

    @property
    def has_flows(self) -> bool:
        """Whether flow was extracted (not ``--flow none``); a one-frame video has flow, with
        zero items."""
        return (self._dataset("flow") is not None
                or self._shard().get("flow_backend", "none") != "none")

    @property
    def flow_bound(self) -> float | None:
        """Bound B of quantised flow (uint8 or jpeg storage: pixels = q * 2B / 255 - B), or None
        for float16 storage and for videos stored without flow."""
        shard = self._shard()
        if not self.has_flows or self._stored_attr("flow", "dtype",
                                                   shard.get("flow_dtype")) == "float16":
            return None
        return float(self._stored_attr("flow", "bound", shard.get("bound")))

    def _shard(self) -> dict[str, Any]:
        """Root attributes of this video's shard (read once per reader)."""
        return self._reader.shard_attrs(self.entry.shard)

    @property
    def flow_stats(self) -> FlowStats | None:
        """Clipping and length statistics of the flow, recorded at extraction (see
        :mod:`flowkit.store.flowstats`); None when unknown (no flow, or an older shard)."""
        return FlowStats.from_attrs(self.attrs)

    @property
    def flow_step(self) -> int:
        """Frames between the two frames of a flow: flow k maps frame k*step to (k+1)*step."""
        return int(self._stored_attr("flow", "step", 1))

    @property
    def attrs(self) -> dict[str, Any]:
        """Group attributes: counts, size, source, label, fps, rotation."""
        if self._attrs is None:
            self._attrs = read_attrs(self._group().attrs)
        return self._attrs

    def __repr__(self) -> str:
        return (f"Video({self.video_id!r}, frames={self.attrs['num_frames']}, "
                f"flows={self.attrs['num_flows']}, shard={self.entry.shard!r})")


class ShardReader(Mapping[str, Video]):
    """All successfully extracted videos of an output folder, by video id.

    With ``check``, every frame and flow read is compared with its stored checksum first
    (ChecksumError, a ShardError, names the shard, video and index on a mismatch); without,
    damaged bytes come back as whatever they decode to (docs/format.md, checksums).
    """

    def __init__(self, root: Path | str, check: bool = False) -> None:
        self.root = Path(root)
        self.check = check
        if not self.root.is_dir():
            raise NotOutputFolderError(f"{self.root}: not a folder")
        self.manifest = Manifest.read(self.root / MANIFEST_NAME)
        self._ok = {entry.video_id: entry for entry in self.manifest if entry.status == OK}
        self._files: dict[str, h5py.File] = {}
        self._videos: dict[str, Video] = {}
        self._shard_attrs: dict[str, dict[str, Any]] = {}
        self._pid = os.getpid()

    # -- mapping protocol -------------------------------------------------------------------
    def __getitem__(self, video_id: str) -> Video:
        video = self._videos.get(video_id)
        if video is None:
            if video_id not in self._ok:
                raise KeyError(self._missing_message(video_id))
            video = self._videos[video_id] = Video(self, self._ok[video_id])
        return video

    def __iter__(self) -> Iterator[str]:
        return iter(self._ok)

    def __len__(self) -> int:
        return len(self._ok)

    @property
    def videos(self) -> list[str]:
        """Ids of the videos stored successfully, in manifest order."""
        return list(self._ok)

    # -- convenience ------------------------------------------------------------------------
    def frames(self, video_id: str, index: Index = slice(None)) -> np.ndarray:
        """RGB frames (N, H, W, 3) uint8 of a video (or the ones at ``index``)."""
        return self[video_id].frames[index]

    def flows(self, video_id: str, index: Index = slice(None)) -> np.ndarray:
        """Flows (N-1, H, W, 2) float32 of a video, dequantised with the stored bound."""
        return self[video_id].flows[index]

    def info(self, video_id: str) -> dict[str, Any]:
        """Manifest entry and stored attributes of a video, as one dict."""
        video = self[video_id]
        return {**video.entry.__dict__, **video.attrs}

    def shard_attrs(self, shard: str) -> dict[str, Any]:
        """Root attributes of a shard file: parameters, versions, schema (read once; do not
        modify the returned dict)."""
        if shard not in self._shard_attrs:
            attrs = read_attrs(self._file(shard).attrs)
            for key in ("config", "versions"):
                if isinstance(attrs.get(key), str):
                    attrs[key] = json.loads(attrs[key])
            self._shard_attrs[shard] = attrs
        return self._shard_attrs[shard]

    def stored_ids(self, shard: str) -> list[str]:
        """Ids of the videos that have a group in ``shard``, whatever the manifest says."""
        return [group.attrs.get("video_id", name)
                for name, group in self._file(shard)["videos"].items()]

    def close(self) -> None:
        """Close every open shard file (they reopen on the next read)."""
        if self._pid == os.getpid():
            for handle in self._files.values():
                handle.close()
        self._files, self._videos = {}, {}

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_files"], state["_videos"] = {}, {}
        return state

    # -- internals --------------------------------------------------------------------------
    def _file(self, shard: str) -> h5py.File:
        if self._pid != os.getpid():  # forked: never touch the parent's handles
            self._files, self._pid = {}, os.getpid()
        handle = self._files.get(shard)
        if handle is None:
            handle = self._files[shard] = open_shard(self.root / shard)
        return handle

    def _group(self, entry: ManifestEntry) -> h5py.Group:
        try:
            return self._file(entry.shard)["videos"][group_name(entry.video_id)]
        except KeyError:
            raise ShardError(f"{self.root / entry.shard}: video {entry.video_id!r} is in the "
                             "manifest but not in its shard") from None

    def _missing_message(self, video_id: str) -> str:
        if video_id in self.manifest:
            entry = self.manifest[video_id]
            return f"video {video_id!r} is {entry.status}" + (
                f": {entry.error}" if entry.error else "")
        return f"no video {video_id!r} in {self.root}"


def open_shards(root: Path | str, check: bool = False) -> ShardReader:
    """Open an extraction output folder for reading. See
    [`ShardReader`][flowkit.store.reader.ShardReader].

    ``check=True`` verifies the checksum of every frame and flow read (ChecksumError on
    damage); the default skips that for speed (docs/benchmarks.md, checksums).
    """
    return ShardReader(root, check)


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
