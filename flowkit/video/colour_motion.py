"""Two laboratories whose class needs appearance and motion together: what STDDCN claims to use.

The motion laboratory (flowkit.video.motion_lab) puts the class in the motion alone. These two
put it in a colour and a motion, so that neither stream can reach it on its own:

- ``complementary`` (4 classes: {warm, cool} object x {moves right, left}): one RGB frame gives
  the colour, the flow the direction; each stream alone is capped at 50%, late fusion of the two
  can reach 100%.
- ``binding`` (4 classes: a warm and a cool object of identical shape and grey texture move in
  opposite directions; the class says which goes which way: warm-right (the cool one left),
  warm-left, warm-down, warm-up): no single frame tells the class (both colours are always
  there, anywhere), the flow gives the axis only (50%), and late fusion of the two cannot pass
  50% either; only features of colour and motion taken at the same place can.

Warm and cool colours have the same grey level (OpenCV's RGB-to-grey weights, which every flow
method of flowkit uses): ``warm = L + s * CHROMA``, ``cool = L - s * CHROMA`` with ``CHROMA``
grey-free, and each object's texture is grey (the same in every channel). So the grey video, and
the flow computed from it, does not change when the colours of the objects are swapped:
swapping is exactly what turns a binding video of one class into one of its axis' other class.
Everything else (places, sizes, shapes, textures, speeds, the background and its drift) is drawn
independently of the class. Positions wrap around the borders as in the motion laboratory.

Layout: as the motion laboratory's (labels.txt, classInd.txt, trainlist01.txt, testlist01.txt,
truth.json, CLASS/CLASS_NNN.mkv).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from flowkit.errors import ConfigError
from flowkit.video.motion_lab import (BACKGROUND_SPEED, DIRECTION_JITTER, SLOW, LabConfig,
                                      write_lab_lists)
from flowkit.video.sprites import Sprite, composite, sprite_texture
from flowkit.video.synth import CODECS, moving_texture, write_video

# RGB-to-grey weights of OpenCV (cv2.COLOR_RGB2GRAY), and a colour direction with no grey in it
GREY_WEIGHTS = (0.299, 0.587, 0.114)
CHROMA = (1.0, -(GREY_WEIGHTS[0] - GREY_WEIGHTS[2]) / GREY_WEIGHTS[1], -1.0)
LUMA, SATURATION = (100.0, 150.0), (35.0, 45.0)  # grey level, and how far along CHROMA
OBJECT_RADIUS, OBJECT_ASPECT = (0.14, 0.22), (0.6, 1.0)  # of the shorter side; minor/major
CONTRAST = (14.0, 18.0)  # texture contrast, grey levels (no channel clips at 0 or 255)
BACKGROUND_CONTRAST = 0.5  # the background's grey texture, relative to synth's
TASKS = ("complementary", "binding")
# class names per task, in label order; a class is (warm's direction, or None for "cool")
CLASSES = {
    "complementary": ("warm-right", "warm-left", "cool-right", "cool-left"),
    "binding": ("warm-right", "warm-left", "warm-down", "warm-up"),
}
_DEGREES = {"right": 0.0, "down": 90.0, "left": 180.0, "up": 270.0}


@dataclasses.dataclass(frozen=True)
class ColourMotionConfig(LabConfig):
    """What ``make_colour_motion_dataset`` makes: ``task`` (one of TASKS), its 4 classes of
    LabConfig's videos (64x64, 16 frames, lossless FFV1 by default)."""

    task: str = "binding"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        super().__post_init__()

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES[self.task]


@dataclasses.dataclass(frozen=True)
class ColourMotionVideo:
    """One video and everything drawn to make it; ``sprites`` in drawing order (the last on
    top), each with its colour category in ``categories`` ("warm" or "cool")."""

    video_id: str
    label: int
    label_name: str
    split: str
    num_frames: int
    background_seed: tuple[int, ...]
    background_velocity: tuple[float, float]
    sprites: tuple[Sprite, ...]
    categories: tuple[str, ...]


