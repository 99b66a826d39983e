"""The motion laboratory: layout and splits, motion as the class says, appearance that does not
tell the class, the `flowkit synth --task motion` command, and extraction of its list file."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_USAGE, main
from flowkit.data.splits import read_class_index, read_ucf101_split
from flowkit.errors import ConfigError
from flowkit.extract.inputs import read_list_file
from flowkit.store.manifest import MANIFEST_NAME, Manifest
from flowkit.video.decode import DecodeConfig, iter_frames
from flowkit.video.motion_lab import (VOCABULARY, LabVideo, MotionLabConfig, draw_video,
                                      make_motion_dataset, render_frames)
from flowkit.video.sprites import Sprite
from flowkit.video.synth import SynthConfig, make_synthetic_videos

# 4 classes x 6 videos, 6 frames of 32x32, FFV1 (the default): 2 test videos per class.
SMALL = MotionLabConfig(num_classes=4, videos_per_class=6, num_frames=6, width=32, height=32)


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def decode(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path, DecodeConfig(short_side=None)))


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[LabVideo]]:
    """The SMALL lab written once, with what make_motion_dataset returned."""
    folder = tmp_path_factory.mktemp("small_lab")
    return folder, make_motion_dataset(folder, SMALL)


# ---- layout, split files, determinism -------------------------------------------------------

def test_layout_has_n_videos_per_class_and_a_stratified_split(small_lab):
    """Each class folder holds N videos named <class>_NNN; the last 2 of each are for testing."""
    folder, videos = small_lab
    for motion in SMALL.classes:
        names = sorted(p.name for p in (folder / motion.name).iterdir())
        assert names == [f"{motion.name}_{i:03d}.mkv" for i in range(6)]
        splits = [v.split for v in videos if v.label_name == motion.name]
        assert splits == ["train"] * 4 + ["test"] * 2


def test_split_files_parse_and_agree_with_truth(small_lab):
    """labels.txt, classInd, trainlist01 and testlist01 read back as truth.json's labels, splits."""
    folder, _ = small_lab
    truth = json.loads((folder / "truth.json").read_text())
    records = truth["videos"]
    assert read_class_index(folder / "classInd.txt") == {
        "right": 0, "left": 1, "rotate-cw": 2, "rotate-ccw": 3}
    assert [(s.video_id, s.label) for s in read_list_file(folder / "labels.txt")] == [
        (r["id"], r["label"]) for r in records]
    for split in ("train", "test"):
        expected = {r["id"]: r["label"] for r in records if r["split"] == split}
        assert read_ucf101_split(folder / f"{split}list01.txt") == expected
    assert all(r["label_name"] == VOCABULARY[r["label"]].name for r in records)
    assert truth["config"]["seed"] == 0 and len(truth["classes"]) == 4


def test_truth_json_rebuilds_the_frames(small_lab):
    """The parameters in truth.json render exactly the frames decoded from the (lossless) files."""
    folder, _ = small_lab
    record = json.loads((folder / "truth.json").read_text())["videos"][5]
    sprites = {key: Sprite(**{k: tuple(v) if isinstance(v, list) else v
                              for k, v in record[key].items()})
               for key in ("object", "distractor")}
    video = LabVideo(record["id"], record["label"], record["label_name"], record["split"],
                     record["num_frames"], tuple(record["background_seed"]),
                     tuple(record["background_velocity"]), **sprites)
    made = list(render_frames(video, SMALL.width, SMALL.height))
    assert len(made) == 6
    assert all(np.array_equal(a, b) for a, b in zip(decode(folder / video.video_id), made,
                                                    strict=True))


@pytest.mark.parametrize(("count", "fraction", "expected"),
                         [(2, 0.1, 1), (2, 0.9, 1), (4, 0.25, 1), (6, 0.25, 2), (30, 0.25, 8)])
def test_test_split_size_is_rounded_and_leaves_both_splits_non_empty(count, fraction, expected):
    """num_test rounds N * fraction half up, then keeps at least one video in each split."""
    assert MotionLabConfig(videos_per_class=count, test_fraction=fraction).num_test == expected


@pytest.mark.parametrize(("options", "words"), [
    ({"num_classes": 1}, "rotate-cw"), ({"num_classes": 13}, "2 to 12"),
    ({"videos_per_class": 1}, "videos per class"), ({"test_fraction": 1.0}, "(0, 1)"),
    ({"width": 34, "height": 33, "codec": "libx264"}, "even"), ({"num_frames": 1}, "num_frames")])
