"""Synthetic videos with known motion and known labels, for demos and tests.

Each video shows a smooth periodic random texture translating by a constant (dx, dy) pixels per
frame, made by a Fourier phase shift, so the true flow is exactly (dx, dy) at every pixel: a pixel
at (x, y) in frame t is at (x + dx, y + dy) in frame t + 1 (u positive right, v positive down).
The class of a video is its direction of motion.

Layout written by ``make_synthetic_videos(out_dir)``::

    out_dir/
        labels.txt               "right/right_0.mp4 0" per line (0-based labels)
        truth.json               [{"id", "label", "label_name", "dx", "dy", "num_frames"}, ...]
        right/right_0.mp4, right/right_4.mp4, ...
        left/left_1.mp4, ...
        down/down_2.mp4, ...
        up/up_3.mp4, ...
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import av
import av.error
import numpy as np

from flowkit.errors import ConfigError, FlowkitError


@dataclasses.dataclass(frozen=True)
class Motion:
    """A motion class: its label, its name, and its shift in pixels per frame."""

    label: int
    name: str
    dx: float
    dy: float


# Label i moves the texture by (dx, dy) pixels per frame; video i gets class i % len(MOTIONS).
MOTIONS: tuple[Motion, ...] = (
    Motion(0, "right", 1.5, 0.0),
    Motion(1, "left", -1.5, 0.0),
    Motion(2, "down", 0.0, 1.0),
    Motion(3, "up", 0.0, -1.0),
)

@dataclasses.dataclass(frozen=True)
class Encoder:
    """How ``write_video`` encodes with one codec: file extension, pixel format, options."""

    extension: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...] = ()


# libx264 at CRF 10 moves the mean TV-L1 flow of a synthetic video by under 0.01 px from the truth
# (measured at 340x256, 8 frame pairs: at most 0.0034 px); FFV1 in bgr0 (8-bit RGB) is lossless.
CODECS: Mapping[str, Encoder] = MappingProxyType({
    "libx264": Encoder(".mp4", "yuv420p", (("crf", "10"), ("preset", "medium"))),
    "ffv1": Encoder(".mkv", "bgr0"),
})

_TEXTURE_SIGMA = 2.0  # px: Gaussian blur of the noise; leaves 1e-9 of the energy at Nyquist
_CONTRAST = 45.0  # grey levels per standard deviation of the texture, around 128


def check_integers(config: object, names: tuple[str, ...]) -> None:
    """Raise ConfigError unless each field ``names`` of ``config`` is an integer (not a bool)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise ConfigError(f"{name} must be an integer, got {value!r}")


def check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ConfigError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")


def check_size(width: int, height: int, codec: str) -> None:
    if width < 8 or height < 8:
        raise ConfigError(f"video size must be at least 8x8, got {width}x{height}")
    if CODECS[codec].pix_fmt == "yuv420p" and (width % 2 or height % 2):
        raise ConfigError(
            f"{codec} (yuv420p) needs an even width and height, got {width}x{height}; "
            "use an even size or codec 'ffv1'"
        )


def check_fps(fps: float) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or fps <= 0:
        raise ConfigError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(10_000)


def _check_frame(path: Path, frame: np.ndarray, shape: tuple[int, ...] | None) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 \
            or frame.shape[2] != 3:
        got = f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame)
        raise ConfigError(f"{path}: frames must be (H, W, 3) uint8 RGB arrays, got {got}")
    if shape is not None and frame.shape != shape:
        raise ConfigError(f"{path}: all frames must have shape {shape}, got {frame.shape}")


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """What ``make_synthetic_videos`` makes.

    The default 340x256 is TSN's frame size, so extraction at short side 256 does not resize.
    ``codec`` is "libx264" (.mp4, yuv420p, CRF 10: near-lossless) or "ffv1" (.mkv, lossless RGB).
    """

    num_videos: int = 4
    num_frames: int = 16
    width: int = 340
    height: int = 256
    fps: float = 25.0
    seed: int = 0
    codec: str = "libx264"

    def __post_init__(self) -> None:
        check_integers(self, ("num_videos", "num_frames", "width", "height", "seed"))
        if self.num_videos < 1 or self.num_frames < 1:
            raise ConfigError(
                f"num_videos and num_frames must be >= 1, got {self.num_videos}, {self.num_frames}"
            )
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        check_codec(self.codec)
        check_size(self.width, self.height, self.codec)
        check_fps(self.fps)

    @property
    def extension(self) -> str:
        """File extension of the videos, with the dot (".mp4" or ".mkv")."""
        return CODECS[self.codec].extension


@dataclasses.dataclass(frozen=True)
class SynthVideo:
    """One synthetic video and its ground truth.

    ``video_id`` is the path relative to the output folder, with "/" separators, as written in
    labels.txt; (dx, dy) is the true flow in pixels per frame at every pixel.
    """

    path: Path
    video_id: str
    label: int
    label_name: str
    dx: float
    dy: float
    num_frames: int


