"""The motion laboratory of docs/results.md, from nothing to the tables: make the labelled
videos, extract TV-L1 flow, train every model with several seeds, test each on the held-out
split, and print mean +- std test accuracy with every command it ran.

    python scripts/lab.py [--out lab] [--seeds 0,1,2] [--variants rgb,flow,...]
        [--flows tvl1,dis-medium,...] [--task motion|complementary|binding]

``--flows`` compares flow methods (docs/flow-methods.md, "Action accuracy"): the videos are made
once, each method of FLOWS is extracted into its own shards folder and every variant that uses
flow is trained and tested on it into its own runs folder; the default, tvl1 alone, is the lab
of docs/results.md (lab/shards, lab/runs). Variants that read no flow (rgb, rgb3d) are trained
once, on the shards of the first method listed, into lab/runs, and fused with each method's
flow runs: every method's shards hold the same RGB frames (same decoding, same JPEG encoder).

Steps already done (an extraction listed in lab/extraction-times.json, a run with last.pt, an
eval.json) are skipped, so an interrupted run continues where it stopped (an interrupted
extraction is resumed by flowkit extract itself). Needs only the flowkit command (pip install .).
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
# include left and right), AdamW with a cosine schedule, --epochs epochs (TASK_EPOCHS); no
# selection on the test split (the last checkpoint is tested).
COMMON = ["--input-size", "56", "--no-flip", "--optimizer", "adamw", "--lr", "0.002",
          "--weight-decay", "0.05", "--schedule", "cosine", "--dropout", "0.2",
          "--batch-size", "16", "--workers", "2", "--device", "cpu"]
TSN = ["--arch", "resnet-tiny"]
CLIPS = ["--arch", "r3d-tiny", "--clip-len", "8", "--frame-stride", "2"]
# STDDCN as the paper describes it (and flowkit's default before issue 23): RGB frame at the
# start of its flow stack, plain transitions into stages 2-4, teacher on pooled features
PAPER = [*TSN, "--rgb-frame", "first", "--no-cross-norm", "--connect-blocks", "2,3,4",
         "--fusion", "pooled"]
# variant: (model, its options); "{seed}" in an option becomes the seed
TRAINED = {
    "rgb": ("rgb", TSN), "flow": ("flow", TSN),
    "stddcn": ("stddcn", TSN),  # flowkit's defaults
    "stddcn-paper": ("stddcn", PAPER),
    "stddcn-kd-only": ("stddcn", [*PAPER, "--connections", "none"]),
    "stddcn-dense-only": ("stddcn", [*PAPER, "--distill-weight", "0"]),
    "stddcn-motion-to-appearance": ("stddcn", [*PAPER, "--connections", "motion-to-appearance"]),
    "stddcn-appearance-to-motion": ("stddcn", [*PAPER, "--connections", "appearance-to-motion"]),
    "stddcn-motion-to-appearance-dense-only": (
        "stddcn", [*PAPER, "--connections", "motion-to-appearance", "--distill-weight", "0"]),
    "stddcn-temperature4": ("stddcn", [*PAPER, "--temperature", "4"]),
    # issue 23's ablations: the paper's STDDCN with one change each
    "stddcn-centre": ("stddcn", [*PAPER, "--rgb-frame", "centre"]),
    "stddcn-cross-norm": ("stddcn", [*PAPER, "--cross-norm"]),
    "stddcn-stage1": ("stddcn", [*PAPER, "--connect-blocks", "1,2,3,4"]),
    "stddcn-conv-fusion": ("stddcn", [*PAPER, "--fusion", "conv"]),
    "stddcn-conv-fusion-kd-only": ("stddcn", [*PAPER, "--fusion", "conv", "--connections",
                                              "none"]),
    # and together
    "stddcn-centre-norm-stage1": ("stddcn", [*PAPER, "--rgb-frame", "centre", "--cross-norm",
                                             "--connect-blocks", "1,2,3,4"]),
    "stddcn-centre-norm-stage1-conv": ("stddcn", [*PAPER, "--rgb-frame", "centre",
                                                  "--cross-norm", "--connect-blocks", "1,2,3,4",
                                                  "--fusion", "conv"]),
    "rgb3d": ("rgb3d", CLIPS), "flow3d": ("flow3d", CLIPS),
    "d3d": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}"]),
    "d3d-kl": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}", "--distill-kind", "kl"]),
    "d3d-weight10": ("d3d", [*CLIPS, "--teacher", "runs/flow3d-seed{seed}",
                             "--distill-weight", "10"]),
}
# variant: (model, the variants it fuses)
FUSED = {"two-stream": ("two-stream", ("rgb", "flow")),
         "two-stream3d": ("two-stream3d", ("rgb3d", "flow3d"))}
# Variants that read no flow: one run per seed whatever the flow method (see the module).
RGB_ONLY = {"rgb", "rgb3d"}
# flow method name in --flows: the options of `flowkit extract` that choose it. DIS's fast and
# ultrafast presets compute their finest level at a quarter of the frame, which the lab's 64x64
# frames do not reach (flowkit refuses such frames rather than let OpenCV change the
# parameters); here they run one level finer, at half resolution, like medium.
FLOWS = {
    "tvl1": [],
    "dis-medium": ["--flow", "dis", "--dis-preset", "medium"],
    "dis-fast": ["--flow", "dis", "--dis-preset", "fast", "--dis-finest-scale", "1"],
    "dis-ultrafast": ["--flow", "dis", "--dis-preset", "ultrafast", "--dis-finest-scale", "1"],
    # medium with its finest level at full resolution: what half resolution costs on 64 px
    "dis-medium-finest0": ["--flow", "dis", "--dis-preset", "medium", "--dis-finest-scale", "0"],
    "farneback": ["--flow", "farneback"],
    "tvl1-torch": ["--flow", "tvl1-torch", "--device", "cpu"],
}
DEFAULT_FLOW = "tvl1"
# task: epochs of every trained run (docs/results.md: the colour tasks' STDDCN is underfit at 30)
TASK_EPOCHS = {"motion": 30, "complementary": 90, "binding": 90}
SETTINGS = "lab-settings.json"  # the task and epochs a lab folder's runs were made with
TIMES = "extraction-times.json"  # flow method: seconds its extraction took
MANIFESTS = ("manifest.sqlite", "manifest.json")  # a shards folder's manifest, now and before
# variant: heads tested on their own besides the prediction
HEADS = {variant: ("appearance", "motion") for variant in TRAINED
         if variant.startswith("stddcn")}
DEFAULT = ",".join((  # fusions and students after what they use
    "rgb", "flow", "two-stream", "stddcn-paper", "stddcn", "stddcn-kd-only", "stddcn-dense-only",
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


def shards_folder(out: Path, flow: str) -> Path:
    """Where a flow method's shards go: lab/shards for TV-L1 (the lab of docs/results.md),
    lab/shards-METHOD for the others."""
    return out / ("shards" if flow == DEFAULT_FLOW else f"shards-{flow}")


def runs_folder(out: Path, flow: str, variant: str) -> Path:
    """Where a variant's runs go: lab/runs for TV-L1 and for the variants that read no flow,
    lab/runs-METHOD for the flow variants of another method."""
    shared = flow == DEFAULT_FLOW or variant in RGB_ONLY
    return out / ("runs" if shared else f"runs-{flow}")


def extract_flow(flow: str, out: Path, log: Path) -> None:
    """Extract the lab's videos with one flow method into its shards folder, unless done, and
    keep the wall time it took in lab/extraction-times.json (None for an extraction resumed
    after an interruption: its time would not be the whole one). A method listed there is done:
    the entry is written only once extract has succeeded."""
    times_file = out / TIMES
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    if flow in times:
        return
    shards = shards_folder(out, flow)
    fresh = not any((shards / name).exists() for name in MANIFESTS)
    started = time.perf_counter()
    run([*FLOWKIT, "extract", str(out / "videos" / "labels.txt"), "--out", str(shards),
         "--short-side", "0", *FLOWS[flow]], log)
    seconds = time.perf_counter() - started
    print(f"  extraction ({flow}): {seconds:.0f} s{'' if fresh else ' (resumed)'}", flush=True)
    times[flow] = round(seconds, 1) if fresh else None
    times_file.write_text(json.dumps(times, indent=1) + "\n")


def run_option(option: str, seed: str, out: Path, flow: str) -> str:
    """An option of TRAINED with "{seed}" replaced; "runs/VARIANT-seed{seed}" (a teacher)
    becomes that run's folder for this flow method."""
    option = option.format(seed=seed)
    if not option.startswith("runs/"):
        return option
    name = option.removeprefix("runs/")
    return str(runs_folder(out, flow, name.rsplit("-seed", 1)[0]) / name)


