"""``flowkit synth``: short videos with known motion and labels, for demos and tests."""

from __future__ import annotations

from pathlib import Path

import click

from flowkit.synth import SynthConfig, make_synthetic_videos

_DEFAULTS = SynthConfig()


@click.command("synth", epilog="\b\nExample:\n  flowkit synth demo/videos --num-videos 8\n  flowkit extract demo/videos/labels.txt --out demo/shards")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--num-videos", type=click.IntRange(min=1), default=_DEFAULTS.num_videos,
              show_default=True, help="Videos to make; video i moves in direction i mod 4.")
@click.option("--num-frames", type=click.IntRange(min=2), default=_DEFAULTS.num_frames,
              show_default=True, help="Frames per video.")
@click.option("--width", type=click.IntRange(min=16), default=_DEFAULTS.width, show_default=True,
              help="Frame width in pixels (even).")
@click.option("--height", type=click.IntRange(min=16), default=_DEFAULTS.height, show_default=True,
              help="Frame height in pixels (even).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=_DEFAULTS.fps,
              show_default=True, help="Frame rate written in the container.")
@click.option("--codec", type=click.Choice(["libx264", "ffv1"]), default=_DEFAULTS.codec,
              show_default=True, help="libx264 (.mp4, near-lossless) or ffv1 (.mkv, lossless).")
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True,
              help="Seed of the random textures.")
def synth_command(out_dir: Path, num_videos: int, num_frames: int, width: int, height: int,
                  fps: float, codec: str, seed: int) -> None:
    """Write videos of textures translating at known speeds, with labels.txt and truth.json.

    Classes: 0 right, 1 left, 2 down, 3 up. labels.txt is a list file for `flowkit extract`.
    """
    config = SynthConfig(num_videos=num_videos, num_frames=num_frames, width=width,
                         height=height, fps=fps, codec=codec, seed=seed)
    videos = make_synthetic_videos(out_dir, config)
    for video in videos:
        click.echo(f"{video.video_id}: {video.label_name} (label {video.label}), "
                   f"flow ({video.dx:+.2f}, {video.dy:+.2f}) px/frame, {video.num_frames} frames")
    click.echo(f"wrote {len(videos)} videos, {out_dir / 'labels.txt'} and {out_dir / 'truth.json'}")
