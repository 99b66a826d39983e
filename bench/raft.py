"""RAFT throughput: batched forward passes vs an eager one-pair-at-a-time loop, and precision.

For each model (large, small), precision (fp32, bf16) and frame size, times the flowkit RAFT
backend on batches of 1, 8 and 32 pairs; batch 1 is the eager one-pair-at-a-time loop a user
writes around the model, so the ratio column is what batching buys. Speed does not depend on
the weights' values, so the random-weight checkpoints in ../shared/data/raft serve. Also
reports how far bf16 / fp16 autocast move the flow from fp32 on RubberWhale (mean EPE).

    python bench/raft.py [--device cuda] [--sizes 340x256,1024x436] [--batches 1,8,32]
                         [--pairs 64] [--iters 12] [--precisions fp32,bf16]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import machine

from flowkit.flow.files import read_rgb_image
from flowkit.flow.raft.backend import RAFTFlow
from flowkit.flow.raft.config import RAFTConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pairs_per_second(backend: RAFTFlow, frames: np.ndarray, batch: int, pairs: int) -> float:
    """Pairs/s over ``pairs`` pairs in calls of ``batch``, after one warm-up call."""
    backend(frames[:batch], frames[1:batch + 1])
    calls = max(1, pairs // batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        backend(frames[:batch], frames[1:batch + 1])  # returns host arrays: synchronised
    return calls * batch / (time.perf_counter() - start)


def precision_epe(device: str, size: str, iters: int, precisions: list[str]) -> list[str]:
    """Mean EPE between each precision's flow and fp32's on RubberWhale."""
    first = read_rgb_image(SHARED / "middlebury" / "RubberWhale-frame10.png")[None]
    second = read_rgb_image(SHARED / "middlebury" / "RubberWhale-frame11.png")[None]
    weights = SHARED / "raft" / f"raft-{size}-random-seed0.pth"
    flows = {}
    for precision in ["fp32", *[p for p in precisions if p != "fp32"]]:
        if precision == "fp16" and device == "cpu":
            continue
        config = RAFTConfig(weights=str(weights), small=size == "small", iters=iters,
                            precision=precision)
        flows[precision] = RAFTFlow(config, device=device)(first, second)[0]
    lines = []
    for precision, flow in flows.items():
        if precision != "fp32":
            change = np.linalg.norm(flow - flows["fp32"], axis=-1).mean()
            magnitude = np.linalg.norm(flows["fp32"], axis=-1).mean()
            lines.append(f"| {size} | {precision} | {change:.4f} | {magnitude:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", default="340x256,1024x436", help="WIDTHxHEIGHT list")
    parser.add_argument("--models", default="large,small")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--pairs", type=int, default=64, help="pairs timed per setting")
    parser.add_argument("--iters", type=int, default=12)
    args = parser.parse_args()

    device_name = (torch.cuda.get_device_name(torch.device(args.device))
                   if args.device.startswith("cuda") else "CPU")
    print(f"# {machine()}; torch {torch.__version__}; device {args.device} ({device_name}); "
          f"{args.iters} iterations, {args.pairs} pairs a setting")
    print("| model | precision | size | batch | pairs/s | x eager batch 1 |")
    print("|---|---|---|---|---|---|")
    batches = [int(b) for b in args.batches.split(",")]
    rng = np.random.default_rng(0)
    for size in args.models.split(","):
        weights = SHARED / "raft" / f"raft-{size}-random-seed0.pth"
        for precision in args.precisions.split(","):
            config = RAFTConfig(weights=str(weights), small=size == "small", iters=args.iters,
                                precision=precision)
            backend = RAFTFlow(config, device=args.device)
            for frame_size in args.sizes.split(","):
                width, height = (int(v) for v in frame_size.split("x"))
                frames = rng.integers(0, 256, (max(batches) + 1, height, width, 3), np.uint8)
                eager = None
                for batch in batches:
                    rate = pairs_per_second(backend, frames, batch, max(args.pairs, batch))
                    eager = eager or rate
                    print(f"| {size} | {precision} | {frame_size} | {batch} | {rate:.2f} | "
                          f"{rate / eager:.2f} |", flush=True)
    print("\n| model | precision | mean EPE vs fp32 (RubberWhale) | mean fp32 flow |")
    print("|---|---|---|---|")
    for size in args.models.split(","):
        for line in precision_epe(args.device, size, args.iters, args.precisions.split(",")):
            print(line)


if __name__ == "__main__":
    main()
