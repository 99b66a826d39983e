"""``ShardDataset``: shards as a torch Dataset of RGB frames, flow stacks, both, or 3D clips.

Each item is an [`Item`][flowkit.data.Item] (a dict of tensors). A sampler picks the
indices (`flowkit.data.sampling`): with a SegmentSampler (TSN) the RGB frame of segment k and
its flow stack start at the same position: flow t maps frame t to t+1, so the stack of segment k
holds flows s_k .. s_k+L-1 and the RGB frame is frame s_k. With a ClipSampler (3D CNNs) every
frame t of a clip comes with flow t. Items are reproducible: the randomness of item i in epoch e
comes from ``np.random.default_rng([seed, e, i])``, whatever the DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from flowkit.data.decoded import DecodedVideo, VideoDecoder
from flowkit.data.items import (FLOW, FLOW_BOUND, FLOW_SCALE, RGB, Item, Sample, flow_scale,
                                is_quantized_flow)
from flowkit.data.sampling import FrameIndices, Sampler, SegmentSampler, VideoExtent
from flowkit.data.transforms import Transform
from flowkit.errors import ConfigError, DecodeError, ShardError
from flowkit.store.index import VideoIndex
from flowkit.store.open_files import DEFAULT_MAX_OPEN_FILES
from flowkit.store.reader import ShardReader

MODALITIES = ("rgb", "flow", "rgb+flow")


class ShardDataset(Dataset):
    """Videos of a flowkit output folder as training or test samples.

    Args:
        root: the folder ``flowkit extract`` (or ``flowkit import``) wrote.
        modality: "rgb", "flow" or "rgb+flow".
        sampler: which frames and flows an item reads (see flowkit.data.sampling):
            SegmentSampler (TSN segments and flow stacks; the default, 3 segments of 5 flows)
            or ClipSampler (3D clips).
        split: video id -> 0-based label (see flowkit.data.splits); None takes every stored
            video with the label of the manifest (-1 where unknown).
        transform: called as ``transform(sample, rng)`` on a Sample ``{"rgb": (N, H, W, 3)
            uint8, "flow": (N, L, H, W, 2) float32}`` (see flowkit.data.transforms).
        seed: base of every item's random generator.
        skip_missing: drop split videos that are not stored instead of raising.
        quantized_flow: keep flow as its stored uint8 steps (uint8 or jpeg storage) through the
            transforms and the DataLoader, 4x fewer bytes than float32; the item then carries
            ``flow_bound`` and ``flow_scale`` for [`flowkit.data.normalize_batch`][] (or a CPU
            [`Normalize`][flowkit.data.transforms.Normalize]) to turn it into pixels.
        check: compare every frame and flow read with its stored checksum (a ChecksumError
            names the damaged shard, video and index; see [`flowkit.open_shards`][]).
        max_open_files: shard files each process (each DataLoader worker) holds open at
            once, least recently used closed first (see [`flowkit.ShardReader`][]).

    Items: see [`Item`][flowkit.data.Item]. Float32 when the transform normalises; without
    a transform RGB stays uint8. With ``quantized_flow`` and no normalisation: ``flow`` uint8,
    ``flow_bound`` (float64) and ``flow_scale`` ((2,) float32: resize factors of u and v).

    Raises:
        ConfigError: unknown modality; the shards store no RGB or no flow for a modality that
            needs it; split videos that are not stored (unless ``skip_missing``);
            ``max_open_files`` below 1.
    """

    def __init__(self, root: Path | str, modality: str = "rgb", sampler: Sampler | None = None,
                 split: Mapping[str, int] | None = None, transform: Transform | None = None,
                 seed: int = 0, skip_missing: bool = False, quantized_flow: bool = False,
                 check: bool = False, max_open_files: int = DEFAULT_MAX_OPEN_FILES) -> None:
        if modality not in MODALITIES:
            raise ConfigError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
        self.reader = ShardReader(root, check, max_open_files)
        self.modality = modality
        self.sampler = sampler if sampler is not None else SegmentSampler()
        self.transform = transform
        self.seed = seed
        self.quantized_flow = quantized_flow
        self.epoch = 0
        self._rows, self._labels = self._items(split, skip_missing)

    @property
    def items(self) -> Sequence[tuple[str, int]]:
        """(video id, label) of each item, in item order."""
        return _Items(self.reader.index, self._rows, self._labels)

    def item_shards(self) -> np.ndarray:
        """The shard of each item, as a number (one per shard file): what
        [`ShardLocalShuffle`][flowkit.data.order.ShardLocalShuffle] keeps reads together by."""
        return self.reader.index.shard_codes[self._rows]

    def _items(self, split: Mapping[str, int] | None, skip_missing: bool
               ) -> tuple[np.ndarray, np.ndarray]:
        """The index rows of the items and their labels, as arrays: a Dataset of 650k videos
        pickled into each DataLoader worker stays small."""
        index = self.reader.index
        self._check_stored_modalities()
        usable = (np.ones(len(index), dtype=bool) if self.modality == "rgb"
                  else index.num_flows > 0)
        #: stored videos left out because they have no flow (a single frame) for a flow modality
        self.without_flow = sorted(index.video_id(int(row)) for row in np.flatnonzero(~usable))
        if split is None:
            rows = np.flatnonzero(usable)
            return rows, index.labels[rows]
        found = [(index.find(video_id), label) for video_id, label in split.items()]
        missing = [video_id for video_id, (row, _) in zip(split, found)
                   if row is None or not usable[row]]
        if missing and not skip_missing:
            raise ConfigError(f"{len(missing)} of the split's {len(split)} videos are not stored "
                              f"(or have no flow) in {self.reader.root} (e.g. "
                              f"{', '.join(missing[:3])}); extract them, or pass skip_missing=True")
        kept = [(row, int(label)) for row, label in found if row is not None and usable[row]]
        return (np.array([row for row, _ in kept], dtype=np.int64),
                np.array([label for _, label in kept], dtype=np.int64))

    def _check_stored_modalities(self) -> None:
        """A modality the shards do not hold at all is a setup mistake, said at once."""
        if not len(self.reader.index):
            return
        first = self.reader[self.reader.index.video_id(0)]
        if RGB in self.modality and not first.has_frames:
            raise ConfigError(f"{self.reader.root}: the shards store no RGB frames (extracted "
                              f"with --rgb none); modality {self.modality!r} needs them")
        if FLOW in self.modality and not first.has_flows:
            raise ConfigError(f"{self.reader.root}: the shards store no flow (extracted with "
                              f"--flow none); modality {self.modality!r} needs it")

    def set_epoch(self, epoch: int) -> None:
        """Draw new random samples: call once per epoch (the same epoch repeats the same draws)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: int) -> Item:
        """The item of video ``index`` at this epoch.

        Raises:
            ShardError: its stored data cannot be read (ChecksumError: damaged, with
                ``check``), naming the shard file and the video, and how to repair it.
        """
        row = int(self._rows[index])
        video_id = self.reader.index.video_id(row)
        label = int(self._labels[index])
        try:
            video = self.reader[video_id]
            rng = np.random.default_rng([self.seed, self.epoch, index])
            num_flows = len(video.flows) if FLOW in self.modality else 0
            indices = self.sampler(VideoExtent(len(video.frames), num_flows, video.flow_step),
                                   rng)
            return read_item(video, indices, self.modality, label=label,
                             transform=self.transform, rng=rng,
                             quantized_flow=self.quantized_flow)
        except ShardError as exc:
            raise _damaged(exc, self.reader.root, self.reader.index.shard(row), video_id) \
                from None


