"""The flowkit command line, driven through click's CliRunner."""

from __future__ import annotations

import json
import shutil

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_SOME_FAILED, EXIT_USAGE, main
from flowkit.flowio import read_flo
from flowkit.lock import FolderLock
from flowkit.manifest import Manifest
from flowkit.metrics import endpoint_error
from flowkit.synth import moving_texture, write_video
from helpers import shared_data_dir


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_every_option_of_every_command_has_help():
    """--help reads like a man page: each command has a docstring, each option a help text."""
    for name, command in main.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 10, f"{name} {param.opts}"
    result = run("--help")
    assert result.exit_code == 0
    for name in ("extract", "info", "verify", "flow", "synth", "view"):
        assert name in result.output


def test_tvl1_parameters_are_exposed_with_opencv_defaults():
    """extract --help lists every --tvl1-* option with OpenCV's default."""
    text = run("extract", "--help").output
    for option, default in [("--tvl1-tau", "0.25"), ("--tvl1-lambda", "0.15"),
                            ("--tvl1-theta", "0.3"), ("--tvl1-nscales", "5"),
                            ("--tvl1-warps", "5"), ("--tvl1-epsilon", "0.01"),
                            ("--tvl1-inner-iterations", "30"), ("--tvl1-outer-iterations", "10"),
                            ("--tvl1-scale-step", "0.8"), ("--tvl1-gamma", "0.0"),
                            ("--tvl1-median-filtering", "5")]:
        assert option in text
        assert f"[default: {default}]" in text.split(option, 1)[1].split("--", 1)[0], option


def test_extract_info_verify_view(tiny_videos, tmp_path):
    """A clean run exits 0; info --json lists videos; verify passes; view writes a PNG."""
    out = tmp_path / "out"
    result = run("extract", tiny_videos / "labels.txt", "--out", out, "--short-side", "0",
                 "--workers", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert "4 videos, 4 ok, 0 failed" in result.output
    info = json.loads(run("info", out, "--json").output)
    assert info["videos_ok"] == 4 and info["frames"] == 20 and info["flows"] == 16
    assert {tuple(sorted(v)) for v in info["videos"]} >= {tuple(sorted(
        ["id", "status", "num_frames", "num_flows", "error", "warning", "label", "shard",
         "source", "flow_stats"]))}
    assert all(v["status"] == "ok" and v["error"] is None for v in info["videos"])
    assert "bytes_on_disk" in info and info["bytes_on_disk"] > 0
    text = run("info", out).output
    assert "4 videos, 4 ok, 0 failed" in text and "tvl1" in text
    assert run("verify", out, "-q").exit_code == 0
    result = run("view", out, "--out", tmp_path / "p.png", "--frames", "3", "--transform", "none")
    assert result.exit_code == 0
    image = cv2.imread(str(tmp_path / "p.png"))[..., ::-1]
    # Caption, then 3 frames above their flows (64x48 tiles enlarged 3x to 192x144), then the
    # legend: caption lines and the 121 px colour disc.
    grid = (3 * (2 * 48 + 4), 3 * (3 * 64 + 2 * 4))
    assert image.shape[1] >= grid[1] and grid[0] + 121 < image.shape[0] < grid[0] + 300
    result = run("view", out, "--out", tmp_path / "two.png", "--frames", "2",
                 "--video", "right/right_0.mkv", "--video", "left/left_1.mkv",
                 "--max-magnitude", "2", "--transform", "none")
    assert result.exit_code == 0, result.output
    two = cv2.imread(str(tmp_path / "two.png"))[..., ::-1]
    # The flow rows: the rightward video's is red, the leftward one's cyan, on one scale.
    red_rows = ((two[..., 0] > 200) & (two[..., 1] < 120) & (two[..., 2] < 120)).sum(axis=1)
    cyan_rows = ((two[..., 0] < 120) & (two[..., 1] > 200) & (two[..., 2] > 200)).sum(axis=1)
    assert red_rows.max() > 300 and cyan_rows.max() > 300
    assert red_rows.argmax() < cyan_rows.argmax()  # right_0 is shown above left_1
    result = run("view", out, "--out", tmp_path / "sample.png", "--frames", "2",
                 "--crop-size", "32", "--transform", "train", "--max-height", "400")
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(tmp_path / "sample.png")).shape[0] <= 400


