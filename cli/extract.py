"""``flowkit extract``: videos to shards."""

from __future__ import annotations

from pathlib import Path

import click

from flowkit.cli.options import (flow_config_from_options, flow_methods_help,
                                 flow_parameter_options, parse_devices, parse_size,
                                 precision_option)
from flowkit.config import DECODE_ERROR_CHOICES, ExtractConfig
from flowkit.extract import extract
from flowkit.flow import list_backends
from flowkit.inputs import VIDEO_EXTENSIONS, collect_videos
from flowkit.partitions import check_partition, select_partition
from flowkit.shards import COMPRESSIONS, FLOW_DTYPES, RGB_FORMATS, StorageConfig
from flowkit.video import DecodeConfig

EXAMPLES = """\b
Examples:
  flowkit extract UCF101/ --out ucf101_tvl1               # every video under UCF101/
  flowkit extract trainlist01.txt --list-root UCF101/ --out ucf101_tvl1
  flowkit extract clips/ --out out --flow farneback --rgb none --workers 8
  flowkit extract clips/ --out out --tvl1-nscales 3 --bound 15 --short-side 0
  flowkit extract UCF101/ --out ucf101_raft --flow raft --raft-weights raft-things.pth \\
      --devices 0,1 --batch-size 32 --precision bf16
  flowkit extract UCF101/ --out part3 --num-partitions 8 --partition 3   # one job of 8
  flowkit merge ucf101_tvl1 part0 part1 part2 part3 part4 part5 part6 part7
  flowkit extract /nfs/UCF101/ --out /nfs/ucf101_tvl1 --dask tcp://scheduler:8786

\b
Rerunning the same command resumes: videos the manifest holds as done are skipped.
Exit codes: 0 all videos ok; 1 some failed (listed at the end); 2 usage error or
folder locked; 3 the run could not go on.
"""


@click.command("extract", epilog=EXAMPLES)
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder for shards, manifest.json and extract_config.json.")
@click.option("--ext", default=",".join(VIDEO_EXTENSIONS), show_default=True,
              help="Comma-separated video extensions to take when walking folders.")
@click.option("--list-root", type=click.Path(file_okay=False, path_type=Path),
              help="Folder that paths in list files are relative to [default: the list's folder].")
@click.option("--short-side", type=click.IntRange(min=0), default=256, show_default=True,
              help="Resize so the shorter side has this many pixels (0 keeps the native size).")
@click.option("--size", callback=parse_size,
              help="Resize to exactly WIDTHxHEIGHT (e.g. 340x256); overrides --short-side.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True),
              help="Resample to this frame rate [default: keep every decoded frame].")
@click.option("--step", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames between the two frames of a flow pair: flow k maps frame k*step to (k+1)*step.")
@click.option("--flow", "flow_method", type=click.Choice([*list_backends(), "none"]),
              default="tvl1", show_default=True, help=f"Flow method. {flow_methods_help()}; none: RGB only.")
@click.option("--flow-dtype", type=click.Choice(FLOW_DTYPES), default="uint8", show_default=True,
              help="Flow storage: uint8 quantised within +-bound (lossless after quantising), "
                   "float16, or jpeg (the uint8 x and y as grayscale JPEGs at --jpeg-quality, "
                   "like denseflow/MMAction2 folders: about half the size, lossy).")
@click.option("--bound", type=click.FloatRange(min=0, min_open=True), default=20.0,
              show_default=True, help="Flow bound B in pixels for uint8 storage (values beyond saturate).")
@click.option("--rgb", "rgb_format", type=click.Choice(RGB_FORMATS), default="jpeg",
              show_default=True, help="RGB frame storage: JPEG bytes, raw uint8 arrays, or none.")
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality of stored RGB frames.")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default="gzip", show_default=True,
              help="HDF5 filter for flow and raw RGB chunks (gzip level 1 measured smallest and "
                   "fastest to read; see docs/benchmarks.md).")
@click.option("--gzip-level", type=click.IntRange(0, 9), default=1, show_default=True,
              help="Level when --compression gzip.")
