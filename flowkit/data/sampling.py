"""Which frames a training item reads: TSN segment starts, dense 3D-CNN clips, flow stacks.

All indices are 0-based frame indices (int64). Flow ``t`` maps frame ``t`` to ``t + 1``, so a video
of ``N`` frames has ``N - 1`` flows and a stack of ``L`` flows starting at ``t`` spans frames
``t .. t + L`` (``span = L + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flowkit.errors import ConfigError


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
    """TSN sparse sampling: one start per equal segment of the video.

    Args:
        num_segments: segments per item; default as TSN: 3 to train, 25 to test.
        train: random start in each segment if True; the segment's centre (deterministic) if False.
    """

    num_segments: int | None = None
    train: bool = True

    def __post_init__(self) -> None:
        if self.num_segments is None:
            object.__setattr__(self, "num_segments", 3 if self.train else 25)
        if self.num_segments < 1:
            raise ConfigError(f"num_segments must be >= 1, got {self.num_segments}")

    def __call__(self, num_frames: int, span: int,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        """Segment start frames, (num_segments,) int64, sorted, each in ``[0, num_frames - span]``.

        ``span`` frames must fit from each start: 1 for an RGB frame, ``L + 1`` for ``L`` flows.
        The valid starts ``0 .. num_frames - span`` are split into ``num_segments`` parts of equal
        length (+-1); training draws one uniform start per part, test takes each part's centre.

        Short videos never fail:
        - fewer valid starts than segments: starts ``floor(i * valid / num_segments)``, evenly
          spread and repeating (e.g. 2 valid starts, 3 segments -> [0, 0, 1]), in both modes;
        - not even one span fits (``num_frames < span``): all starts are 0, and the reader repeats
          the last frame / flow (see :func:`flow_stack_indices`).

        Args:
            num_frames: decoded frame count N >= 1.
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

    def __call__(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices (num_clips, clip_len) int64: ``start + arange(clip_len) * frame_stride``.

        Starts come from the valid range ``0 .. num_frames - span`` as in :class:`SegmentSampler`.
        Short videos (``num_frames < span``) start at 0 and wrap around: indices are taken modulo
        ``num_frames`` (MMAction2's loop mode), so a 5-frame video with clip_len 4, stride 2 gives
        [0, 2, 4, 1]. Every index is in ``[0, num_frames - 1]``.

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
