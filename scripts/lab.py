"""The motion laboratory of docs/results.md, from nothing to the tables: make the labelled
videos, extract TV-L1 flow, train every model with several seeds, test each on the held-out
split, and print mean +- std test accuracy with every command it ran.

    python scripts/lab.py [--out lab] [--seeds 0,1,2] [--variants rgb,flow,...]

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
# Shared by every trained run: the lab's 64 px frames in 56 px crops, no flips (the classes
# include left and right), AdamW with a cosine schedule, 30 epochs; no selection on the test
# split (the last checkpoint is tested).
COMMON = ["--input-size", "56", "--no-flip", "--optimizer", "adamw", "--lr", "0.002",
          "--weight-decay", "0.05", "--schedule", "cosine", "--dropout", "0.2",
          "--batch-size", "16", "--workers", "2", "--device", "cpu", "--epochs", "30"]
TSN = ["--arch", "resnet-tiny"]
CLIPS = ["--arch", "r3d-tiny", "--clip-len", "8", "--frame-stride", "2"]
# variant: (model, its options); "{seed}" in an option becomes the seed
TRAINED = {
    "rgb": ("rgb", TSN), "flow": ("flow", TSN),
    "stddcn": ("stddcn", TSN),
    "stddcn-kd-only": ("stddcn", [*TSN, "--connections", "none"]),
    "stddcn-dense-only": ("stddcn", [*TSN, "--distill-weight", "0"]),
    "stddcn-motion-to-appearance": ("stddcn", [*TSN, "--connections", "motion-to-appearance"]),
    "stddcn-appearance-to-motion": ("stddcn", [*TSN, "--connections", "appearance-to-motion"]),
    "stddcn-motion-to-appearance-dense-only": (
        "stddcn", [*TSN, "--connections", "motion-to-appearance", "--distill-weight", "0"]),
    "stddcn-temperature4": ("stddcn", [*TSN, "--temperature", "4"]),
    "rgb3d": ("rgb3d", CLIPS), "flow3d": ("flow3d", CLIPS),
    "d3d": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}"]),
    "d3d-kl": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}", "--distill-kind", "kl"]),
    "d3d-weight10": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}",
                             "--distill-weight", "10"]),
}
# variant: (model, the variants it fuses)
FUSED = {"two-stream": ("two-stream", ("rgb", "flow")),
         "two-stream3d": ("two-stream3d", ("rgb3d", "flow3d"))}
# variant: heads tested on their own besides the prediction
HEADS = {variant: ("appearance", "motion") for variant in TRAINED
         if variant.startswith("stddcn")}
DEFAULT = ",".join((  # fusions and students after what they use
    "rgb", "flow", "two-stream", "stddcn", "stddcn-kd-only", "stddcn-dense-only",
    "stddcn-motion-to-appearance", "stddcn-appearance-to-motion",
    "stddcn-motion-to-appearance-dense-only", "stddcn-temperature4", "rgb3d", "flow3d",
    "two-stream3d", "d3d", "d3d-kl", "d3d-weight10"))


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


def train_variant(variant: str, seed: str, out: Path, log: Path) -> Path:
    """Train (or fuse) one variant for one seed, unless done; its run folder."""
    run_dir = out / "runs" / f"{variant}-seed{seed}"
    if (run_dir / "last.pt").exists():
        return run_dir
    started = time.perf_counter()
    shards = str(out / "shards")
    if variant in FUSED:
        model, parts = FUSED[variant]
        streams = [str(out / "runs" / f"{part}-seed{seed}") for part in parts]
        run([*FLOWKIT, "train", shards, "--model", model, "--streams", *streams, "--out",
             str(run_dir), "--input-size", "56", "--device", "cpu"], log)
    else:
        model, options = TRAINED[variant]
        options = [str(out / o.format(seed=seed)) if o.startswith("runs/") else o
                   for o in options]
        run([*FLOWKIT, "train", shards, "--model", model, "--split",
             str(out / "videos" / "trainlist01.txt"), "--out", str(run_dir), "--seed", seed,
             *COMMON, *options], log)
    print(f"  {variant} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return run_dir


def test_variant(run_dir: Path, head: str | None, out: Path, log: Path) -> dict:
    """Test a run's last checkpoint (or one head of it) on the test split, unless done."""
    folder = run_dir if head is None else run_dir / f"head-{head}"
    if not (folder / "eval.json").exists():
        run([*FLOWKIT, "eval", str(run_dir / "last.pt"), "--split",
             str(out / "videos" / "testlist01.txt"), "--workers", "2", "--device", "cpu",
             "--json", "--out", str(folder), *(["--head", head] if head else [])], log)
    return json.loads((folder / "eval.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lab"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=DEFAULT)
    parser.add_argument("--classes", default="8")
    parser.add_argument("--videos-per-class", default="30")
    args = parser.parse_args()
    out = args.out.resolve()
    log = out / "lab.log"
    out.mkdir(parents=True, exist_ok=True)
    videos, shards = out / "videos", out / "shards"
    if not (videos / "truth.json").exists():
        run([*FLOWKIT, "synth", "--out", str(videos), "--task", "motion", "--classes", args.classes,
             "--videos-per-class", args.videos_per_class], log)
    if not (shards / "manifest.json").exists():
        started = time.perf_counter()
        run([*FLOWKIT, "extract", str(videos / "labels.txt"), "--out", str(shards),
             "--short-side", "0"], log)
        print(f"  extraction: {time.perf_counter() - started:.0f} s", flush=True)

    results: dict[str, list[dict]] = {}
    for variant in args.variants.split(","):
        for seed in args.seeds.split(","):
            run_dir = train_variant(variant, seed, out, log)
            for head in (None, *HEADS.get(variant, ())):
                name = variant if head is None else f"{variant} ({head} head)"
                results.setdefault(name, []).append(test_variant(run_dir, head, out, log))

    print("\n| variant | test top-1 (mean +- std) | per seed |")
    print("| --- | ---: | --- |")
    for name, figures in results.items():
        top1 = [100 * f["top1"] for f in figures]
        spread = statistics.stdev(top1) if len(top1) > 1 else 0.0
        print(f"| {name} | {statistics.mean(top1):.1f} +- {spread:.1f} | "
              f"{', '.join(f'{t:.1f}' for t in top1)} |")


if __name__ == "__main__":
    main()
