"""The complementary and binding tasks (flowkit.video.colour_motion): the class is in colour and
motion together, and neither leaks alone: the grey video (hence any flow flowkit computes) is
the same when the colours are swapped, and places, sizes and frame statistics are drawn alike
for every class (KS tests)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.errors import ConfigError
from flowkit.video.colour_motion import (CLASSES, GREY_WEIGHTS, TASKS, ColourMotionConfig,
                                         colour_pair, draw_video, render_frames, swap_colours)
from test_motion_lab import ks_distance

COUNT = 1000
KS_LIMIT = 2.23 * math.sqrt(2 / COUNT)  # two-sample KS critical value at alpha = 1e-4


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.int16)


def test_warm_and_cool_have_the_same_grey_level():
    for luma, saturation in ((100.0, 35.0), (150.0, 45.0), (123.4, 40.0)):
        warm, cool = colour_pair(luma, saturation)
        for colour in (warm, cool):
            assert sum(w * c for w, c in zip(GREY_WEIGHTS, colour)) == pytest.approx(luma)
        assert warm[0] - warm[2] == pytest.approx(2 * saturation)  # warm: red over blue
        assert cool[2] - cool[0] == pytest.approx(2 * saturation)


@pytest.mark.parametrize("task", TASKS)
def test_swapping_the_colours_leaves_the_grey_video_and_changes_the_class(task):
    """The grey frames of a video and of its colour-swapped twin differ by at most one grey
    level (rounding) at every pixel, while the RGB frames differ clearly."""
    config = ColourMotionConfig(task=task, num_frames=6)
    for label in range(4):
        for index in range(5):
            video = draw_video(config, label, index)
            twin = swap_colours(video)
            assert twin.categories == tuple({"warm": "cool", "cool": "warm"}[c]
                                            for c in video.categories)
            for ours, theirs in zip(render_frames(video, 64, 64), render_frames(twin, 64, 64)):
                assert np.abs(_grey(ours) - _grey(theirs)).max() <= 1
                assert np.abs(ours.astype(int) - theirs).max() > 40


def test_binding_objects_share_shape_and_texture_and_move_opposite_along_the_class_axis():
    config = ColourMotionConfig(task="binding")
    axes = {"warm-right": (1, 0), "warm-left": (-1, 0), "warm-down": (0, 1), "warm-up": (0, -1)}
    for label, name in enumerate(CLASSES["binding"]):
        for index in range(20):
            video = draw_video(config, label, index)
            warm = video.sprites[video.categories.index("warm")]
            cool = video.sprites[video.categories.index("cool")]
            assert (warm.radii, warm.texture_seed, warm.contrast) == (
                cool.radii, cool.texture_seed, cool.contrast)
            assert np.allclose(warm.velocity, -np.asarray(cool.velocity))
            along = np.dot(warm.velocity, axes[name])
            assert 1.0 * math.cos(math.radians(15)) - 1e-9 <= along <= 1.5, (name, warm.velocity)


def test_complementary_objects_have_the_class_colour_and_direction():
    config = ColourMotionConfig(task="complementary")
    for label, name in enumerate(CLASSES["complementary"]):
        category, direction = name.split("-")
        for index in range(20):
            video = draw_video(config, label, index)
            assert video.categories == (category,)
            assert np.sign(video.sprites[0].velocity[0]) == (1 if direction == "right" else -1)


def _parameters(task: str) -> dict[str, np.ndarray]:
    """Per class name, one row per video: every sprite's wrapped place at frames 0, 7 and 15,
    its orientation, size, aspect, contrast and grey level, and the background's speed."""
    config = ColourMotionConfig(task=task, videos_per_class=COUNT)
    rows: dict[str, list[list[float]]] = {}
    for label, name in enumerate(config.classes):
        for index in range(COUNT):
            video = draw_video(config, label, index)
            row = []
            for sprite in video.sprites:  # drawing order: independent of the class
                for t in (0, 7, 15):
                    x, y, _, _ = sprite.pose(t)
                    row += [x / 64 % 1, y / 64 % 1]
                grey = sum(w * c for w, c in zip(GREY_WEIGHTS, sprite.colour))
                row += [sprite.angle, sprite.radii[0], sprite.radii[1] / sprite.radii[0],
                        sprite.contrast, grey]
            row.append(math.hypot(*video.background_velocity))
            rows.setdefault(name, []).append(row)
    return {name: np.array(values) for name, values in rows.items()}


