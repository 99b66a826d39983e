"""``flowkit info``, ``flowkit verify`` and ``flowkit preview``: looking at an output folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowkit.preview import videos_preview
from flowkit.reader import open_shards
from flowkit.summary import summarize
from flowkit.verify import verify
from flowkit.viz import save_png

_FOLDER = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("info", epilog="\b\nExamples:\n  flowkit info out/\n  flowkit info out/ --json | jq '.videos[] | select(.status == \"failed\")'")
@click.argument("folder", type=_FOLDER)
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (totals, parameters, and a 'videos' list) instead of text.")
def info_command(folder: Path, as_json: bool) -> None:
    """Totals, failures, parameters and bytes on disk of an output folder."""
    summary = summarize(folder)
    click.echo(json.dumps(summary.to_json(), indent=1) if as_json else summary.to_text())


@click.command("verify", epilog="\b\nExit code 0 only if every check passes; 1 otherwise.")
@click.argument("folder", type=_FOLDER)
@click.option("--quiet", "-q", is_flag=True, help="Print only problems and the verdict.")
def verify_command(folder: Path, quiet: bool) -> None:
    """Read every frame and flow back and check counts and shapes against the manifest."""
    progress = None
    if not quiet:
        progress = lambda video_id: click.echo(f"checking {video_id}", err=True)  # noqa: E731
    problems = verify(folder, on_video=progress)
    for problem in problems:
        click.echo(f"problem: {problem}")
    if problems:
        click.echo(f"{folder}: {len(problems)} problem(s)")
        raise SystemExit(1)
    click.echo(f"{folder}: all consistent")


@click.command("preview", epilog="\b\nExamples:\n  flowkit preview out/ --out first.png\n  flowkit preview out/ --video walk/a.avi --video run/b.avi --frames 6 --out two.png")
@click.argument("folder", type=_FOLDER)
@click.option("--video", "video_ids", multiple=True,
              help="Video id to show; repeat for several, one below the other "
                   "[default: the first one stored].")
@click.option("--frames", "count", type=click.IntRange(min=1), default=4, show_default=True,
              help="Number of frames per video, spread evenly over it.")
@click.option("--max-magnitude", type=click.FloatRange(min=0, min_open=True),
              help="Flow length (px) shown fully saturated [default: the largest shown].")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
def preview_command(folder: Path, video_ids: tuple[str, ...], count: int,
                    max_magnitude: float | None, out_path: Path) -> None:
    """Write a PNG of RGB frames above their optical flow in Middlebury colours."""
    with open_shards(folder) as reader:
        if not reader.videos:
            raise click.UsageError(f"{folder} holds no successfully extracted video")
        video_ids = video_ids or (reader.videos[0],)
        for video_id in video_ids:
            if video_id not in reader:
                raise click.BadParameter(f"no stored video {video_id!r} in {folder}",
                                         param_hint="--video")
        image = videos_preview([reader[v] for v in video_ids], count, max_magnitude)
    save_png(out_path, image)
    click.echo(f"wrote {out_path} ({', '.join(video_ids)})")
