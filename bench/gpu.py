"""Issue 13's GPU figures in one run (< 8 minutes on one H200): RAFT vs torchvision, tvl1-torch
by batch size and kernels, end to end with GPU utilisation; printed side by side and as JSON.

(a) RAFT large and small, fp32 and bf16, 344x256 (340x256 padded) batch 1 / 8 / 32 and
1024x440 batch 1 / 8: flowkit's network, flowkit's channels_last variant, and torchvision's
raft_large / raft_small with the same random weights (torchvision's state dict loaded into
flowkit), pairs/s of the forward pass on device tensors; torchvision is imported only here
(no CPU build on the dev machines) and its rows say so when it is absent. (b) tvl1-torch on
320x240 UCF101 pairs, batch 1 / 8 / 32 / 64 / 128, kernels eager / static / triton: pairs/s,
the mean endpoint distance to OpenCV DualTVL1's flows computed beforehand on the CPU
(``--prepare``: opencv-contrib is not on the GPU machine) and RubberWhale EPE. (c) end to end,
``bench/end_to_end.py``'s ``end_to_end`` (backend alone, per-video path, flow server; 16
synthetic 340x256 videos of 200 frames) with ``nvidia-smi dmon`` sampling GPU utilisation.

    python bench/gpu.py --prepare                     # on the CPU: writes .device/gpu_ref.npz
    python bench/gpu.py --out $OUT/gpu.json           # on the GPU machine
    python bench/gpu.py --smoke --out /tmp/smoke.json # plumbing check on the CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from flowkit.flow.metrics import endpoint_error
from flowkit.flow.raft.network import RAFT
from flowkit.flow.tvl1_torch import TVL1TorchConfig, TVL1TorchFlow

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REFERENCE = ROOT / ".device" / "gpu_ref.npz"
CLIP = SHARED / "videos" / "v_ApplyEyeMakeup_g01_c01.avi"
RAFT_SETTINGS = [((256, 344), (1, 8, 32)), ((440, 1024), (1, 8))]  # (height, width), batches
TVL1_BATCHES = (1, 8, 32, 64, 128)
TVL1_KERNELS = ("eager", "static", "triton")
REFERENCE_PAIRS = 12  # OpenCV flows carried: 12 x 320x240 x 2 float32 (+ frames), < 20 MB
END_TO_END = [("raft", 32), ("tvl1-torch", 64), ("tvl1-torch", 128)]


def timed_rate(call: Callable[[], object], pairs: int, device: torch.device,
               seconds: float) -> float:
    """Pairs/s of ``call`` (``pairs`` a call): one warm-up call, then calls for ~``seconds``."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    call()
    sync()
    calls, start = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - start < seconds:
        call()
        calls += 1
        sync()
    return calls * pairs / (time.perf_counter() - start)


# --- (a) RAFT ------------------------------------------------------------------------------------

def raft_rows(device: torch.device, settings: list, iters: int, seconds: float) -> list[dict]:
    """Pairs/s of flowkit's RAFT (NCHW and channels_last) and torchvision's, same weights."""
    try:
        from torchvision.models.optical_flow import raft_large, raft_small
    except ImportError:
        raft_large = raft_small = None
        print("torchvision is not installed here: its RAFT rows are empty (it is on the GPU "
              "machine; there is no CPU build on the dev machines)")
    rows = []
    for small in (False, True):
        torch.manual_seed(0)
        reference = None
        if raft_large is not None:
            reference = (raft_small if small else raft_large)(weights=None).eval().to(device)
        ours = RAFT(small=small).eval()
        if reference is not None:  # the same weights in flowkit's network
            from flowkit.flow.raft.checkpoint import torchvision_to_original
            ours.load_state_dict(torchvision_to_original(reference.state_dict(), small))
        ours = ours.to(device)
        for precision in ("fp32", "bf16"):
            autocast = (None if precision == "fp32" else
                        lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16))
            for (height, width), batches in settings:
                for batch in batches:
                    image1 = torch.rand((batch, 3, height, width), device=device) * 255
                    image2 = torch.rand((batch, 3, height, width), device=device) * 255
                    row = {"model": "small" if small else "large", "precision": precision,
                           "size": f"{width}x{height}", "batch": batch}
                    with torch.inference_mode():
                        ours.channels_last = False
                        row["flowkit"] = timed_rate(
                            lambda: ours(image1, image2, iters, autocast), batch, device,
                            seconds)
                        if device.type == "cuda":
                            ours.channels_last = True
                            row["flowkit_channels_last"] = timed_rate(
                                lambda: ours(image1, image2, iters, autocast), batch, device,
                                seconds)
                            ours.channels_last = False
                        if reference is not None:
                            norm1, norm2 = 2 * image1 / 255 - 1, 2 * image2 / 255 - 1

                            def theirs() -> object:
                                with autocast() if autocast else _null():
                                    return reference(norm1, norm2, num_flow_updates=iters)[-1]

                            row["torchvision"] = timed_rate(theirs, batch, device, seconds)
                            row["flowkit_vs_torchvision"] = row["flowkit"] / row["torchvision"]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# --- (b) tvl1-torch -------------------------------------------------------------------------------

