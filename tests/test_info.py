"""``flowkit info`` as a new user reads it: the parameters grouped and wrapped, what was typed
shown as typed, and the flow-clipping line saying what is true of the folder."""

from __future__ import annotations

import json

from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.config import ExtractConfig
from flowkit.store.folder import CONFIG_NAME
from flowkit.store.manifest import FAILED, Manifest, ManifestEntry
from flowkit.store.summary import LINE_WIDTH, summarize
from flowkit.video.decode import DecodeConfig


def _folder(path, config: ExtractConfig, *entries: ManifestEntry):
    """An output folder holding ``config`` and a manifest of ``entries`` (no shard needed)."""
    path.mkdir()
    config.save(path / CONFIG_NAME)
    with Manifest.open(path) as manifest:
        manifest.put_many(entries)
    return path


def _info(folder) -> str:
    result = CliRunner().invoke(main, ["info", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_folder_without_a_finished_video_says_so_not_unknown(tmp_path):
    """Pending videos only: "no finished video yet"; only failures: none extracted; neither
    claims the folder predates flow statistics."""
    pending = _folder(tmp_path / "pending", ExtractConfig(flow="farneback"),
                      ManifestEntry("a.mkv", "/videos/a.mkv", None, "shard-00000.h5"))
    assert "  flow clipping: no finished video yet\n" in _info(pending)
    failed = _folder(tmp_path / "failed", ExtractConfig(flow="farneback"),
                     ManifestEntry("a.mkv", "/videos/a.mkv", None, "shard-00000.h5",
                                   status=FAILED, error="cannot decode"))
    text = _info(failed)
    assert "  flow clipping: no video was extracted successfully\n" in text
    assert "recorded flow statistics" not in text + _info(pending)


def test_parameters_are_one_line_per_group_wrapped_at_100_columns(tmp_path):
    """Top-level settings, then decode, flow_params and storage on lines of their own, none
    over 100 columns, every setting of the config shown once and never split."""
    config = ExtractConfig(flow="dis")
    folder = _folder(tmp_path / "out", config)
    text = _info(folder)
    block = text.split("  parameters:\n", 1)[1].split("\n  flow clipping", 1)[0].splitlines()
    assert max(map(len, block)) <= LINE_WIDTH
    starts = [line.split(":", 1)[0].strip() for line in block if not line.startswith("      ")]
    assert starts[1:] == ["decode", "flow_params", "storage"]
    assert block[0].startswith('    flow="dis", flow_step=1, device="cpu"')
    assert sum(line.startswith("      ") for line in block) >= 2  # flow_params wraps
    settings = [item.strip().rstrip(",") for line in block
                for item in line.split(": ", 1)[-1].split(", ")]
    saved = json.loads((folder / CONFIG_NAME).read_text())
    expected = sum(len(value) if isinstance(value, dict) else 1 for value in saved.values())
    assert len(settings) == expected
    assert 'variational_refinement_alpha=20.0' in settings and 'rgb="jpeg"' in settings


def test_short_side_0_is_saved_and_shown_as_typed(tiny_videos, tmp_path):
    """`--short-side 0` is saved as 0 (it was saved as null) and shown as 0, the native size;
    a folder that saved null (made before) shows the same and resumes with --short-side 0."""
    runner = CliRunner()
    args = ["extract", str(tiny_videos / "labels.txt"), "--out", str(tmp_path / "out"),
            "--short-side", "0", "--flow", "farneback", "--workers", "1", "--quiet"]
    assert runner.invoke(main, args).exit_code == 0
    saved = json.loads((tmp_path / "out" / CONFIG_NAME).read_text())
    assert saved["decode"]["short_side"] == 0
    assert "    decode: short_side=0 (native size), size=null" in _info(tmp_path / "out")

    saved["decode"]["short_side"] = None  # as flowkit wrote it before
    (tmp_path / "out" / CONFIG_NAME).write_text(json.dumps(saved))
    assert "short_side=0 (native size)" in _info(tmp_path / "out")
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "0 videos, 0 frames" in result.output.split("this run: ", 1)[1]


def test_summary_of_a_native_size_config_saved_by_the_library(tmp_path):
    """DecodeConfig(short_side=None) from Python reads as the same native size."""
    folder = _folder(tmp_path / "out", ExtractConfig(decode=DecodeConfig(short_side=None),
                                                     flow="farneback"))
    assert "short_side=0 (native size)" in summarize(folder).to_text()