def test_failed_videos_give_exit_code_1_and_are_listed(tiny_videos, tmp_path):
    """A corrupt file and a renamed text file among good videos: exit 1, failures listed."""
    inputs = tmp_path / "in"
    shutil.copytree(tiny_videos, inputs)
    (inputs / "renamed.mp4").write_text("not a video")
    # An interrupted download: the tail of an MP4, where its index (moov) lives, is garbage.
    write_video(tmp_path / "clip.mp4", moving_texture(64, 48, 1.0, 0.0, 5), fps=25.0)
    damaged = bytearray((tmp_path / "clip.mp4").read_bytes())
    cut = int(len(damaged) * 0.6)
    damaged[cut:] = np.random.default_rng(0).integers(0, 256, len(damaged) - cut,
                                                     np.uint8).tobytes()
    (inputs / "corrupt.mp4").write_bytes(bytes(damaged))
    result = run("extract", inputs, "--out", tmp_path / "out", "--short-side", "0", "--quiet",
                 "--workers", "2")
    assert result.exit_code == EXIT_SOME_FAILED
    assert "6 videos, 4 ok, 2 failed" in result.output
    assert "failed: renamed.mp4: " in result.output and "failed: corrupt.mp4: " in result.output
    info = json.loads(run("info", tmp_path / "out", "--json").output)
    failed = {v["id"]: v["error"] for v in info["videos"] if v["status"] == "failed"}
    assert sorted(failed) == ["corrupt.mp4", "renamed.mp4"]
    assert all(str(inputs) in error for error in failed.values())
    assert run("verify", tmp_path / "out", "-q").exit_code == 0


def test_verify_catches_a_manifest_that_disagrees(tiny_videos, tmp_path):
    """verify exits 1 when the manifest's frame count differs from what is stored."""
    out = tmp_path / "out"
    run("extract", tiny_videos, "--out", out, "--short-side", "0", "--flow", "farneback", "-q")
    manifest = Manifest.read(out / "manifest.json")
    first = next(iter(manifest))
    manifest.put(first.__class__(**{**first.__dict__, "num_frames": 7}))
    manifest.write(out / "manifest.json")
    result = run("verify", out, "-q")
    assert result.exit_code == 1 and "manifest says 7" in result.output


def test_usage_errors_exit_2_with_one_line(tiny_videos, tmp_path):
    """Missing options, foreign backend options, locked folders: exit 2, one line on stderr."""
    assert run("extract", tiny_videos).exit_code == EXIT_USAGE
    result = run("extract", tiny_videos, "--out", tmp_path / "o", "--flow", "farneback",
                 "--tvl1-tau", "0.2")
    assert result.exit_code == EXIT_USAGE and "--tvl1-tau applies to --flow tvl1" in result.output
    (tmp_path / "locked").mkdir()
    with FolderLock(tmp_path / "locked"):
        result = run("extract", tiny_videos, "--out", tmp_path / "locked", "-q")
    assert result.exit_code == EXIT_USAGE
    assert result.output.strip().count("\n") == 0 and "another flowkit run" in result.output
    result = run("extract", tmp_path / "nothing-here", "--out", tmp_path / "o2")
    assert result.exit_code == EXIT_USAGE


@pytest.mark.slow
def test_flow_command_on_rubberwhale_meets_the_epe_bound(tmp_path):
    """flowkit flow --method tvl1 on RubberWhale: EPE <= 0.17 over known pixels (OpenCV: 0.156)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent")
    folder = data / "middlebury"
    result = run("flow", folder / "RubberWhale-frame10.png", folder / "RubberWhale-frame11.png",
                 "--method", "tvl1", "--out", tmp_path / "f.flo", "--viz", tmp_path / "f.png")
    assert result.exit_code == 0, result.output
    flow = read_flo(tmp_path / "f.flo")
    epe = endpoint_error(flow, read_flo(folder / "RubberWhale-flow10.flo"))
    assert epe <= 0.17
    assert cv2.imread(str(tmp_path / "f.png")).shape == (388, 584, 3)


def test_flow_command_rejects_images_of_different_sizes(tmp_path):
    """Two images of different sizes: exit 2 naming the second image."""
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((20, 31, 3), np.uint8))
    result = run("flow", tmp_path / "a.png", tmp_path / "b.png", "--out", tmp_path / "f.flo")
    assert result.exit_code == EXIT_USAGE and "b.png" in result.output


def test_synth_writes_videos_labels_and_truth(tmp_path):
    """flowkit synth writes the videos, a labels.txt list file and truth.json."""
    result = run("synth", tmp_path, "--num-videos", "2", "--num-frames", "3", "--width", "64",
                 "--height", "48")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "labels.txt").read_text().splitlines()) == 2
    assert (tmp_path / "truth.json").exists()
