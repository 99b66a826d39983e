"""The flow methods side by side on one CPU core: accuracy on pairs with exact ground truth,
flow pairs/s at 320x240 and 340x256, and pairs/s through `flowkit extract` as a whole.

(a) EPE (px) on Middlebury RubberWhale (584x388) and on two pairs made here with exact ground
truth: a real UCF101 frame (320x240) moved by a known affine motion (rotation 2 degrees and zoom
2% about the centre, then (1.5, -1) px), and a real Kinetics frame (340x256) moved by (3.5, -2.25)
px. Both frames of a made pair are resampled (bicubic) from the same real frame, the first at a
fixed sub-pixel offset, the second through the motion, so the true flow A(p) - p is known at
every pixel whose target stays inside the frame (the others are left out).
(b) Flow pairs/s of each method alone (grayscale conversion and the solver, frames in memory)
on consecutive frames of the real UCF101 clip (320x240) and the Kinetics clip (340x256).
(c) Pairs/s of `flowkit extract --workers 1 --threads 1 --short-side 0` (decode, JPEG, flow,
quantise, HDF5 shard, manifest) on the first --extract-pairs pairs of each clip, cut by stream
copy so decoding costs what it costs on the clip; and the time per pair that is not flow.

Everything runs in this one process, pinned to one CPU core (decoding's thread included), with
one OpenCV and one PyTorch thread, methods interleaved within each round so that machine noise hits them alike; figures are medians of
the rounds. --profile PRESET instead prints where `flowkit extract` spends its time on the
whole UCF101 clip with that DIS preset (cProfile, main thread; decoding runs in a thread).

    python bench/flow_methods.py [--rounds 3] [--extract-rounds 2] [--extract-pairs 24]
                                 [--json PATH] [--quick]
    python bench/flow_methods.py --profile fast
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import av
import cv2
import numpy as np
import torch
from common import SHARED_VIDEOS, machine, median, require_all_ok

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import VideoSource
from flowkit.extract.run import extract
from flowkit.flow import get_backend, make_backend_config
from flowkit.flow.files import read_flo, read_rgb_image
from flowkit.flow.metrics import endpoint_error
from flowkit.video.decode import DecodeConfig, iter_frames

MIDDLEBURY = SHARED_VIDEOS.parent / "middlebury"
CLIPS = {"320x240": SHARED_VIDEOS / "v_ApplyEyeMakeup_g01_c01.avi",   # UCF101
         "340x256": SHARED_VIDEOS / "kinetics_arm_wrestling.mp4"}     # Kinetics-400
NATIVE = DecodeConfig(short_side=None)
UNKNOWN = 1e10  # Middlebury's mark of a pixel without ground truth
# Pairs of the datasets, for the hour estimates (about: UCF101 13,320 videos of ~187 frames;
# Kinetics-400 ~240,000 videos of ~250 frames).
DATASETS = {"UCF101": (2.5e6, "320x240"), "Kinetics-400": (60e6, "340x256")}
ESTIMATE_CORES = 16


class Method(NamedTuple):
    label: str
    backend: str
    options: dict[str, Any]
    pairs: int  # timed pairs per round in (b): few for the slow ones

    def make(self):
        return get_backend(self.backend, make_backend_config(self.backend, **self.options))

    def config(self, batch_size: int = 8) -> ExtractConfig:
        return ExtractConfig(decode=NATIVE, flow=self.backend, batch_size=batch_size,
                             flow_params=make_backend_config(self.backend, **self.options))


METHODS = [
    Method("tvl1", "tvl1", {}, 2),
    Method("dis ultrafast", "dis", {"preset": "ultrafast"}, 48),
    Method("dis fast", "dis", {"preset": "fast"}, 48),
    Method("dis medium", "dis", {"preset": "medium"}, 24),
    Method("dis medium, finest scale 0", "dis", {"preset": "medium", "finest_scale": 0}, 24),
    Method("farneback", "farneback", {}, 24),
    Method("tvl1-torch (CPU)", "tvl1-torch", {}, 2),
]


# -- (a) accuracy --------------------------------------------------------------------------------

def warped_pair(frame: np.ndarray, matrix: np.ndarray, offset: tuple[float, float] = (0.37, 0.21)
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two frames of ``frame`` and their exact flow, for the forward affine motion ``matrix``
    (2x3, pixel coordinates): first(p) = S(p + offset), second(A(p)) = first(p), S being
    ``frame`` interpolated bicubically; flow(p) = A(p) - p, unknown where A(p) leaves the frame."""
    height, width = frame.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    first = cv2.remap(frame, (xs + offset[0]).astype(np.float32),
                      (ys + offset[1]).astype(np.float32), cv2.INTER_CUBIC,
                      borderMode=cv2.BORDER_REFLECT)
    inverse = cv2.invertAffineTransform(matrix)
    source_x = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2] + offset[0]
    source_y = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2] + offset[1]
    second = cv2.remap(frame, source_x.astype(np.float32), source_y.astype(np.float32),
                       cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    target_x = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]
    target_y = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    truth = np.stack([target_x - xs, target_y - ys], axis=-1).astype(np.float32)
    outside = (target_x < 0) | (target_x > width - 1) | (target_y < 0) | (target_y > height - 1)
    truth[outside] = UNKNOWN
    return first, second, truth


