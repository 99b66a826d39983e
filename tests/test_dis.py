"""The DIS backend (OpenCV DISOpticalFlow): the same flow as OpenCV called directly, its presets
and parameters, frame sizes it refuses, and `--flow dis` through the command line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.main import EXIT_USAGE, main
from flowkit.config import ExtractConfig
from flowkit.errors import BackendError, ConfigError
from flowkit.extract.inputs import collect_videos
from flowkit.extract.run import extract
from flowkit.flow import get_backend, make_backend_config
from flowkit.flow.dis import PRESETS, DISConfig, automatic_coarsest_scale
from flowkit.flow.files import read_rgb_image
from flowkit.flow.metrics import endpoint_error
from flowkit.store.reader import open_shards
from flowkit.video.decode import DecodeConfig
from flowkit.video.synth import SynthConfig, make_synthetic_videos
from helpers import rubberwhale, shared_data_dir, translated_texture_pair
from test_extract import assert_same_output

OPENCV_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                  "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
# Every parameter: (DISConfig field, OpenCV's getter/setter name without get/set).
PARAMETERS = [
    ("finest_scale", "FinestScale"), ("coarsest_scale", "CoarsestScale"),
    ("patch_size", "PatchSize"), ("patch_stride", "PatchStride"),
    ("gradient_descent_iterations", "GradientDescentIterations"),
    ("variational_refinement_iterations", "VariationalRefinementIterations"),
    ("variational_refinement_alpha", "VariationalRefinementAlpha"),
    ("variational_refinement_delta", "VariationalRefinementDelta"),
    ("variational_refinement_gamma", "VariationalRefinementGamma"),
    ("variational_refinement_epsilon", "VariationalRefinementEpsilon"),
    ("mean_normalization", "UseMeanNormalization"),
    ("spatial_propagation", "UseSpatialPropagation"),
]


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def real_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two 320x240 frames with texture everywhere (RubberWhale's top-left corner when the
    shared data is here, else a synthetic texture moved by (1.25, -0.5))."""
    data = shared_data_dir()
    if data is None:
        return translated_texture_pair(320, 240, 1.25, -0.5)
    folder = data / "middlebury"
    return tuple(read_rgb_image(folder / f"RubberWhale-frame{n}.png")[:240, :320].copy()
                 for n in (10, 11))


def opencv_flow(solver: cv2.DISOpticalFlow, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in (first, second)]
    return solver.calc(gray[0], gray[1], None)


def test_the_preset_table_is_opencvs():
    """PRESETS and the fixed defaults are what the installed OpenCV's presets set."""
    for preset, code in OPENCV_PRESETS.items():
        solver = cv2.DISOpticalFlow_create(code)
        config = DISConfig(preset=preset)
        for field, method in PARAMETERS:
            expected = getattr(solver, "get" + method)()
            assert getattr(config, field) == pytest.approx(expected, rel=1e-6), (preset, field)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_gives_opencvs_flow_exactly(preset):
    """get_backend("dis") with a preset = cv2.DISOpticalFlow_create(preset) on RGB2GRAY frames,
    bit for bit, in a batch of two pairs."""
    first, second = real_pair()
    backend = get_backend("dis", DISConfig(preset=preset))
    ours = backend(np.stack([first, second]), np.stack([second, first]))
    solver = cv2.DISOpticalFlow_create(OPENCV_PRESETS[preset])
    assert ours.dtype == np.float32 and ours.shape == (2, 240, 320, 2)
    np.testing.assert_array_equal(ours[0], opencv_flow(solver, first, second))
    np.testing.assert_array_equal(ours[1], opencv_flow(solver, second, first))


def test_every_parameter_reaches_opencv():
    """Each parameter set away from its preset gives OpenCV's flow with that setter called; and
    changing it changes the flow (so none is silently dropped)."""
    first, second = real_pair()
    changed = {"finest_scale": 0, "coarsest_scale": 2, "patch_size": 12, "patch_stride": 5,
               "gradient_descent_iterations": 4, "variational_refinement_iterations": 2,
               "variational_refinement_alpha": 5.0, "variational_refinement_delta": 1.0,
               "variational_refinement_gamma": 2.0, "variational_refinement_epsilon": 0.5,
               "mean_normalization": False, "spatial_propagation": False}
    assert set(changed) == {field for field, _ in PARAMETERS}
    reference = get_backend("dis", DISConfig(preset="fast"))(first[None], second[None])[0]
    for field, method in PARAMETERS:
        ours = get_backend("dis", DISConfig(preset="fast", **{field: changed[field]}))(
            first[None], second[None])[0]
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        getattr(solver, "set" + method)(changed[field])
        np.testing.assert_array_equal(ours, opencv_flow(solver, first, second), err_msg=field)
        assert not np.array_equal(ours, reference), field


