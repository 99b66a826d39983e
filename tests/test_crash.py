"""Kill -9 during a run, rerun, and get what an uninterrupted run gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flowkit.store.manifest import MANIFEST_NAME, OK, Manifest
from test_extract import assert_same_output


def _command(inputs, out_dir):
    return [sys.executable, "-m", "flowkit", "extract", str(inputs), "--out", str(out_dir),
            "--short-side", "0", "--videos-per-shard", "1", "--workers", "1", "--quiet"]


def _ok_count(out_dir) -> int:
    try:
        return len(Manifest.read(out_dir / MANIFEST_NAME).with_status(OK))
    except Exception:  # noqa: BLE001  the manifest may not exist yet
        return 0


def _kill_when(process: subprocess.Popen, ready, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail("the run finished before it could be killed; make the videos longer")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("kill_point", ["mid-shard", "after-first-shard"])
def test_kill_9_then_rerun_equals_an_uninterrupted_run(tiny_videos, tmp_path, kill_point):
    """Killing the run mid-shard or between shards, then rerunning, gives identical output."""
    reference = tmp_path / "reference"
    subprocess.run(_command(tiny_videos, reference), check=True)

    out = tmp_path / "out"
    process = subprocess.Popen(_command(tiny_videos, out))
    if kill_point == "mid-shard":
        _kill_when(process, lambda: any(out.glob("*.h5.tmp")) if out.exists() else False)
    else:
        _kill_when(process, lambda: _ok_count(out) >= 1)
    assert _ok_count(out) < 4
    assert not (out / "shard-00003.h5").exists()

    rerun = subprocess.run(_command(tiny_videos, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.glob("*.tmp"))
    assert_same_output(reference, out)


# Runs `flowkit extract` with the manifest's upsert of the 2nd finished shard followed by
# SIGKILL, inside its transaction: the rows are written, the commit never happens.
_DIE_IN_BOOKKEEPING = """
import os, signal, sys
from flowkit.cli.main import main
from flowkit.store import manifest
finished = []
real_put_many = manifest.Manifest.put_many
def put_many(self, entries):
    entries = list(entries)
    if entries and entries[0].status != manifest.PENDING:
        finished.append(entries)
        if len(finished) == 2:
            with self.transaction():
                self._connection().executemany(manifest._UPSERT, map(manifest._row, entries))
                os.kill(os.getpid(), signal.SIGKILL)
    real_put_many(self, entries)
manifest.Manifest.put_many = put_many
sys.argv = ["flowkit", *sys.argv[1:]]
main()
"""


def test_kill_9_inside_a_bookkeeping_transaction_then_rerun_equals_an_uninterrupted_run(
        tiny_videos, tmp_path):
    """The manifest keeps the first shard, not the half-recorded second, and a rerun redoes
    that shard: the output equals an uninterrupted run's."""
    reference = tmp_path / "reference"
    subprocess.run(_command(tiny_videos, reference), check=True)
    out = tmp_path / "out"
    command = [sys.executable, "-c", _DIE_IN_BOOKKEEPING, *_command(tiny_videos, out)[3:]]
    killed = subprocess.run(command, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / (MANIFEST_NAME + "-journal")).exists()  # died inside the transaction
    assert [e.status for e in Manifest.read(out)] == [OK, "pending", "pending", "pending"]

    rerun = subprocess.run(_command(tiny_videos, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_output(reference, out)


def _worker_pids() -> list[int]:
    """Process ids of this process's joblib (loky) workers, found through /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"popen_loky_posix" in cmdline:  # not the resource tracker
            pids.append(int(entry))
    return pids


def test_a_killed_worker_stops_the_run_cleanly_and_a_rerun_completes(tiny_videos, tmp_path):
    """kill -9 of a worker: ExtractionError naming the cause, finished shards kept, rerun equal."""
    import threading

    from flowkit.config import ExtractConfig
    from flowkit.errors import ExtractionError
    from flowkit.extract.inputs import collect_videos
    from flowkit.extract.run import extract
    from flowkit.video.decode import DecodeConfig

    sources = collect_videos([tiny_videos])
    config = ExtractConfig(decode=DecodeConfig(short_side=None))
    extract(sources, tmp_path / "reference", config, workers=1, videos_per_shard=1,
            progress=False)
    outcome: dict = {}

    def run() -> None:
        try:
            extract(sources, tmp_path / "out", config, workers=2, videos_per_shard=1,
                    progress=False)
        except ExtractionError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out").glob("*.h5.tmp")) and time.monotonic() < deadline:
        time.sleep(0.002)  # a worker is writing a shard now
    pids = _worker_pids()
    assert pids, "no worker process found"
    for pid in pids:  # the busy one among them (an idle one alone would just be replaced)
        os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert "worker process died" in str(outcome.get("error", ""))
    report = extract(sources, tmp_path / "out", config, workers=2, videos_per_shard=1,
                     progress=False)
    assert report.ok == 4
    assert_same_output(tmp_path / "reference", tmp_path / "out")
