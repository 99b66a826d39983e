"""``flowkit predict``: classify video files with a trained run."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowkit.cli.options import protocol_options

EXAMPLES = """\b
Examples:
  flowkit predict runs/flow clip.mp4                      # the 5 most probable classes
  flowkit predict runs/rgb3d/best.pt videos/*.avi --top 1 --json
  flowkit predict runs/flow clip.mp4 --crops 10 --extract-config extract_config.json

\b
Videos are decoded, and flow computed, with the settings the run's shards were extracted
with (their extract_config.json), then sampled and cropped as flowkit eval does.
Exit codes: 0 every video classified; 1 some could not be decoded (each named in one line,
the others still classified); 2 bad run or settings.
"""


@click.command("predict", epilog=EXAMPLES)
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(min=1), default=5, show_default=True,
              help="Classes to report per video, most probable first.")
@protocol_options
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Videos per forward pass (each is segments x crops images).")
@click.option("--device", help="cpu, cuda or cuda:N, for the network and for flow backends "
                               "that run there [default: cuda when available].")
@click.option("--extract-config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Extraction settings to decode with [default: extract_config.json in the "
                   "run's shards folder].")
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object per video per line, in input order: {"video", "top": '
                   '[{"label", "name", "probability"}]}, or {"video", "error"}.')
def predict_command(run: Path, videos: tuple[Path, ...], top: int, segments: int, clips: int,
                    crops: str, batch_size: int, device: str | None,
                    extract_config: Path | None, as_json: bool) -> None:
    """Classify VIDEOS with a trained RUN (run folder or checkpoint file)."""
    from stddcn.data import Protocol
    from stddcn.predict import predict_videos

    results = predict_videos(run, videos, Protocol(segments, clips, int(crops)), top=top,
                             device=device, batch_size=batch_size,
                             extract_config=extract_config)
    for result in results:
        if as_json:
            click.echo(json.dumps(result.as_dict()))
        elif not result.ok:
            click.echo(f"failed: {result.error}", err=True)
        else:
            click.echo(result.video)
            for rank, score in enumerate(result.top, 1):
                click.echo(f"  {rank}. {score.name} {100 * score.probability:.1f}%")
    if not all(result.ok for result in results):
        raise SystemExit(1)