_REPAIR = "; rerun flowkit extract --repair"  # the reader's advice, said in full below


def _damaged(error: ShardError, root: Path, shard: str, video_id: str) -> ShardError:
    """``error`` (of the same type) naming the shard file and the video where it does not
    yet, and saying how to find and repair the damage: the reader's messages name what they
    know (a file, a dataset row, or neither for a JPEG that does not decode)."""
    path = str(root / shard)
    message = str(error)
    where = f"{path}: "
    rest = message[len(where):] if message.startswith(where) else message
    if path in rest:
        where = ""
    if video_id not in rest:
        rest = f"video {video_id!r}: {rest}"
    rest = rest[:-len(_REPAIR)] if rest.endswith(_REPAIR) else rest
    return type(error)(f"{where}{rest}; flowkit verify {root} lists every damaged video, "
                       "and the flowkit extract command rerun with --repair re-extracts them")


class _Items(Sequence[tuple[str, int]]):
    """(video id, label) of each item of a ShardDataset, read from its arrays on demand."""

    def __init__(self, index: VideoIndex, rows: np.ndarray, labels: np.ndarray) -> None:
        self._index, self._rows, self._labels = index, rows, labels

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, position: int) -> tuple[str, int]:  # type: ignore[override]
        if not -len(self) <= position < len(self):
            raise IndexError(position)
        return self._index.video_id(int(self._rows[position])), int(self._labels[position])


