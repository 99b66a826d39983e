"""``flowkit synth``: short videos with known motion and labels, for demos, tests and experiments.

Tasks: ``translate`` (the default) writes textures sliding in four directions
(flowkit.video.synth); ``motion`` writes the motion laboratory (flowkit.video.motion_lab),
whose classes only optical flow can tell apart; ``complementary`` and ``binding``
(flowkit.video.colour_motion) need colour and motion together. Options of one task given with
another are usage errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import click

from flowkit.video.colour_motion import (CLASSES, TASKS, ColourMotionConfig,
                                         make_colour_motion_dataset)
from flowkit.video.motion_lab import VOCABULARY, LabConfig, MotionLabConfig, make_motion_dataset
from flowkit.video.synth import SynthConfig, make_synthetic_videos

_TRANSLATE = SynthConfig()
_MOTION = MotionLabConfig()


def _per_task(name: str) -> str:
    """Help's default for a shared option whose default differs by task."""
    return (f"  [default: {getattr(_TRANSLATE, name)} with translate, {getattr(_MOTION, name)} "
            "with motion, complementary and binding]")


EPILOG = """\b
Examples:
  flowkit synth --out demo/videos --num-videos 8
  flowkit extract demo/videos/labels.txt --out demo/shards
  flowkit synth --out lab --task motion --classes 8 --videos-per-class 30
  flowkit extract lab/labels.txt --out lab/shards --short-side 0
  flowkit synth --out binding --task binding --videos-per-class 30
"""


@click.command("synth", epilog=EPILOG)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for the videos, labels.txt and truth.json (and the split "
                   "lists with --task motion).")
@click.option("--task", type=click.Choice(["translate", "motion", *TASKS]), default="translate",
              show_default=True,
              help="translate: textures sliding right, left, down, up (class = direction); "
                   "motion: the motion laboratory, classes defined by an object's motion with "
                   "appearance drawn independently of the class, so one frame cannot tell it; "
                   "complementary: " + ", ".join(CLASSES["complementary"]) + " (one frame gives "
                   "the colour, the flow the direction); binding: a warm and a cool object "
                   "moving opposite ways, " + ", ".join(CLASSES["binding"]) + " (only colour "
                   "and motion taken at the same place tell the class).")
@click.option("--num-videos", type=click.IntRange(min=1), default=None,
              help="translate only: videos to make; video i moves in direction i mod 4."
                   f"  [default: {_TRANSLATE.num_videos}]")
@click.option("--classes", "num_classes", type=int, default=None,
              help="motion only: number of classes K, the first K of: "
                   + ", ".join(m.name for m in VOCABULARY) + f".  [default: {_MOTION.num_classes}]")
@click.option("--videos-per-class", type=int, default=None,
              help="motion, complementary, binding: videos of each class (at least 2: one "
                   "train, one test)."
                   f"  [default: {_MOTION.videos_per_class}]")
@click.option("--test-fraction", type=float, default=None,
              help="motion, complementary, binding: fraction of each class's videos in "
                   "testlist01.txt (rounded; "
                   f"at least one video in each split).  [default: {_MOTION.test_fraction}]")
@click.option("--num-frames", type=click.IntRange(min=2), default=None,
              help="Frames per video." + _per_task("num_frames"))
@click.option("--width", type=click.IntRange(min=16), default=None,
              help="Frame width in pixels (even)." + _per_task("width"))
@click.option("--height", type=click.IntRange(min=16), default=None,
              help="Frame height in pixels (even)." + _per_task("height"))
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=_TRANSLATE.fps,
              show_default=True, help="Frame rate written in the container.")
@click.option("--codec", type=click.Choice(["libx264", "ffv1"]), default=None,
              help="libx264 (.mp4, near-lossless) or ffv1 (.mkv, lossless; motion's default, as "
                   "libx264 does not give the same bytes twice for it)." + _per_task("codec"))
@click.option("--seed", type=int, default=_TRANSLATE.seed, show_default=True,
              help="Seed of every random choice (textures, and for motion all parameters).")
def synth_command(out_dir: Path, task: str, num_videos: int | None, num_classes: int | None,
                  videos_per_class: int | None, test_fraction: float | None,
                  num_frames: int | None, width: int | None, height: int | None, fps: float,
                  codec: str | None, seed: int) -> None:
    """Write videos with known motion and labels, with labels.txt (for extract) and truth.json.

    \b
    translate: classes 0 right, 1 left, 2 down, 3 up (the texture slides).
    motion: K motion classes of a textured object over a moving background, with
      classInd.txt, trainlist01.txt and testlist01.txt in UCF101's format.
    """
    labs = ("motion", *TASKS)
    only = {"--num-videos": (num_videos, ("translate",)), "--classes": (num_classes, ("motion",)),
            "--videos-per-class": (videos_per_class, labs),
            "--test-fraction": (test_fraction, labs)}
    for name, (value, owners) in only.items():
        if task not in owners and value is not None:
            raise click.BadOptionUsage(name, f"{name} applies to --task {' or '.join(owners)}, "
                                             f"not {task}")
    given = {name: value for name, value in
             (("num_frames", num_frames), ("width", width), ("height", height), ("codec", codec))
             if value is not None}
    if task == "translate":
        if num_videos is not None:
            given["num_videos"] = num_videos
        _translate(out_dir, SynthConfig(fps=fps, seed=seed, **given))
        return
    for name, value in (("num_classes", num_classes), ("videos_per_class", videos_per_class),
                        ("test_fraction", test_fraction)):
        if value is not None:
            given[name] = value
    if task == "motion":
        _motion(out_dir, MotionLabConfig(fps=fps, seed=seed, **given))
    else:
        _colour_motion(out_dir, ColourMotionConfig(task=task, fps=fps, seed=seed, **given))


def _translate(out_dir: Path, config: SynthConfig) -> None:
    videos = make_synthetic_videos(out_dir, config)
    for video in videos:
        click.echo(f"{video.video_id}: {video.label_name} (label {video.label}), "
                   f"flow ({video.dx:+.2f}, {video.dy:+.2f}) px/frame, {video.num_frames} frames")
    click.echo(f"wrote {len(videos)} videos, {out_dir / 'labels.txt'} and {out_dir / 'truth.json'}")


def _motion(out_dir: Path, config: MotionLabConfig) -> None:
    videos = make_motion_dataset(out_dir, config)
    _lab_summary(out_dir, len(videos), [motion.name for motion in config.classes], config)


def _colour_motion(out_dir: Path, config: ColourMotionConfig) -> None:
    videos = make_colour_motion_dataset(out_dir, config)
    _lab_summary(out_dir, len(videos), config.classes, config)


def _lab_summary(out_dir: Path, count: int, classes: Sequence[str],
                 config: LabConfig) -> None:
    """Per class its videos and split, then what was written."""
    train = config.videos_per_class - config.num_test
    for label, name in enumerate(classes):
        click.echo(f"{label} {name}: {config.videos_per_class} videos "
                   f"({train} train, {config.num_test} test)")
    click.echo(f"wrote {count} videos of {config.width}x{config.height}, "
               f"{config.num_frames} frames, under {out_dir}, with labels.txt, classInd.txt, "
               "trainlist01.txt, testlist01.txt and truth.json")
    click.echo(f"next: flowkit extract {out_dir / 'labels.txt'} --out SHARDS --short-side 0  "
               "(0 keeps the native size; the default short side 256 would upscale)")
