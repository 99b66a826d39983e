"""``flowkit info``, ``flowkit verify`` and ``flowkit view``: looking at an output folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from flowkit.cli.options import png_path
from flowkit.flow.viz import save_png
from flowkit.preview import (DEFAULT_MAX_HEIGHT, compose, describe_transform, legend_panel,
                             sample_panels, shown_magnitude, video_panel)
from flowkit.store.reader import open_shards
from flowkit.store.summary import summarize
from flowkit.store.verify import verify

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("info", epilog="\b\nExamples:\n  flowkit info out/\n  flowkit info out/ --json | jq '.videos[] | select(.status == \"failed\")'")
@click.argument("folder", type=_FOLDER)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (totals, parameters, flow_stats, and a 'videos' list) "
                   "instead of text.")
def info_command(folder: Path, as_json: bool) -> None:
    """Totals, failures, parameters and bytes on disk of an output folder, and how much flow
    the bound clipped: the share over all videos, a histogram of flow lengths, and the five
    most clipped videos (from the manifest; "unknown" for output made before flowkit recorded
    it)."""
    summary = summarize(folder)
    click.echo(json.dumps(summary.to_json(), indent=1) if as_json else summary.to_text())


@click.command("verify", epilog="\b\nExit codes: 0 every check passes; 1 problems found (listed); 2 not a flowkit\noutput folder.")
@click.argument("folder", type=_FOLDER)
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes, each checking whole shards; the problems listed do not "
                   "depend on it. Progress: with 1, a 'checking VIDEO' line before each video; "
                   "with more, a 'checked SHARD (K of N shards)' line as each shard ends "
                   "[default: number of CPU cores].")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems and the verdict.")
def verify_command(folder: Path, workers: int | None, quiet: bool) -> None:
    """Read every frame and flow back; check counts and shapes against the manifest, and
    stored bytes against their checksums (damaged videos and indices are named)."""
    workers = workers or os.cpu_count() or 1
    on_video = on_shard = None
    if not quiet and workers == 1:
        on_video = lambda video_id: click.echo(f"checking {video_id}", err=True)  # noqa: E731
    elif not quiet:
        on_shard = lambda shard, done, total: click.echo(  # noqa: E731
            f"checked {shard} ({done} of {total} shards)", err=True)
    found = verify(folder, on_video=on_video, workers=workers, on_shard=on_shard)
    for problem in found:
        click.echo(f"{'problem' if problem.is_failure else 'note'}: {problem}")
    failures = [problem for problem in found if problem.is_failure]
    if failures:
        click.echo(f"{folder}: {len(failures)} problem(s); flowkit extract --repair "
                   "re-extracts damaged videos")
        raise SystemExit(1)
    click.echo(f"{folder}: all consistent")


@click.command("view", epilog="\b\nExamples:\n  flowkit view out/ --out first.png\n  flowkit view out/ --video walk/a.avi --video run/b.avi --frames 6 --out two.png\n  flowkit view out/ --video walk/a.avi --transform train --seed 3 --out train.png")
@click.argument("folder", type=_FOLDER)
@click.option("--video", "video_ids", multiple=True,
              help="Video id to show; repeat for several, one below the other "
                   "[default: the first one stored].")
@click.option("--frames", "count", type=click.IntRange(min=1), default=4, show_default=True,
              help="Number of frames per video, spread evenly over it (and segments per sample).")
@click.option("--transform", "transform_name", type=click.Choice(["none", "train", "test"]),
              default="train", show_default=True,
              help="Also show each video as a Dataset sample after this transform: train "
                   "(multi-scale crop and random flip, as TSN training), test (centre crop), "
                   "or none.")
@click.option("--crop-size", type=click.IntRange(min=8), default=224, show_default=True,
              help="Crop size of the sample transform (flowkit train's --input-size).")
@click.option("--flip/--no-flip", default=True, show_default=True,
              help="Random horizontal flips in the train transform; --no-flip shows what "
                   "flowkit train --no-flip trains on.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the samples' random segments, crops and flips (each video draws "
                   "its own).")
@click.option("--max-magnitude", type=click.FloatRange(min=0, min_open=True),
              help="Flow length (px) shown fully saturated [default: the largest shown].")
@click.option("--max-height", type=click.IntRange(min=200), default=DEFAULT_MAX_HEIGHT,
              show_default=True,
              help="Largest height of the PNG in pixels: pictures shrink to fit, captions do not.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              callback=png_path, help="PNG file to write (named .png).")
def view_command(folder: Path, video_ids: tuple[str, ...], count: int, transform_name: str,
                 crop_size: int, flip: bool, seed: int, max_magnitude: float | None,
                 max_height: int, out_path: Path) -> None:
    """Write a PNG of RGB frames above their optical flow in Middlebury colours.

    Each row is labelled with the video, its class and the frame indices; below the stored
    frames comes each video as a training sample sees it (crop, scale, flip: a flipped flow is
    mirrored and its u negated), unless --transform none. A legend gives the colour wheel with
    its magnitude scale, the storage bound and the share of flow values clipped at it.
    """
    with open_shards(folder) as reader:
        if not reader.videos:
            raise click.UsageError(f"{folder} holds no successfully extracted video")
        video_ids = video_ids or (reader.videos[0],)
        for video_id in video_ids:
            if video_id not in reader:
                raise click.BadParameter(f"no stored video {video_id!r} in {folder}",
                                         param_hint="--video")
        videos = [reader[v] for v in video_ids]
        magnitude = max_magnitude or shown_magnitude(videos, count)
        panels = [video_panel(video, count, magnitude) for video in videos]
        legend = legend_panel(videos, magnitude)
    if transform_name != "none":
        from flowkit.data.transforms import CenterCrop, tsn_train_transform

        transform = (tsn_train_transform(crop_size, normalize=None, flip=flip)
                     if transform_name == "train" else CenterCrop(crop_size))
        panels += sample_panels(folder, video_ids, transform, count, seed, magnitude)
    image = compose([*panels, legend], max_height)
    save_png(out_path, image)
    samples = ("" if transform_name == "none" else
               f"; training samples: {describe_transform(transform)}, seed {seed}")
    click.echo(f"wrote {out_path} ({image.shape[1]}x{image.shape[0]} px; "
               f"{', '.join(video_ids)}{samples})")