def test_defaults_are_the_medium_preset_and_given_values_win():
    """DISConfig() is medium; a preset fills only the fields not given; the config holds the
    values the solver runs with, so equal settings compare equal however they were given."""
    assert DISConfig() == DISConfig(preset="medium", finest_scale=1, patch_stride=3)
    fast = DISConfig(preset="fast", gradient_descent_iterations=30)
    assert (fast.finest_scale, fast.patch_stride, fast.gradient_descent_iterations,
            fast.variational_refinement_iterations) == (2, 4, 30, 5)
    assert dataclasses.asdict(DISConfig(preset="ultrafast")) == {
        "preset": "ultrafast", "finest_scale": 2, "coarsest_scale": -1, "patch_size": 8,
        "patch_stride": 4, "gradient_descent_iterations": 12,
        "variational_refinement_iterations": 0, "variational_refinement_alpha": 20.0,
        "variational_refinement_delta": 5.0, "variational_refinement_gamma": 10.0,
        "variational_refinement_epsilon": 0.01, "mean_normalization": True,
        "spatial_propagation": True}
    saved = dataclasses.asdict(DISConfig(preset="fast"))
    assert make_backend_config("dis", **saved) == DISConfig(preset="fast")  # a resume's reload


@pytest.mark.parametrize("options, message", [
    ({"preset": "slow"}, "DISConfig.preset must be one of ultrafast, fast, medium, got 'slow'"),
    ({"gradient_descent_iterations": -1},
     "DISConfig.gradient_descent_iterations must be an integer >= 0, got -1"),
    ({"variational_refinement_iterations": -3},
     "DISConfig.variational_refinement_iterations must be an integer >= 0, got -3"),
    ({"finest_scale": -1}, "DISConfig.finest_scale must be an integer >= 0, got -1"),
    ({"coarsest_scale": 0}, "DISConfig.coarsest_scale must be -1 (automatic) or at least "
                            "DISConfig.finest_scale (1), got 0"),
    ({"coarsest_scale": -2}, "DISConfig.coarsest_scale must be an integer >= -1, got -2"),
    ({"patch_size": 1}, "DISConfig.patch_size must be an integer >= 2, got 1"),
    ({"patch_stride": 0}, "DISConfig.patch_stride must be an integer >= 1, got 0"),
    ({"patch_stride": 8}, "DISConfig.patch_stride must be smaller than DISConfig.patch_size (8), "
                          "got 8"),
    ({"patch_size": 2.5}, "DISConfig.patch_size must be an integer >= 2, got 2.5"),
    ({"variational_refinement_alpha": -1.0},
     "DISConfig.variational_refinement_alpha must be a number >= 0, got -1.0"),
    ({"variational_refinement_epsilon": 0.0},
     "DISConfig.variational_refinement_epsilon must be a number > 0, got 0.0"),
    ({"mean_normalization": 1}, "DISConfig.mean_normalization must be true or false, got 1"),
])
def test_bad_parameters_are_one_line_config_errors(options, message):
    """Values OpenCV would misread or crash on (a zero stride or epsilon) are refused first."""
    with pytest.raises(ConfigError) as error:
        DISConfig(**options)
    assert str(error.value) == message


@pytest.mark.parametrize("args, message", [
    (["--dis-preset", "slow"], "invalid value for '--dis-preset': 'slow' is not one of"),
    (["--dis-gradient-descent-iterations", "-1"],
     "--dis-gradient-descent-iterations must be an integer >= 0, got -1"),
    (["--dis-patch-stride", "8"], "--dis-patch-stride must be smaller than --dis-patch-size (8)"),
])
def test_bad_options_exit_2_with_one_line_naming_the_option(args, message, tmp_path):
    result = run("extract", tmp_path, "--out", tmp_path / "o", "--flow", "dis", *args)
    assert result.exit_code == EXIT_USAGE
    first_line = result.output.strip().splitlines()[0]
    assert message in first_line, result.output