def accuracy_pairs(crop: tuple[int, int] | None) -> dict[str, tuple[np.ndarray, ...]]:
    """name -> (first, second, truth): RubberWhale and the two made pairs (cropped top-left to
    ``crop`` = (width, height) in --quick)."""
    rubber = (read_rgb_image(MIDDLEBURY / "RubberWhale-frame10.png"),
              read_rgb_image(MIDDLEBURY / "RubberWhale-frame11.png"),
              read_flo(MIDDLEBURY / "RubberWhale-flow10.flo"))
    ucf = list(iter_frames(CLIPS["320x240"], NATIVE))[40]
    kinetics = list(iter_frames(CLIPS["340x256"], NATIVE))[40]
    if crop:
        rubber = tuple(a[:crop[1], :crop[0]].copy() for a in rubber)
        ucf, kinetics = (f[:crop[1], :crop[0]].copy() for f in (ucf, kinetics))
    height, width = ucf.shape[:2]
    affine = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), 2.0, 1.02)
    affine[:, 2] += (1.5, -1.0)
    shift = np.array([[1.0, 0.0, 3.5], [0.0, 1.0, -2.25]])
    return {"RubberWhale": rubber,
            "UCF101 frame, affine": warped_pair(ucf, affine),
            "Kinetics frame, shift (3.5, -2.25)": warped_pair(kinetics, shift)}


def measure_accuracy(crop: tuple[int, int] | None) -> dict[str, dict[str, float]]:
    pairs = accuracy_pairs(crop)
    result = {}
    for method in METHODS:
        backend = method.make()
        result[method.label] = {
            name: endpoint_error(backend(first[None], second[None])[0], truth)
            for name, (first, second, truth) in pairs.items()}
        print(f"  EPE {method.label}: " + ", ".join(f"{v:.3f}" for v in
                                                   result[method.label].values()), flush=True)
    return result


# -- (b) flow alone, per core --------------------------------------------------------------------

def clip_frames(size: str, count: int, crop: tuple[int, int] | None) -> list[np.ndarray]:
    frames = []
    for frame in iter_frames(CLIPS[size], NATIVE):
        frames.append(frame[:crop[1], :crop[0]].copy() if crop else frame)
        if len(frames) == count:
            break
    return frames


def measure_speed(rounds: int, extract_pairs: int, scale: float,
                  crop: tuple[int, int] | None) -> dict[str, dict[str, float]]:
    """size -> method -> pairs/s of the method alone (median of rounds), on the pairs that (c)
    extracts: the fast methods on every one of them each round, the slow ones on a few, other
    ones each round."""
    result = {}
    for size in CLIPS:
        frames = clip_frames(size, extract_pairs + 1, crop)
        backends = {m.label: m.make() for m in METHODS}
        for method in METHODS:  # warm up: first calls allocate
            backends[method.label](frames[0][None], frames[1][None])
        times: dict[str, list[float]] = {m.label: [] for m in METHODS}
        for round_ in range(rounds):
            for method in METHODS:
                pairs = max(1, int(method.pairs * scale))
                start = time.perf_counter()
                for i in range(round_ * pairs, (round_ + 1) * pairs):
                    i %= extract_pairs
                    backends[method.label](frames[i][None], frames[i + 1][None])
                times[method.label].append((time.perf_counter() - start) / pairs)
        result[size] = {label: 1.0 / median(values) for label, values in times.items()}
        print(f"  flow alone {size}: " + ", ".join(f"{label} {rate:.1f}" for label, rate
                                                   in result[size].items()), flush=True)
    return result


