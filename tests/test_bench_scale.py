"""bench/scale.py's plumbing at tiny sizes (seconds): every part runs and reports positive
figures; the figures themselves are for the default run (docs/benchmarks.md, Kinetics scale)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_run_writes_every_part(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--videos", "200,1000",
                    "--shards", "30", "--tiny-videos", "5", "--items", "10", "--json", str(out),
                    "--keep", str(tmp_path / "work")],
                   check=True, env=env, cwd=tmp_path, timeout=300, capture_output=True)
    report = json.loads(out.read_text())
    assert [row["videos"] for row in report["sizes"]] == [200, 1000]
    for row in report["sizes"]:
        for key in ("plan_s", "shards_to_run_s", "bookkeeping_s", "bookkeeping_bytes",
                    "old_json_s", "old_json_bytes", "resume_s", "info_s", "dataset_s",
                    "manifest_bytes"):
            assert row[key] > 0, (row["videos"], key, row[key])
        assert row["shards"] == row["videos"] // 100
        assert row["bookkeeping_rounds"] == row["shards"]  # fewer than 20 shards: all of them
    shards = report["shards"]
    assert shards["videos"] == 30
    assert (shards["many"]["shards_touched"], shards["few"]["shards_touched"]) == (30, 10)
    for side in ("many", "few"):
        for key in ("dataset_s", "item_first_ms", "item_again_ms", "touch_s"):
            assert shards[side][key] > 0, (side, key)
        assert shards[side]["items"] == 10
    assert 0 < shards["few"]["open_h5"] <= 10 and 0 < shards["many"]["open_h5"] <= 30
    tiny = report["tiny"]
    # the plan, the first shard at once, the others together (a transaction at most a second)
    assert tiny["videos"] == 5 and 3 <= tiny["manifest_transactions"] <= 6
    for key in ("cpu_s_per_video", "work_cpu_s_per_video", "bytes_written", "output_bytes",
                "write_amplification"):
        assert tiny[key] > 0, key
    targets = report["targets"]
    assert targets["bookkeeping_time_ratio"] > 0 and targets["kinetics700_bookkeeping_s"] > 0
    assert all(share > 0 for share in targets["kinetics700_share"].values())
    assert (tmp_path / "work" / "videos-1000" / "manifest.sqlite").is_file()  # --keep
