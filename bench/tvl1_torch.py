"""TV-L1 in PyTorch (tvl1-torch) against OpenCV DualTVL1: throughput, agreement and accuracy.

(a) Pairs/s of tvl1-torch on --device, in batches of --batch-size, on consecutive 320x240 frame
pairs of a real UCF101 clip, next to OpenCV DualTVL1 on the CPU in the same run; both with
OpenCV's default parameters. OpenCV runs one solver per joblib (loky) worker process,
--cv-workers of them (default: every core), each limited to one OpenCV thread: parallel over
pairs, the way `flowkit extract` runs it. (b) The mean endpoint distance between the two flows
on those pairs (target <= 0.3 px), and both methods' EPE against RubberWhale's ground truth.
It also counts the inner iterations the pairs needed per scale and prints the memory-traffic
roofline they imply for a GPU. (c) --profile prints torch.profiler's top operators over one
batch.

    python bench/tvl1_torch.py [--device cuda] [--batch-size 32] [--pairs 8] [--profile]

The default run is short for a CPU; on a GPU time more pairs, e.g. --device cuda --pairs 320
(the clip's 163 pairs are repeated beyond 163).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from common import SHARED_VIDEOS, machine
from joblib import Parallel, delayed

from flowkit.flow.files import read_flo, read_rgb_image
from flowkit.flow.metrics import endpoint_error
from flowkit.flow.tvl1 import TVL1Config, TVL1Flow
from flowkit.flow.tvl1_torch import (
    _CHECK_EVERY,
    TVL1TorchConfig,
    TVL1TorchFlow,
    _multiscale_flow,
    build_pyramid,
    rgb_to_gray,
)
from flowkit.video.decode import DecodeConfig, iter_frames

MIDDLEBURY = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "middlebury"
CLIP = SHARED_VIDEOS / "v_ApplyEyeMakeup_g01_c01.avi"  # UCF101, 320x240, 164 frames
# Bytes one inner iteration moves per pixel (fp32, u and v), counted from _inner_step: eager
# PyTorch reads and writes every intermediate (43 kernels, 162 planes of 4 bytes with the
# per-pair freeze; 39 and 144 without); one fused kernel reads u (2 planes), p (4), I1w's
# gradient (2), rho_c and |grad I1w|^2 and writes u and p: 16 planes (22 if split in two
# kernels, one up to u and the error, one for p).
EAGER_BYTES, FUSED_BYTES = 162 * 4, 16 * 4
KERNELS_PER_ITERATION = 43
# The 5x5 median filter at the start of every outer iteration: 164 min/max kernels, each
# reading 2 and writing 1 plane per channel (eager); fused, it reads and writes u and v.
MEDIAN_EAGER_BYTES, MEDIAN_FUSED_BYTES = 164 * 3 * 2 * 4, 4 * 4
KERNELS_PER_MEDIAN = 166
HBM_BYTES_PER_S = {"H100": 3.35e12}
LAUNCH_SECONDS = 5e-6


def clip_pairs(count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (first, second) 240x320 RGB frame pairs: the clip's consecutive frames, its
    163 pairs repeated as often as needed."""
    frames = np.stack(list(iter_frames(CLIP, DecodeConfig(short_side=None))))
    index = np.arange(count) % (len(frames) - 1)
    return frames[index], frames[index + 1]


