"""How runs end: a killed parent takes its workers along, signals exit 130/143, output errors
(disk full, read-only, I/O) stop the run with one line and exit 3, input errors fail one video."""

from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_ERROR, EXIT_USAGE, main
from flowkit.config import ExtractConfig
from flowkit.errors import LockError, OutputError, ShardError
from flowkit.extract.inputs import collect_videos
from flowkit.lock import LOCK_NAME, FolderLock
from flowkit.extract.run import extract
from flowkit.store.manifest import FAILED, MANIFEST_NAME, OK, PENDING, Manifest
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos
from flowkit.writing import is_output_error, output_error, writing
from test_extract import assert_same_output

FAST = ["--short-side", "0", "--flow", "farneback", "--quiet"]


def _config(**storage) -> ExtractConfig:
    return ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback",
                         storage=StorageConfig(**storage))


def _cli(inputs, out_dir, *options: str) -> list[str]:
    return [sys.executable, "-m", "flowkit", "extract", str(inputs), "--out", str(out_dir),
            *FAST, *options]


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, found through /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, p in parents.items() if p == parent]
        found += kids
        frontier += kids
    return found


def _running(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies count as ended)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory) -> tuple[Path, Path]:
    """Four 96x72 lossless videos of 60 frames (a two-worker run lasts a few seconds), and
    their uninterrupted extraction, one video a shard."""
    root = tmp_path_factory.mktemp("slow_run")
    config = SynthConfig(num_videos=4, num_frames=60, width=96, height=72, codec="ffv1")
    make_synthetic_videos(root / "videos", config)
    extract(collect_videos([root / "videos"]), root / "reference", _config(), workers=1,
            videos_per_shard=1, progress=False)
    return root / "videos", root / "reference"


# -- 1. a killed parent -------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT-group"])
def test_stopping_the_parent_ends_every_child_and_a_rerun_completes(slow_run, tmp_path, how):
    """kill -9 / SIGTERM of the parent only, or Ctrl-C: no child outlives it by a second, the
    lock is free, and a rerun gives what an uninterrupted run gives. SIGTERM exits 143 and
    Ctrl-C 130, with one line and no leaked-semaphore warnings."""
    slow_videos, slow_reference = slow_run
    out = tmp_path / "out"
    command = _cli(slow_videos, out, "--workers", "2", "--videos-per-shard", "1")
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + 60
    # Both workers are writing shards (so both are past their start-up: Ctrl-C while a worker
    # process is still importing makes Python print its traceback; docs/reliability.md).
    while len(list(out.glob("*.h5.tmp"))) < 2:
        assert process.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline, "no worker ever started a shard"
        time.sleep(0.005)
    children = _children(process.pid)
    assert len(children) >= 3  # two workers, the manager, resource trackers
    if how == "SIGINT-group":
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(process.pid, getattr(signal, how))
    stopped = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    while _running(children) and time.monotonic() - stopped < 5:
        time.sleep(0.02)
    assert _running(children) == [], f"children alive {time.monotonic() - stopped:.1f} s after"
    if how != "SIGKILL":
        assert process.returncode == {"SIGTERM": 143, "SIGINT-group": 130}[how]
        assert stderr.strip() == "flowkit: interrupted; rerun the same command to resume"
        assert not list(out.glob("*.tmp"))

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.glob("*.tmp"))
    assert_same_output(slow_reference, out)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_a_forked_child_does_not_keep_the_folder_locked(tmp_path):
    """The lock is the run's alone: a process forked while it is held (multiprocessing's
    manager) does not hold it after the run let go."""
    child = multiprocessing.get_context("fork").Process(target=_sleep, args=(30,))
    with FolderLock(tmp_path):
        child.start()
    try:
        with FolderLock(tmp_path):
            pass
    finally:
        child.kill()
        child.join()


