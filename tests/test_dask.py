"""Extraction on a Dask cluster (LocalCluster on loopback, 2 worker processes): the same output
as the local backend, a worker killed mid-shard, a client killed mid-run, a folder workers
cannot see."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError
from flowkit.extract.cluster import check_workers_see
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.writer import ShardWriter, StorageConfig
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos
from test_crash import _kill_when, _ok_count
from test_extract import assert_same_output

distributed = pytest.importorskip("distributed")

CONFIG = ExtractConfig(decode=DecodeConfig(short_side=None))
SLOW_SHARD = "shard-00000.h5"  # the slow video sorts first: one shard of ~1-2 s of TV-L1


@pytest.fixture(scope="module")
def videos(tiny_videos, tmp_path_factory):
    """The 4 tiny videos and, first in order, one 128x96 video of 12 frames (the slow shard)."""
    folder = tmp_path_factory.mktemp("dask_videos")
    shutil.copytree(tiny_videos, folder / "tiny")
    make_synthetic_videos(folder / "slow", SynthConfig(num_videos=1, num_frames=12, width=128,
                                                       height=96, codec="ffv1"))
    return collect_videos([folder])


@pytest.fixture(scope="module")
def reference(videos, tmp_path_factory):
    """The local backend's output, one video a shard."""
    out = tmp_path_factory.mktemp("dask_reference")
    assert extract(videos, out, CONFIG, workers=1, videos_per_shard=1, progress=False).all_ok
    return out


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield cluster, client


def _extract_on(cluster, videos, out):
    return extract(videos, out, CONFIG, videos_per_shard=1, progress=False,
                   dask=cluster.scheduler_address)


def test_same_arrays_and_manifest_as_the_local_backend(cluster, videos, reference, tmp_path):
    report = _extract_on(cluster[0], videos, tmp_path)
    assert (report.ok, report.processed, report.frames) == (5, 5, 4 * 5 + 12)
    assert_same_output(reference, tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    assert _extract_on(cluster[0], videos, tmp_path).skipped == 5  # resumes: nothing to do


def test_a_worker_killed_mid_shard_is_replaced_and_the_shard_redone(cluster, videos, reference,
                                                                    tmp_path):
    """SIGKILL the worker writing the slow shard: the scheduler reruns it on another worker
    under its own temporary name; the dead try's half file is never taken for the shard."""
    local_cluster, client = cluster
    client.wait_for_workers(2)
    result = {}
    run = threading.Thread(target=lambda: result.update(
        report=_extract_on(local_cluster, videos, tmp_path)))
    run.start()
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(SLOW_SHARD + ".*.tmp")):
        assert time.monotonic() < deadline and run.is_alive(), "the slow shard never started"
        time.sleep(0.005)
    (half,) = tmp_path.glob(SLOW_SHARD + ".*.tmp")
    busy = [worker for worker, keys in client.processing().items()
            if any(SLOW_SHARD in str(key) for key in keys)]
    (pid,) = client.run(os.getpid, workers=busy).values()
    os.kill(pid, signal.SIGKILL)
    run.join(timeout=120)
    assert not run.is_alive()
    assert result["report"].ok == 5
    assert_same_output(reference, tmp_path)
    assert not half.exists() and not list(tmp_path.glob("*.tmp"))
    client.wait_for_workers(2)  # the nanny restarted the killed worker


CLIENT = """
import sys
from flowkit.extract.run import extract
from flowkit.extract.inputs import collect_videos
from flowkit.store.writer import ShardWriter, StorageConfig
from test_dask import CONFIG
extract(collect_videos([sys.argv[1]]), sys.argv[2], CONFIG, videos_per_shard=1, progress=False,
        dask=sys.argv[3])
"""


def test_client_killed_mid_run_then_rerun_equals_the_local_backend(cluster, videos, reference,
                                                                   tmp_path):
    """Kill -9 the client process after its first shard is recorded; a rerun resumes."""
    local_cluster, client = cluster
    client.wait_for_workers(2)
    inputs = videos[0].path.parents[2]
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(inputs), str(tmp_path), local_cluster.scheduler_address],
        cwd=Path(__file__).parent)
    _kill_when(process, lambda: _ok_count(tmp_path) >= 1)
    assert _ok_count(tmp_path) < 5
    report = _extract_on(local_cluster, videos, tmp_path)
    assert report.skipped >= 1 and report.ok == 5
    assert_same_output(reference, tmp_path)


def test_two_tries_of_one_shard_never_share_a_file(tmp_path):
    """A rerun try and a stray first try of the same shard write interleaved, each to its own
    temporary file; whichever renames last, the shard is whole at every moment."""
    path, storage = tmp_path / SLOW_SHARD, StorageConfig(rgb="raw", compression="none")

    def stored() -> list[int]:
        with h5py.File(path, "r") as shard:
            return shard["videos/v/rgb"][:, 0, 0, 0].tolist()

    with ShardWriter(path, storage, {}, tmp_tag="first") as first:
        with ShardWriter(path, storage, {}, tmp_tag="rerun") as rerun:
            assert first.tmp_path != rerun.tmp_path
            with first.video("v", {}) as a, rerun.video("v", {}) as b:
                for value in range(3):
                    a.append_frame(np.full((4, 4, 3), value, np.uint8))
                    b.append_frame(np.full((4, 4, 3), 10 + value, np.uint8))
                a.finish({})
                b.finish({})
        assert stored() == [10, 11, 12]  # the rerun's whole shard, while the first try still runs
    assert stored() == [0, 1, 2] and not list(tmp_path.glob("*.tmp"))


class _WorkerWithItsOwnDisk:
    """A stand-in client whose one worker sees ``mine`` where the client sees ``theirs``: a
    folder of the same name on a disk that is not shared."""

    def __init__(self, theirs, mine):
        self.theirs, self.mine = str(theirs), str(mine)

    def run(self, function, probe, token, on_error):
        return {"tcp://10.0.0.2:4000": function(probe.replace(self.theirs, self.mine), token)}


def test_a_worker_that_cannot_see_the_folder_fails_in_one_line(tmp_path):
    """The workers' view of --out is checked before any shard runs."""
    (tmp_path / "client").mkdir()
    (tmp_path / "worker").mkdir()
    with pytest.raises(ConfigError, match="tcp://10.0.0.2:4000 cannot use .*No such file.*"
                                          "shared file system") as error:
        check_workers_see(_WorkerWithItsOwnDisk(tmp_path / "client", tmp_path / "worker"),
                          tmp_path / "client")
    assert "\n" not in str(error.value)
    assert not list(tmp_path.rglob("*.tmp"))
