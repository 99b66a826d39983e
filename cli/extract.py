"""``flowkit extract``: videos to shards."""

from __future__ import annotations

from pathlib import Path

import click

from flowkit.cli.grouped import GroupedCommand
from flowkit.cli.options import (BACKENDS_NOTE, flow_config_from_options, flow_parameter_options,
                                 parse_devices, parse_size, precision_option)
from flowkit.config import DECODE_ERROR_CHOICES, ExtractConfig
from flowkit.extract.inputs import VIDEO_EXTENSIONS, collect_videos
from flowkit.extract.partitions import check_partition, select_partition
from flowkit.extract.run import extract
from flowkit.flow import list_backends
from flowkit.store.writer import COMPRESSIONS, FLOW_DTYPES, RGB_FORMATS, StorageConfig
from flowkit.video.decode import DecodeConfig

EXAMPLES = """\b
Examples (more in README.md, with the exit codes; rerunning a command resumes it):
  flowkit extract trainlist01.txt --list-root UCF101/ --out ucf101_tvl1 --workers 8
  flowkit extract UCF101/ --out raft --flow raft --raft-weights raft-things.pth --devices 0,1
"""


# --help shows the options under these headings (GroupedCommand); names are parameter names.
GROUPS = {
    "Inputs": ["ext", "list_root", "short_side", "size", "fps"],
    "Flow": ["flow_method", "step", "device", "batch_size", "precision"],
    "Storage": ["out_dir", "rgb_format", "jpeg_quality", "flow_dtype", "bound", "compression",
                "gzip_level", "videos_per_shard"],
    "Parallelism": ["workers", "threads", "devices", "flow_server", "dask_address",
                    "num_partitions", "partition"],
    "Run": ["on_decode_error", "check_decode", "overwrite", "retry_failed", "repair", "quiet"],
}


@click.command("extract", cls=GroupedCommand, groups=GROUPS, notes={"Flow": BACKENDS_NOTE},
               epilog=EXAMPLES)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for the shards and their manifest.")
@click.option("--ext", default=",".join(VIDEO_EXTENSIONS), show_default=True,
              help="Video extensions to take from folders.")
@click.option("--list-root", type=click.Path(file_okay=False, path_type=Path),
              help="Root of the paths in list files [default: the list's folder].")
@click.option("--short-side", type=click.IntRange(min=0), default=256, show_default=True,
              help="Short side after resizing (0: no resize).")
@click.option("--size", callback=parse_size,
              help="Resize to WIDTHxHEIGHT (e.g. 340x256); overrides --short-side.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Resample to this frame rate [default: keep all frames].")
@click.option("--step", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames between the two frames of a flow.")
@click.option("--flow", "flow_method", type=click.Choice([*list_backends(), "none"]),
              default="tvl1", show_default=True, help="Flow method; none: RGB only.")
@click.option("--flow-dtype", type=click.Choice(FLOW_DTYPES), default="uint8", show_default=True,
              help="uint8 quantised within +-bound, float16, or jpeg (that uint8 as "
                   "grayscale JPEGs: half the size, lossy).")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True), default=20.0,
              show_default=True,
              help="Flow bound in px (uint8, jpeg storage).")
@click.option("--rgb", "rgb_format", type=click.Choice(RGB_FORMATS), default="jpeg",
              show_default=True, help="RGB frames as JPEG, raw uint8 arrays, or none.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality of stored RGB frames.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="gzip", show_default=True,
              help="HDF5 filter of flow and raw RGB chunks.")
@click.option("--gzip-level", type=click.IntRange(0, 9), default=1, show_default=True,
              help="Level when --compression gzip.")
@click.option("--videos-per-shard", type=click.IntRange(min=1),
              help="Videos per shard file [default: automatic, at most 100].")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes [default: number of CPU cores].")
@click.option("--threads", type=click.IntRange(min=1),
              help="OpenCV threads per worker [default: cores / workers].")
@click.option("--device", default="cpu", show_default=True,
              help="Device of PyTorch methods: cpu, cuda, cuda:N.")
