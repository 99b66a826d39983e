"""Which frames and flows an item reads: TSN segments with flow stacks, or dense 3D-CNN clips.

Every sampler has one call signature, ``sampler(video, rng) -> FrameIndices``: it is given a
[`VideoExtent`][flowkit.data.VideoExtent] (how many frames and flows the item may read) and the
item's random generator, and returns the 0-based frame and flow indices to read, with their layout.

All indices are int64. Flow ``t`` maps frame ``t * step`` to ``(t + 1) * step`` (step 1 unless
extracted with ``--step``), so a video of ``N`` frames has ``(N - 1) // step`` flows and a stack
of ``L`` flows starting at position ``t`` spans positions ``t .. t + L`` (``span = L + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from flowkit.errors import ConfigError


RGB_FRAMES = ("first", "centre")
"""Values of ``SegmentSampler.rgb_frame``: where in its flow stack a segment's RGB frame is."""


class VideoExtent(NamedTuple):
    """What a sampler is told of a video.

    Attributes:
        num_frames: decoded frame count N >= 1.
        num_flows: flows the item may read; 0 when it reads no flow (an RGB-only item).
        flow_step: frames between the two frames of a flow.
    """

    num_frames: int
    num_flows: int = 0
    flow_step: int = 1


class FrameIndices(NamedTuple):
    """What one item reads.

    Attributes:
        frames: (K, T) frame indices: K segments of one frame (T = 1), or K clips of T frames.
        flows: (K, L) flow indices: segment k's stack of L flows, or the flow of each clip
            frame (L = T); (K, 0) when the item reads no flow.
        clips: True for clips (3D inputs, channels x T x H x W), False for segments.
    """

    frames: np.ndarray
    flows: np.ndarray
    clips: bool


class Sampler(Protocol):
    """Anything that picks an item's indices: ``sampler(video, rng) -> FrameIndices``.

    ``rng`` is the item's only source of randomness (None is allowed in test mode).
    """

    def __call__(self, video: VideoExtent,
                 rng: np.random.Generator | None = None) -> FrameIndices: ...


def _part_starts(valid: int, parts: int, train: bool,
                 rng: np.random.Generator | None) -> np.ndarray:
    """One start per part of the valid starts ``0 .. valid - 1`` split into ``parts`` equal parts.

    Part ``i`` is ``[floor(i * valid / parts), floor((i + 1) * valid / parts))`` (lengths differ by
    at most one). Training draws a uniform start inside each part; test takes ``lo + len // 2``.
    Empty parts (``valid < parts``) give their lower edge, so starts repeat, evenly spread.
    ``valid <= 0`` gives all zeros. Returns (parts,) int64.
    """
    if valid <= 0:
        return np.zeros(parts, dtype=np.int64)
    edges = (np.arange(parts + 1, dtype=np.int64) * valid) // parts
    low, length = edges[:-1], np.diff(edges)
    if not train:
        return low + length // 2
    if rng is None:
        raise ConfigError("training samplers need rng=np.random.default_rng(seed)")
    return low + rng.integers(0, np.maximum(length, 1), dtype=np.int64)


def _check_num_frames(num_frames: int) -> None:
    if num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")


