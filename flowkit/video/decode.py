"""Decode videos with PyAV into RGB frames, as a player shows them: rotated, resized, resampled.

Frame counts come from decoding, never from container headers (they lie: see ``probe``). Frames
stream one at a time, so a video of any length is never held in memory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import math
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import cv2
import numpy as np

from flowkit.errors import ConfigError, DecodeError

# Some AVI files (UCF101 and HMDB51 store packed B-frames) attach presentation timestamps to the
# wrong frames, e.g. 1, 2, 4, 3, 5, 7, 6. Frames come out of the decoder in display order, so
# sorting timestamps within a few frames restores them. Only used when resampling to a frame rate.
_REORDER_WINDOW = 4

# A video whose decoding ends cleanly but clearly short of what its container states is
# truncated (a file cut inside its data, e.g. by an interrupted copy). "Clearly": the decoded
# frames end more than this fraction of the stated length (and more than _TRUNCATION_FRAMES
# frame periods) early; the stated length is the longer of the container's duration and the
# header's frame count times the frame period. Without times, fewer than that fraction of the
# header's frames decode (and more than _TRUNCATION_FRAMES fewer). Times are compared, not
# counts, because counts lie even in whole files: the cinepak file of shared/data states 444
# frames and decodes 68 whose times span all of its 29.6 s (a variable frame rate). Complete
# files end within a frame of their stated length (UCF101 avi, Kinetics mp4, synth's videos).
TRUNCATION_FRACTION = 0.1
_TRUNCATION_FRAMES = 2

# Containers round times to their time base (30 fps in 1/1000 s ticks: 0, 33, 67 ms), so a frame
# less than half a tick, and at most this many seconds, after a resampling target counts as on it.
_MAX_TOLERANCE = Fraction(1, 1000)


def _quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0-3) nearest to ``rotation`` degrees."""
    return int(round(rotation / 90)) % 4


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _cause(error: BaseException) -> str:
    """FFmpeg's reason without the errno number and file name PyAV adds."""
    return getattr(error, "strerror", None) or str(error)


@dataclasses.dataclass(frozen=True)
class DecodeConfig:
    """How frames are decoded.

    Attributes:
        short_side: resize so that the shorter side has this many pixels, keeping the aspect ratio
            (TSN / MMAction2 ``new_short``: 320x240 -> 341x256); None or 0 keeps the native size.
        size: (width, height) to resize to, ignoring the aspect ratio; overrides ``short_side``.
        fps: resample to this frame rate by timestamps (output frame k is the last decoded frame
            whose timestamp is <= k / fps after the first, like ffmpeg's fps filter: slowing down
            repeats frames, speeding up drops them); None keeps every decoded frame.
        threads: decoder threads; 0 lets FFmpeg choose.
    """

    short_side: int | None = 256
    size: tuple[int, int] | None = None
    fps: float | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        if self.short_side is not None and (
            not _is_int(self.short_side) or self.short_side < 0
        ):
            raise ConfigError(
                f"short_side must be a non-negative integer or None, got {self.short_side!r}"
            )
        if self.size is not None:
            size = tuple(self.size)
            if len(size) != 2 or not all(_is_int(s) and s > 0 for s in size):
                raise ConfigError(
                    f"size must be (width, height) with two positive integers, got {self.size!r}"
                )
            object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.fps is not None and (
            isinstance(self.fps, bool)
            or not isinstance(self.fps, (int, float))
            or not math.isfinite(self.fps)
            or self.fps <= 0
        ):
            raise ConfigError(f"fps must be a positive number or None, got {self.fps!r}")
        if not _is_int(self.threads) or self.threads < 0:
            raise ConfigError(
                f"threads must be a non-negative integer (0 = FFmpeg chooses), got {self.threads!r}"
            )


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a video's container says about it, plus the rotation of its first frame.

    Attributes:
        path: the video file.
        width, height: size of a frame as displayed, after rotation, before any resizing.
        fps: average frame rate from the container, None when it does not say.
        rotation: counter-clockwise degrees a player turns the stored picture by (PyAV's
            ``VideoFrame.rotation``: -90 is a phone video shown turned clockwise).
        codec: FFmpeg's codec name (h264, mpeg4, ...).
        header_frames: frame count in the container header; 0 when absent. It may lie:
            count frames by decoding.
        duration: stream (or container) duration in seconds, None when unknown.
    """

    path: Path
    width: int
    height: int
    fps: float | None
    rotation: int
    codec: str
    header_frames: int
    duration: float | None


def output_size(width: int, height: int, config: DecodeConfig) -> tuple[int, int]:
    """(width, height) of decoded frames for a displayed size of ``width`` x ``height``.

    ``config.size`` wins; otherwise the shorter side becomes ``config.short_side`` and the longer
    one is scaled with rounding (``int(x * scale + 0.5)``, as MMAction2 does); without either the
    size is unchanged.
    """
    if width <= 0 or height <= 0:
        raise ConfigError(f"frame size must be positive, got {width}x{height}")
    if config.size is not None:
        return config.size
    if not config.short_side:
        return width, height
    scale = config.short_side / min(width, height)
    if width <= height:
        return config.short_side, max(1, int(height * scale + 0.5))
    return max(1, int(width * scale + 0.5)), config.short_side


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header and decode its first frame (for the rotation and displayed size).

    Raises:
        DecodeError: the file is missing, empty, not a video, has no video stream, or its first
            frame cannot be decoded.
    """
    path = Path(path)
    with _open_video(path, threads=0) as (container, stream):
        frames = _decoded(path, container, stream)
        try:
            first = next(frames)  # _decoded raises DecodeError rather than yield nothing
        finally:
            frames.close()
        rotation = first.rotation
        width, height = first.width, first.height
        if _quarter_turns(rotation) % 2:
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration and stream.time_base:
            duration: float | None = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / av.time_base
        else:
            duration = None
        return VideoInfo(
            path=path,
            width=width,
            height=height,
            fps=float(rate) if rate else None,
            rotation=int(rotation),
            codec=stream.codec_context.name,
            header_frames=int(stream.frames),
            duration=duration,
        )


