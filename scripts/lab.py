"""The motion laboratory of docs/results.md, from nothing to the table: make the labelled
videos, extract TV-L1 flow, train every model with several seeds, test each on the held-out
split, and print mean +- std test accuracy with every command it ran.

    python scripts/lab.py [--out lab] [--seeds 0,1,2] [--models rgb,flow,two-stream,rgb3d,flow3d]

Steps already done (a shards folder, a run with last.pt, an eval.json) are skipped, so an
interrupted run continues where it stopped. Needs only the flowkit command (pip install .).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

FLOWKIT = [sys.executable, "-m", "flowkit.cli.main"]
# Shared by every run: tiny backbones at the lab's 64 px (56 px crops), no flips (the classes
# include left and right), AdamW with a cosine schedule; no selection on the test split.
COMMON = ["--input-size", "56", "--no-flip", "--optimizer", "adamw", "--lr", "0.002",
          "--weight-decay", "0.05", "--schedule", "cosine", "--dropout", "0.2",
          "--batch-size", "16", "--workers", "2", "--device", "cpu"]
SETTINGS = {"rgb": ["--arch", "resnet-tiny", "--epochs", "30"],
            "flow": ["--arch", "resnet-tiny", "--epochs", "30"],
            "rgb3d": ["--arch", "r3d-tiny", "--epochs", "30", "--clip-len", "8",
                      "--frame-stride", "2"],
            "flow3d": ["--arch", "r3d-tiny", "--epochs", "30", "--clip-len", "8",
                       "--frame-stride", "2"]}
FUSED = {"two-stream": ("rgb", "flow")}


def run(command: list[str], log: Path) -> None:
    """Run a flowkit command, print it, stop the lab if it fails."""
    shown = "flowkit " + " ".join(shlex.quote(part) for part in command[len(FLOWKIT):])
    print(f"$ {shown}", flush=True)
    with open(log, "a") as handle:
        handle.write(f"$ {shown}\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"failed (exit {done.returncode}); see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lab"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="rgb,flow,two-stream,rgb3d,flow3d")
    parser.add_argument("--classes", default="8")
    parser.add_argument("--videos-per-class", default="30")
    args = parser.parse_args()
    out, log = args.out, args.out / "lab.log"
    out.mkdir(parents=True, exist_ok=True)
    videos, shards = out / "videos", out / "shards"
    train_list, test_list = videos / "trainlist01.txt", videos / "testlist01.txt"
    if not (videos / "truth.json").exists():
        run([*FLOWKIT, "synth", str(videos), "--task", "motion", "--classes", args.classes,
             "--videos-per-class", args.videos_per_class], log)
    if not (shards / "manifest.json").exists():
        started = time.perf_counter()
        run([*FLOWKIT, "extract", str(videos / "labels.txt"), "--out", str(shards),
             "--short-side", "0"], log)
        print(f"  extraction: {time.perf_counter() - started:.0f} s", flush=True)

    results: dict[str, list[dict]] = {}
    for model in args.models.split(","):
        for seed in args.seeds.split(","):
            run_dir = out / "runs" / f"{model}-seed{seed}"
            if not (run_dir / "last.pt").exists():
                started = time.perf_counter()
                if model in FUSED:
                    streams = [str(out / "runs" / f"{m}-seed{seed}") for m in FUSED[model]]
                    run([*FLOWKIT, "train", str(shards), "--model", model, "--streams",
                         *streams, "--out", str(run_dir), "--input-size", "56",
                         "--device", "cpu"], log)
                else:
                    run([*FLOWKIT, "train", str(shards), "--model", model, "--split",
                         str(train_list), "--out", str(run_dir), "--seed", seed, *COMMON,
                         *SETTINGS[model]], log)
                print(f"  {model} seed {seed}: {time.perf_counter() - started:.0f} s",
                      flush=True)
            if not (run_dir / "eval.json").exists():
                run([*FLOWKIT, "eval", str(run_dir / "last.pt"), "--split", str(test_list),
                     "--workers", "2", "--device", "cpu", "--json"], log)
            results.setdefault(model, []).append(json.loads((run_dir / "eval.json").read_text()))

    print("\n| model | test top-1 (mean +- std) | per seed | mean class accuracy |")
    print("| --- | ---: | --- | ---: |")
    for model, figures in results.items():
        top1 = [100 * f["top1"] for f in figures]
        classes = [100 * f["mean_class_accuracy"] for f in figures]
        spread = statistics.stdev(top1) if len(top1) > 1 else 0.0
        print(f"| {model} | {statistics.mean(top1):.1f} +- {spread:.1f} | "
              f"{', '.join(f'{t:.1f}' for t in top1)} | {statistics.mean(classes):.1f} |")


if __name__ == "__main__":
    main()
