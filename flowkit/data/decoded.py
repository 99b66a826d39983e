"""A video decoded in memory as ``flowkit extract`` would have stored it, without writing shards.

For classifying video files with a network trained on shards (``flowkit predict``): frames come
from the same decoder settings, flow from the same backend and parameters, and both go through
the storage round trip the shards apply (RGB JPEG at the stored quality; flow quantised to uint8
within the bound, or float16), so a reader sees the very arrays training saw.

Memory stays bounded by what is read:
[`VideoDecoder.decode`][flowkit.data.decoded.VideoDecoder.decode] keeps only the frames asked
for and computes only the flows asked for (holding the frames those flows pair), decoding the
file once; [`VideoDecoder.count_frames`][flowkit.data.decoded.VideoDecoder.count_frames] is a
first pass that tells how many frames there are to choose from.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from flowkit.config import NO_FLOW, ExtractConfig
from flowkit.errors import ConfigError, DecodeError
from flowkit.flow import FlowBackend, get_backend, list_backends, make_backend_config
from flowkit.store.codec import decode_jpeg, dequantize_flow, encode_jpeg, quantize_flow
from flowkit.store.folder import CONFIG_NAME, read_saved_config
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig, count_frames, iter_frames


def read_extract_config(path: Path | str, with_flow: bool = True) -> ExtractConfig:
    """The ExtractConfig an extraction folder (or its extract_config.json) was made with.

    ``with_flow=False`` drops the flow settings (flow "none"), for readers of RGB only: then a
    backend that cannot be rebuilt here (RAFT weights elsewhere, flow imported from rawframe
    folders) does not matter.

    Raises:
        ConfigError: the file is missing or unreadable, or its flow cannot be computed again.
    """
    path = Path(path)
    file = path if path.is_file() or path.suffix == ".json" else path / CONFIG_NAME
    if not file.is_file():
        raise ConfigError(f"{file}: no such file; the extraction settings (decoding, flow, "
                          "storage) of the run's shards are needed to process videos as "
                          "training saw them")
    data = read_saved_config(file)
    try:
        decode = dict(data["decode"])
        if decode.get("size") is not None:
            decode["size"] = tuple(decode["size"])
        flow = data["flow"] if with_flow else NO_FLOW
        if flow not in (NO_FLOW, *list_backends()):
            raise ConfigError(f"{file}: flow {flow!r} (imported from another tool) cannot be "
                              "computed again by flowkit")
        params = (make_backend_config(flow, **(data.get("flow_params") or {}))
                  if flow != NO_FLOW else None)
        return ExtractConfig(decode=DecodeConfig(**decode), flow=flow, flow_params=params,
                             flow_step=data.get("flow_step", 1),
                             storage=StorageConfig(**data["storage"]),
                             batch_size=data.get("batch_size", 8))
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{file}: not an extraction config ({type(exc).__name__}: "
                          f"{exc})") from None


class _Held:
    """Arrays at some positions of a sequence of ``length``; reads like an array at those."""

    def __init__(self, arrays: dict[int, np.ndarray], length: int, what: str) -> None:
        self._arrays, self._length, self._what = arrays, length, what

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: Any) -> np.ndarray:
        return self._read(index, lambda stored: stored)

    def _read(self, index: Any, convert: Any) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return convert(self._get(int(index))[None])[0]
        return convert(np.stack([self._get(int(p)) for p in np.asarray(index).reshape(-1)]))

    def _get(self, position: int) -> np.ndarray:
        try:
            return self._arrays[position]
        except KeyError:
            raise IndexError(f"{self._what} {position} was not kept in memory (of "
                             f"{self._length}); ask VideoDecoder.decode for it") from None


class _HeldFlows(_Held):
    """Flows as stored; ``[index]`` gives float32 pixels, `quantized` the stored values."""

    def __init__(self, arrays: dict[int, np.ndarray], length: int, bound: float | None) -> None:
        super().__init__(arrays, length, "flow")
        self._bound = bound

    def __getitem__(self, index: Any) -> np.ndarray:
        if self._bound is None:
            return self._read(index, lambda stored: stored.astype(np.float32))
        return self._read(index, lambda stored: dequantize_flow(stored, self._bound))

    def quantized(self, index: Any) -> np.ndarray:
        """The values at ``index`` as the shards store them: uint8 steps, or float16."""
        return self._read(index, lambda stored: stored)


@dataclasses.dataclass
class DecodedVideo:
    """One video in memory, read like a stored `flowkit.store.reader.Video` at the positions
    [`VideoDecoder.decode`][flowkit.data.decoded.VideoDecoder.decode] kept (``frames``, ``flows``,
    ``flow_bound``, ``flow_step``).

    Attributes:
        frames: (N, H, W, 3) uint8 as the shards would return them (JPEG round trip).
        flows: (N-1)//step flows: ``[t]`` float32 pixels, ``.quantized(t)`` as stored.
        flows_computed: how many flows the backend computed (0: it was never created).
    """

    video_id: str
    frames: _Held
    flows: _HeldFlows
    flow_step: int
    flow_bound: float | None
    flows_computed: int


class VideoDecoder:
    """Decodes videos as an extraction with ``config`` would store them (see
    [`decode`][flowkit.data.decoded.VideoDecoder.decode]).

    The flow backend is created on first use, on ``device`` when it runs there (tvl1-torch,
    raft; else on the CPU), and reused for every later video; a decoder that is never asked
    for flow never creates one.
    """

    def __init__(self, config: ExtractConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = device
        self._backend: FlowBackend | None = None

    def flow_backend(self) -> FlowBackend:
        """The backend of ``config.flow`` with its parameters (created once).

        Raises:
            ConfigError: the settings compute no flow, or the backend cannot run here.
        """
        if self.config.flow == NO_FLOW:
            raise ConfigError("flow asked for, but the extraction settings compute none "
                              "(flow: none)")
        if self._backend is None:
            self._backend = _backend(self.config, self.device)
        return self._backend

    def count_frames(self, path: Path | str) -> int:
        """Frames ``path`` decodes to with ``config.decode`` (by decoding it: headers lie).

        Raises:
            DecodeError: the file cannot be decoded (see `flowkit.video.decode.iter_frames`).
        """
        return count_frames(path, self.config.decode)

    def decode(self, path: Path | str, frames: Iterable[int] | None = None,
               flows: Iterable[int] | None = (), video_id: str | None = None) -> DecodedVideo:
        """Decode ``path`` once, keeping the frames at positions ``frames`` (None: all) and
        computing the flows at ``flows`` (flow t: frame ``t*step`` -> ``(t+1)*step``; None: all;
        empty: none).

        Frames and flows come back as ``config.storage`` stores them: RGB through JPEG at its
        quality (``rgb="jpeg"``), flow quantised within its bound (uint8; jpeg planes
        round-tripped too) or float16. Flow is computed from the decoded frames, as extraction
        does, ``config.batch_size`` pairs at a time.

        Raises:
            DecodeError: the file cannot be decoded, or has fewer frames than a position asks.
            ConfigError: flows asked for while ``config.flow`` is "none".
        """
        config, step = self.config, self.config.flow_step
        if flows is None and config.flow == NO_FLOW:
            flows = ()
        flow_positions = None if flows is None else sorted({int(t) for t in flows})
        if flow_positions != []:
            self.flow_backend()  # refuse "none" before decoding
        frame_positions = None if frames is None else {int(p) for p in frames}
        pairs = set() if flow_positions is None else {p for t in flow_positions
                                                      for p in (t * step, (t + 1) * step)}
        kept: dict[int, np.ndarray] = {}
        stored_frames: dict[int, np.ndarray] = {}
        count = 0
        for index, frame in enumerate(iter_frames(path, config.decode)):
            count = index + 1
            if frame_positions is None or index in frame_positions:
                stored_frames[index] = stored_frame(frame, config.storage)
            if flow_positions is None or index in pairs:
                kept[index] = frame
        num_flows = (count - 1) // step if config.flow != NO_FLOW else 0
        if flow_positions is None:
            flow_positions = list(range(num_flows))
        asked = [*(frame_positions or ()), *((t + 1) * step for t in flow_positions[-1:])]
        if asked and max(asked) >= count:
            raise DecodeError(f"{path}: decoded {count} frames, position {max(asked)} asked "
                              "for (did the file change between passes?)")
        computed = self._flows(kept, flow_positions)
        bound = None if config.storage.flow_dtype == "float16" or config.flow == NO_FLOW \
            else float(config.storage.bound)
        return DecodedVideo(video_id or str(path), _Held(stored_frames, count, "frame"),
                            _HeldFlows(computed, num_flows, bound), step, bound, len(computed))

    def _flows(self, frames: dict[int, np.ndarray], positions: list[int]
               ) -> dict[int, np.ndarray]:
        """Stored flows at ``positions``, computed ``config.batch_size`` pairs at a time."""
        step, size = self.config.flow_step, self.config.batch_size
        out: dict[int, np.ndarray] = {}
        for start in range(0, len(positions), size):
            batch = positions[start:start + size]
            first = np.stack([frames[t * step] for t in batch])
            second = np.stack([frames[(t + 1) * step] for t in batch])
            for t, flow in zip(batch, self.flow_backend()(first, second)):
                out[t] = stored_flow(flow, self.config.storage)
        return out


def _backend(config: ExtractConfig, device: str) -> FlowBackend:
    """``config``'s backend on ``device``, or on the CPU for a backend that runs only there."""
    if device != "cpu":
        try:
            return get_backend(config.flow, config.flow_params, device=device)
        except ConfigError:
            pass  # a CPU-only backend (tvl1, farneback): its check_device refuses GPUs
    return get_backend(config.flow, config.flow_params, device="cpu")


def stored_frame(frame: np.ndarray, storage: StorageConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB as a shard reader returns it: through JPEG at the stored quality
    for ``rgb="jpeg"`` (the same OpenCV codec as the writer and reader), else unchanged."""
    if storage.rgb != "jpeg":
        return frame
    return decode_jpeg(encode_jpeg(frame, storage.jpeg_quality))


def stored_flow(flow: np.ndarray, storage: StorageConfig) -> np.ndarray:
    """(H, W, 2) float32 pixels -> the values a shard stores: uint8 steps within the bound
    (uint8; jpeg: each plane also through grayscale JPEG), or float16."""
    if storage.flow_dtype == "float16":
        return flow.astype(np.float16)
    quantized = quantize_flow(flow, storage.bound)
    if storage.flow_dtype == "uint8":
        return quantized
    planes = [decode_jpeg(encode_jpeg(np.ascontiguousarray(quantized[..., axis]),
                                      storage.jpeg_quality), gray=True) for axis in (0, 1)]
    return np.stack(planes, axis=-1)