def prepare(path: Path, pairs: int, size: tuple[int, int] | None = None,
            config: TVL1TorchConfig = TVL1TorchConfig()) -> None:
    """On the CPU: OpenCV DualTVL1 flows of the UCF101 clip's first ``pairs`` pairs (resized to
    ``size`` (width, height) if given), with the frames and RubberWhale, into ``path``."""
    import cv2

    from flowkit.flow.files import read_flo, read_rgb_image
    from flowkit.flow.tvl1 import TVL1Config, TVL1Flow
    from flowkit.video.decode import DecodeConfig, iter_frames

    frames = []
    for frame in iter_frames(CLIP, DecodeConfig(short_side=None)):
        frames.append(frame if size is None else cv2.resize(frame, size,
                                                            interpolation=cv2.INTER_AREA))
        if len(frames) > pairs:
            break
    frames = np.stack(frames)
    options = {f: getattr(config, f) for f in TVL1Config.__dataclass_fields__}
    flows = TVL1Flow(TVL1Config(**options))(frames[:-1], frames[1:])
    folder = SHARED / "middlebury"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, frames=frames, flows=flows,
                        whale0=read_rgb_image(folder / "RubberWhale-frame10.png"),
                        whale1=read_rgb_image(folder / "RubberWhale-frame11.png"),
                        whale_truth=read_flo(folder / "RubberWhale-flow10.flo"))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {pairs} OpenCV flows")


def tvl1_rows(device: torch.device, reference: Path, batches: tuple[int, ...],
              kernels: tuple[str, ...], seconds: float,
              config: TVL1TorchConfig = TVL1TorchConfig(), whale: bool = True) -> list[dict]:
    """Pairs/s by batch size and kernels, distance to the carried OpenCV flows, RubberWhale."""
    data = np.load(reference)
    frames, cv_flows = data["frames"], data["flows"]
    pool = len(frames) - 1
    rows = []
    for name in kernels:
        try:
            backend = TVL1TorchFlow(
                TVL1TorchConfig(**{**config.__dict__, "kernels": name}), device=str(device))
        except Exception as exc:  # e.g. Triton absent: the other rows still run
            rows.append({"kernels": name, "error": str(exc)})
            print(json.dumps(rows[-1]), flush=True)
            continue
        flows = backend(frames[:-1], frames[1:])
        distance = float(np.linalg.norm(flows.astype(np.float64) - cv_flows, axis=-1).mean())
        row: dict[str, Any] = {"kernels": name, "distance_to_opencv_px": distance}
        if whale:
            flow = backend(data["whale0"][None], data["whale1"][None])[0]
            row["rubberwhale_epe"] = float(endpoint_error(flow, data["whale_truth"]))
        for batch in batches:
            index = np.arange(batch) % pool
            first, second = frames[index], frames[index + 1]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row[f"pairs_per_s_b{batch}"] = timed_rate(lambda: backend(first, second), batch,
                                                      device, seconds)
            if device.type == "cuda":
                row[f"peak_gb_b{batch}"] = torch.cuda.max_memory_allocated(device) / 1e9
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


# --- (c) end to end -------------------------------------------------------------------------------

