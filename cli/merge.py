"""``flowkit merge``: partition folders into one output folder."""

from __future__ import annotations

from pathlib import Path

import click

from flowkit.extract.merge import merge

EXAMPLES = """\b
Examples:
  flowkit extract UCF101/ --out parts/0 --num-partitions 4 --partition 0   # ... up to 3
  flowkit merge parts/0 parts/1 parts/2 parts/3 --out ucf101_tvl1
  flowkit merge parts/* --out ucf101_tvl1 --move       # empties the partitions

\b
Interrupted? Rerun the same command: it completes the merge (the folder has no
manifest.sqlite, and so is not readable, until the merge ends).
"""


@click.command("merge", epilog=EXAMPLES)
@click.argument("parts", metavar="PART...", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="New output folder for the merged shards and manifest.sqlite (empty or "
                   "absent).")
@click.option("--move", is_flag=True,
              help="Move the shard files out of the partitions instead of hard-linking them "
                   "(or copying them, across file systems); the partitions are unusable after.")
def merge_command(out_dir: Path, parts: tuple[Path, ...], move: bool) -> None:
    """Join the finished partition folders PART... (flowkit extract --num-partitions) into
    the new folder --out: shards renumbered, never rewritten; one manifest of every video.

    The partitions must share their output settings and hold no video twice.
    """
    report = merge(out_dir, parts, move=move)
    how = ", ".join(f"{count} {way}" for way, count in report.shards.items() if count)
    click.echo(f"{report.out_dir}: {report.videos} videos ({report.ok} ok, {report.failed} "
               f"failed) from {len(parts)} partitions; shard files: {how or 'none'}")