@click.option("--devices", callback=parse_devices,
              help="GPUs, e.g. 0,1: one flow process per GPU (overrides --device).")
@click.option("--flow-server/--no-flow-server", default=None,
              help="One model per device, fed across videos [default: GPUs].")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the shards on this Dask scheduler (shared file system).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Frame pairs per call of the flow method.")
@precision_option
@click.option("--on-decode-error", type=click.Choice(DECODE_ERROR_CHOICES), default="fail",
              show_default=True,
              help="A broken-off video: fail, or keep its frames.")
@click.option("--num-partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the videos into this many partitions.")
@click.option("--partition", type=click.IntRange(min=0), default=0, show_default=True,
              help="Partition this run extracts, 0-based.")
@click.option("--no-check-decode", "check_decode", flag_value=False, default=True,
              help="Skip the pass that fails a broken video before its flow.")
@click.option("--overwrite", is_flag=True, help="Delete earlier flowkit output in --out first.")
@click.option("--retry-failed", is_flag=True, help="Try the videos that failed before again.")
@click.option("--repair", is_flag=True,
              help="Extract again the videos flowkit verify finds damaged.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
@flow_parameter_options
def extract_command(inputs: tuple[Path, ...], out_dir: Path, ext: str, list_root: Path | None,
                    short_side: int, size: tuple[int, int] | None, fps: float | None, step: int,
                    flow_method: str, flow_dtype: str, bound: float, rgb_format: str,
                    jpeg_quality: int, compression: str, gzip_level: int,
                    videos_per_shard: int | None, workers: int | None, threads: int | None,
                    device: str, devices: tuple[str, ...], flow_server: bool | None,
                    dask_address: str | None,
                    batch_size: int, precision: str, on_decode_error: str, check_decode: bool,
                    num_partitions: int,
                    partition: int, overwrite: bool, retry_failed: bool, repair: bool,
                    quiet: bool, **flow_params: object) -> None:
    """Decode videos and write RGB frames and optical flow into HDF5 shards.

    INPUTS are video files, folders (recursive) or list files (a path and label per line).
    """
    check_partition(num_partitions, partition)
    config = ExtractConfig(
        decode=DecodeConfig(short_side=short_side, size=size, fps=fps),
        flow=flow_method,
        flow_params=flow_config_from_options(flow_method, flow_params, precision),
        flow_step=step,
        storage=StorageConfig(rgb=rgb_format, jpeg_quality=jpeg_quality, flow_dtype=flow_dtype,
                              bound=bound, compression=compression, gzip_level=gzip_level),
        device=device, devices=devices, batch_size=batch_size, on_decode_error=on_decode_error,
        check_decode=check_decode)
    sources = collect_videos(inputs, extensions=ext.split(","), list_root=list_root)
    if not sources:
        raise click.UsageError(f"no videos with extensions {ext} found in the inputs")
    if num_partitions > 1:
        total = len(sources)
        sources = select_partition(sources, num_partitions, partition)
        click.echo(f"partition {partition} of {num_partitions}: {len(sources)} of {total} videos",
                   err=True)
    report = extract(sources, out_dir, config, workers=workers, threads=threads,
                     videos_per_shard=videos_per_shard,
                     overwrite=overwrite, retry_failed=retry_failed, repair=repair,
                     progress=not quiet, dask=dask_address, flow_server=flow_server)
    rate = report.frames / report.seconds if report.seconds else 0.0
    click.echo(f"{report.out_dir}: {report.total} videos, {report.ok} ok, {len(report.failed)} "
               f"failed; this run: {report.processed} videos, {report.frames} frames in "
               f"{report.seconds:.1f} s ({rate:.1f} frames/s), {report.skipped} already done")
    for entry in report.warned:
        click.echo(f"kept with a warning: {entry.video_id}: {entry.num_frames} frames; "
                   f"{entry.warning}")
    for video_id in report.repaired:
        click.echo(f"repaired: {video_id}")
    for entry in report.failed:
        click.echo(f"failed: {entry.video_id}: {entry.error}")
    if not report.all_ok:
        raise SystemExit(1)