class VideoArrays(Protocol):
    """What [`read_item`][flowkit.data.read_item] reads: a stored `Video`, or a video decoded
    in memory ([`flowkit.data.decoded.DecodedVideo`][]).

    ``frames[positions]`` gives (K, H, W, 3) uint8; ``flows[positions]`` (K, H, W, 2) float32
    pixels and ``flows.quantized(positions)`` the stored values; both have ``len()``.
    """

    video_id: str
    frames: Any
    flows: Any

    @property
    def flow_bound(self) -> float | None: ...

    @property
    def flow_step(self) -> int: ...


def read_item(video: VideoArrays, indices: FrameIndices, modality: str, *, label: int = -1,
              transform: Transform | None = None, rng: np.random.Generator | None = None,
              quantized_flow: bool = False) -> Item:
    """The Item of ``video`` at ``indices`` (what ``ShardDataset[i]`` returns): read the
    ``modality`` arrays, ``transform(sample, rng)``, lay them out as channel-first tensors.

    With ``quantized_flow`` flow stays as its stored uint8 steps (see
    [`ShardDataset`][flowkit.data.ShardDataset]).
    """
    sample = _read(video, indices, modality, quantized_flow)
    if transform is not None:
        sample = transform(sample, rng)
    clip_len = indices.frames.shape[1] if indices.clips else None
    frames = indices.frames if indices.clips else indices.frames[:, 0]
    item: Item = {"label": torch.tensor(label, dtype=torch.int64), "video_id": video.video_id,
                  "frame_indices": torch.from_numpy(frames.astype(np.int64)),
                  "flow_indices": torch.from_numpy(indices.flows.astype(np.int64))}
    if RGB in sample:
        item[RGB] = _rgb_tensor(sample[RGB], clip_len)
    if FLOW in sample:
        item[FLOW] = _flow_tensor(sample[FLOW], clip_len)
        if is_quantized_flow(sample):
            item[FLOW_BOUND] = torch.tensor(sample[FLOW_BOUND], dtype=torch.float64)
            item[FLOW_SCALE] = torch.from_numpy(flow_scale(sample))
    return item


def video_file_item(path: Path | str, decoder: VideoDecoder, sampler: Sampler,
                    modality: str = "rgb", *, transform: Transform | None = None,
                    quantized_flow: bool = False, label: int = -1,
                    rng: np.random.Generator | None = None) -> tuple[Item, DecodedVideo]:
    """The item a ShardDataset would give for the video file ``path`` had it been extracted
    with ``decoder.config``, decoded in memory without writing shards (`flowkit.data.decoded`).

    A first pass counts the frames, ``sampler`` picks the indices, a second pass keeps only
    those frames and computes only those flows; an "rgb" item computes no flow at all. Also
    returns the decoded video, whose ``flows_computed`` says how many flows were computed.

    Raises:
        DecodeError: the file cannot be decoded, or is too short for one flow.
        ConfigError: an unknown modality, or flow asked for while the settings compute none.
    """
    if modality not in MODALITIES:
        raise ConfigError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    flow, step = FLOW in modality, decoder.config.flow_step
    if flow:
        decoder.flow_backend()  # refuse settings without flow before decoding
    num_frames = decoder.count_frames(path)
    num_flows = (num_frames - 1) // step if flow else 0
    if flow and num_flows == 0:
        raise DecodeError(f"{path}: {num_frames} frame(s), too short for a flow (frame step "
                          f"{step})")
    indices = sampler(VideoExtent(num_frames, num_flows, step), rng)
    video = decoder.decode(path, indices.frames.reshape(-1) if RGB in modality else (),
                           indices.flows.reshape(-1) if flow else ())
    item = read_item(video, indices, modality, label=label, transform=transform, rng=rng,
                     quantized_flow=quantized_flow)
    return item, video