@click.option("--videos-per-shard", type=click.IntRange(min=1),
              help="Videos per shard file [default: automatic, at most 100].")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes, each writing its own shards; the arrays written do not "
                   "depend on it [default: number of CPU cores; no effect with --dask].")
@click.option("--threads", type=click.IntRange(min=1),
              help="OpenCV threads in each worker [default: CPU cores / workers].")
@click.option("--device", default="cpu", show_default=True,
              help="Device for the PyTorch flow methods (cpu, cuda, cuda:N); OpenCV's run on cpu.")
@click.option("--devices", callback=parse_devices,
              help="Several GPUs, e.g. 0,1,2,3: one flow process per GPU, fed by all workers "
                   "(overrides --device; with --no-flow-server, workers take turns on the GPUs, "
                   "one per GPU by default).")
@click.option("--flow-server/--no-flow-server", default=None,
              help="Compute flow in one process per device holding one model, fed batches of "
                   "frame pairs across videos by the workers, which decode, encode and write "
                   "(all cores by default) [default: on with a GPU --device or --devices, off "
                   "on the CPU].")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Run the shards as tasks on this Dask scheduler (e.g. tcp://host:8786) instead "
                   "of local workers. Workers must see --out and the videos at the same paths "
                   "(a shared file system; checked first). Needs: pip install flowkit[dask].")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Frame pairs per flow backend call (one forward pass for the PyTorch methods).")
@precision_option
@click.option("--on-decode-error", type=click.Choice(DECODE_ERROR_CHOICES), default="fail",
              show_default=True,
              help="A video that fails to decode part-way or is truncated (ends clearly short of "
                   "its container's duration): fail records it as failed; keep stores the frames "
                   "before the error as ok, with a warning in the manifest. Must match on resume.")
@click.option("--num-partitions", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the videos into this many partitions by a stable hash of their ids "
                   "(for job arrays); this run extracts only --partition. Join the folders "
                   "with flowkit merge.")
@click.option("--partition", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which partition this run extracts, 0-based, below --num-partitions.")
@click.option("--overwrite", is_flag=True, help="Delete earlier flowkit output in --out first.")
@click.option("--retry-failed", is_flag=True, help="Try the videos that failed before again.")
@click.option("--repair", is_flag=True,
              help="Run flowkit verify first and extract the videos it finds damaged (checksum "
                   "mismatch, unreadable data, unreadable shard) again, into new shards.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary.")
@flow_parameter_options
def extract_command(inputs: tuple[Path, ...], out_dir: Path, ext: str, list_root: Path | None,
                    short_side: int, size: tuple[int, int] | None, fps: float | None, step: int,
                    flow_method: str, flow_dtype: str, bound: float, rgb_format: str,
                    jpeg_quality: int, compression: str, gzip_level: int,
                    videos_per_shard: int | None, workers: int | None, threads: int | None,
                    device: str, devices: tuple[str, ...], flow_server: bool | None,
                    dask_address: str | None,
                    batch_size: int, precision: str, on_decode_error: str, num_partitions: int,
                    partition: int, overwrite: bool, retry_failed: bool, repair: bool,
                    quiet: bool, **flow_params: object) -> None:
    """Decode videos and write RGB frames and optical flow into HDF5 shards.

    INPUTS are video files, folders (searched recursively) or list files (.txt: one path
    per line, optionally followed by an integer label, as UCF101's trainlist01.txt).
    """
    check_partition(num_partitions, partition)
    config = ExtractConfig(
        decode=DecodeConfig(short_side=short_side or None, size=size, fps=fps),
        flow=flow_method,
        flow_params=flow_config_from_options(flow_method, flow_params, precision),
        flow_step=step,
        storage=StorageConfig(rgb=rgb_format, jpeg_quality=jpeg_quality, flow_dtype=flow_dtype,
                              bound=bound, compression=compression, gzip_level=gzip_level),
        device=device, devices=devices, batch_size=batch_size, on_decode_error=on_decode_error)
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