def end_to_end_rows(device: torch.device, videos: Path | None, runs: list, log: Path,
                    num_videos: int = 16, frames: int = 200) -> list:
    """bench/end_to_end.py's three figures (backend alone, per-video path, flow server with
    ``flowkit extract``'s default worker count) with nvidia-smi dmon utilisation beside each
    run. Without ``videos``, ``num_videos`` synthetic 340x256 videos of ``frames`` frames are
    made; RAFT runs large, bf16, with random weights saved to a temporary file."""
    sys.path.insert(0, str(Path(__file__).parent))
    from end_to_end import end_to_end

    from flowkit.flow import make_backend_config
    from flowkit.video.synth import SynthConfig, make_synthetic_videos

    with tempfile.TemporaryDirectory() as tmp:
        if videos is None:
            videos = Path(tmp) / "videos"
            make_synthetic_videos(videos, SynthConfig(num_videos=num_videos, num_frames=frames,
                                                      width=340, height=256, codec="ffv1"))
        weights = Path(tmp) / "raft-large-random.pth"
        torch.manual_seed(0)
        torch.save(RAFT(small=False).state_dict(), weights)
        rows = []
        for backend, batch in runs:
            params = (make_backend_config("raft", weights=str(weights), precision="bf16")
                      if backend == "raft" else None)
            dmon_log = log.with_name(f"{log.stem}_dmon_{backend}_{batch}.txt")
            with dmon_log.open("w") as out:
                try:
                    dmon = subprocess.Popen(["nvidia-smi", "dmon", "-s", "u", "-d", "1"],
                                            stdout=out, stderr=subprocess.STDOUT)
                except OSError:
                    dmon = None
                try:
                    result = end_to_end(videos, str(device), backend, batch, 4,
                                        flow_params=params, served_workers=os.cpu_count())
                    row = {"backend": backend, "batch": batch, "result": result}
                except Exception as exc:  # keep the other runs' figures
                    row = {"backend": backend, "batch": batch, "error": repr(exc)}
                finally:
                    if dmon is not None:
                        dmon.terminate()
                        dmon.wait()
            row["gpu_util_mean_pct"] = dmon_utilisation(dmon_log)
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
    return rows


def dmon_utilisation(path: Path) -> float | None:
    """Mean SM utilisation (%) of an ``nvidia-smi dmon -s u`` log, None without samples."""
    samples = []
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = line.split()
        if fields and not line.startswith("#") and len(fields) > 1 and fields[1].isdigit():
            samples.append(int(fields[1]))
    return statistics.mean(samples) if samples else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepare", action="store_true",
                        help="write the OpenCV reference flows (CPU, needs opencv-contrib)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, seconds")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    parser.add_argument("--videos", type=Path, help="videos for the end-to-end runs [default: "
                        "16 synthetic 340x256 videos of --e2e-frames frames]")
    parser.add_argument("--e2e-frames", type=int, default=200, help="frames of each video")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "gpu.json")
    parser.add_argument("--seconds", type=float, default=1.5, help="timing per setting")
    parser.add_argument("--skip", default="", help="comma list of raft,tvl1,e2e to skip")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.reference, REFERENCE_PAIRS)
        return
    device = torch.device(args.device)
    skip = set(args.skip.split(",")) - {""}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "torch": torch.__version__, "smoke": args.smoke}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        raft_settings, batches, seconds = RAFT_SETTINGS, TVL1_BATCHES, args.seconds
        tvl1_config, reference, iters = TVL1TorchConfig(), args.reference, 12
        if args.smoke:
            raft_settings, batches, seconds, iters = [((128, 128), (1,))], (1, 2), 0.0, 1
            tvl1_config = TVL1TorchConfig(nscales=2, warps=1, outer_iterations=1,
                                          inner_iterations=3)
            reference = Path(tmp) / "ref.npz"
            prepare(reference, 2, size=(40, 32), config=tvl1_config)
        if "raft" not in skip:
            report["raft"] = raft_rows(device, raft_settings, iters, seconds)
        if "tvl1" not in skip:
            report["tvl1_torch"] = tvl1_rows(device, reference, batches, TVL1_KERNELS, seconds,
                                             tvl1_config, whale=not args.smoke)
        if "e2e" not in skip:
            runs, videos, frames = END_TO_END, args.videos, args.e2e_frames
            if args.smoke:
                runs, frames = [("tvl1-torch", 2)], 3
            report["end_to_end"] = end_to_end_rows(device, videos, runs, args.out,
                                                   num_videos=2 if args.smoke else 16,
                                                   frames=frames)
    report["seconds"] = time.perf_counter() - start
    args.out.write_text(json.dumps(report, indent=1, default=str))
    print(f"wrote {args.out} after {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