def test_invalid_configs_raise_config_errors_that_say_why(options, words):
    """Too few or many classes, N < 2, a fraction outside (0, 1), odd x264 sizes are refused."""
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        MotionLabConfig(**options)


def test_same_seed_same_bytes_and_another_seed_other_videos(tmp_path):
    """Two runs with one seed write identical files; another seed changes every video."""
    config = MotionLabConfig(num_classes=2, videos_per_class=2, num_frames=4, width=32, height=32)
    runs = [make_motion_dataset(tmp_path / name, config) for name in ("a", "b")]
    make_motion_dataset(tmp_path / "c", MotionLabConfig(**{**config.__dict__, "seed": 1}))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert len(files) == 4 + 5
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for video in runs[0]:
        assert (tmp_path / "a" / video.video_id).read_bytes() \
            != (tmp_path / "c" / video.video_id).read_bytes()


def test_a_video_does_not_depend_on_the_number_of_classes_or_videos():
    """Video n of class c is drawn from (seed, c, n): the same with K=3, N=2 as with K=8, N=30."""
    small = draw_video(MotionLabConfig(num_classes=3, videos_per_class=2), 2, 1)
    large = draw_video(MotionLabConfig(), 2, 1)
    assert (small.object, small.distractor, small.background_velocity) == \
        (large.object, large.distractor, large.background_velocity)


# ---- the class is in the motion --------------------------------------------------------------

@pytest.fixture(scope="module")
def every_class(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[np.ndarray]]:
    """Per class name, the object's measured motion (u, v, curl, div) per frame pair, 2 videos."""
    folder = tmp_path_factory.mktemp("every_class")
    config = MotionLabConfig(num_classes=len(VOCABULARY), videos_per_class=2, num_frames=16)
    measured: dict[str, list[np.ndarray]] = {}
    for video in make_motion_dataset(folder, config):
        frames = decode(folder / video.video_id)
        steps = [object_motion(a, b, video.object, t) for t, (a, b) in
                 enumerate(itertools.pairwise(frames))]
        measured.setdefault(video.label_name, []).append(np.array(steps))
    return measured


def object_motion(first: np.ndarray, second: np.ndarray, sprite: Sprite, t: int
                  ) -> tuple[float, float, float, float]:
    """Farneback flow inside the object, fitted by an affine field: (u, v) at its centre, curl, div.

    Both frames are rolled (the lab wraps around) to put the object's centre at frame t, from
    its truth parameters, in the middle; only pixels well inside it are used.
    """
    height, width = first.shape[:2]
    x, y, _, scale = sprite.pose(t)
    shift = (round(height / 2 - y), round(width / 2 - x))
    gray = [cv2.cvtColor(np.roll(f, shift, axis=(0, 1)), cv2.COLOR_RGB2GRAY)
            for f in (first, second)]
    flow = cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 3, 9, 5, 5, 1.1, 0)
    cx, cy = x + shift[1], y + shift[0]
    ys, xs = np.mgrid[0:height, 0:width]
    inside = np.hypot(xs - cx, ys - cy) < 0.7 * min(sprite.radii) * scale
    design = np.stack([np.ones(inside.sum()), xs[inside] - cx, ys[inside] - cy], axis=1)
    fit_u = np.linalg.lstsq(design, flow[..., 0][inside], rcond=None)[0]
    fit_v = np.linalg.lstsq(design, flow[..., 1][inside], rcond=None)[0]
    return fit_u[0], fit_v[0], fit_v[1] - fit_u[2], fit_u[1] + fit_v[2]


@pytest.mark.parametrize("name", ["right", "left", "up", "down", "right-fast", "left-fast"])
def test_sliding_objects_move_their_way_at_their_speed(every_class, name):
    """Slides move within 25 degrees of their direction, at 0.6-2 px/frame, or 2.5-4.5 if fast."""
    motion = next(m for m in VOCABULARY if m.name == name)
    for steps in every_class[name]:
        u, v = steps[:, 0].mean(), steps[:, 1].mean()
        error = (math.degrees(math.atan2(v, u)) - motion.direction + 180) % 360 - 180
        assert abs(error) < 25, (name, u, v)
        low, high = (2.5, 4.5) if name.endswith("fast") else (0.6, 2.0)
        assert low < math.hypot(u, v) < high, (name, u, v)