def test_flowkit_backends_dis_shows_every_parameter_with_its_default():
    result = CliRunner().invoke(main, ["backends", "dis"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split()).replace("--dis- ", "--dis-")  # wrapped at a hyphen
    rows = [("--dis-preset [ultrafast|fast|medium]", "[default: medium]"),
            ("--dis-finest-scale INTEGER", "[default: by --dis-preset: ultrafast 2, fast 2, "
                                           "medium 1]"),
            ("--dis-coarsest-scale INTEGER", "[default: -1]"),
            ("--dis-patch-size INTEGER", "[default: 8]"),
            ("--dis-patch-stride INTEGER", "ultrafast 4, fast 4, medium 3]"),
            ("--dis-gradient-descent-iterations INTEGER", "ultrafast 12, fast 16, medium 25]"),
            ("--dis-variational-refinement-iterations INTEGER", "ultrafast 0, fast 5, medium 5]"),
            ("--dis-variational-refinement-alpha FLOAT", "[default: 20.0]"),
            ("--dis-variational-refinement-delta FLOAT", "[default: 5.0]"),
            ("--dis-variational-refinement-gamma FLOAT", "[default: 10.0]"),
            ("--dis-variational-refinement-epsilon FLOAT", "[default: 0.01]"),
            ("--dis-no-mean-normalization", "this option turns it off. [default: on]"),
            ("--dis-no-spatial-propagation", "this option turns it off. [default: on]")]
    starts = [text.index(option) for option, _ in rows]
    assert starts == sorted(starts)
    for (option, shown), start, end in zip(rows, starts, [*starts[1:], len(text)]):
        assert shown in text[start:end], option


def test_options_build_the_config(tmp_path):
    """--dis-preset fast with one override and an off switch: the config a run gets."""
    from flowkit.cli.extract import extract_command
    from flowkit.cli.options import flow_config_from_options

    args = ["a", "--out", str(tmp_path / "o"), "--flow", "dis", "--dis-preset", "fast",
            "--dis-patch-stride", "2", "--dis-no-spatial-propagation"]
    with extract_command.make_context("extract", args) as ctx:
        params = dict(ctx.params)
    config = flow_config_from_options("dis", params, params["precision"])
    assert config == DISConfig(preset="fast", patch_stride=2, spatial_propagation=False)
    assert config.mean_normalization is True


def test_frames_too_small_for_the_pyramid_are_refused_without_crashing():
    """OpenCV 5.1 crashes the process (segmentation fault) on a 200x28 pair with the ultrafast
    preset, and on smaller frames swaps in parameters of its own: dis refuses such frames with a
    one-line BackendError naming the size it needs. In a child process, so that a crash fails
    this test instead of ending the test run."""
    code = ("import numpy as np\n"
            "from flowkit.errors import BackendError\n"
            "from flowkit.flow import get_backend\n"
            "from flowkit.flow.dis import DISConfig\n"
            "frames = np.zeros((1, 28, 200, 3), np.uint8)\n"
            "try:\n"
            "    get_backend('dis', DISConfig(preset='ultrafast'))(frames, frames)\n"
            "except BackendError as error:\n"
            "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "dis: a 200x28 frame is too small for finest_scale 2 with patch_size 8 (it needs a "
        "short side >= 32 px and a long side >= 91 px); decode larger frames or lower "
        "finest_scale or patch_size (--dis-finest-scale, --dis-patch-size)\n")


def test_the_size_rule_is_opencvs():
    """The smallest frames the rule admits, for medium (finest scale 1) and fast (2), are where
    OpenCV's own choice of coarsest level reaches the finest one."""
    assert automatic_coarsest_scale(46, 16, 8) == 1 and automatic_coarsest_scale(45, 16, 8) == 0
    assert automatic_coarsest_scale(46, 15, 8) == 0
    assert automatic_coarsest_scale(91, 32, 8) == 2 and automatic_coarsest_scale(90, 32, 8) == 1
    assert automatic_coarsest_scale(320, 240, 8) == 3  # min(int(log2(2.5) + 0.5), log2(30))
    assert automatic_coarsest_scale(7, 300, 8) == -1  # no patch fits across


def test_a_refused_pair_and_opencvs_own_parameter_changes_leave_later_pairs_alone():
    """After a refused 20x20 pair, and after the solver's parameters were changed behind its
    back (as OpenCV does on small frames), the backend gives a fresh backend's flow."""
    first, second = real_pair()
    fresh = get_backend("dis")(first[None], second[None])
    backend = get_backend("dis")
    tiny = np.zeros((1, 20, 20, 3), dtype=np.uint8)
    with pytest.raises(BackendError, match="20x20 frame is too small"):
        backend(tiny, tiny)
    backend._solver.setFinestScale(0)
    backend._solver.setPatchSize(12)
    np.testing.assert_array_equal(backend(first[None], second[None]), fresh)


def test_flow_does_not_depend_on_opencvs_thread_count():
    first, second = real_pair()
    previous = cv2.getNumThreads()
    try:
        flows = []
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            flows.append(get_backend("dis")(first[None], second[None]))
    finally:
        cv2.setNumThreads(previous)
    np.testing.assert_array_equal(flows[0], flows[1])


def test_medium_on_rubberwhale_meets_the_epe_bound():
    """The default (medium) on Middlebury RubberWhale: EPE <= 0.25 over known pixels
    (measured 0.223 with OpenCV 5.1)."""
    first, second, truth = rubberwhale()
    flow = get_backend("dis")(first[None], second[None])[0]
    assert endpoint_error(flow, truth) <= 0.25


@pytest.mark.parametrize("preset", ["medium", "ultrafast"])
def test_extract_with_dis_recovers_each_translation_sign_included(preset, tmp_path):
    """flowkit synth, then flowkit extract --flow dis: the stored flow of each video (right,
    left, down, up) has the mean (dx, dy) of truth.json within 0.1 px, sign included."""
    videos = tmp_path / "videos"
    result = run("synth", "--out", videos, "--num-videos", "4", "--num-frames", "4",
                 "--width", "128", "--height", "96", "--codec", "ffv1")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = run("extract", videos / "labels.txt", "--out", out, "--short-side", "0",
                 "--flow", "dis", "--dis-preset", preset, "--flow-dtype", "float16",
                 "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    truth = {item["id"]: item for item in json.loads((videos / "truth.json").read_text())}
    reader = open_shards(out)
    shard = reader.shard_attrs(reader[reader.videos[0]].entry.shard)
    assert shard["flow_backend"] == "dis"
    assert json.loads(shard["flow_params"]) == dataclasses.asdict(DISConfig(preset=preset))
    for video_id, item in truth.items():
        flows = reader.flows(video_id)
        assert flows.shape == (3, 96, 128, 2)
        mean_u, mean_v = flows[:, 16:-16, 16:-16].reshape(-1, 2).astype(np.float64).mean(axis=0)
        assert abs(mean_u - item["dx"]) < 0.1 and abs(mean_v - item["dy"]) < 0.1, video_id


def test_flow_command_with_dis(tmp_path):
    """flowkit flow --method dis writes the backend's flow for two image files."""
    first, second = translated_texture_pair(160, 128, -1.5, 0.75)
    paths = [tmp_path / "a.png", tmp_path / "b.png"]
    for path, image in zip(paths, (first, second)):
        cv2.imwrite(str(path), image[..., ::-1])
    result = run("flow", *paths, "--method", "dis", "--dis-preset", "fast",
                 "--out", tmp_path / "f.npy")
    assert result.exit_code == 0, result.output
    expected = get_backend("dis", DISConfig(preset="fast"))(first[None], second[None])[0]
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), expected)


def test_the_flow_server_stores_the_per_video_arrays(tmp_path):
    """--flow dis through a flow server fed by 2 workers: the bytes each worker stores alone."""
    make_synthetic_videos(tmp_path / "videos", SynthConfig(num_videos=3, num_frames=5,
                                                           width=128, height=96, codec="ffv1"))
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="dis", batch_size=4)
    for name, served in (("alone", False), ("served", True)):
        report = extract(collect_videos([tmp_path / "videos"]), tmp_path / name, config,
                         workers=2 if served else 1, threads=1, videos_per_shard=1,
                         progress=False, flow_server=served)
        assert report.ok == 3
    assert_same_output(tmp_path / "alone", tmp_path / "served")


