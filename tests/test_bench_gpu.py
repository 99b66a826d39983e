"""bench/gpu.py's plumbing on the CPU (--smoke: tiny sizes, every part, seconds): the figures
themselves are for the GPU machine (docs/benchmarks.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def test_smoke_run_writes_every_part(tmp_path: Path) -> None:
    """RAFT rows (torchvision's absent here), tvl1-torch rows for every kernels choice (triton
    refused without Triton, not crashing the run), the end-to-end figures, one JSON."""
    if shared_data_dir() is None:
        pytest.skip("shared data folder ../shared/data is absent (the UCF101 clip)")
    out = tmp_path / "gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("TRITON_INTERPRET", None)
    subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--device", "cpu",
                    "--out", str(out)], check=True, env=env, cwd=tmp_path, timeout=300,
                   capture_output=True)
    report = json.loads(out.read_text())
    assert report["device"] == "CPU" and report["smoke"] is True
    assert {(row["model"], row["precision"]) for row in report["raft"]} == {
        (model, precision) for model in ("large", "small") for precision in ("fp32", "bf16")}
    assert all(row["flowkit"] > 0 for row in report["raft"])
    rows = {row["kernels"]: row for row in report["tvl1_torch"]}
    assert set(rows) == {"eager", "static", "triton"}
    for name in ("eager", "static"):
        assert rows[name]["distance_to_opencv_px"] < 1e-3  # 3 iterations: float rounding
        assert rows[name]["pairs_per_s_b1"] > 0 and rows[name]["pairs_per_s_b2"] > 0
    assert "error" in rows["triton"] or rows["triton"]["distance_to_opencv_px"] < 1e-3
    (e2e,) = report["end_to_end"]  # smoke: tvl1-torch, batch 2, 2 videos of 3 frames
    assert (e2e["backend"], e2e["batch"]) == ("tvl1-torch", 2), e2e
    figures = e2e["result"]
    assert min(figures[k] for k in ("backend_alone_pairs_s", "per_video_pairs_s",
                                    "flow_server_pairs_s")) > 0