def test_a_lock_left_to_an_orphan_of_a_dead_run_is_named_precisely(tmp_path):
    """The recorded run is dead but another process holds the lock: the message says so and
    names the holder to end."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / LOCK_NAME).write_text(dead.stdout.strip())
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time\n"
        f"f = open({str(tmp_path / LOCK_NAME)!r}, 'a')\n"
        "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockError) as caught:
            FolderLock(tmp_path).__enter__()
    finally:
        holder.kill()
        holder.wait()
    message = str(caught.value)
    assert f"(pid {dead.stdout.strip()}) has died" in message
    assert f"kill {holder.pid}" in message and "\n" not in message


# -- 4. output errors stop the run; input errors fail one video --------------------------------

# h5py raises some of HDF5's failed writes as RuntimeError, the errno only in the message
_H5PY_FULL = ("file write failed: time = Thu Dec  3 13:49:36 2026\n, filename = '{name}', file "
              "descriptor = 5, errno = 28, error message = 'No space left on device', buf = "
              "0x558b63b1f680, total write size = 14473, bytes this sub-write = 14473, offset = "
              "774144")


def _enospc_in_h5py_words(name: str) -> RuntimeError:
    return RuntimeError(f"Can't write data ({_H5PY_FULL.format(name=name)})")


@pytest.mark.parametrize("code, advice, make_error", [
    (errno.ENOSPC, "no space left on the device", None),
    (errno.EROFS, "read-only file system", None),
    (errno.EACCES, "permission denied", None),
    (errno.EIO, "input/output error", None),
    (errno.ENOSPC, "no space left on the device", _enospc_in_h5py_words)])
def test_an_output_error_in_the_writer_stops_the_run_and_a_rerun_completes(
        tiny_videos, tmp_path, monkeypatch, code, advice, make_error):
    """The 3rd frame of the 2nd shard fails to write (an OSError, or h5py's RuntimeError with
    the errno in its message): OutputError naming the shard and what to do; the first shard is
    kept, nothing is recorded as failed, no .tmp is left; a rerun once the cause is gone equals
    an uninterrupted run."""
    from flowkit.store import writer

    sources = collect_videos([tiny_videos])
    extract(sources, tmp_path / "reference", _config(), workers=1, videos_per_shard=2,
            progress=False)
    real_append, calls = writer._GrowingDataset._append, []

    def failing_append(self, item):
        calls.append(self._group.file.filename)
        if "shard-00001" in calls[-1] and len([c for c in calls if "shard-00001" in c]) == 3:
            raise (make_error(calls[-1]) if make_error else OSError(code, os.strerror(code)))
        real_append(self, item)

    monkeypatch.setattr(writer._GrowingDataset, "_append", failing_append)
    out = tmp_path / "out"
    with pytest.raises(OutputError) as caught:
        extract(sources, out, _config(), workers=1, videos_per_shard=2, progress=False)
    assert str(caught.value).startswith(f"{out / 'shard-00001.h5.tmp'}: cannot write: {advice}")
    assert not list(out.glob("*.tmp"))
    manifest = Manifest.read(out / MANIFEST_NAME)
    assert [e.status for e in manifest] == [OK, OK, PENDING, PENDING]
    assert not manifest.with_status(FAILED)

    monkeypatch.setattr(writer._GrowingDataset, "_append", real_append)
    report = extract(sources, out, _config(), workers=1, videos_per_shard=2, progress=False)
    assert (report.ok, report.skipped) == (4, 2)
    assert_same_output(tmp_path / "reference", out)


def test_a_failed_flush_raised_as_runtime_error_exits_3_with_one_line(
        tiny_videos, tmp_path, monkeypatch):
    """On a full disk HDF5 often fails first when the shard is flushed at its end, and h5py
    raises that as RuntimeError (it used to escape as a traceback, and the file left open
    crashed the process at exit): exit 3, one line naming the shard; the shard before it is
    kept, its file is dropped, and a rerun equals an uninterrupted run."""
    import h5py

    sources = collect_videos([tiny_videos])
    extract(sources, tmp_path / "reference", _config(), workers=1, videos_per_shard=2,
            progress=False)
    real_flush = h5py.File.flush

    def failing_flush(self):
        if "shard-00001" in self.filename:
            raise RuntimeError("Unable to synchronously flush file "
                               f"({_H5PY_FULL.format(name=self.filename)})")
        real_flush(self)

    monkeypatch.setattr(h5py.File, "flush", failing_flush)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["extract", str(tiny_videos), "--out", str(out), *FAST,
                                       "--workers", "1", "--videos-per-shard", "2"])
    assert result.exit_code == EXIT_ERROR, result.output
    assert result.output.strip() == (f"flowkit: error: {out / 'shard-00001.h5.tmp'}: cannot "
                                     "write: no space left on the device; free some space (or "
                                     "choose another --out), then rerun the same command to "
                                     "resume")
    assert not list(out.glob("*.tmp")) and (out / "shard-00000.h5").exists()
    assert not Manifest.read(out / MANIFEST_NAME).with_status(FAILED)

    monkeypatch.setattr(h5py.File, "flush", real_flush)
    report = extract(sources, out, _config(), workers=1, videos_per_shard=2, progress=False)
    assert (report.ok, report.skipped) == (4, 2)
    assert_same_output(tmp_path / "reference", out)


def test_hdf5_errors_with_the_errno_in_the_message_read_as_that_errno():
    """h5py sometimes raises OSError(None) with 'errno = 28' only in its text."""
    exc = OSError("Can't write data (file write failed: errno = 28, error message = 'No space "
                  "left on device')")
    assert "no space left on the device" in str(output_error("x.h5.tmp", exc))


@pytest.mark.parametrize("exc, output", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (RuntimeError(f"Unable to synchronously flush file ({_H5PY_FULL.format(name='x')})"), True),
    (ValueError(f"Can't write data ({_H5PY_FULL.format(name='x')})"), True),
    (RuntimeError("Unable to synchronously create dataset (name already exists)"), False),
    (RuntimeError("a bug"), False),
    (ValueError("could not broadcast input array from shape (2,) into shape (3,)"), False),
    (ShardError(f"x.h5: {_H5PY_FULL.format(name='x')}"), False),
    (KeyboardInterrupt(), False)])
def test_only_errors_naming_a_failed_system_call_count_as_the_outputs(exc, output):
    """An HDF5 error of any type that carries the errno of its file driver's failed call is the
    output's fault; a RuntimeError or ValueError without one (a bug, a bad value) is not, and
    stays what it is (a video's failure, when it happens inside one)."""
    assert is_output_error(exc) is output
    if isinstance(exc, Exception):
        raised = OutputError if output else type(exc)
        with pytest.raises(raised):
            with writing("x.h5.tmp"):
                raise exc


def _mount_tmpfs(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the fault-injection tests cover it")


@pytest.fixture(scope="module")
def filling_run(tmp_path_factory) -> tuple[Path, Path]:
    """Eight 160x120 lossless videos of 32 frames, two a shard of about 950 KB (3.7 MB in
    all, mostly JPEG frames, which HDF5 holds in its cache until the shard is flushed: where
    the disk fills then, h5py raises RuntimeError), and their extraction on a disk with room."""
    root = tmp_path_factory.mktemp("filling_run")
    make_synthetic_videos(root / "videos", SynthConfig(num_videos=8, num_frames=32, width=160,
                                                       height=120, codec="ffv1"))
    reference = subprocess.run(_cli(root / "videos", root / "reference", *FILLING),
                               capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    return root / "videos", root / "reference"


FILLING = ["--videos-per-shard", "2"]


@pytest.mark.slow
@pytest.mark.parametrize("size, workers", [("16k", 1), ("300k", 1), ("300k", 2), ("1m", 1),
                                           ("1m", 2), ("3m", 1), ("3m", 2)])
def test_a_full_disk_exits_3_with_one_line_and_a_rerun_on_a_bigger_disk_completes(
        filling_run, tmp_path, size, workers):
    """Into a tmpfs of 16 KB (the manifest does not fit, before any worker starts), 300 KB
    (no shard fits), 1 MB and 3 MB (some do), with one worker and two: exit 3, one line (it used to be a segmentation fault, exit 139, with one
    worker and a chain of tracebacks, exit 1, with two), no .tmp left filling the disk, no
    video recorded as failed; once there is room the same command completes, equal to a run
    that had room from the start."""
    videos, reference = filling_run
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, f"size={size}")
    try:
        out = disk / "out"
        options = [*FILLING, "--workers", str(workers)]
        full = subprocess.run(_cli(videos, out, *options), capture_output=True, text=True)
        assert full.returncode == EXIT_ERROR, full.stderr
        lines = full.stderr.strip().splitlines()
        assert len(lines) == 1 and "cannot write: no space left on the device" in lines[0], lines
        assert not list(out.glob("*.tmp"))
        if (out / MANIFEST_NAME).exists():
            manifest = Manifest.read(out / MANIFEST_NAME)
            assert not manifest.with_status(FAILED) and len(manifest.with_status(OK)) < 8

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        rerun = subprocess.run(_cli(videos, out, *options), capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert_same_output(reference, out)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_read_only_output_exits_3_with_one_line(tiny_videos, tmp_path):
    """A read-only file system under --out: exit 3, one line saying to choose a writable one."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "size=1m,ro")
    try:
        result = CliRunner().invoke(main, ["extract", str(tiny_videos), "--out",
                                           str(disk / "out"), *FAST])
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert result.exit_code == EXIT_ERROR
    assert result.output.strip() == (f"flowkit: error: {disk / 'out'}: cannot write: read-only "
                                     "file system; choose a writable --out")


def test_input_problems_fail_that_video_only(tiny_videos, tmp_path, monkeypatch):
    """A vanished input and an unreadable one (EACCES, like a write error's errno) are the
    videos' failures: recorded with one line each, and the other videos are extracted."""
    import flowkit.extract.shard as shard_work

    videos = tmp_path / "videos"
    videos.mkdir()
    for path in tiny_videos.rglob("*.mkv"):
        (videos / path.name).write_bytes(path.read_bytes())
    sources = collect_videos([videos])
    (videos / sources[0].video_id).unlink()
    real_probe = shard_work.probe

    def probe(path):
        if path.name == sources[1].video_id:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_probe(path)

    monkeypatch.setattr(shard_work, "probe", probe)
    report = extract(sources, tmp_path / "out", _config(), workers=1, progress=False)
    assert report.ok == 2
    errors = {entry.video_id: entry.error for entry in report.failed}
    assert set(errors) == {sources[0].video_id, sources[1].video_id}
    assert all("\n" not in error and str(videos) in error for error in errors.values())
    assert "Permission denied" in errors[sources[1].video_id]


# -- 4. usage errors: one line, exit 2 ---------------------------------------------------------

@pytest.mark.parametrize("command", [["verify"], ["info"], ["view", "--out", "x.png"]])
def test_a_folder_that_is_not_flowkit_output_is_a_usage_error(tmp_path, command):
    """verify, info and view agree: exit 2 and one line."""
    result = CliRunner().invoke(main, [command[0], str(tmp_path), *command[1:]])
    assert result.exit_code == EXIT_USAGE
    assert result.output.count("\n") == 1 and "is this a flowkit output folder?" in result.output


def test_a_missing_list_root_is_refused_at_once(tiny_videos, tmp_path):
    result = CliRunner().invoke(main, ["extract", str(tiny_videos / "labels.txt"), "--list-root",
                                       str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_USAGE
    assert result.output == (f"flowkit: error: {tmp_path / 'nowhere'}: list root folder does "
                             "not exist\n")
    assert not (tmp_path / "out").exists()


def test_a_repeated_line_in_a_list_file_is_named(tiny_videos, tmp_path):
    lines = (tiny_videos / "labels.txt").read_text().splitlines()
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n")
    result = CliRunner().invoke(main, ["extract", str(listing), "--list-root", str(tiny_videos),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_USAGE
    video_id = lines[0].split()[0]
    assert result.output == (f"flowkit: error: {listing}:3: {video_id} is listed again (first at "
                             "line 1); list each video once\n")


@pytest.mark.parametrize("options, message", [
    (["--tvl1-tau", "0.5"], "--tvl1-tau must be a number in (0, 0.25], got 0.5"),
    (["--flow", "tvl1-torch", "--tvl1-torch-median-filtering", "4"],
     "--tvl1-torch-median-filtering must be one of (0, 1, 3, 5)"),
    (["--flow", "farneback", "--farneback-levels", "-1"],
     "--farneback-levels must be an integer >= 0, got -1")])
def test_backend_parameter_errors_name_the_option(tiny_videos, tmp_path, options, message):
    result = CliRunner().invoke(main, ["extract", str(tiny_videos), "--out", str(tmp_path),
                                       *options])
    assert result.exit_code == EXIT_USAGE
    assert result.output.startswith(f"flowkit: error: {message}") and "Config" not in result.output
