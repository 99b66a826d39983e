"""The README's Python snippets run as written on the demo's output (a bug before: they named
UCF101 files the demo does not make)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from flowkit.config import ExtractConfig
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.video.decode import DecodeConfig
from flowkit.video.motion_lab import MotionLabConfig, make_motion_dataset

README = Path(__file__).resolve().parents[1] / "README.md"
DEMO_SCRIPT = README.parent / "scripts" / "demo.sh"


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory) -> Path:
    """What scripts/demo.sh makes under demo/, with Farneback flow instead of TV-L1 (faster;
    the snippets do not depend on the method): the 4-class laboratory, 20 videos a class."""
    script = DEMO_SCRIPT.read_text()
    assert 'synth --out "$out/lab" --task motion --classes 4 --videos-per-class 20' in script
    assert '--out "$out/lab_shards" --short-side 0' in script
    root = tmp_path_factory.mktemp("readme")
    make_motion_dataset(root / "demo" / "lab", MotionLabConfig(num_classes=4,
                                                                videos_per_class=20))
    extract(collect_videos([root / "demo" / "lab" / "labels.txt"]), root / "demo" / "lab_shards",
            ExtractConfig(decode=DecodeConfig(short_side=None), flow="farneback"),
            workers=2, progress=False)
    return root


def test_readme_has_the_snippets_we_run():
    blocks = python_blocks(README.read_text())
    assert len(blocks) == 2
    assert all("demo/lab" in block for block in blocks)


def test_readme_snippets_run_as_written_on_the_demo_output(demo_output, monkeypatch):
    monkeypatch.chdir(demo_output)
    read_back, train = python_blocks(README.read_text())
    names: dict = {}
    exec(compile(read_back, "README.md (Read it back)", "exec"), names)
    assert names["frames"].shape == (16, 64, 64, 3) and names["frames"].dtype.name == "uint8"
    assert names["flows"].shape == (15, 64, 64, 2)
    assert names["one"].shape == (64, 64, 3)
    torch.manual_seed(0)
    exec(compile(train, "README.md (Train on it)", "exec"), names)
    # The shapes the snippet's comment states.
    assert tuple(names["batch"]["rgb"].shape) == (32, 3, 3, 224, 224)
    assert tuple(names["batch"]["flow"].shape) == (32, 3, 10, 224, 224)


def _demo_command(name: str) -> str:
    """The demo script's `flowkit NAME` command line, continuation lines joined."""
    script = re.sub(r"\\\n\s*", " ", DEMO_SCRIPT.read_text())
    (line,) = [line for line in script.splitlines() if f'"$flowkit" {name} ' in line]
    return line


def test_demo_preview_shows_the_transform_the_demo_trains_with():
    """The preview's training samples are those of the demo's training: the same crop size,
    and no flips when it trains with --no-flip (a bug before: the preview flipped)."""
    view, train = _demo_command("view"), _demo_command("train")
    assert "--transform" not in view  # the default, train
    assert ("--no-flip" in view) == ("--no-flip" in train)
    assert (re.search(r"--crop-size (\d+)", view).group(1)
            == re.search(r"--input-size (\d+)", train).group(1))


def test_demo_steps_are_numbered_and_say_how_long_they_take():
    script = DEMO_SCRIPT.read_text()
    total = int(re.search(r"^steps=(\d+)$", script, flags=re.M).group(1))
    calls = re.findall(r'^\s*step "?(\$number|\d+)"? "[^"]+" \\?\n?\s*"(\$duration|[^"]+)"',
                       script, flags=re.M)
    numbers = [number for number, _ in calls]
    # steps 1-5 and 8 are written out; 6 and 7 are the training loop's $number
    assert numbers == ["1", "2", "3", "4", "5", "$number", "8"] and total == 8
    assert all("about" in duration or duration == "$duration" for _, duration in calls)
    assert re.search(r'^\s*duration="about .* s"$', script, flags=re.M)
