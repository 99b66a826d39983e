"""``flowkit export`` and ``flowkit import``: MMAction2 / denseflow rawframe folders."""

from __future__ import annotations

from pathlib import Path

import click

from flowkit.interop import (FLOW_FORMATS, FLOW_LIST_NAME, LAYOUTS, LIST_NAME,
                             export_rawframes, import_rawframes)

_LAYOUT_HELP = ("File naming: mmaction2 = img_00001.jpg, x_00001.jpg, y_00001.jpg (1-based); "
                "denseflow = img_00000.jpg, flow_x_00000.jpg, flow_y_00000.jpg (0-based).")

EXPORT_EXAMPLES = """\b
Examples:
  flowkit export ucf101_tvl1/ --out rawframes/                # MMAction2 names
  flowkit export ucf101_tvl1/ --out rawframes/ --layout denseflow
  flowkit export ucf101_tvl1/ --out rawframes/ --flow-format png   # lossless flow
  flowkit export out/ --out frames/ --video walk/a.avi --video run/b.avi

\b
Writes one folder per video (its id without extension), rawframes_list.txt
("video_dir num_frames label", label -1 when unknown) for RGB pipelines,
rawframes_list_flow.txt (the same with the number of flows, one fewer) for
MMAction2's Flow pipelines (it reads x/y files 1..total_frames), and flowkit_export.json
(layout, bound, flow step: what an import needs to round-trip). JPEG-stored RGB
and flow are written byte for byte; other flow becomes grayscale JPEG at quality 95,
which moves values at motion edges (up to 9 quantisation steps, 1.41 px at bound
20, on the motion laboratory; docs/interop.md). --flow-format png writes
x/y_00001.png instead: lossless, read back exactly as stored (MMAction2:
filename_tmpl "{}_{:05d}.png").
"""

IMPORT_EXAMPLES = """\b
Examples:
  flowkit import rawframes/ --layout mmaction2 --bound 20 --out packed/
  flowkit import denseflow_out/ --layout denseflow --bound 15 --labels train.txt --out packed/
  flowkit import rawframes/ --out packed/   # layout and bound from flowkit_export.json

\b
Each FOLDER is one video's folder or a root searched recursively (video id = path
relative to it). Shards record flow_backend "imported" and the --bound you give.
Exit codes: 0 all videos ok; 1 some failed (listed); 2 usage error; 3 could not go on.
"""


@click.command("export", epilog=EXPORT_EXAMPLES)
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for one rawframe folder per video and the annotation lists.")
@click.option("--layout", type=click.Choice(LAYOUTS), default="mmaction2", show_default=True,
              help=_LAYOUT_HELP)
@click.option("--video", "video_ids", multiple=True,
              help="Video id to export; repeat for several [default: every video stored ok].")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality for RGB stored raw (JPEG-stored RGB is copied as it is).")
@click.option("--flow-format", type=click.Choice(FLOW_FORMATS), default="jpeg",
              show_default=True,
              help="Image format of the flow x/y planes: jpeg (as denseflow writes; lossy "
                   "unless the shards store flow as JPEG) or png (lossless: the stored uint8 "
                   "values exactly; MMAction2 reads it with filename_tmpl '{}_{:05d}.png').")
@click.option("--overwrite", is_flag=True,
              help="Replace rawframe files already in the video folders under --out.")
def export_command(folder: Path, out_dir: Path, layout: str, video_ids: tuple[str, ...],
                   jpeg_quality: int, flow_format: str, overwrite: bool) -> None:
    """Write an output folder's videos as MMAction2 / denseflow rawframe folders."""
    export_rawframes(folder, out_dir, layout, list(video_ids) or None,
                     jpeg_quality=jpeg_quality, flow_format=flow_format, overwrite=overwrite)
    lines = (out_dir / LIST_NAME).read_text().splitlines()
    lists = f"RGB list {out_dir / LIST_NAME}"
    if (out_dir / FLOW_LIST_NAME).exists():
        lists += f", flow list {out_dir / FLOW_LIST_NAME}"
    click.echo(f"{out_dir}: {len(lines)} videos in {layout} layout; {lists}")


@click.command("import", epilog=IMPORT_EXAMPLES)
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for shards, manifest.sqlite and extract_config.json.")
@click.option("--layout", type=click.Choice(LAYOUTS),
              help=_LAYOUT_HELP + " Required unless a FOLDER holds flowkit_export.json (from "
                                  "flowkit export), which records it.")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True),
              help="Flow bound B (px) the flow JPEGs were quantised with; stored in the shards. "
                   "Required unless a FOLDER holds flowkit_export.json (from flowkit export).")
@click.option("--step", type=click.IntRange(min=1),
              help="Frames between the two frames of a flow [default: from "
                   "flowkit_export.json, else 1].")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="MMAction2 annotation list 'video_dir num_frames label' (-1 = unknown) "
                   "[default: rawframes_list.txt next to a flowkit_export.json].")
@click.option("--videos-per-shard", type=click.IntRange(min=1),
              help="Videos per shard file [default: automatic, at most 100].")
@click.option("--no-decode-check", is_flag=True,
              help="Check only each JPEG's start/end markers, not a full decode (faster; "
                   "the flow statistics shown by flowkit info are then unknown).")
@click.option("--overwrite", is_flag=True, help="Delete earlier flowkit output in --out first.")
def import_command(folders: tuple[Path, ...], out_dir: Path, layout: str | None,
                   bound: float | None, step: int | None, labels: Path | None,
                   videos_per_shard: int | None, no_decode_check: bool,
                   overwrite: bool) -> None:
    """Pack MMAction2 / denseflow rawframe folders into shards, keeping the JPEG bytes."""
    report = import_rawframes(folders, out_dir, layout, bound, flow_step=step, labels=labels,
                              videos_per_shard=videos_per_shard,
                              check_decode=not no_decode_check, overwrite=overwrite)
    click.echo(f"{report.out_dir}: {report.total} videos, {report.ok} ok, "
               f"{len(report.failed)} failed")
    for note in report.notes:
        click.echo(f"note: {note}")
    for entry in report.failed:
        click.echo(f"failed: {entry.video_id}: {entry.error}")
    if not report.all_ok:
        raise SystemExit(1)
