"""A motion laboratory: labelled videos whose class is in the motion, not in the appearance.

Each video shows a textured ellipse (the object) over a textured background, with a smaller
textured disc (the distractor) behind it. What a single frame shows is drawn independently of
the class: the textures, the object's colour, size, shape and orientation, and every position.
Positions wrap around the borders (an object leaving on the right re-enters on the left), so at
every frame the object is uniformly placed whatever the class: one RGB frame cannot tell the
class, optical flow can. Motion that does not define the class is there too: the background
drifts (up to 0.6 px/frame, any direction) and the distractor slides at 0.25-1.25 px/frame.

Classes, in this order (``num_classes=K`` takes the first K; the default 8 covers direction,
speed, rotation and oscillation), with per-video ranges::

    right, left, up, down      slide at 1-1.5 px/frame, direction jittered by up to 15 degrees
    right-fast, left-fast      slide at 3-4 px/frame
    rotate-cw, rotate-ccw      turn 5-10 degrees/frame about the centre (as seen on screen)
    oscillate-horizontal, oscillate-vertical
                               back and forth along x or y (jittered by up to 15 degrees),
                               A sin(2 pi t / P + phase): A 5-10 % of the shorter side, P 8-12
                               frames, random phase (a clip of 14+ frames shows a reversal)
    expand, contract           size times exp(+-(0.04-0.06) t), drawn for the middle frame; for
                               these two (not among the default 8) one frame does say a little:
                               early frames show smaller objects for expand, larger for contract

Conventions: pixels and frames; x right, y down; angles in degrees clockwise on screen from +x
(90 is down); flow at frame t maps t to t + 1. Video n of class c draws everything from seeds
(seed, c, n, ...), so its frames do not change with the number of classes or videos.

Layout written by ``make_motion_dataset(out_dir, config)``::

    out_dir/
        labels.txt          "right/right_000.mkv 0" per line, 0-based: the list for flowkit extract
        classInd.txt        "1 right" per line (UCF101 format)
        trainlist01.txt     "right/right_000.mkv 1" per line, 1-based (UCF101 trainlist format)
        testlist01.txt      "right/right_022.mkv" per line (UCF101 testlist format)
        truth.json          {"config", "classes", "conventions", "videos": [{"id", "label",
                            "label_name", "split", "num_frames", "background_velocity",
                            "object", "distractor", ...}, ...]}
        right/right_000.mkv ... right/right_029.mkv     (.mp4 with codec libx264)
        left/left_000.mkv ...

The test split is the last ``num_test`` videos of each class (all videos are independent draws).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flowkit.errors import ConfigError, FlowkitError
from flowkit.video.sprites import Sprite, composite, sprite_texture
from flowkit.video.synth import (CODECS, check_codec, check_fps, check_integers, check_size,
                                 moving_texture, write_video)
from flowkit.writing import write_text_atomic

SLOW, FAST = (1.0, 1.5), (3.0, 4.0)  # px/frame
ANGULAR = (5.0, 10.0)                # degrees/frame
AMPLITUDE = (0.05, 0.10)             # of the shorter side
PERIOD = (8.0, 12.0)                 # frames
SCALE_RATE = (0.04, 0.06)            # log-size per frame
MAX_SCALE = 1.6                      # expand/contract rates are capped to stay within 1/1.6-1.6
DIRECTION_JITTER = 15.0              # degrees either side of a class's direction
OBJECT_RADIUS, OBJECT_ASPECT = (0.125, 0.25), (0.6, 1.0)  # of the shorter side; minor/major
DISTRACTOR_RADIUS, DISTRACTOR_SPEED = (0.05, 0.08), (0.25, 1.25)
BACKGROUND_SPEED = 0.6               # px/frame at most
COLOUR, CONTRAST = (40.0, 215.0), (30.0, 50.0)  # grey levels: mean per channel, texture std


@dataclasses.dataclass(frozen=True)
class MotionClass:
    """A class of motion. ``kind`` is "slide", "rotate", "oscillate" or "scale".

    ``direction`` (degrees) orients slides and oscillations; ``sign`` is +1 for clockwise
    rotation and expansion, -1 for the opposite; ``speed`` is the range drawn from (px/frame
    for slides, degrees/frame for rotations, log-size/frame for scaling; oscillations draw
    from AMPLITUDE and PERIOD instead).
    """

    name: str
    kind: str
    direction: float = 0.0
    sign: int = 1
    speed: tuple[float, float] = (0.0, 0.0)


VOCABULARY: tuple[MotionClass, ...] = (
    MotionClass("right", "slide", 0.0, speed=SLOW),
    MotionClass("left", "slide", 180.0, speed=SLOW),
    MotionClass("rotate-cw", "rotate", sign=1, speed=ANGULAR),
    MotionClass("rotate-ccw", "rotate", sign=-1, speed=ANGULAR),
    MotionClass("right-fast", "slide", 0.0, speed=FAST),
    MotionClass("oscillate-horizontal", "oscillate", 0.0),
    MotionClass("up", "slide", 270.0, speed=SLOW),
    MotionClass("down", "slide", 90.0, speed=SLOW),
    MotionClass("left-fast", "slide", 180.0, speed=FAST),
    MotionClass("oscillate-vertical", "oscillate", 90.0),
    MotionClass("expand", "scale", sign=1, speed=SCALE_RATE),
    MotionClass("contract", "scale", sign=-1, speed=SCALE_RATE),
)


@dataclasses.dataclass(frozen=True)
class LabConfig:
    """What every laboratory's set shares: ``videos_per_class`` videos per class, of which
    ``test_fraction`` (rounded, at least one, at most all but one) form the test split, so
    ``videos_per_class`` must be >= 2; ``num_frames`` frames of ``width`` x ``height`` at
    ``fps``, every random choice drawn from ``seed``, written with ``codec``."""

    videos_per_class: int = 30
    test_fraction: float = 0.25
    num_frames: int = 16
    width: int = 64
    height: int = 64
    fps: float = 25.0
    seed: int = 0
    codec: str = "ffv1"

    def __post_init__(self) -> None:
        check_integers(self, ("videos_per_class", "num_frames", "width", "height", "seed"))
        if self.videos_per_class < 2:
            raise ConfigError(f"videos per class must be >= 2 (one for training, one for "
                              f"testing), got {self.videos_per_class}")
        fraction = self.test_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
                or not 0.0 < fraction < 1.0:
            raise ConfigError(f"test fraction must be a number in (0, 1), got {fraction!r}")
        if self.num_frames < 2:
            raise ConfigError(f"num_frames must be >= 2 (flow needs a pair), got {self.num_frames}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        check_codec(self.codec)
        if min(self.width, self.height) < 16:
            raise ConfigError(f"video size must be at least 16x16, got {self.width}x{self.height}")
        check_size(self.width, self.height, self.codec)
        check_fps(self.fps)

    @property
    def num_test(self) -> int:
        """Test videos per class: test_fraction of them, rounded half up, in [1, N - 1]."""
        wanted = math.floor(self.videos_per_class * self.test_fraction + 0.5)
        return min(self.videos_per_class - 1, max(1, wanted))


@dataclasses.dataclass(frozen=True)
class MotionLabConfig(LabConfig):
    """What ``make_motion_dataset`` makes: the first ``num_classes`` classes of VOCABULARY
    (and LabConfig's videos).

    64x64 and 16 frames keep TV-L1 extraction of the default 240 videos to a few minutes on two
    cores (157 s measured, at the native size: ``flowkit extract --short-side 0``); 16 frames
    also show every oscillation reverse. The codec is lossless FFV1 by default: libx264 (smaller
    .mp4 files) is not bit-reproducible on these videos (with its default mb-tree rate control,
    about a quarter of them differ between runs, by up to 15 grey levels in a few frames).
    """

    num_classes: int = 8

    def __post_init__(self) -> None:
        check_integers(self, ("num_classes",))
        if not 2 <= self.num_classes <= len(VOCABULARY):
            raise ConfigError(f"the number of classes must be 2 to {len(VOCABULARY)}, got "
                              f"{self.num_classes}; classes in order: "
                              + ", ".join(m.name for m in VOCABULARY))
        super().__post_init__()

    @property
    def classes(self) -> tuple[MotionClass, ...]:
        """The first ``num_classes`` classes of ``VOCABULARY``; label i is ``classes[i]``."""
        return VOCABULARY[:self.num_classes]


@dataclasses.dataclass(frozen=True)
class LabVideo:
    """One video of the lab and everything drawn to make it; its file is out_dir / video_id."""

    video_id: str
    label: int
    label_name: str
    split: str
    num_frames: int
    background_seed: tuple[int, ...]
    background_velocity: tuple[float, float]
    object: Sprite
    distractor: Sprite


def _polar(speed: float, degrees: float) -> tuple[float, float]:
    return speed * math.cos(math.radians(degrees)), speed * math.sin(math.radians(degrees))


def _draw_sprite(rng: np.random.Generator, width: int, height: int, radius: tuple[float, float],
                 aspect: tuple[float, float], texture_seed: tuple[int, ...]) -> Sprite:
    """A sprite at rest: size, shape, place, orientation and colours uniform in their ranges."""
    major = rng.uniform(*radius) * min(width, height)
    return Sprite(radii=(major, major * rng.uniform(*aspect)),
                  start=(rng.uniform(0, width), rng.uniform(0, height)),
                  angle=rng.uniform(0, 360), colour=tuple(rng.uniform(*COLOUR, size=3).tolist()),
                  contrast=rng.uniform(*CONTRAST), texture_seed=texture_seed)


def _move(sprite: Sprite, motion: MotionClass, rng: np.random.Generator, side: int,
          num_frames: int) -> Sprite:
    """``sprite`` given a motion of class ``motion`` with this video's random parameters."""
    direction = motion.direction + rng.uniform(-DIRECTION_JITTER, DIRECTION_JITTER)
    if motion.kind == "slide":
        return dataclasses.replace(sprite, velocity=_polar(rng.uniform(*motion.speed), direction))
    if motion.kind == "rotate":
        return dataclasses.replace(sprite, angular_speed=motion.sign * rng.uniform(*motion.speed))
    if motion.kind == "oscillate":
        return dataclasses.replace(
            sprite, amplitude=_polar(rng.uniform(*AMPLITUDE) * side, direction),
            period=rng.uniform(*PERIOD), phase=rng.uniform(0, 2 * math.pi))
    middle = (num_frames - 1) / 2  # the drawn size is the middle frame's, as for other classes
    rate = motion.sign * min(rng.uniform(*motion.speed), math.log(MAX_SCALE) / max(middle, 1))
    shrink = math.exp(-rate * middle)
    return dataclasses.replace(sprite, scale_rate=rate,
                               radii=(sprite.radii[0] * shrink, sprite.radii[1] * shrink))


def draw_video(config: MotionLabConfig, label: int, index: int) -> LabVideo:
    """Video ``index`` of class ``label``: every random choice, drawn from (seed, label, index).

    The appearance is drawn first and the same way for every class; only the last draws (the
    object's motion) depend on the class.
    """
    seed = (config.seed, label, index)
    rng = np.random.default_rng(seed)
    width, height = config.width, config.height
    thing = _draw_sprite(rng, width, height, OBJECT_RADIUS, OBJECT_ASPECT, (*seed, 1))
    distractor = _draw_sprite(rng, width, height, DISTRACTOR_RADIUS, (1.0, 1.0), (*seed, 2))
    distractor = dataclasses.replace(
        distractor, velocity=_polar(rng.uniform(*DISTRACTOR_SPEED), rng.uniform(0, 360)))
    background = _polar(rng.uniform(0, BACKGROUND_SPEED), rng.uniform(0, 360))
    motion = config.classes[label]
    thing = _move(thing, motion, rng, min(width, height), config.num_frames)
    digits = max(3, len(str(config.videos_per_class - 1)))
    video_id = f"{motion.name}/{motion.name}_{index:0{digits}d}{CODECS[config.codec].extension}"
    split = "test" if index >= config.videos_per_class - config.num_test else "train"
    return LabVideo(video_id, label, motion.name, split, config.num_frames, (*seed, 0),
                    background, thing, distractor)


def render_frames(video: LabVideo, width: int, height: int) -> Iterator[np.ndarray]:
    """Yield the ``video.num_frames`` (H, W, 3) uint8 RGB frames of ``video``.

    The background moves by an exact Fourier phase shift (``flowkit.video.synth.moving_texture``);
    the distractor, then the object, are composited over it with soft (anti-aliased) edges.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sprites = [(sprite, sprite_texture(sprite)) for sprite in (video.distractor, video.object)]
    frames = moving_texture(width, height, *video.background_velocity, video.num_frames,
                            seed=video.background_seed)
    for t, frame in enumerate(frames):
        canvas = frame.astype(np.float32)
        for sprite, texture in sprites:
            composite(canvas, sprite, texture, t, xs, ys)
        yield np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def make_motion_dataset(out_dir: str | Path,
                        config: MotionLabConfig = MotionLabConfig()) -> list[LabVideo]:
    """Write the lab's videos, list files and truth.json under ``out_dir`` (layout above).

    Same config, same frames and, with FFV1, the same bytes. Existing files of the same names
    are replaced.

    Raises:
        FlowkitError: a file cannot be written.
    """
    out_dir = Path(out_dir)
    videos = [draw_video(config, label, index) for label in range(config.num_classes)
              for index in range(config.videos_per_class)]
    for video in videos:
        write_video(out_dir / video.video_id, render_frames(video, config.width, config.height),
                    config.fps, config.codec)
    write_lab_lists(out_dir, videos, [m.name for m in config.classes],
                    _truth_document(config, videos))
    return videos


def write_lab_lists(out_dir: Path, videos: Sequence[Any], class_names: Sequence[str],
                    truth: dict) -> None:
    """labels.txt, classInd.txt, trainlist01.txt, testlist01.txt (UCF101's formats) and
    truth.json of a laboratory's ``videos`` (each with ``video_id``, ``label`` and ``split``).

    Raises:
        FlowkitError: a file cannot be written.
    """
    texts = {
        "labels.txt": "".join(f"{v.video_id} {v.label}\n" for v in videos),
        "classInd.txt": "".join(f"{i + 1} {name}\n" for i, name in enumerate(class_names)),
        "trainlist01.txt": "".join(f"{v.video_id} {v.label + 1}\n" for v in videos
                                   if v.split == "train"),
        "testlist01.txt": "".join(f"{v.video_id}\n" for v in videos if v.split == "test"),
        "truth.json": json.dumps(truth, indent=1) + "\n",
    }
    for name, text in texts.items():
        try:
            write_text_atomic(out_dir / name, text)
        except OSError as error:
            raise FlowkitError(f"{out_dir / name}: cannot write ({error})") from error


def _truth_document(config: MotionLabConfig, videos: list[LabVideo]) -> dict:
    """What truth.json holds: the config, the classes, the conventions and every video."""
    return {
        "config": dataclasses.asdict(config),
        "classes": [dataclasses.asdict(m) for m in config.classes],
        "conventions": "pixels and frames; x right, y down; angles in degrees clockwise on "
                       "screen; sprite centre at frame t = start + velocity*t + amplitude*"
                       "sin(2*pi*t/period + phase) wrapped into the frame (no oscillation if "
                       "period is 0), angle + angular_speed*t, radii*exp(scale_rate*t)",
        "videos": [{"id": v.video_id, **{key: value for key, value in dataclasses.asdict(v).items()
                                          if key != "video_id"}} for v in videos],
    }