@pytest.mark.parametrize(("name", "sign"), [("rotate-cw", 1), ("rotate-ccw", -1)])
def test_rotating_objects_turn_their_way_in_place(every_class, name, sign):
    """Clockwise on screen (y down) is positive curl of the flow; the centre barely moves."""
    for steps in every_class[name]:
        assert sign * steps[:, 2].mean() > 0.02, (name, steps[:, 2].mean())
        assert np.hypot(steps[:, 0].mean(), steps[:, 1].mean()) < 0.5


@pytest.mark.parametrize(("name", "axis"), [("oscillate-horizontal", 0),
                                            ("oscillate-vertical", 1)])
def test_oscillating_objects_reverse_along_their_axis(every_class, name, axis):
    """Within 16 frames the object moves both ways along its axis, faster than 0.5 px/frame."""
    for steps in every_class[name]:
        assert steps[:, axis].max() > 0.5 and steps[:, axis].min() < -0.5, name


@pytest.mark.parametrize(("name", "sign"), [("expand", 1), ("contract", -1)])
def test_scaling_objects_grow_or_shrink(every_class, name, sign):
    """Expanding objects have positive flow divergence, contracting ones negative."""
    for steps in every_class[name]:
        assert sign * steps[:, 3].mean() > 0.03, (name, steps[:, 3].mean())


# ---- the appearance does not tell the class --------------------------------------------------

def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: largest gap between the empirical CDFs."""
    grid = np.sort(np.concatenate([a, b]))
    cdf = [np.searchsorted(np.sort(s), grid, side="right") / len(s) for s in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


@pytest.fixture(scope="module")
def many_objects() -> dict[str, list[Sprite]]:
    """Per class name, the objects of 2000 videos (parameters only, nothing rendered)."""
    config = MotionLabConfig(num_classes=len(VOCABULARY), videos_per_class=2000)
    return {motion.name: [draw_video(config, label, index).object for index in range(2000)]
            for label, motion in enumerate(VOCABULARY)}


KS_LIMIT = 2.23 * math.sqrt(2 / 2000)  # two-sample KS critical value at alpha = 1e-4


def test_object_place_and_orientation_are_uniform_at_every_frame_for_every_class(many_objects):
    """At frames 0, 7 and 15 the object's wrapped position and orientation are uniform (KS test)."""
    uniform = (np.arange(2000) + 0.5) / 2000
    for name, sprites in many_objects.items():
        for t in (0, 7, 15):
            poses = np.array([sprite.pose(t) for sprite in sprites])
            for values in (poses[:, 0] / 64 % 1, poses[:, 1] / 64 % 1, poses[:, 2] / 180 % 1):
                assert ks_distance(values, uniform) < KS_LIMIT, (name, t)


def test_object_colour_contrast_and_size_are_drawn_alike_for_every_class(many_objects):
    """Colour, texture contrast, aspect and size at the middle frame match class 0's (KS test)."""
    def appearance(sprites: list[Sprite]) -> np.ndarray:
        return np.array([[*s.colour, s.contrast, s.radii[1] / s.radii[0],
                          s.radii[0] * s.pose(7.5)[3]] for s in sprites])
    reference = appearance(many_objects["right"])
    for name, sprites in many_objects.items():
        mine = appearance(sprites)
        for column in range(mine.shape[1]):
            assert ks_distance(mine[:, column], reference[:, column]) < KS_LIMIT, (name, column)


def object_statistics(frame: np.ndarray, sprite: Sprite, t: int) -> list[float]:
    """Inside the object (from its truth pose): mean of each channel, grey contrast, and
    sharpness (gradient energy over variance); and the whole frame's mean grey level."""
    height, width = frame.shape[:2]
    x, y, _, scale = sprite.pose(t)
    ys, xs = np.mgrid[0:height, 0:width]
    distance = np.hypot((xs - x + width / 2) % width - width / 2,
                        (ys - y + height / 2) % height - height / 2)
    inside = distance < 0.8 * min(sprite.radii) * scale
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)
    gradient = (np.roll(gray, 1, axis=0) - gray) ** 2 + (np.roll(gray, 1, axis=1) - gray) ** 2
    return [*frame[inside].mean(axis=0), gray[inside].std(),
            gradient[inside].mean() / gray[inside].var(), gray.mean()]