# -- (c) through flowkit extract -----------------------------------------------------------------

def cut_clip(source: Path, target: Path, frames: int) -> int:
    """``target``: the first packets of ``source``'s video stream, copied (not re-encoded), enough
    for ``frames`` decoded frames; returns how many frames it decodes to."""
    for packets in range(frames, frames + 16):
        with av.open(str(source)) as reading, av.open(str(target), "w") as writing:
            stream = writing.add_stream_from_template(reading.streams.video[0])
            copied = 0
            for packet in reading.demux(reading.streams.video[0]):
                if packet.dts is None:
                    continue
                packet.stream = stream
                writing.mux(packet)
                copied += 1
                if copied == packets:
                    break
        decoded = sum(1 for _ in iter_frames(target, NATIVE))
        if decoded >= frames:
            return decoded
    raise SystemExit(f"{source}: cannot cut {frames} frames")


def measure_extract(rounds: int, pairs: int, work: Path, crop: tuple[int, int] | None
                    ) -> dict[str, dict[str, Any]]:
    """size -> {"pairs": n, method -> pairs/s through extract (median of rounds)}."""
    result = {}
    for size, clip in CLIPS.items():
        video = work / f"cut-{size}{clip.suffix}"
        frames = cut_clip(clip, video, pairs + 1)
        decode = NATIVE if not crop else DecodeConfig(size=crop)
        times: dict[str, list[float]] = {m.label: [] for m in METHODS}
        for _ in range(rounds):
            for method in METHODS:
                out = work / "out"
                config = ExtractConfig(decode=decode, flow=method.backend,
                                       flow_params=method.config().flow_params)
                start = time.perf_counter()
                require_all_ok(extract([VideoSource("v", video)], out, config, workers=1,
                                       threads=1, progress=False))
                times[method.label].append((time.perf_counter() - start) / (frames - 1))
                shutil.rmtree(out)
        result[size] = {"pairs": frames - 1,
                        **{label: 1.0 / median(values) for label, values in times.items()}}
        print(f"  extract {size} ({frames - 1} pairs): " + ", ".join(
            f"{m.label} {result[size][m.label]:.1f}" for m in METHODS), flush=True)
    return result


def profile_extract(preset: str, work: Path) -> None:
    """Where `flowkit extract --flow dis --dis-preset PRESET` spends its time on the UCF clip."""
    method = Method(f"dis {preset}", "dis", {"preset": preset}, 0)
    source = [VideoSource("v", CLIPS["320x240"])]
    require_all_ok(extract(source, work / "warm", method.config(), workers=1, threads=1,
                           progress=False))
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    report = extract(source, work / "profiled", method.config(), workers=1, threads=1,
                     progress=False)
    profile.disable()
    seconds = time.perf_counter() - start
    require_all_ok(report)
    pairs = report.frames - 1
    print(f"machine: {machine()}; PyTorch {torch.__version__}")
    print(f"flowkit extract --flow dis --dis-preset {preset} --workers 1 --threads 1 on the "
          f"UCF101 clip (320x240, {pairs} pairs): {seconds:.2f} s under cProfile, "
          f"{1e3 * seconds / pairs:.2f} ms per pair")
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(15)


# -- the report ----------------------------------------------------------------------------------

