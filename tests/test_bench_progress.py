"""The plumbing of bench/decode_check.py and bench/progress_eta.py at tiny sizes (seconds); the
figures are for their default runs (docs/benchmarks.md)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowkit.extract.progress import ProgressBar, ProgressCounts
from helpers import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], env=env,
                            cwd=cwd, timeout=300, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_decode_check_quick_run_measures_each_part(tmp_path: Path) -> None:
    if shared_data_dir() is None:
        pytest.skip("shared data folder ../shared/data is absent; the benchmark needs its clips")
    out = _bench("decode_check.py", "--quick", cwd=tmp_path)
    assert len(re.findall(r"check [\d.]+ ms/frame, decode to RGB [\d.]+ ms/frame", out)) == 2
    costs = r"pairs/s checked, [\d.]+ unchecked, cost [-+][\d.]+% CPU time; the check alone [\d.]+%"
    assert len(re.findall(costs, out)) == 6
    assert len(re.findall(r"failed after [\d.]+ s checked", out)) == 2


def test_progress_eta_reads_the_bars_lines(monkeypatch) -> None:
    """The benchmark's parser against the bar itself, so that a change of the bar's format
    cannot leave the benchmark measuring nothing."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from progress_eta import bar_lines

    clock, out = [0.0], io.StringIO()
    bar = ProgressBar(videos=2, clock=lambda: clock[0], file=out)
    clock[0] = 30.0
    bar.update(ProgressCounts(begun=1, planned=100))
    time.sleep(0.12)  # tqdm prints at most every 0.1 s
    bar.update(ProgressCounts(units=25))
    clock[0] = 3725.0
    time.sleep(0.12)
    bar.update(ProgressCounts(units=75, videos=1))
    bar.update(ProgressCounts(begun=1, planned=100, units=100, videos=1))
    bar.close()
    lines = bar_lines(out.getvalue())
    assert (25, 200, 30, 210) in lines and (100, 200, 3725, 3695) in lines
    assert lines[-1] == (200, 200, 3725, None)
