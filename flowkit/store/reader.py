"""Reading shards back: ``open_shards(DIR)`` gives a mapping from video id to a lazy Video.

Frames and flows slice like arrays and read only what is asked for, so a Dataset can fetch
single frames. HDF5 files open lazily, at most ``max_open_files`` at once
(:mod:`flowkit.store.open_files`), and are reopened after a fork (h5py handles must not cross a
fork), which makes a reader safe to hand to DataLoader workers, whatever the number of shards.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

import cv2
import h5py
import numpy as np

from flowkit.errors import NotOutputFolderError, ShardError
from flowkit.store.chunks import RowReader
from flowkit.store.codec import decode_jpeg, dequantize_flow
from flowkit.store.flowstats import FlowStats
from flowkit.store.index import VideoIndex
from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest, ManifestEntry
from flowkit.store.open_files import DEFAULT_MAX_OPEN_FILES, OpenFiles
from flowkit.store.writer import group_name, read_attrs

Index = Union[int, slice, Sequence[int], np.ndarray]

# Videos a reader keeps (with their attributes read once): a few thousand cost a few MB, and a
# loader reading each video once an epoch gains nothing from more.
MAX_CACHED_VIDEOS = 2048


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
    """One stored video: ``frames`` and ``flows`` views plus its attributes.

    It keeps the attributes it has read (plain values) but no h5py object, so it stays valid
    when the reader closes its shard file: the next read reopens it.
    """

    def __init__(self, reader: "ShardReader", entry: ManifestEntry) -> None:
        self._reader = reader
        self.entry = entry
        self.video_id = entry.video_id
        self.frames = FrameView(self)
        self.flows = FlowView(self)
        self._attrs: dict[str, Any] | None = None
        self._some_attrs: dict[tuple[str, str], Any] = {}
        self._frame_size: tuple[int, int] | None = None

    def _group(self) -> h5py.Group:
        return self._handle("group", lambda: self._reader._group(self.entry))

    def _dataset(self, name: str) -> h5py.Dataset | None:
        return self._handle(name, lambda: self._group().get(name))

    def _rows(self, name: str) -> RowReader:
        """The row reader of dataset ``name`` (whole-chunk reads where the layout allows)."""
        return self._handle(f"{name} rows",
                            lambda: RowReader(self._dataset(name), self._reader.check))

    def _handle(self, key: str, open_handle: Callable[[], Any]) -> Any:
        """h5py objects of this video, kept with its open shard file (never in the Video): they
        go when the file closes (the reader's limit of open files, close(), a fork) or when
        ``MAX_VIDEO_HANDLES`` other videos were read since, and the next access reopens the
        file and resolves them again."""
        handles = self._reader._files.video_handles(self.entry.shard, self.video_id)
        if key not in handles:
            handles[key] = open_handle()
        return handles[key]

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
                or self._shard_attr("flow_backend", "none") != "none")

    @property
    def flow_bound(self) -> float | None:
        """Bound B of quantised flow (uint8 or jpeg storage: pixels = q * 2B / 255 - B), or None
        for float16 storage and for videos stored without flow."""
        if not self.has_flows:
            return None
        dtype = self._stored_attr("flow", "dtype")
        if (self._shard_attr("flow_dtype") if dtype is None else dtype) == "float16":
            return None
        bound = self._stored_attr("flow", "bound")
        return float(self._shard_attr("bound") if bound is None else bound)

    def _shard_attr(self, key: str, default: Any = None) -> Any:
        """Root attribute ``key`` of this video's shard, kept with the video: the reader keeps
        a shard's attributes only while its file is open."""
        if ("/", key) not in self._some_attrs:
            self._some_attrs["/", key] = self._reader.shard_attrs(self.entry.shard).get(key,
                                                                                     default)
        return self._some_attrs["/", key]

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

    At most ``max_open_files`` shard files are open at once (each costs a descriptor and about
    1 MB); reading from another closes the least recently used one, and a video of a closed
    file reopens it on its next read. Raise it when reads hop between more shards than that.
    A reader is not for sharing between threads (one may close the file another reads).

    Raises:
        ConfigError: ``max_open_files`` is not an integer >= 1.
        NotOutputFolderError: ``root`` is not a folder or holds no manifest.
    """

    def __init__(self, root: Path | str, check: bool = False,
                 max_open_files: int = DEFAULT_MAX_OPEN_FILES) -> None:
        self.root = Path(root)
        self.check = check
        self._files = OpenFiles(self.root, max_open_files)
        if not self.root.is_dir():
            raise NotOutputFolderError(f"{self.root}: not a folder")
        self.manifest = Manifest.read(self.root / MANIFEST_NAME)
        self.index = VideoIndex.of(self.manifest)  #: the stored videos, compactly
        self._videos: OrderedDict[str, Video] = OrderedDict()  # least recently used first

    @property
    def max_open_files(self) -> int:
        """The most shard files this reader holds open at once."""
        return self._files.max_open_files

    # -- mapping protocol -------------------------------------------------------------------
    def __getitem__(self, video_id: str) -> Video:
        video = self._videos.get(video_id)
        if video is not None:
            self._videos.move_to_end(video_id)
            return video
        entry = self.manifest.get(video_id) if self.index.find(video_id) is not None else None
        if entry is None or entry.status != OK:
            raise KeyError(self._missing_message(video_id))
        video = self._videos[video_id] = Video(self, entry)
        if len(self._videos) > MAX_CACHED_VIDEOS:
            self._videos.popitem(last=False)
        return video

    def __iter__(self) -> Iterator[str]:
        return self.index.video_ids()

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.index.find(video_id) is not None

    @property
    def videos(self) -> list[str]:
        """Ids of the videos stored successfully, in manifest order."""
        return list(self.index.video_ids())

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
        """Root attributes of a shard file: parameters, versions, schema (read once while the
        file is open; do not modify the returned dict)."""
        opened = self._files.get(shard)
        if opened.attrs is None:
            attrs = read_attrs(opened.file.attrs)
            for key in ("config", "versions"):
                if isinstance(attrs.get(key), str):
                    attrs[key] = json.loads(attrs[key])
            opened.attrs = attrs
        return opened.attrs

    def stored_ids(self, shard: str) -> list[str]:
        """Ids of the videos that have a group in ``shard``, whatever the manifest says."""
        return [group.attrs.get("video_id", name)
                for name, group in self._file(shard)["videos"].items()]

    def close(self) -> None:
        """Close every open shard file (they reopen on the next read)."""
        self._files.close()
        self._videos = OrderedDict()

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_videos": OrderedDict()}  # OpenFiles drops its own handles

    # -- internals --------------------------------------------------------------------------
    def _file(self, shard: str) -> h5py.File:
        return self._files.get(shard).file

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


def open_shards(root: Path | str, check: bool = False,
                max_open_files: int = DEFAULT_MAX_OPEN_FILES) -> ShardReader:
    """Open an extraction output folder for reading. See
    [`ShardReader`][flowkit.store.reader.ShardReader].

    ``check=True`` verifies the checksum of every frame and flow read (ChecksumError on
    damage); the default skips that for speed (docs/benchmarks.md, checksums).
    ``max_open_files`` bounds the shard files held open at once (the least recently used
    closes first; ConfigError below 1).
    """
    return ShardReader(root, check, max_open_files)
