"""bench/flow_methods.py's plumbing at tiny sizes (seconds): every method is measured in every
part with plausible figures; the figures themselves are for the default run (docs/flow-methods.md)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["tvl1", "dis ultrafast", "dis fast", "dis medium", "dis medium, finest scale 0",
           "farneback", "tvl1-torch (CPU)"]
SIZES = ["320x240", "340x256"]


def test_quick_run_measures_every_method_in_every_part(tmp_path: Path) -> None:
    if shared_data_dir() is None:
        pytest.skip("shared data folder ../shared/data is absent; the benchmark needs its clips")
    out = tmp_path / "flow_methods.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "flow_methods.py"), "--quick",
                             "--json", str(out)], env=env, cwd=tmp_path, timeout=300,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["quick"] is True and "OpenCV" in report["machine"]
    assert list(report["epe"]) == METHODS
    for method, errors in report["epe"].items():
        assert list(errors) == ["RubberWhale", "UCF101 frame, affine",
                                "Kinetics frame, shift (3.5, -2.25)"]
        # every method finds the motion: far below the motion itself (up to about 5 px)
        assert all(0 < error < 1.5 for error in errors.values()), (method, errors)
    for part in ("flow_pairs_per_s", "extract"):
        assert list(report[part]) == SIZES
        for size in SIZES:
            rates = report[part][size]
            assert all(rates[m] > 0 and math.isfinite(rates[m]) for m in METHODS), (part, rates)
            # DIS is hundreds of times faster than TV-L1 alone, and still faster through extract
            assert all(rates[f"dis {p}"] > rates["tvl1"] for p in ("ultrafast", "fast", "medium"))
    assert all(report["extract"][size]["pairs"] == 2 for size in SIZES)
    for dataset in ("UCF101", "Kinetics-400"):
        assert all(report["hours"][dataset][m] > 0 for m in METHODS)
    assert "| dis medium |" in result.stdout and "hours on 16 cores" in result.stdout