@pytest.mark.parametrize("task", TASKS)
def test_places_shapes_and_grey_levels_are_drawn_alike_for_every_class(task):
    """Every drawn quantity but the colour category and the direction: the same distribution
    in every class (KS against the first class); places uniform on the torus."""
    parameters = _parameters(task)
    reference = parameters[CLASSES[task][0]]
    uniform = (np.arange(COUNT) + 0.5) / COUNT
    for name, values in parameters.items():
        for column in range(values.shape[1]):
            assert ks_distance(values[:, column], reference[:, column]) < KS_LIMIT, (name, column)
        places = [c for c in range(values.shape[1] - 1) if c % 11 < 6]
        for column in places:
            assert ks_distance(values[:, column], uniform) < KS_LIMIT, (name, column)


@pytest.mark.parametrize("task", TASKS)
def test_rendered_grey_frames_have_the_same_statistics_in_every_class(task):
    """Mean, spread and gradient energy of the grey frames 0 and 7: the same per class (KS,
    40 videos each against the other classes)."""
    config = ColourMotionConfig(task=task, videos_per_class=40, num_frames=8)
    stats = {}
    for label in range(4):
        rows = []
        for index in range(40):
            frames = list(render_frames(draw_video(config, label, index), 64, 64))
            row = []
            for t in (0, 7):
                grey = _grey(frames[t]).astype(float)
                gradient = np.diff(grey, axis=0) ** 2
                row += [grey.mean(), grey.std(), gradient.mean()]
            rows.append(row)
        stats[label] = np.array(rows)
    limit = 2.23 * math.sqrt((40 + 120) / (40 * 120))
    for label, mine in stats.items():
        others = np.concatenate([s for other, s in stats.items() if other != label])
        for column in range(mine.shape[1]):
            assert ks_distance(mine[:, column], others[:, column]) < limit, (label, column)


def test_invalid_configs_are_config_errors():
    for options, words in (({"task": "motion"}, "task must be one of"),
                           ({"videos_per_class": 1}, "videos per class"),
                           ({"test_fraction": 1.0}, "test fraction"),
                           ({"width": 8}, "at least 16x16")):
        with pytest.raises(ConfigError, match=words):
            ColourMotionConfig(**options)


def test_synth_writes_the_binding_task_with_its_split_lists(tmp_path):
    out = tmp_path / "binding"
    result = CliRunner().invoke(main, ["synth", "--out", str(out), "--task", "binding",
                                       "--videos-per-class", "4", "--num-frames", "4"])
    assert result.exit_code == 0, result.output
    assert "0 warm-right: 4 videos (3 train, 1 test)" in result.output
    labels = (out / "labels.txt").read_text().splitlines()
    assert len(labels) == 16 and labels[0] == "warm-right/warm-right_000.mkv 0"
    assert (out / "classInd.txt").read_text().splitlines() == [
        f"{i + 1} {name}" for i, name in enumerate(CLASSES["binding"])]
    assert len((out / "testlist01.txt").read_text().splitlines()) == 4
    truth = json.loads((out / "truth.json").read_text())
    assert truth["config"]["task"] == "binding" and len(truth["videos"]) == 16
    assert all((out / line.split()[0]).is_file() for line in labels)


def test_options_of_another_task_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path), "--task",
                                       "complementary", "--classes", "4"])
    assert result.exit_code == 2 and "--classes applies to --task motion, not complementary" \
        in result.output