def test_single_frames_have_the_same_statistics_in_every_class():
    """Rendered object colour, contrast, sharpness and frame mean: same per class (KS, 60 each)."""
    config = MotionLabConfig(videos_per_class=60, num_frames=8)
    stats = {}  # (label, t) -> one row of statistics per video
    for label in range(config.num_classes):
        videos = [draw_video(config, label, index) for index in range(60)]
        frames = [list(render_frames(video, 64, 64)) for video in videos]
        for t in (0, 7):
            stats[label, t] = np.array([object_statistics(f[t], v.object, t)
                                        for f, v in zip(frames, videos)])
    limit = 2.23 * math.sqrt((60 + 420) / (60 * 420))  # alpha = 1e-4
    for (label, t), mine in stats.items():
        others = np.concatenate([s for (other, u), s in stats.items() if u == t and other != label])
        for column in range(mine.shape[1]):
            assert ks_distance(mine[:, column], others[:, column]) < limit, (label, t, column)


# ---- command line and extraction -------------------------------------------------------------

def test_synth_motion_writes_the_lab_and_a_summary(tmp_path):
    """synth --task motion writes videos, list files and truth, and prints per-class counts."""
    result = run("synth", "--out", tmp_path, "--task", "motion", "--classes", "3", "--videos-per-class",
                 "3", "--test-fraction", "0.3", "--num-frames", "3", "--width", "32", "--height",
                 "32", "--codec", "libx264", "--seed", "5")
    assert result.exit_code == 0, result.output
    assert "2 rotate-cw: 3 videos (2 train, 1 test)" in result.output
    assert "--short-side 0" in result.output
    assert len(list(tmp_path.rglob("*.mp4"))) == 9
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["config"]["seed"] == 5 and truth["config"]["num_frames"] == 3
    assert len((tmp_path / "testlist01.txt").read_text().splitlines()) == 3


@pytest.mark.parametrize("args", [
    ("--classes", "3"), ("--videos-per-class", "4"), ("--test-fraction", "0.5"),
    ("--task", "motion", "--num-videos", "3")])
def test_options_of_the_other_task_are_usage_errors_naming_the_option(tmp_path, args):
    """An option of one task given with the other exits 2 and names the option; nothing written."""
    result = run("synth", "--out", tmp_path / "out", *args)
    assert result.exit_code == EXIT_USAGE
    assert args[-2] in result.output and "applies to --task" in result.output
    assert not (tmp_path / "out").exists()


def test_too_many_classes_is_a_usage_error_listing_the_classes(tmp_path):
    """--classes 13 exits 2 and lists the vocabulary."""
    result = run("synth", "--out", tmp_path, "--task", "motion", "--classes", "13")
    assert result.exit_code == EXIT_USAGE and "oscillate-vertical" in result.output


def test_synth_without_task_still_writes_the_translating_textures(tmp_path):
    """flowkit synth --out DIR is --task translate: the same files as make_synthetic_videos."""
    result = run("synth", "--out", tmp_path / "cli", "--num-frames", "2")
    assert result.exit_code == 0, result.output
    assert "right/right_0.mp4: right (label 0), flow (+1.50, +0.00) px/frame, 2 frames" \
        in result.output
    make_synthetic_videos(tmp_path / "lib", SynthConfig(num_frames=2))
    files = sorted(p.relative_to(tmp_path / "lib") for p in (tmp_path / "lib").rglob("*")
                   if p.is_file())
    assert len(files) == 6
    for name in files:
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()


def test_help_shows_the_defaults_of_each_task():
    """--help gives both tasks' default frame sizes and codecs, and the motion classes."""
    text = " ".join(run("synth", "--help").output.split())
    assert "[default: 340 with translate, 64 with motion, complementary and binding]" in text
    assert "[default: libx264 with translate, ffv1 with motion, complementary and binding]" \
        in text
    assert "binding: a warm and a cool object" in text
    assert "right, left, rotate-cw, rotate-ccw" in text


def test_extracting_labels_txt_gives_the_truth_ids_and_labels(small_lab, tmp_path):
    """flowkit extract LAB/labels.txt stores every video under its truth id with its label."""
    folder, _ = small_lab
    result = run("extract", folder / "labels.txt", "--out", tmp_path, "--flow", "farneback",
                 "--short-side", "0", "--workers", "1", "--quiet")
    assert result.exit_code == 0, result.output
    truth = json.loads((folder / "truth.json").read_text())["videos"]
    manifest = Manifest.read(tmp_path / MANIFEST_NAME)
    assert {e.video_id: e.label for e in manifest} == {r["id"]: r["label"] for r in truth}
    assert {(e.status, e.num_frames, e.num_flows) for e in manifest} == {("ok", 6, 5)}
