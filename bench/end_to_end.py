"""End to end: the flow backend alone vs `flowkit extract` per video vs through the flow server.

Side by side in one run, at the same batch size (issue 13):
- backend alone: the backend on decoded frame pairs already in memory, ``batch_size`` a call;
- per video: ``extract(..., flow_server=False)``, each worker holding its own backend and
  batching within its current video (the path before issue 13);
- flow server: ``extract(..., flow_server=True)``, one model process per device fed across
  videos by the workers (decode, JPEG, quantisation, compression in the workers).
Plus the transport ceiling: pairs/s through a flow server whose backend does nothing (frames
pickled to the server over a Unix socket, float32 flows back).

    python bench/end_to_end.py                                     # CPU, tvl1-torch, small
    python bench/end_to_end.py --device cuda --videos 16 --frames 200 --flow raft \\
        --raft-weights raft.pth --precision bf16 --batch-size 32 --workers 16

bench/gpu.py calls :func:`end_to_end` and :func:`transport` for its end-to-end part.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, require_all_ok

from flowkit.config import ExtractConfig
from flowkit.extract.flow_server import flow_servers
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow import FlowBackend, get_backend, make_backend_config
from flowkit.video.decode import DecodeConfig, iter_frames
from flowkit.video.synth import SynthConfig, make_synthetic_videos

NATIVE = DecodeConfig(short_side=None)


class ZeroFlow(FlowBackend):
    """Costs nothing: zero flow of the right shape (to measure transport alone)."""

    name = "zero"

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.zeros((*first.shape[:3], 2), np.float32)


def zero_flow(device: str = "cpu") -> FlowBackend:
    return ZeroFlow(None, device)


def transport(width: int = 340, height: int = 256, pairs: int = 256, batch_size: int = 32,
              clients: int = 2) -> dict[str, float]:
    """Pairs/s ``clients`` threads get through a flow server that computes nothing."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (8, height, width, 3), dtype=np.uint8)
    with flow_servers(zero_flow, ["cpu"], batch_size) as servers:
        def stream() -> None:
            client = servers("cpu")
            flows = client.open_stream(lambda flow: None)
            for index in range(pairs // clients):
                flows.add(frames[index % 8], frames[(index + 1) % 8])
            flows.finish()
            client.close()

        threads = [threading.Thread(target=stream) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
    rate = pairs / seconds
    return {"transport_pairs_s": rate, "transport_ms_per_pair": 1000 / rate,
            "transport_mb_per_pair": (2 * height * width * 3 + height * width * 8) / 1e6}


def backend_alone(videos: list[Path], backend: FlowBackend, batch_size: int,
                  max_pairs: int) -> float:
    """Pairs/s of the backend on in-memory pairs of ``videos``, after one warm-up batch."""
    firsts, seconds = [], []
    for video in videos:
        frames = list(iter_frames(video, NATIVE))
        firsts += frames[:-1]
        seconds += frames[1:]
        if len(firsts) >= max_pairs + batch_size:
            break
    first, second = np.stack(firsts), np.stack(seconds)
    backend(first[:batch_size], second[:batch_size])  # warm-up (allocations, kernels)
    first, second = first[batch_size:][:max_pairs], second[batch_size:][:max_pairs]
    started = time.perf_counter()
    for start in range(0, len(first), batch_size):
        backend(first[start:start + batch_size], second[start:start + batch_size])
    if backend.device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
    return len(first) / (time.perf_counter() - started)


def end_to_end(videos_dir: Path | str, device: str, backend: str, batch_size: int,
               workers: int, *, flow_params: Any = None, served_workers: int | None = None,
               alone_pairs: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """The three figures, pairs/s, for the videos in ``videos_dir`` on ``device``.

    Args:
        backend: a flow method name (tvl1-torch, raft ...); ``flow_params`` its config.
        workers: worker processes of the per-video path (each loads a model on ``device``).
        served_workers: worker processes feeding the flow server (default: ``workers``).
        alone_pairs: pairs timed for the backend alone (default: 4 batches).
        threads: CPU threads of each worker and of the flow server, and of the backend alone
            on the CPU (default: cores / workers, as extract chooses).
    """
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    videos_dir = Path(videos_dir)
    sources = collect_videos([videos_dir])
    config = ExtractConfig(decode=NATIVE, flow=backend, batch_size=batch_size, device=device,
                           flow_params=flow_params)
    if device == "cpu":
        import torch
        torch.set_num_threads(threads)
    alone = backend_alone([s.path for s in sources], get_backend(backend, config.flow_params,
                                                                 device), batch_size,
                          alone_pairs or 4 * batch_size)
    result: dict[str, Any] = {"device": device, "backend": backend, "batch_size": batch_size,
                              "videos": len(sources), "workers": workers,
                              "served_workers": served_workers or workers, "threads": threads,
                              "backend_alone_pairs_s": alone}
    with tempfile.TemporaryDirectory() as tmp:
        for name, served, count in (("per_video", False, workers),
                                    ("flow_server", True, served_workers or workers)):
            report = extract(sources, Path(tmp) / name, config, workers=count, threads=threads,
                             progress=False, flow_server=served)
            require_all_ok(report)
            pairs = report.frames - report.processed  # step 1: N - 1 flows a video
            result[f"{name}_seconds"] = report.seconds
            result[f"{name}_pairs_s"] = pairs / report.seconds
        result["pairs"] = pairs
    result["flow_server_vs_alone"] = result["flow_server_pairs_s"] / alone
    result["per_video_vs_alone"] = result["per_video_pairs_s"] / alone
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", default="340x256")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--flow", default="tvl1-torch")
    parser.add_argument("--raft-weights", help="weights for --flow raft")
    parser.add_argument("--raft-small", action="store_true")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--served-workers", type=int, help="default: --workers")
    parser.add_argument("--threads", type=int, help="CPU threads a process (default: cores / "
                        "workers)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    params = None
    if args.flow == "raft":
        params = make_backend_config("raft", weights=args.raft_weights, small=args.raft_small,
                                     precision=args.precision)
    elif args.flow == "tvl1-torch" and args.precision != "fp32":
        raise SystemExit("tvl1-torch has no --precision")
    print(f"machine: {machine()}; os.cpu_count() {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic_videos(Path(tmp), SynthConfig(num_videos=args.videos,
                                                     num_frames=args.frames, width=width,
                                                     height=height, codec="ffv1"))
        figures = transport(width, height, batch_size=args.batch_size)
        figures |= end_to_end(tmp, args.device, args.flow, args.batch_size, args.workers,
                              flow_params=params, served_workers=args.served_workers,
                              threads=args.threads)
    print(f"{args.videos} videos x {args.frames} frames at {args.size}, {args.flow} "
          f"{args.precision}, batch {args.batch_size}, device {args.device}")
    print("| run | pairs/s | vs backend alone |")
    print("| --- | ---: | ---: |")
    alone = figures["backend_alone_pairs_s"]
    print(f"| backend alone (pairs in memory) | {alone:.2f} | 1.00 |")
    print(f"| per video, {args.workers} workers | {figures['per_video_pairs_s']:.2f} | "
          f"{figures['per_video_vs_alone']:.2f} |")
    print(f"| flow server, {figures['served_workers']} workers | "
          f"{figures['flow_server_pairs_s']:.2f} | {figures['flow_server_vs_alone']:.2f} |")
    print(f"transport through a server that computes nothing: {figures['transport_pairs_s']:.0f} "
          f"pairs/s ({figures['transport_ms_per_pair']:.2f} ms a pair, "
          f"{figures['transport_mb_per_pair']:.2f} MB moved a pair)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
