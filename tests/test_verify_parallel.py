"""verify in worker processes (issue 20): whole shards per worker, the same problems in the same
order as one process, whatever the number of workers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.store.manifest import FAILED, Manifest, ManifestEntry
from flowkit.store.verify import DAMAGED, INCONSISTENT, UNCHECKED, verify
from flowkit.video.decode import DecodeConfig
from test_checksums import flip_byte, strip_checksums


def _extract(videos: Path, out: Path, repair: bool = False) -> None:
    """One video a shard; a repair verifies in two workers (the run's count)."""
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback")
    report = extract(collect_videos([videos]), out, config, workers=2 if repair else 1,
                     progress=False, videos_per_shard=1, repair=repair)
    assert report.all_ok


@pytest.fixture
def damaged(tiny_videos, tmp_path) -> tuple[Path, list[str]]:
    """A folder of one video a shard with something wrong in every shard, and its video ids
    in manifest order: the second video repaired once into a new shard (so manifest order and
    shard order differ) and damaged again there, the third's flow damaged, the fourth's frame
    count wrong in a shard without checksums, the first failed in the manifest but present in
    its shard, and a pending video at the end."""
    out = tmp_path / "out"
    _extract(tiny_videos, out)
    first, second, third, fourth = ids = [entry.video_id for entry in Manifest.read(out)]
    flip_byte(out, second, "rgb", 1)
    _extract(tiny_videos, out, repair=True)
    assert Manifest.read(out)[second].shard == "shard-00004.h5"  # and only it was repaired
    assert [entry.shard for entry in Manifest.read(out)] == [
        "shard-00000.h5", "shard-00004.h5", "shard-00002.h5", "shard-00003.h5"]
    flip_byte(out, second, "rgb", 2)
    flip_byte(out, third, "flow", 0)
    strip_checksums(out, "shard-00003.h5")
    with Manifest.open(out) as manifest:
        manifest.put(dataclasses.replace(manifest[first], status=FAILED, error="boom"))
        manifest.put(dataclasses.replace(manifest[fourth], num_frames=7))
        manifest.put(ManifestEntry("late/late_4.mkv", "late_4.mkv", 0, "shard-00005.h5"))
    return out, [*ids, "late/late_4.mkv"]


def test_workers_find_the_same_problems_in_manifest_order(damaged):
    out, (first, second, third, fourth, late) = damaged
    serial = verify(out)
    assert [(p.video_id, p.kind) for p in serial] == [
        (first, INCONSISTENT), (second, DAMAGED), (third, DAMAGED), *[(fourth, DAMAGED)] * 3,
        (None, UNCHECKED), (late, INCONSISTENT)]
    assert [str(p) for p in serial] == [
        f"{first}: failed in the manifest but present in shard-00000.h5",
        f"{second}: frame 2 checksum mismatch (shard-00004.h5)",
        f"{third}: flow 0 checksum mismatch (shard-00002.h5)",
        f"{fourth}: 5 frames stored, manifest says 7",
        f"{fourth}: 4 flows stored, manifest says 4, 7 frames with step 1 give 6",
        f"{fourth}: 5 frames in the dataset, manifest says 7",
        "shard-00003.h5: no checksums stored (written before shard schema 2): damaged bytes "
        "cannot be detected",
        f"{late}: not extracted yet (rerun the extraction)"]
    for workers in (2, 3):
        assert verify(out, workers=workers) == serial, workers


@pytest.mark.parametrize("workers", [1, 2])
def test_progress_names_every_video_and_counts_every_shard(damaged, workers):
    out, ids = damaged
    videos: list[str] = []
    shards: list[tuple[str, int, int]] = []
    verify(out, on_video=videos.append, workers=workers,
           on_shard=lambda shard, done, total: shards.append((shard, done, total)))
    assert sorted(videos) == sorted(ids)
    planned = Manifest.read(out).shards()
    assert sorted(shard for shard, _, _ in shards) == sorted(planned)
    assert [(done, total) for _, done, total in shards] == [
        (done, len(planned)) for done in range(1, len(planned) + 1)]


def test_cli_workers_exit_1_on_damage_and_0_is_a_usage_error(damaged):
    out, _ = damaged
    result = CliRunner().invoke(main, ["verify", str(out), "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "checked shard-00004.h5 (" in result.output and " of 5 shards)" in result.output
    assert "problem: shard-00003.h5" not in result.output
    assert "note: shard-00003.h5: no checksums stored" in result.output
    assert "7 problem(s)" in result.output
    bad = CliRunner().invoke(main, ["verify", str(out), "--workers", "0"])
    assert bad.exit_code == 2 and "--workers" in bad.output
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        verify(out, workers=0)


def test_workers_in_threads_of_this_process_find_the_same(damaged):
    """joblib runs the tasks in threads where it cannot start processes (a call nested in a
    worker): each thread keeps its own reader, and this process goes on."""
    import joblib

    out, _ = damaged
    serial = verify(out)
    with joblib.parallel_config(backend="threading"):
        assert verify(out, workers=2) == serial