def iter_frames(path: str | Path, config: DecodeConfig = DecodeConfig()) -> Iterator[np.ndarray]:
    """Yield the frames of a video one at a time as (H, W, 3) uint8 RGB C-contiguous arrays.

    Each frame is turned upright as a player would show it (the display matrix, like ffmpeg's
    autorotate), then resized to ``output_size(...)`` (INTER_AREA when shrinking, INTER_LINEAR when
    enlarging), then, if ``config.fps`` is set, repeated or dropped to that rate by timestamps.
    The frame count is what decodes, whatever the header says.

    Raises (while iterating):
        DecodeError: naming the file and the cause: missing, empty, not a video, no video stream,
            no frame decoded, or a decode error mid-stream (with the 0-based frame index).
    """
    path = Path(path)
    with _open_video(path, threads=config.threads) as (container, stream):
        converted: tuple[int, np.ndarray] | None = None  # a frame the resampling may repeat
        for index, frame in _output_frames(path, container, stream, config):
            if config.fps is None:
                yield _to_rgb(path, index, frame, config)
                continue
            if converted is None or converted[0] != index:
                converted = index, _to_rgb(path, index, frame, config)
            yield converted[1].copy()


def count_frames(path: str | Path, config: DecodeConfig = DecodeConfig()) -> int:
    """How many frames :func:`iter_frames` yields, by decoding the whole video without
    converting or resizing a frame: a fraction of the cost of iterating it.

    It raises the same DecodeError ``iter_frames`` would, so it checks that a video decodes to
    its end before anything costly (flow) is spent on it.
    """
    path = Path(path)
    with _open_video(path, threads=config.threads) as (container, stream):
        return sum(1 for _ in _output_frames(path, container, stream, config))


def _output_frames(path: Path, container: av.container.InputContainer,
                   stream: av.video.stream.VideoStream, config: DecodeConfig
                   ) -> Iterator[tuple[int, av.VideoFrame]]:
    """(decode index, frame) of each output frame, before conversion: every decoded frame, or
    with ``config.fps`` the resampled sequence, in which a frame may repeat."""
    frames = _decoded(path, container, stream)
    if config.fps is None:
        yield from enumerate(frames)
        return
    default_duration = 1 / Fraction(stream.average_rate) if stream.average_rate else None
    timed = _presentation_times(path, frames, default_duration)
    fps = Fraction(config.fps).limit_denominator(1_000_000)
    tick = Fraction(stream.time_base) if stream.time_base else Fraction(0)
    yield from _resample(timed, fps, min(tick / 2, _MAX_TOLERANCE))