def print_report(report: dict[str, Any]) -> None:
    accuracy, speed, through = report["epe"], report["flow_pairs_per_s"], report["extract"]
    pairs_names = list(next(iter(accuracy.values())))
    print(f"\nmachine: {report['machine']}")
    print(f"pinned to CPU core {report['core']}, one OpenCV thread, one PyTorch thread; "
          f"{report['rounds']} rounds of flow alone, "
          f"{report['extract_rounds']} of extract; medians\n")
    print("| method | " + " | ".join(f"EPE {name}" for name in pairs_names)
          + " | flow pairs/s 320x240 | flow pairs/s 340x256 | extract pairs/s 320x240 | "
            "extract pairs/s 340x256 | not-flow ms/pair 320x240 | not-flow ms/pair 340x256 |")
    print("| --- |" + " ---: |" * (len(pairs_names) + 6))
    for method in METHODS:
        label = method.label
        rates = [speed[size][label] for size in CLIPS]
        extract_rates = [through[size][label] for size in CLIPS]
        # Time per pair outside the flow: only where (b) timed every pair (c) extracted; a few
        # pairs of TV-L1 differ more in flow time than the rest of the pipeline costs.
        overheads = [f"{1e3 * (1 / extract_rates[i] - 1 / rates[i]):.1f}"
                     if report["flow_pairs_timed"][label] >= through[size]["pairs"] else "-"
                     for i, size in enumerate(CLIPS)]
        print(f"| {label} | " + " | ".join(f"{accuracy[label][n]:.3f}" for n in pairs_names)
              + " | " + " | ".join(_rate(r) for r in rates + extract_rates)
              + " | " + " | ".join(overheads) + " |")
    tvl1 = {size: through[size]["tvl1"] for size in CLIPS}
    print("\nthrough extract, x tvl1: " + "; ".join(
        f"{size}: " + ", ".join(f"{m.label} {through[size][m.label] / tvl1[size]:.0f}x"
                                for m in METHODS if m.backend == "dis") for size in CLIPS))
    print(f"\nhours on {ESTIMATE_CORES} cores (extrapolated: {ESTIMATE_CORES} x the per-core "
          "extract rate):")
    print("| method | " + " | ".join(f"{name} ({pairs / 1e6:g} M pairs at {size})"
                                     for name, (pairs, size) in DATASETS.items()) + " |")
    print("| --- |" + " ---: |" * len(DATASETS))
    for method in METHODS:
        print(f"| {method.label} | " + " | ".join(
            f"{report['hours'][name][method.label]:.1f}" for name in DATASETS) + " |")


def _rate(rate: float) -> str:
    return f"{rate:.2f}" if rate < 10 else f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}"


def pin_to_one_core() -> int | None:
    """Run this process (and its threads) on one CPU core: per-core figures then include the
    decoding thread, which would otherwise borrow another core. None where not supported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b)")
    parser.add_argument("--extract-rounds", type=int, default=2, help="rounds of (c)")
    parser.add_argument("--extract-pairs", type=int, default=24,
                        help="pairs of each clip extracted in (c)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: 160x120 crops, 1 round, a few pairs (tests the plumbing)")
    parser.add_argument("--profile", choices=("ultrafast", "fast", "medium"),
                        help="only profile flowkit extract with this DIS preset")
    args = parser.parse_args()
    missing = [p for p in (MIDDLEBURY, *CLIPS.values()) if not p.exists()]
    if missing:
        raise SystemExit(f"shared data missing: {', '.join(map(str, missing))}")
    core = pin_to_one_core()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            profile_extract(args.profile, Path(tmp))
            return
        crop = (160, 120) if args.quick else None
        rounds, extract_rounds = (1, 1) if args.quick else (args.rounds, args.extract_rounds)
        pairs, scale = (2, 0.05) if args.quick else (args.extract_pairs, 1.0)
        started = time.perf_counter()
        report: dict[str, Any] = {"machine": f"{machine()}; PyTorch {torch.__version__}",
                                  "core": core,
                                  "quick": args.quick, "rounds": rounds,
                                  "extract_rounds": extract_rounds,
                                  "command": " ".join(["python", "bench/flow_methods.py",
                                                       *sys.argv[1:]])}
        print("(a) accuracy", flush=True)
        report["epe"] = measure_accuracy(crop)
        print("(b) flow alone", flush=True)
        report["flow_pairs_per_s"] = measure_speed(rounds, pairs, scale, crop)
        report["flow_pairs_timed"] = {m.label: max(1, int(m.pairs * scale)) for m in METHODS}
        print("(c) through flowkit extract", flush=True)
        report["extract"] = measure_extract(extract_rounds, pairs, Path(tmp), crop)
        report["hours"] = {
            name: {m.label: count / (ESTIMATE_CORES * report["extract"][size][m.label]) / 3600
                   for m in METHODS}
            for name, (count, size) in DATASETS.items()}
        report["seconds"] = time.perf_counter() - started
    print_report(report)
    print(f"\n{report['seconds']:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