def train_variant(variant: str, seed: str, out: Path, log: Path,
                  flow: str = DEFAULT_FLOW, rgb_flow: str = DEFAULT_FLOW,
                  epochs: int = 30) -> Path:
    """Train (or fuse) one variant for one seed on one flow method's shards, unless done; its
    run folder. Variants that read no flow train on ``rgb_flow``'s shards (see the module)."""
    run_dir = runs_folder(out, flow, variant) / f"{variant}-seed{seed}"
    if (run_dir / "last.pt").exists():
        return run_dir
    started = time.perf_counter()
    shards = str(shards_folder(out, rgb_flow if variant in RGB_ONLY else flow))
    if variant in FUSED:
        model, parts = FUSED[variant]
        streams = [str(runs_folder(out, flow, part) / f"{part}-seed{seed}") for part in parts]
        run([*FLOWKIT, "train", shards, "--model", model, "--streams", *streams, "--out",
             str(run_dir), "--input-size", "56", "--device", "cpu"], log)
    else:
        model, options = TRAINED[variant]
        options = [run_option(option, seed, out, flow) for option in options]
        run([*FLOWKIT, "train", shards, "--model", model, "--split",
             str(out / "videos" / "trainlist01.txt"), "--out", str(run_dir), "--seed", seed,
             *COMMON, "--epochs", str(epochs), *options], log)
    print(f"  {variant} seed {seed}{'' if flow == DEFAULT_FLOW else f' ({flow})'}: "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return run_dir


def test_variant(run_dir: Path, head: str | None, out: Path, log: Path) -> dict:
    """Test a run's last checkpoint (or one head of it) on the test split, unless done."""
    folder = run_dir if head is None else run_dir / f"head-{head}"
    if not (folder / "eval.json").exists():
        run([*FLOWKIT, "eval", str(run_dir / "last.pt"), "--split",
             str(out / "videos" / "testlist01.txt"), "--workers", "2", "--device", "cpu",
             "--json", "--out", str(folder), *(["--head", head] if head else [])], log)
    return json.loads((folder / "eval.json").read_text())


def keep_settings(out: Path, settings: dict) -> None:
    """Record the task and epochs of a new lab folder; refuse other ones for a folder made with
    them, whose finished runs would otherwise be reused as if they matched."""
    path = out / SETTINGS
    if path.exists():
        made = json.loads(path.read_text())
        if made != settings:
            raise SystemExit(f"{out} holds runs of {made}, not {settings}: give another --out")
    else:
        path.write_text(json.dumps(settings) + "\n")


def parse_flows(text: str) -> list[str]:
    """The flow methods of --flows, in order, each a name of FLOWS."""
    flows = text.split(",")
    unknown = [flow for flow in flows if flow not in FLOWS]
    if unknown or len(set(flows)) != len(flows):
        raise SystemExit(f"--flows takes distinct names among {', '.join(FLOWS)}; got {text!r}")
    return flows


def print_tables(results: dict[tuple[str, str], list[dict]], flows: list[str],
                 out: Path) -> None:
    """Mean +- std test top-1 per variant (and flow method, when several are compared), then
    each method's extraction time when several are compared."""
    several = len(flows) > 1
    print("\n| " + ("flow | " if several else "") + "variant | test top-1 (mean +- std) | "
          "per seed |")
    print("| " + ("--- | " if several else "") + "--- | ---: | --- |")
    for (flow, name), figures in results.items():
        top1 = [100 * f["top1"] for f in figures]
        spread = statistics.stdev(top1) if len(top1) > 1 else 0.0
        print("| " + (f"{flow} | " if several else "") + f"{name} | "
              f"{statistics.mean(top1):.1f} +- {spread:.1f} | "
              f"{', '.join(f'{t:.1f}' for t in top1)} |")
    times_file = out / TIMES
    if several and times_file.exists():
        times = json.loads(times_file.read_text())
        print("\n| flow | extraction of the videos (s) |")
        print("| --- | ---: |")
        for flow in flows:
            seconds = times.get(flow)
            print(f"| {flow} | {'not timed' if seconds is None else f'{seconds:.0f}'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("lab"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=DEFAULT)
    parser.add_argument("--flows", default=DEFAULT_FLOW,
                        help=f"flow methods to compare, among {', '.join(FLOWS)}")
    parser.add_argument("--task", default="motion", choices=("motion", "complementary", "binding"),
                        help="the set (flowkit synth --task): motion, or the colour-and-motion "
                             "tasks of docs/results.md")
    parser.add_argument("--epochs", type=int,
                        help="epochs of every trained run [default: 30 on the motion task, 90 "
                             "on the colour tasks (docs/results.md)]")
    parser.add_argument("--classes", default="8", help="motion only: number of classes")
    parser.add_argument("--videos-per-class", default="30")
    args = parser.parse_args()
    flows = parse_flows(args.flows)
    out = args.out.resolve()
    log = out / "lab.log"
    out.mkdir(parents=True, exist_ok=True)
    epochs = args.epochs or TASK_EPOCHS[args.task]
    keep_settings(out, {"task": args.task, "epochs": epochs})
    videos = out / "videos"
    if not (videos / "truth.json").exists():
        classes = ["--classes", args.classes] if args.task == "motion" else []
        run([*FLOWKIT, "synth", "--out", str(videos), "--task", args.task, *classes,
             "--videos-per-class", args.videos_per_class], log)
    for flow in flows:
        extract_flow(flow, out, log)

    results: dict[tuple[str, str], list[dict]] = {}
    for flow in flows:
        for variant in args.variants.split(","):
            for seed in args.seeds.split(","):
                run_dir = train_variant(variant, seed, out, log, flow, rgb_flow=flows[0],
                                        epochs=epochs)
                for head in (None, *HEADS.get(variant, ())):
                    name = variant if head is None else f"{variant} ({head} head)"
                    results.setdefault((flow, name), []).append(
                        test_variant(run_dir, head, out, log))
    print_tables(results, flows, out)


if __name__ == "__main__":
    main()
