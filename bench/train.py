"""Training throughput: clips/s and the share of step time spent waiting for data.

Three kinds of batch, each trained by ``stddcn.train.train`` exactly as ``flowkit train`` runs:
TSN RGB segments and TSN flow stacks (the two streams of a two-stream network) and 3D RGB clips.
Each with uint8 items normalised on the training device (flowkit's default) and with float32
items normalised in the DataLoader workers (the classic pipeline), side by side in one run;
with several precisions when asked (bf16 against fp32 on a GPU). Figures are the mean of the
epochs after the first (which pays for worker start-up and warm-up), from the run's log.jsonl:
clips/s over all the epoch's wall time, and the share of that time the training process spent
blocked on the DataLoader.

Synthetic 340x256 videos (TSN's frame size), Farneback flow (its values do not matter here),
4 steps per epoch.

    python bench/train.py                                   # CPU-sized: tiny backbones, 112 px
    python bench/train.py --device cuda --arch resnet50 --arch3d r2plus1d-18 --input-size 224 \\
        --input-size-3d 112 --batch-size 32 --precision fp32,bf16
    python bench/train.py --device cuda --kinds stddcn,d3d --arch resnet50 --arch3d r2plus1d-18 \\
        --input-size 224 --batch-size 32 --precision bf16       # the distilled networks
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from common import machine, require_all_ok

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.video.synth import SynthConfig, make_synthetic_videos
from stddcn.config import DataConfig, ModelConfig, OptimConfig, TrainConfig
from stddcn.runlog import read_log
from stddcn.train import train

STEPS_PER_EPOCH = 4


def make_shards(folder: Path, videos: int, frames: int, workers: int) -> tuple[Path, Path]:
    """Synthetic labelled videos, extracted with Farneback flow; and a CSV split of them."""
    make_synthetic_videos(folder / "videos", SynthConfig(num_videos=videos, num_frames=frames))
    report = extract(collect_videos([folder / "videos" / "labels.txt"]), folder / "shards",
                     ExtractConfig(flow="farneback"), workers=workers, progress=False)
    require_all_ok(report)
    rows = [line.split() for line in (folder / "videos" / "labels.txt").read_text().splitlines()]
    split = folder / "split.csv"
    split.write_text("".join(f"{video},{label}\n" for video, label in rows))
    return folder / "shards", split


def measure(shards: Path, split: Path, out: Path, model: str, arch: str, size: int,
            args: argparse.Namespace, device_normalize: bool, precision: str,
            teacher: Path | None = None) -> dict:
    """Train ``args.epochs`` epochs; the mean clips/s and data-wait share after the first,
    and on CUDA the peak GPU memory allocated (GiB)."""
    config = TrainConfig(
        out=str(out), model=ModelConfig(name=model, num_classes=0, arch=arch),
        data=DataConfig(root=str(shards), split=str(split), input_size=size,
                        batch_size=args.batch_size, workers=args.workers, clip_len=16,
                        frame_stride=2, device_normalize=device_normalize),
        optim=OptimConfig(lr=0.001), epochs=args.epochs, device=args.device,
        precision=precision, log_every=1000, teacher=str(teacher) if teacher else None)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    train(config)
    epochs = read_log(out, "epoch")[1:]
    memory = (torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda")
              else None)
    return {"clips_per_s": sum(e["clips_per_s"] for e in epochs) / len(epochs),
            "data_wait": sum(e["data_wait"] for e in epochs) / len(epochs),
            "gpu_memory_gib": memory}


def make_teacher(shards: Path, split: Path, folder: Path, args: argparse.Namespace) -> Path:
    """A flow3d run (one epoch) for d3d to distil from: its speed is what is measured, not
    what it learnt."""
    config = TrainConfig(
        out=str(folder), model=ModelConfig(name="flow3d", num_classes=0, arch=args.arch3d),
        data=DataConfig(root=str(shards), split=str(split), input_size=args.input_size_3d,
                        batch_size=args.batch_size, workers=args.workers, clip_len=16),
        epochs=1, device=args.device, log_every=1000)
    train(config)
    return folder


def backbone(kind: str, args: argparse.Namespace) -> tuple[str, int]:
    """The backbone and input side of a kind of batch."""
    if kind.endswith("3d") or kind == "d3d":
        return args.arch3d, args.input_size_3d
    return args.arch, args.input_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", default="resnet-tiny", help="2D backbone")
    parser.add_argument("--arch3d", default="r3d-tiny", help="3D backbone")
    parser.add_argument("--input-size", type=int, default=112, help="2D input side")
    parser.add_argument("--input-size-3d", type=int, default=112, help="3D input side")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per synthetic video")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="DataLoader workers (default: every core)")
    parser.add_argument("--precision", default="fp32", help="comma-separated: fp32,bf16")
    parser.add_argument("--kinds", default="rgb,flow,rgb3d",
                        help="comma-separated models: rgb, flow, rgb3d, stddcn, d3d (trains "
                             "its own flow3d teacher first)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="repeat every measurement, interleaved; figures are the mean")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(f"machine: {machine()}; device {args.device}")
    cases = [(kind, precision, on_device) for kind in args.kinds.split(",")
             for precision in args.precision.split(",") for on_device in (True, False)]
    figures: dict[tuple, list[dict]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shards, split = make_shards(tmp, args.batch_size * STEPS_PER_EPOCH, args.frames,
                                    os.cpu_count() or 1)
        teacher = (make_teacher(shards, split, tmp / "teacher", args)
                   if "d3d" in args.kinds.split(",") else None)
        for round_ in range(args.rounds):
            for kind, precision, on_device in cases:
                arch, size = backbone(kind, args)
                name = f"{kind}-{precision}-{'device' if on_device else 'workers'}-{round_}"
                figures[kind, precision, on_device].append(
                    measure(shards, split, tmp / name, kind, arch, size, args, on_device,
                            precision, teacher if kind == "d3d" else None))
                last = figures[kind, precision, on_device][-1]
                print(f"round {round_}: {name}: {last['clips_per_s']:.1f} clips/s, data wait "
                      f"{100 * last['data_wait']:.1f}%", flush=True)
    results = []
    for (kind, precision, on_device), rounds in figures.items():
        arch, size = backbone(kind, args)
        results.append({"kind": kind, "arch": arch, "input": size, "precision": precision,
                        "items": "uint8, device-normalised" if on_device
                        else "float32, worker-normalised",
                        "clips_per_s": sum(r["clips_per_s"] for r in rounds) / len(rounds),
                        "data_wait": sum(r["data_wait"] for r in rounds) / len(rounds),
                        "gpu_memory_gib": max((r["gpu_memory_gib"] or 0) for r in rounds)
                        or None, "rounds": rounds})
    print("\n| batch | backbone, input | precision | items | clips/s | data wait | GPU memory |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for row in results:
        memory = f"{row['gpu_memory_gib']:.1f} GiB" if row["gpu_memory_gib"] else "-"
        print(f"| {row['kind']} | {row['arch']}, {row['input']} px | {row['precision']} | "
              f"{row['items']} | {row['clips_per_s']:.1f} | {100 * row['data_wait']:.0f}% | "
              f"{memory} |")
    for first, second in zip(results[::2], results[1::2]):
        print(f"{first['kind']} {first['precision']}: uint8 / float32 clips/s = "
              f"{first['clips_per_s'] / second['clips_per_s']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