def make_synthetic_videos(
    out_dir: str | Path, config: SynthConfig = SynthConfig()
) -> list[SynthVideo]:
    """Write ``config.num_videos`` videos, labels.txt and truth.json under ``out_dir``.

    Video i has class ``MOTIONS[i % 4]`` and its own texture (seeded by ``config.seed`` and i),
    so the frames are the same for the same config; with these encoders the bytes are too.
    Existing files of the same names are replaced.
    """
    out_dir = Path(out_dir)
    videos = []
    for index in range(config.num_videos):
        motion = MOTIONS[index % len(MOTIONS)]
        video_id = f"{motion.name}/{motion.name}_{index}{config.extension}"
        path = out_dir / video_id
        frames = moving_texture(config.width, config.height, motion.dx, motion.dy,
                                config.num_frames, seed=(config.seed, index))
        count = write_video(path, frames, config.fps, config.codec)
        videos.append(SynthVideo(path, video_id, motion.label, motion.name, motion.dx,
                                 motion.dy, count))
    labels = "".join(f"{video.video_id} {video.label}\n" for video in videos)
    truth = [
        {"id": v.video_id, "label": v.label, "label_name": v.label_name, "dx": v.dx,
         "dy": v.dy, "num_frames": v.num_frames}
        for v in videos
    ]
    try:
        (out_dir / "labels.txt").write_text(labels)
        (out_dir / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    except OSError as error:
        raise FlowkitError(f"{out_dir}: cannot write labels.txt/truth.json ({error})") from error
    return videos


def moving_texture(
    width: int, height: int, dx: float, dy: float, num_frames: int,
    seed: int | tuple[int, ...] = 0,
) -> Iterator[np.ndarray]:
    """Yield ``num_frames`` (H, W, 3) uint8 RGB frames of a texture moving by (dx, dy) per frame.

    Frame t is I(x - t*dx, y - t*dy), so a pixel moves by +(dx, dy) per frame, wrapping around
    the borders. I is white noise blurred by a Gaussian (sigma 2 px) in the Fourier domain: it is
    periodic, and has no energy left at the Nyquist frequency, so a phase shift moves it by any
    fraction of a pixel exactly. Each channel is a shared luminance field plus its own colour
    field, about 45 grey levels per standard deviation around 128.
    """
    spectrum = texture_spectrum(width, height, seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    for t in range(num_frames):
        phase = np.exp(-2j * math.pi * (fx * dx * t + fy * dy * t))
        image = np.fft.irfft2(spectrum * phase, s=(height, width))
        pixels = np.clip(np.round(128.0 + _CONTRAST * image), 0, 255).astype(np.uint8)
        yield np.ascontiguousarray(pixels.transpose(1, 2, 0))


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float,
                codec: str = "libx264") -> int:
    """Encode (H, W, 3) uint8 RGB frames into a video file and return how many were written.

    ``codec`` is "libx264" (yuv420p, CRF 10; even sizes only) or "ffv1" (lossless 8-bit RGB);
    the container follows the file extension (.mp4, .mkv, .avi). Output is bit-exact (no
    version strings or random ids), written under a temporary name and renamed when complete.

    Raises:
        ConfigError: unknown codec, bad fps, frames of the wrong shape or dtype, or no frames.
        FlowkitError: the file cannot be written.
    """
    path = Path(path)
    check_codec(codec)
    rate = check_fps(fps)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        count = _encode(partial, path, frames, rate, codec)
        partial.replace(path)
    except (av.error.FFmpegError, OSError) as error:
        raise FlowkitError(f"{path}: cannot write {codec} video ({error})") from error
    finally:
        partial.unlink(missing_ok=True)  # only left over when something failed
    return count


def _encode(target: Path, path: Path, frames: Iterable[np.ndarray], rate: Fraction,
            codec: str) -> int:
    """Encode ``frames`` into ``target`` (errors name ``path``, the final name); frame count."""
    encoder = CODECS[codec]
    count = 0
    with av.open(str(target), mode="w", container_options={"fflags": "+bitexact"}) as container:
        stream = None
        shape: tuple[int, ...] | None = None
        for frame in frames:
            _check_frame(path, frame, shape)
            if stream is None:
                shape = frame.shape
                check_size(frame.shape[1], frame.shape[0], codec)
                stream = container.add_stream(codec, rate=rate, options=dict(encoder.options))
                stream.width, stream.height = frame.shape[1], frame.shape[0]
                stream.pix_fmt = encoder.pix_fmt
                stream.codec_context.thread_count = 1  # x264's output depends on its threads
                stream.codec_context.flags |= av.codec.context.Flags.bitexact  # no version tags
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            picture.pts = count
            picture.time_base = 1 / rate
            container.mux(stream.encode(picture))
            count += 1
        if stream is None:
            raise ConfigError(f"{path}: no frames to write")
        container.mux(stream.encode(None))
    return count


def texture_spectrum(width: int, height: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """(3, H, W//2 + 1) complex rfft2 spectrum of the texture, each channel of unit RMS."""
    rng = np.random.default_rng(seed)
    fields = rng.standard_normal((4, height, width))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    blur = np.exp(-2.0 * (math.pi * _TEXTURE_SIGMA) ** 2 * (fx**2 + fy**2))
    spectra = np.fft.rfft2(fields) * blur
    spectra[:, 0, 0] = 0.0  # zero mean
    fields = np.fft.irfft2(spectra, s=(height, width))
    fields /= np.sqrt(np.mean(fields**2, axis=(1, 2), keepdims=True))
    rgb = 0.8 * fields[:1] + 0.6 * fields[1:]
    return np.fft.rfft2(rgb)