@contextlib.contextmanager
def _open_video(path: Path, threads: int) -> Iterator[tuple[av.container.InputContainer,
                                                              av.video.stream.VideoStream]]:
    """Open ``path`` and its first video stream with threaded decoding; DecodeError if we cannot."""
    if not path.exists():
        raise DecodeError(f"{path}: no such file")
    if not path.is_file():
        raise DecodeError(f"{path}: not a regular file")
    try:
        empty = path.stat().st_size == 0
    except OSError as error:
        raise DecodeError(f"{path}: cannot read ({error.strerror or error})") from error
    if empty:
        raise DecodeError(f"{path}: empty file (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as error:
        raise DecodeError(f"{path}: not a readable video ({_cause(error)})") from error
    except OSError as error:
        raise DecodeError(f"{path}: cannot read ({error.strerror or error})") from error
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise DecodeError(f"{path}: no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        yield container, stream


def _decoded(path: Path, container: av.container.InputContainer,
             stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    """Decoded frames in display order.

    Raises DecodeError when FFmpeg fails mid-stream, when the demuxer flags a packet as corrupt
    (how a file cut inside a packet shows; with frame threading the decoder itself may stay
    silent about it), when no frame decodes, or when decoding ends cleanly but clearly short of
    what the container states (see ``TRUNCATION_FRACTION``). Frames before the damage are
    yielded first, so the error names the first frame that could not be decoded.
    """
    count = 0
    end = Fraction(0)  # end time (pts + duration) of the latest decoded frame, seconds
    period = 1 / Fraction(stream.average_rate) if stream.average_rate else None
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:
                for frame in stream.codec_context.decode(None):  # drain frames before the damage
                    yield frame
                    count += 1
                raise DecodeError(
                    f"{path}: truncated or damaged data at frame {count} (0-based) after {count} "
                    "good frames (the demuxer flagged a packet as corrupt)"
                )
            for frame in packet.decode():
                end = max(end, _frame_end(frame, period, count))
                yield frame
                count += 1
    except (av.error.FFmpegError, OSError) as error:
        raise DecodeError(
            f"{path}: decoding failed at frame {count} (0-based) after {count} good frames "
            f"({_cause(error)})"
        ) from error
    if count == 0:
        raise DecodeError(f"{path}: no frame could be decoded")
    shortfall = _truncation(container, stream, count, end, period)
    if shortfall:
        raise DecodeError(f"{path}: truncated: {count} frames decoded, the container states "
                          f"{shortfall}")


def _frame_end(frame: av.VideoFrame, period: Fraction | None, index: int) -> Fraction:
    """When ``frame`` stops showing, in seconds: its pts plus its duration (or one frame
    period); without a pts, ``index + 1`` frame periods; 0 when nothing tells."""
    base = Fraction(frame.time_base) if frame.time_base else None
    duration = frame.duration * base if frame.duration and base is not None else period
    if frame.pts is None or base is None:
        return (index + 1) * period if period else Fraction(0)
    return frame.pts * base + (duration or 0)


def _stated_duration(container: av.container.InputContainer,
                     stream: av.video.stream.VideoStream) -> Fraction | None:
    """The video stream's stated duration in seconds; the container's only when the video is
    its only stream (an audio track may run longer than the picture)."""
    if stream.duration and stream.time_base:
        return stream.duration * Fraction(stream.time_base)
    if container.duration and len(container.streams) == 1:
        return Fraction(container.duration, av.time_base)
    return None


def _truncation(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                count: int, end: Fraction, period: Fraction | None) -> str | None:
    """What the container states, when the decoded frames clearly fall short of it; else None.

    The stated length is the longer of the stated duration and the header's frame count times
    the frame period (an AVI cut before its index states a duration of what is left, but its
    header still counts every frame). It is compared with when the decoded frames end; without
    times, the header's frame count with the decoded count (see ``TRUNCATION_FRACTION``).
    """
    header = int(stream.frames or 0)
    stated = max(_stated_duration(container, stream) or 0, header * (period or 0))
    if stated and end:
        start = stream.start_time * Fraction(stream.time_base) if (
            stream.start_time is not None and stream.time_base) else Fraction(0)
        slack = max(TRUNCATION_FRACTION * stated, _TRUNCATION_FRAMES * (period or 0))
        if start + stated - end <= slack:
            return None
        frames = f"{header} frames, " if header else (
            f"about {round(stated / period)} frames, " if period else "")
        return f"{frames}{float(stated):.2f} s (decoded frames end at {float(end - start):.2f} s)"
    if header and header - count > max(TRUNCATION_FRACTION * header, _TRUNCATION_FRAMES):
        return f"{header} frames"
    return None


def _to_rgb(path: Path, index: int, frame: av.VideoFrame, config: DecodeConfig) -> np.ndarray:
    """(H, W, 3) uint8 RGB C-contiguous picture of ``frame``, rotated upright, then resized."""
    try:
        rgb = frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, ValueError) as error:
        raise DecodeError(
            f"{path}: cannot convert frame {index} ({frame.format.name}) to RGB ({error})"
        ) from error
    turns = _quarter_turns(frame.rotation)
    if turns:
        # np.rot90 turns counter-clockwise, the direction of VideoFrame.rotation.
        rgb = np.rot90(rgb, k=turns)
    height, width = rgb.shape[:2]
    new_width, new_height = output_size(width, height, config)
    if (new_width, new_height) != (width, height):
        shrinking = new_width <= width and new_height <= height
        rgb = cv2.resize(
            np.ascontiguousarray(rgb),
            (new_width, new_height),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
    return np.ascontiguousarray(rgb)


def _presentation_times(
    path: Path, frames: Iterable[av.VideoFrame], default_duration: Fraction | None
) -> Iterator[tuple[Fraction, Fraction, int, av.VideoFrame]]:
    """(time s, duration s, index, frame) in decode order, times sorted within a short window.

    A frame's time is its pts (its dts when pts is missing; the previous time plus a frame
    duration when both are). See ``_REORDER_WINDOW`` for why times are sorted.
    """
    pending: deque[tuple[int, av.VideoFrame, Fraction | None, Fraction]] = deque()
    times: list[Fraction] = []
    last: Fraction | None = None

    def pop() -> tuple[Fraction, Fraction, int, av.VideoFrame]:
        nonlocal last
        index, frame, stamp, duration = pending.popleft()
        if stamp is not None:
            time = heapq.heappop(times)
        else:
            time = Fraction(0) if last is None else last + duration
        last = time if last is None else max(time, last)
        time = last
        return time, duration, index, frame

    for index, frame in enumerate(frames):
        base = Fraction(frame.time_base) if frame.time_base else None
        ticks = frame.pts if frame.pts is not None else frame.dts
        stamp = ticks * base if ticks is not None and base is not None else None
        duration = frame.duration * base if frame.duration and base is not None else None
        duration = duration or default_duration
        if duration is None:
            raise DecodeError(
                f"{path}: frame {index} has no duration and the stream no frame rate; "
                "cannot resample it to a frame rate (use fps=None)"
            )
        if stamp is not None:
            heapq.heappush(times, stamp)
        pending.append((index, frame, stamp, duration))
        if len(pending) > _REORDER_WINDOW:
            yield pop()
    while pending:
        yield pop()


def _resample(
    timed: Iterable[tuple[Fraction, Fraction, int, av.VideoFrame]],
    fps: Fraction,
    tolerance: Fraction,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """(index, frame) at times t0 + k / fps (t0: the first frame's time), one per k.

    Output k is the last frame whose time is <= t0 + k / fps; a time less than ``tolerance``
    after a target counts as on it (see ``_MAX_TOLERANCE``). Output stops at the end of the last
    frame (its time plus its duration), so N frames at rate r become about N * fps / r frames.
    """
    period = 1 / fps
    k = 0
    start: Fraction | None = None
    held: tuple[int, av.VideoFrame] | None = None
    end = Fraction(0)

    def after(time: Fraction, target: Fraction) -> bool:
        return time > target and time - target >= tolerance

    for time, duration, index, frame in timed:
        if start is None:
            start = time
        while held is not None and after(time, start + k * period):
            yield held
            k += 1
        held = (index, frame)
        end = time + duration
    while held is not None and start is not None and after(end, start + k * period):
        yield held
        k += 1