def _read(video: VideoArrays, indices: FrameIndices, modality: str,
          quantized_flow: bool) -> Sample:
    """The sample's arrays: rgb (K*T, H, W, 3); flow (K, L, H, W, 2) for segments, or
    (K*T, 1, H, W, 2) for clips (each clip frame is a stack of one flow)."""
    sample: Sample = {}
    if RGB in modality:
        sample[RGB] = video.frames[indices.frames.reshape(-1)]
    if FLOW in modality:
        data = _read_flows(video, indices.flows.reshape(-1), sample, quantized_flow)
        shape = (-1, 1) if indices.clips else indices.flows.shape
        sample[FLOW] = data.reshape(*shape, *data.shape[1:])
    return sample


def _read_flows(video: VideoArrays, positions: np.ndarray, sample: Sample,
                quantized_flow: bool) -> np.ndarray:
    """Flows at ``positions`` in pixels, or as stored uint8 steps with ``quantized_flow``
    (then ``sample["flow_bound"]`` is set)."""
    if not quantized_flow:
        return video.flows[positions]
    bound = video.flow_bound
    if bound is None:
        raise ConfigError(f"video {video.video_id!r} stores float16 flow, which has no "
                          "quantised form; use quantized_flow=False")
    sample[FLOW_BOUND] = bound
    return video.flows.quantized(positions)


def _planar(images: np.ndarray) -> np.ndarray:
    """(M, H, W, C) -> (M, C, H, W), one contiguous array.

    OpenCV's split writes each channel straight into its plane: 4-10x faster than a strided
    permute copy (measured for a TSN item's 15 flows: 0.1 vs 1.0 ms uint8, 0.35 vs 1.6 ms float32).
    """
    count, height, width, channels = images.shape
    out = np.empty((count, channels, height, width), dtype=images.dtype)
    for image, planes in zip(images, out):
        cv2.split(np.ascontiguousarray(image), list(planes))
    return out


def _rgb_tensor(rgb: np.ndarray, clip_len: int | None) -> torch.Tensor:
    """(N, H, W, 3) -> (N, 3, H, W); with clips, (N/T, 3, T, H, W), squeezed for one clip."""
    tensor = torch.from_numpy(_planar(rgb))
    if clip_len is None:
        return tensor
    tensor = tensor.reshape(-1, clip_len, *tensor.shape[1:]).permute(0, 2, 1, 3, 4)
    return (tensor[0] if tensor.shape[0] == 1 else tensor).contiguous()


def _flow_tensor(flow: np.ndarray, clip_len: int | None) -> torch.Tensor:
    """(N, L, H, W, 2) -> (N, 2L, H, W) as u0, v0, u1, v1...; clips (N/T, 2, T, H, W).

    Quantised (uint8) flow stays uint8; anything else becomes float32.
    """
    dtype = np.uint8 if flow.dtype == np.uint8 else np.float32
    n, length, height, width, _ = flow.shape
    planes = _planar(flow.astype(dtype, copy=False).reshape(n * length, height, width, 2))
    tensor = torch.from_numpy(planes)
    if clip_len is None:
        return tensor.reshape(n, 2 * length, height, width)
    tensor = tensor.reshape(-1, clip_len, 2, height, width).permute(0, 2, 1, 3, 4)
    return (tensor[0] if tensor.shape[0] == 1 else tensor).contiguous()