def test_predict_reads_dis_settings_back(tmp_path):
    """extract_config.json of a dis run rebuilds the same backend (what flowkit predict does)."""
    from flowkit.data.decoded import read_extract_config

    config = ExtractConfig(flow="dis", flow_params=DISConfig(preset="fast", patch_size=10))
    config.save(tmp_path / "extract_config.json")
    assert read_extract_config(tmp_path / "extract_config.json") == config



def test_a_video_too_small_for_dis_fails_alone(tmp_path):
    """Through extract, a 200x28 video fails with that line and the 128x96 one is stored."""
    make_synthetic_videos(tmp_path / "in" / "small",
                          SynthConfig(num_videos=1, num_frames=3, width=200, height=28,
                                      codec="ffv1"))
    make_synthetic_videos(tmp_path / "in" / "large",
                          SynthConfig(num_videos=1, num_frames=3, width=128, height=96,
                                      codec="ffv1"))
    config = ExtractConfig(decode=DecodeConfig(short_side=None), flow="dis",
                           flow_params=DISConfig(preset="ultrafast"))
    report = extract(collect_videos([tmp_path / "in"]), tmp_path / "out", config, workers=1,
                     progress=False)
    assert report.ok == 1 and len(report.failed) == 1
    assert report.failed[0].video_id == "small/right/right_0.mkv"
    assert "dis: a 200x28 frame is too small for finest_scale 2" in report.failed[0].error