@dataclass(frozen=True)
class SegmentSampler:
    """TSN sparse sampling: one frame, or one stack of ``flow_length`` flows, per equal segment.

    Args:
        num_segments: segments per item; default as TSN: 3 to train, 25 to test.
        train: random start in each segment if True; the segment's centre (deterministic) if False.
        flow_length: L, flows per stack (TSN: 5, i.e. 10 channels); unused for RGB-only items.
        rgb_frame: with flow, which frame of its stack a segment's RGB frame is: "first" (TSN,
            the frame the stack starts at) or "centre" (the first frame of the stack's middle
            flow, ``L // 2``): the frame where the objects are, on average, while the stack
            moves them, so that features of both taken at one place see the same object.
    """

    num_segments: int | None = None
    train: bool = True
    flow_length: int = 5
    rgb_frame: str = "first"

    def __post_init__(self) -> None:
        if self.num_segments is None:
            object.__setattr__(self, "num_segments", 3 if self.train else 25)
        if self.num_segments < 1:
            raise ConfigError(f"num_segments must be >= 1, got {self.num_segments}")
        if self.flow_length < 1:
            raise ConfigError(f"flow_length must be >= 1, got {self.flow_length}")
        if self.rgb_frame not in RGB_FRAMES:
            raise ConfigError(f"rgb_frame must be one of {', '.join(RGB_FRAMES)}, got "
                              f"{self.rgb_frame!r}")

    def __call__(self, video: VideoExtent,
                 rng: np.random.Generator | None = None) -> FrameIndices:
        """Segment k reads frame s_k and, with flow, the stack of flows s_k .. s_k + L - 1.

        RGB-only items (``video.num_flows == 0``) spread their segments over all frames. With
        flow, segments are spread over flow positions ``0 .. num_flows`` (position p is frame
        p * step), the RGB frame of segment k being the first frame of its stack, or of its
        middle flow ``s_k + L // 2`` (``rgb_frame="centre"``). Stacks that run past the last
        flow repeat it (see
        [`flow_stack_indices`][flowkit.data.flow_stack_indices]). Returns frames (S, 1) and flows
        (S, L), or (S, 0) without flow.
        """
        if video.num_flows == 0:
            starts = self.starts(video.num_frames, 1, rng)
            return FrameIndices(starts[:, None], np.zeros((len(starts), 0), np.int64), False)
        starts = self.starts(video.num_flows + 1, self.flow_length + 1, rng)
        flows = flow_stack_indices(starts, self.flow_length, video.num_flows)
        # the stack's first (or middle) flow, as read, starts at the RGB frame
        first = flows[:, self.flow_length // 2 if self.rgb_frame == "centre" else 0]
        frames = first * video.flow_step
        return FrameIndices(frames[:, None], flows, False)

    def starts(self, num_frames: int, span: int,
               rng: np.random.Generator | None = None) -> np.ndarray:
        """Segment starts, (num_segments,) int64, sorted, each in ``[0, num_frames - span]``.

        ``span`` frames must fit from each start: 1 for an RGB frame, ``L + 1`` for ``L`` flows.
        The valid starts ``0 .. num_frames - span`` are split into ``num_segments`` parts of equal
        length (+-1); training draws one uniform start per part, test takes each part's centre.

        Short videos never fail:
        - fewer valid starts than segments: starts ``floor(i * valid / num_segments)``, evenly
          spread and repeating (e.g. 2 valid starts, 3 segments -> [0, 0, 1]), in both modes;
        - not even one span fits (``num_frames < span``): all starts are 0, and the reader repeats
          the last frame / flow (see [`flow_stack_indices`][flowkit.data.flow_stack_indices]).

        Args:
            num_frames: decoded frame count N >= 1 (or flow positions, num_flows + 1).
            span: consecutive frames one segment needs, >= 1.
            rng: the only source of randomness; required when ``train`` is True.
        """
        _check_num_frames(num_frames)
        if span < 1:
            raise ConfigError(f"span must be >= 1, got {span}")
        return _part_starts(num_frames - span + 1, self.num_segments, self.train, rng)


@dataclass(frozen=True)
class ClipSampler:
    """Dense clips for 3D CNNs: ``clip_len`` frames ``frame_stride`` apart.

    Args:
        clip_len: frames per clip.
        frame_stride: step between consecutive frames of a clip.
        num_clips: clips per item; in training each clip starts in its own equal part of the
            video, at test the clips are centred in equal parts (evenly spread).
        train: random starts if True, deterministic if False.
    """

    clip_len: int = 16
    frame_stride: int = 2
    num_clips: int = 1
    train: bool = True

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_stride", "num_clips"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def span(self) -> int:
        """Frames one clip covers: ``(clip_len - 1) * frame_stride + 1``."""
        return (self.clip_len - 1) * self.frame_stride + 1

    def __call__(self, video: VideoExtent,
                 rng: np.random.Generator | None = None) -> FrameIndices:
        """Clip frames (C, T) from `frame_indices`; each frame t reads flow t // step
        (the last flow for the last frame), or no flow when ``video.num_flows == 0``."""
        frames = self.frame_indices(video.num_frames, rng)
        if video.num_flows == 0:
            return FrameIndices(frames, np.zeros((len(frames), 0), np.int64), True)
        flows = np.minimum(frames // video.flow_step, video.num_flows - 1)
        return FrameIndices(frames, flows, True)

    def frame_indices(self, num_frames: int,
                      rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices (num_clips, clip_len) int64: ``start + arange(clip_len) * frame_stride``.

        Starts come from the valid range ``0 .. num_frames - span`` as in
        [`SegmentSampler`][flowkit.data.SegmentSampler]. Short videos (``num_frames < span``) start
        at 0 and wrap around: indices are taken modulo ``num_frames`` (MMAction2's loop mode), so a
        5-frame video with clip_len 4, stride 2 gives [0, 2, 4, 1]. Every index is in
        ``[0, num_frames - 1]``.

        Args:
            num_frames: decoded frame count N >= 1.
            rng: the only source of randomness; required when ``train`` is True.
        """
        _check_num_frames(num_frames)
        starts = _part_starts(num_frames - self.span + 1, self.num_clips, self.train, rng)
        offsets = np.arange(self.clip_len, dtype=np.int64) * self.frame_stride
        return (starts[:, None] + offsets[None, :]) % num_frames


def flow_stack_indices(starts: np.ndarray, flow_length: int, num_flows: int) -> np.ndarray:
    """Flow indices ``start .. start + L - 1`` per stack, (S, L) int64, clamped to num_flows - 1.

    The clamp repeats the last flow when a video is too short for a whole stack.

    Args:
        starts: (S,) integer start indices (e.g. from ``SegmentSampler(...)(N, L + 1, rng)``).
        flow_length: L >= 1, flows per stack (TSN: 5, i.e. 10 channels).
        num_flows: flows in the video (N - 1 for N frames), >= 1.
    """
    if flow_length < 1:
        raise ConfigError(f"flow_length must be >= 1, got {flow_length}")
    if num_flows < 1:
        raise ConfigError(f"num_flows must be >= 1 (a video needs 2 frames for one flow), "
                          f"got {num_flows}")
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    indices = starts[:, None] + np.arange(flow_length, dtype=np.int64)[None, :]
    return np.clip(indices, 0, num_flows - 1)
