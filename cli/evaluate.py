"""``flowkit eval``: test a trained run with the TSN / I3D protocol."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowkit.cli.options import protocol_options

EXAMPLES = """\b
Examples:
  flowkit eval runs/flow                                  # the run's data and val split
  flowkit eval runs/flow --data shards/ --split ucfTrainTestlist/testlist01.txt --crops 10
  flowkit eval runs/rgb3d/best.pt --clips 10 --crops 3 --json
  flowkit eval runs/fused --head flow                     # one stream of a fusion

\b
Writes predictions.csv, confusion.png and eval.json beside the checkpoint (or into --out).
"""


@click.command("eval", epilog=EXAMPLES)
@click.argument("run", type=click.Path(exists=True, path_type=Path))
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False),
              help="Shards folder to test on [default: the one the run trained on].")
@click.option("--split", type=click.Path(exists=True, dir_okay=False),
              help="Test split: UCF101 testlist, HMDB51 split file (its test part) or CSV "
                   "[default: the run's --val-split].")
@protocol_options
@click.option("--head", help="Score with this named head of a several-headed model (e.g. rgb "
                             "or flow of a two-stream run) [default: the model's prediction].")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True,
              help="Videos per forward pass (each is segments x crops images).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="DataLoader worker processes.")
@click.option("--device", help="cpu, cuda or cuda:N [default: cuda when available].")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Arithmetic [default: the run's training precision; fp16 runs score in "
                   "fp32 off CUDA].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for predictions.csv, confusion.png and eval.json [default: the "
                   "checkpoint's folder].")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: top1, top5, mean_class_accuracy, num_videos.")
def eval_command(run: Path, data_root: str | None, split: str | None, segments: int,
                 clips: int, crops: str, head: str | None, batch_size: int, workers: int,
                 device: str | None, precision: str | None, out_dir: Path | None,
                 as_json: bool) -> None:
    """Top-1, top-5 and mean class accuracy of a run (folder or checkpoint file) on a split."""
    from stddcn import checkpoint
    from stddcn.data import Protocol
    from stddcn.evaluate import evaluate_run

    if data_root is None:
        data_root = checkpoint.config_of(checkpoint.load(checkpoint.find(run))).data.root
    result = evaluate_run(run, data_root, split, Protocol(segments, clips, int(crops)),
                          head=head, device=device, batch_size=batch_size, workers=workers,
                          precision=precision, out_dir=out_dir)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    accuracy = result.accuracy
    click.echo(f"{result.checkpoint}: top-1 {100 * accuracy.top1:.2f}%, top-5 "
               f"{100 * accuracy.top5:.2f}%, mean class accuracy "
               f"{100 * accuracy.mean_class_accuracy:.2f}% over {accuracy.num_videos} videos")
    click.echo(f"wrote {result.predictions_csv} and {result.confusion_png}")