def colour_pair(luma: float, saturation: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(warm, cool) RGB colours of the same grey level ``luma``, ``saturation`` apart from it."""
    warm = tuple(luma + saturation * c for c in CHROMA)
    cool = tuple(luma - saturation * c for c in CHROMA)
    return warm, cool


def _polar(speed: float, degrees: float) -> tuple[float, float]:
    return speed * math.cos(math.radians(degrees)), speed * math.sin(math.radians(degrees))


def draw_video(config: ColourMotionConfig, label: int, index: int) -> ColourMotionVideo:
    """Video ``index`` of class ``label``, every random choice drawn from (seed, task, label,
    index); the class decides only the colour categories and the directions, drawn last."""
    seed = (config.seed, TASKS.index(config.task), label, index)
    rng = np.random.default_rng(seed)
    width, height = config.width, config.height
    side = min(width, height)
    count = 2 if config.task == "binding" else 1
    major = rng.uniform(*OBJECT_RADIUS) * side
    radii = (major, major * rng.uniform(*OBJECT_ASPECT))  # binding: one shape for both
    texture_seed = (*seed, 1)
    luma, saturation = rng.uniform(*LUMA), rng.uniform(*SATURATION)
    contrast = rng.uniform(*CONTRAST)
    speed, jitter = rng.uniform(*SLOW), rng.uniform(-DIRECTION_JITTER, DIRECTION_JITTER)
    starts = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(count)]
    angles = [rng.uniform(0, 360) for _ in range(count)]
    background = _polar(rng.uniform(0, BACKGROUND_SPEED), rng.uniform(0, 360))
    on_top = int(rng.integers(count))  # which object is drawn last, independent of the class
    name = config.classes[label]
    category, direction = name.split("-")
    warm, cool = colour_pair(luma, saturation)
    if config.task == "complementary":
        colours, categories = [warm if category == "warm" else cool], [category]
        velocities = [_polar(speed, _DEGREES[direction] + jitter)]
    else:  # object 0 is warm, object 1 cool, moving opposite ways
        colours, categories = [warm, cool], ["warm", "cool"]
        velocity = _polar(speed, _DEGREES[direction] + jitter)
        velocities = [velocity, (-velocity[0], -velocity[1])]
    sprites = [Sprite(radii=radii, start=starts[i], angle=angles[i], colour=colours[i],
                      contrast=contrast, texture_seed=texture_seed, velocity=velocities[i])
               for i in range(count)]
    order = [i for i in range(count) if i != on_top] + [on_top]
    digits = max(3, len(str(config.videos_per_class - 1)))
    video_id = f"{name}/{name}_{index:0{digits}d}{CODECS[config.codec].extension}"
    split = "test" if index >= config.videos_per_class - config.num_test else "train"
    return ColourMotionVideo(video_id, label, name, split, config.num_frames, (*seed, 0),
                             background, tuple(sprites[i] for i in order),
                             tuple(categories[i] for i in order))


def swap_colours(video: ColourMotionVideo) -> ColourMotionVideo:
    """``video`` with warm and cool exchanged (same grey video): a binding video becomes one of
    the other class of its axis, a complementary one the other colour category."""
    def swapped(sprite: Sprite) -> Sprite:
        grey = sum(w * c for w, c in zip(GREY_WEIGHTS, sprite.colour))
        return dataclasses.replace(sprite, colour=tuple(2 * grey - c for c in sprite.colour))
    other = {"warm": "cool", "cool": "warm"}
    return dataclasses.replace(video, sprites=tuple(swapped(s) for s in video.sprites),
                               categories=tuple(other[c] for c in video.categories))


def render_frames(video: ColourMotionVideo, width: int, height: int) -> Iterator[np.ndarray]:
    """Yield the ``video.num_frames`` (H, W, 3) uint8 RGB frames: a drifting grey texture, the
    objects composited over it in order."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    sprites = [(sprite, sprite_texture(sprite)) for sprite in video.sprites]
    for sprite, texture in sprites:  # a grey texture around the colour: the same in each channel
        texture[:] = np.asarray(sprite.colour, np.float32) + (
            texture.mean(axis=2, keepdims=True) - np.mean(sprite.colour))
    frames = moving_texture(width, height, *video.background_velocity, video.num_frames,
                            seed=video.background_seed)
    for t, frame in enumerate(frames):
        grey = frame.astype(np.float32).mean(axis=2, keepdims=True)
        canvas = np.repeat(128 + BACKGROUND_CONTRAST * (grey - 128), 3, axis=2)
        for sprite, texture in sprites:
            composite(canvas, sprite, texture, t, xs, ys)
        yield np.clip(np.round(canvas), 0, 255).astype(np.uint8)


def make_colour_motion_dataset(out_dir: str | Path,
                               config: ColourMotionConfig = ColourMotionConfig()
                               ) -> list[ColourMotionVideo]:
    """Write the task's videos, list files and truth.json under ``out_dir``.

    Raises:
        FlowkitError: a file cannot be written.
    """
    out_dir = Path(out_dir)
    videos = [draw_video(config, label, index) for label in range(len(config.classes))
              for index in range(config.videos_per_class)]
    for video in videos:
        write_video(out_dir / video.video_id, render_frames(video, config.width, config.height),
                    config.fps, config.codec)
    truth = {"config": dataclasses.asdict(config), "classes": list(config.classes),
             "conventions": "as the motion laboratory's truth.json; sprites in drawing order",
             "videos": [{"id": v.video_id, **{key: value for key, value
                                               in dataclasses.asdict(v).items()
                                               if key != "video_id"}} for v in videos]}
    write_lab_lists(out_dir, videos, config.classes, truth)
    return videos
