"""Merging partition folders: the same dataset as one unpartitioned extraction, shards untouched."""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from flowkit.config import ExtractConfig
from flowkit.errors import ConfigError, LockError
from flowkit.extract.inputs import collect_videos
from flowkit.lock import FolderLock
from flowkit.extract.merge import COPIED, LINKED, MOVED, PRESENT, merge
from flowkit.extract.partitions import partition_of, select_partition
from flowkit.extract.run import extract
from flowkit.store.folder import CONFIG_NAME
from flowkit.store.manifest import MANIFEST_NAME, PENDING, Manifest
from flowkit.store.reader import open_shards
from flowkit.store.verify import verify
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos

PARTS = 3
CONFIG = ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> dict[str, Path]:
    """Six lossless 64x48 videos of 5 frames and a fake video that fails, extracted whole
    ("whole") and as 3 partitions ("0", "1", "2") of 4, 1 and 2 videos, 2 videos a shard."""
    root = tmp_path_factory.mktemp("merge")
    make_synthetic_videos(root / "videos", SynthConfig(num_videos=6, num_frames=5, width=64,
                                                       height=48, codec="ffv1"))
    (root / "videos" / "fake.mkv").write_text("not a video\n")
    sources = collect_videos([root / "videos"])
    assert sorted(partition_of(s.video_id, PARTS) for s in sources) == [0, 0, 0, 0, 1, 2, 2]
    folders = {"whole": root / "whole", "root": root}
    extract(sources, root / "whole", CONFIG, workers=1, videos_per_shard=2, progress=False)
    for part in range(PARTS):
        folders[str(part)] = root / f"part{part}"
        extract(select_partition(sources, PARTS, part), folders[str(part)], CONFIG, workers=1,
                videos_per_shard=2, progress=False)
    return folders


def parts(extracted: dict[str, Path]) -> list[Path]:
    return [extracted[str(part)] for part in range(PARTS)]


def copied_parts(extracted: dict[str, Path], tmp_path: Path) -> list[Path]:
    """Private copies of the partitions, for tests that move or change them."""
    return [Path(shutil.copytree(part, tmp_path / part.name)) for part in parts(extracted)]


def assert_same_dataset(merged: Path, whole: Path) -> None:
    """Every video with equal frames, flows and attributes, and equal manifest entries but
    for the shard names."""
    a, b = open_shards(merged), open_shards(whole)
    assert sorted(a.videos) == sorted(b.videos) and len(a.videos) == 6
    for video_id in b.videos:
        np.testing.assert_array_equal(a.frames(video_id), b.frames(video_id))
        np.testing.assert_array_equal(a[video_id].flows.quantized(slice(None)),
                                      b[video_id].flows.quantized(slice(None)))
        assert a[video_id].attrs == b[video_id].attrs
    entries = lambda d: sorted(  # noqa: E731
        dataclasses.astuple(dataclasses.replace(e, shard=""))
        for e in Manifest.read(d / MANIFEST_NAME))
    assert entries(merged) == entries(whole)


def test_merged_partitions_equal_one_whole_extraction(extracted, tmp_path):
    """Shards hard-linked, renamed without collisions; verify passes; arrays equal."""
    out = tmp_path / "merged"
    report = merge(out, parts(extracted))
    assert (report.videos, report.ok, report.failed) == (7, 6, 1)
    assert report.shards[LINKED] == len(list(out.glob("shard-*.h5"))) == 4
    assert verify(out) == []
    assert_same_dataset(out, extracted["whole"])
    manifest = Manifest.read(out / MANIFEST_NAME)
    assert len({entry.video_id for entry in manifest}) == 7
    assert manifest.shards() == [f"shard-{n:05d}.h5" for n in range(4)]
    first = Manifest.read(extracted["0"] / MANIFEST_NAME)
    for entry in first:  # partition 0's shards come first, in order, as the same files
        merged_entry = manifest[entry.video_id]
        if (extracted["0"] / entry.shard).exists():
            assert os.path.samefile(extracted["0"] / entry.shard, out / merged_entry.shard)
    assert (out / CONFIG_NAME).read_bytes() == (extracted["0"] / CONFIG_NAME).read_bytes()