def opencv_chunk(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """DualTVL1 flows of some pairs in a worker process, with one OpenCV thread."""
    cv2.setNumThreads(1)
    return TVL1Flow(TVL1Config())(first, second)


def run_opencv(first: np.ndarray, second: np.ndarray, workers: int) -> tuple[np.ndarray, float]:
    """OpenCV flows of all pairs over ``workers`` processes, and the seconds it took."""
    chunks = np.array_split(np.arange(len(first)), workers)
    with Parallel(n_jobs=workers) as parallel:
        parallel(delayed(opencv_chunk)(first[:1], second[:1]) for _ in range(workers))  # warm up
        start = time.perf_counter()
        flows = parallel(delayed(opencv_chunk)(first[c], second[c]) for c in chunks if len(c))
        seconds = time.perf_counter() - start
    return np.concatenate(flows), seconds


def run_torch(backend: TVL1TorchFlow, first: np.ndarray, second: np.ndarray,
              batch: int) -> tuple[np.ndarray, float]:
    """tvl1-torch flows of all pairs in batches of ``batch``, and the seconds it took."""
    backend(first[:batch], second[:batch])  # warm-up: allocator, networks, resize tables
    start = time.perf_counter()
    flows = [backend(first[i:i + batch], second[i:i + batch])  # returns host arrays: synced
             for i in range(0, len(first), batch)]
    return np.concatenate(flows), time.perf_counter() - start


def mean_distance(flows: np.ndarray, others: np.ndarray) -> float:
    """Mean endpoint distance between two stacks of (H, W, 2) flows."""
    return float(np.linalg.norm(flows.astype(np.float64) - others, axis=-1).mean())


def iteration_report(first: np.ndarray, second: np.ndarray, device: str) -> None:
    """Inner iterations per scale of one batch, and the GPU ceilings they imply."""
    gray0 = rgb_to_gray(torch.from_numpy(first).to(device))
    gray1 = rgb_to_gray(torch.from_numpy(second).to(device))
    counts: list[torch.Tensor] = []
    with torch.inference_mode():
        _multiscale_flow(gray0, gray1, TVL1TorchConfig(), counts)
    sizes = [tuple(level.shape[-2:]) for level in build_pyramid(gray0, TVL1TorchConfig())][::-1]
    check = _CHECK_EVERY["cuda"]  # on a GPU a pair runs on to the next check of its warp
    config = TVL1TorchConfig()
    needed = gpu_run = medians = launches = median_launches = 0.0
    print(f"\n| scale (h x w) | inner iterations per pair, mean (min-max) | the batch's "
          f"iterations on a GPU (longest pair per warp, to a multiple of {check}) |")
    print("|---|---|---|")
    for (height, width), count in zip(sizes, counts):
        count = count.cpu().numpy()  # (warps, batch)
        rounded = np.minimum(np.ceil(count / check) * check,
                             config.outer_iterations * config.inner_iterations)
        outer = np.maximum(np.ceil(count / config.inner_iterations), 1)  # median filters
        needed += height * width * count.sum(axis=0).mean()
        gpu_run += height * width * rounded.sum(axis=0).mean()
        medians += height * width * outer.sum(axis=0).mean()
        launches += rounded.max(axis=1).sum()
        median_launches += outer.max(axis=1).sum()
        total = count.sum(axis=0)
        print(f"| {height} x {width} | {total.mean():.0f} ({total.min()}-{total.max()}) | "
              f"{rounded.max(axis=1).sum():.0f} |")
    print(f"\npixel-iterations per pair: {needed / 1e6:.1f} M (OpenCV's), {gpu_run / 1e6:.1f} M "
          f"on a GPU (stopped pairs are set aside every {check} steps); 5x5 median filters: "
          f"{medians / 1e6:.2f} M pixels")
    for name, bandwidth in HBM_BYTES_PER_S.items():
        for label, nbytes, median_bytes in (("eager", EAGER_BYTES, MEDIAN_EAGER_BYTES),
                                            ("fused", FUSED_BYTES, MEDIAN_FUSED_BYTES)):
            traffic = nbytes * gpu_run + median_bytes * medians
            print(f"{name} memory-bound ceiling, {label} ({nbytes} B per pixel-iteration, "
                  f"{median_bytes} B per median pixel; {traffic / 1e9:.1f} GB a pair): "
                  f"{bandwidth / traffic:.0f} pairs/s")
    launch = (KERNELS_PER_ITERATION * launches + KERNELS_PER_MEDIAN * median_launches) \
        * LAUNCH_SECONDS
    print(f"launch-bound ceiling (eager): ({launches:.0f} inner iterations x "
          f"{KERNELS_PER_ITERATION} + {median_launches:.0f} medians x {KERNELS_PER_MEDIAN}) "
          f"kernels x {LAUNCH_SECONDS * 1e6:.0f} us = {launch * 1e3:.0f} ms a batch: "
          f"{len(first) / launch:.0f} pairs/s at batch {len(first)}")


def profile(backend: TVL1TorchFlow, first: np.ndarray, second: np.ndarray) -> None:
    """torch.profiler's top operators (by self time) over one batch."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    sort = "self_cpu_time_total"
    if backend._device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sort = "self_device_time_total"
    with torch.profiler.profile(activities=activities) as prof:
        backend(first, second)
    print(prof.key_averages().table(sort_by=sort, row_limit=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device of tvl1-torch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs timed")
    parser.add_argument("--cv-workers", type=int, default=os.cpu_count() or 1,
                        help="OpenCV worker processes, one OpenCV thread each")
    parser.add_argument("--torch-threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top ops")
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    batch = min(args.batch_size, args.pairs)
    device_name = (torch.cuda.get_device_name(torch.device(args.device))
                   if args.device.startswith("cuda") else "CPU")
    print(f"# {machine()}; torch {torch.__version__} ({torch.get_num_threads()} CPU threads); "
          f"tvl1-torch on {args.device} ({device_name}), batch {batch}; OpenCV on "
          f"{args.cv_workers} worker processes x 1 thread; default DualTVL1 parameters")

    first, second = clip_pairs(args.pairs)
    backend = TVL1TorchFlow(TVL1TorchConfig(), device=args.device)
    ours, torch_seconds = run_torch(backend, first, second, batch)
    theirs, cv_seconds = run_opencv(first, second, args.cv_workers)
    pairs = len(first)
    print(f"\nUCF101 {CLIP.name}, {pairs} pairs of {first.shape[2]}x{first.shape[1]}")
    print("| method | seconds | pairs/s |")
    print("|---|---|---|")
    print(f"| tvl1-torch, {args.device}, batch {batch} | {torch_seconds:.2f} | "
          f"{pairs / torch_seconds:.2f} |")
    print(f"| OpenCV DualTVL1, {args.cv_workers} processes | {cv_seconds:.2f} | "
          f"{pairs / cv_seconds:.2f} |")
    print(f"tvl1-torch / OpenCV speed: {cv_seconds / torch_seconds:.2f}x")
    distances = [mean_distance(a, b) for a, b in zip(ours, theirs)]
    print(f"mean endpoint distance tvl1-torch vs OpenCV: {np.mean(distances):.4f} px "
          f"(per pair max {np.max(distances):.4f}; target <= 0.3); mean OpenCV flow "
          f"{np.linalg.norm(theirs, axis=-1).mean():.3f} px")

    if MIDDLEBURY.is_dir():
        frame0 = read_rgb_image(MIDDLEBURY / "RubberWhale-frame10.png")[None]
        frame1 = read_rgb_image(MIDDLEBURY / "RubberWhale-frame11.png")[None]
        truth = read_flo(MIDDLEBURY / "RubberWhale-flow10.flo")
        flow_torch = backend(frame0, frame1)[0]
        flow_cv = TVL1Flow(TVL1Config())(frame0, frame1)[0]
        print(f"RubberWhale EPE vs ground truth: tvl1-torch "
              f"{endpoint_error(flow_torch, truth):.4f}, OpenCV "
              f"{endpoint_error(flow_cv, truth):.4f}; between them "
              f"{mean_distance(flow_torch, flow_cv):.4f} px")

    iteration_report(first[:batch], second[:batch], args.device)
    if args.profile:
        profile(backend, first[:batch], second[:batch])


if __name__ == "__main__":
    main()