def test_across_file_systems_shards_are_copied_byte_for_byte(extracted, tmp_path, monkeypatch):
    def no_link(source, target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    out = tmp_path / "merged"
    report = merge(out, parts(extracted))
    assert report.shards[COPIED] == 4 and report.shards[LINKED] == 0
    for entry in Manifest.read(extracted["1"] / MANIFEST_NAME):
        merged = out / Manifest.read(out / MANIFEST_NAME)[entry.video_id].shard
        assert not os.path.samefile(extracted["1"] / entry.shard, merged)
        assert merged.read_bytes() == (extracted["1"] / entry.shard).read_bytes()
    assert verify(out) == [] and not list(out.glob("*.tmp"))


def test_move_empties_the_partitions(extracted, tmp_path):
    sources = copied_parts(extracted, tmp_path)
    report = merge(tmp_path / "merged", sources, move=True)
    assert report.shards[MOVED] == 4
    assert not [path for part in sources for path in part.glob("shard-*.h5")]
    assert_same_dataset(tmp_path / "merged", extracted["whole"])


def test_an_interrupted_merge_is_detectable_then_completed_by_rerunning(extracted, tmp_path):
    """Until the manifest is written the folder is unreadable; the same merge completes it,
    keeping the shards already there, even after --move took them from the partitions."""
    sources = copied_parts(extracted, tmp_path)
    out = tmp_path / "merged"
    merge(out, sources, move=True)
    # As if killed before the last shard and the manifest: shard 3 back in its partition.
    (out / MANIFEST_NAME).unlink()
    last = Manifest.read(sources[2] / MANIFEST_NAME).shards()[-1]
    os.rename(out / "shard-00003.h5", sources[2] / last)
    (out / "shard-00003.h5.tmp").write_bytes(b"half a copy")
    with pytest.raises(Exception, match="no manifest here"):
        open_shards(out)
    report = merge(out, sources, move=True)
    assert report.shards == {LINKED: 0, COPIED: 0, MOVED: 1, PRESENT: 3}
    assert verify(out) == [] and not list(out.glob("*.tmp"))
    assert_same_dataset(out, extracted["whole"])


def test_different_output_settings_are_refused_naming_the_setting(extracted, tmp_path):
    other = tmp_path / "other"
    sources = collect_videos([extracted["root"] / "videos"])
    extract(select_partition(sources, PARTS, 1), other,
            dataclasses.replace(CONFIG, flow_step=2), workers=1, progress=False)
    with pytest.raises(ConfigError, match=r"other output settings .*--step: 1 -> 2"):
        merge(tmp_path / "merged", [extracted["0"], other])
    assert not (tmp_path / "merged" / MANIFEST_NAME).exists()


def test_overlapping_partitions_are_refused_naming_a_video(extracted, tmp_path):
    with pytest.raises(ConfigError, match=r"part2: video 'left/left_1.mkv' is also in .*whole"):
        merge(tmp_path / "merged", [extracted["whole"], extracted["2"]])
    with pytest.raises(ConfigError, match="given twice"):
        merge(tmp_path / "merged", [extracted["0"], extracted["0"]])


def test_unfinished_partitions_are_refused(extracted, tmp_path):
    """A pending video, or a shard of ok videos that is missing, means the extraction of that
    partition has not finished."""
    sources = copied_parts(extracted, tmp_path)
    with Manifest.open(sources[1]) as manifest:
        entry = next(iter(manifest))
        manifest.put(dataclasses.replace(entry, status=PENDING))
    with pytest.raises(ConfigError, match=r"part1: partition unfinished \(1 videos pending"):
        merge(tmp_path / "merged", sources)
    shutil.rmtree(sources[1])
    shutil.copytree(extracted["1"], sources[1])
    (sources[1] / entry.shard).unlink()
    with pytest.raises(ConfigError, match=rf"partition unfinished \({entry.shard} is missing"):
        merge(tmp_path / "merged", sources)


def test_a_folder_with_output_is_refused(extracted, tmp_path):
    out = tmp_path / "merged"
    merge(out, parts(extracted)[:2])
    with pytest.raises(ConfigError, match="already holds flowkit output"):
        merge(out, parts(extracted))
    with pytest.raises(ConfigError, match="already holds flowkit output"):
        merge(extracted["whole"].parent / "part0", parts(extracted)[1:])
    with FolderLock(parts(extracted)[2]), pytest.raises(LockError):
        merge(tmp_path / "locked", parts(extracted))


def test_a_merged_folder_resumes_like_an_extraction(extracted, tmp_path):
    """Extracting all videos into the merged folder finds every one done."""
    out = tmp_path / "merged"
    merge(out, parts(extracted))
    report = extract(collect_videos([extracted["root"] / "videos"]), out, CONFIG, workers=1,
                     progress=False)
    assert (report.processed, report.skipped, report.ok) == (0, 7, 6)
    assert len(Manifest.read(out)) == 7


def run(*args: object):
    from click.testing import CliRunner

    from flowkit.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_job_array_then_merge(extracted, tmp_path):
    """Two `extract --num-partitions 2 --partition I` jobs and `merge` give the whole dataset."""
    videos = extracted["root"] / "videos"
    options = ["--flow", "farneback", "--short-side", "0", "--videos-per-shard", "2",
               "--workers", "1", "--quiet", "--num-partitions", "2"]
    for part in (0, 1):
        result = run("extract", videos, "--out", tmp_path / f"p{part}", *options,
                     "--partition", part)
        failing = partition_of("fake.mkv", 2) == part  # exit 1: some videos failed
        assert result.exit_code == (1 if failing else 0)
        assert f"partition {part} of 2" in result.output
    result = run("merge", tmp_path / "p0", tmp_path / "p1", "--out", tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert "7 videos (6 ok, 1 failed) from 2 partitions; shard files: 4 linked" in result.output
    assert run("verify", tmp_path / "all", "-q").exit_code == 0
    assert_same_dataset(tmp_path / "all", extracted["whole"])
    result = run("extract", videos, "--out", tmp_path / "p2", *options, "--partition", 2)
    assert result.exit_code == 2
    assert "--partition 2 is out of range for --num-partitions 2" in result.output
    result = run("merge", tmp_path / "p0", "--out", tmp_path / "all")
    assert result.exit_code == 2 and "already holds flowkit output" in result.output
