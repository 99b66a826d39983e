"""The flowkit command line, driven through click's CliRunner."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flowkit.cli.extract import extract_command
from flowkit.cli.flow import flow_command
from flowkit.cli.grouped import OTHER, GroupedCommand
from flowkit.cli.main import EXIT_SOME_FAILED, EXIT_USAGE, main
from flowkit.cli.options import flow_config_from_options
from flowkit.cli.train import COMMON, GROUPS
from flowkit.lock import FolderLock
from flowkit.flow import list_backends
from flowkit.flow.files import read_flo
from flowkit.flow.metrics import endpoint_error
from flowkit.store.manifest import Manifest
from flowkit.video.synth import moving_texture, write_video
from helpers import shared_data_dir


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_every_option_of_every_command_has_help():
    """--help reads like a man page: each command has a docstring, each option a help text,
    the options hidden from --help (the flow-method parameters) included."""
    hidden = 0
    for name, command in main.commands.items():
        assert command.help, name
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and len(param.help) > 10, f"{name} {param.opts}"
                hidden += param.hidden
    assert hidden >= 2 * 30  # extract's and flow's --tvl1-*, --raft-*, ...
    result = run("--help")
    assert result.exit_code == 0
    for name in ("extract", "info", "verify", "flow", "synth", "view", "backends"):
        assert name in result.output
    listing = run("backends")
    assert listing.exit_code == 0
    for backend in list_backends():
        line = next(line for line in listing.output.splitlines() if line.startswith(backend + " "))
        name, devices, description = re.split(r"\s{2,}", line, maxsplit=2)
        assert name == backend and devices.startswith("cpu") and len(description) > 20, line
        option_help = run("backends", backend).output
        assert "Options of flowkit extract and flowkit flow" in option_help


def test_grouped_helps_put_every_option_under_a_heading():
    """The long helps (extract, flow, train) show each visible option under one of their
    headings, never under a catch-all; the group tables name only parameters that exist."""
    grouped = {name: command for name, command in main.commands.items()
               if isinstance(command, GroupedCommand)}
    assert {"extract", "flow", "train"} <= set(grouped)
    for name, command in grouped.items():
        names = {param.name for param in command.params}
        listed = [n for group in command.groups.values() for n in group]
        assert set(listed) <= names and len(listed) == len(set(listed)), name
        # The group's settings, as the command runs under it: click caches the help option
        # of a command on its first context, so a bare Context would drop "-h" for the rest.
        with click.Context(command, info_name=name, **main.context_settings) as ctx:
            sections = command.grouped_records(ctx)
        assert OTHER not in sections, (name, sections.get(OTHER))
        text = run(name, "--help" if command.common is None else "--help-all").output
        positions = [text.index(f"\n{heading}:\n") for heading in sections]
        assert positions == sorted(positions), name


@pytest.mark.parametrize("name, headings", [
    ("extract", ["Inputs", "Flow", "Storage", "Parallelism", "Run"]),
    ("flow", ["Flow", "Output"]),
])
def test_extract_and_flow_help_fit_a_screen(name, headings):
    """extract --help and flow --help: under 60 lines at 100 columns, under headings, without
    the flow-method parameters but pointing to flowkit backends."""
    text = CliRunner().invoke(main, [name, "--help"], terminal_width=100).output
    assert len(text.splitlines()) < 60, text
    assert [line[:-1] for line in text.splitlines() if line in {h + ":" for h in headings}] \
        == headings
    assert not re.search(r"^  --(tvl1|farneback|raft)-", text, re.MULTILINE)  # no such row
    assert "Flow-method parameters" in text and "`flowkit backends NAME`" in text


def test_train_help_shows_the_common_options_and_help_all_every_one():
    """train --help: under 60 lines at 100 columns (it was 131), the common options under
    their headings and a last line counting the rest; --help-all: all 50 options, without DATA."""
    runner = CliRunner()
    short = runner.invoke(main, ["train", "--help"], terminal_width=100)
    full = runner.invoke(main, ["train", "--help-all"], terminal_width=100)
    assert short.exit_code == full.exit_code == 0, full.output
    assert len(short.output.splitlines()) < 60, short.output
    headings = ["Run", "Data", "Model", "Optimisation", "Hardware"]
    assert [line[:-1] for line in short.output.splitlines() if line[:-1] in GROUPS] == headings
    assert [line[:-1] for line in full.output.splitlines() if line[:-1] in GROUPS] == \
        list(GROUPS)
    options = [param for param in main.commands["train"].params
               if isinstance(param, click.Option)]
    shown = [p for p in options if re.search(rf"^  (-h, )?{p.opts[0]}\b", short.output, re.M)]
    assert {p.name for p in shown} == set(COMMON) | {"help_all"}
    assert all(re.search(rf"^  {p.opts[0]}\b", full.output, re.M) for p in options)
    left = len(options) - len(shown)
    assert f"\n{left} more options under these headings and Distillation: flowkit train " \
           "--help-all\n" in short.output
    assert left == 36 and "more options" not in full.output


def _listed_options(backend: str) -> dict[str, tuple[str, str]]:
    """Option -> (metavar, default shown) in ``flowkit backends BACKEND``."""
    result = CliRunner().invoke(main, ["backends", backend], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = {}
    for block in re.split(r"^(?=  --)", result.output, flags=re.MULTILINE)[1:]:
        option, metavar = re.match(r"  (--[\w-]+)(?: (\S+))?", block).groups()
        shown = re.search(r"\[(default: [^\]]+|required[^\]]*)\]", " ".join(block.split()))
        listed[option] = (metavar or "", shown.group(1))
    assert listed, result.output
    return listed


def test_backends_list_the_parameters_extract_and_flow_accept(tmp_path):
    """flowkit backends NAME lists exactly the hidden options of extract and flow, each once,
    and the defaults it shows are the ones a run gets: giving them changes nothing."""
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"not read here")
    listed_by = {}
    for backend in list_backends():
        listed = _listed_options(backend)
        own = {option: shown for option, shown in listed.items() if option != "--precision"}
        assert all(option.startswith(f"--{backend}-") for option in own), own
        for option in own:
            listed_by.setdefault(option, []).append(backend)
        given, required = [], []
        for option, (metavar, shown) in listed.items():
            by_preset = re.fullmatch(r"default: by (--[\w-]+): (.*)", shown)
            if shown.startswith("required"):
                assert metavar == "FILE", option  # --raft-weights FILE
                required += [option, str(weights)]
            elif by_preset:  # --dis-finest-scale: the value of the default preset
                preset = listed[by_preset.group(1)][1].removeprefix("default: ")
                values = dict(item.split(" ") for item in by_preset.group(2).split(", "))
                given += [option, values[preset]]
            elif metavar:  # a flag's default (off, or on for --<method>-no-...) is its absence
                given += [option, shown.removeprefix("default: ")]
        for command in (extract_command, flow_command):
            method = "--flow" if command is extract_command else "--method"
            paths = ["a"] if command is extract_command else [str(weights), str(weights)]
            configs = []
            for args in (required, required + given):
                with command.make_context(command.name, [*paths, "--out", str(tmp_path / "o"),
                                                         method, backend, *args]) as ctx:
                    params = dict(ctx.params)
                configs.append(flow_config_from_options(backend, params, params["precision"]))
            assert configs[0] == configs[1], (command.name, backend)
    hidden = {opt for command in (extract_command, flow_command) for param in command.params
              if isinstance(param, click.Option) and param.hidden for opt in param.opts}
    assert set(listed_by) == hidden
    assert all(len(backends) == 1 for backends in listed_by.values())
    assert _listed_options("tvl1")["--tvl1-tau"] == ("FLOAT", "default: 0.25")
    assert _listed_options("raft")["--raft-weights"][0] == "FILE"
    assert _listed_options("dis")["--dis-finest-scale"] == (
        "INTEGER", "default: by --dis-preset: ultrafast 2, fast 2, medium 1")


def test_unknown_backend_is_a_one_line_usage_error():
    """flowkit backends NOPE: exit 2, one line that lists the methods."""
    result = run("backends", "nope")
    assert result.exit_code == EXIT_USAGE
    assert result.output.strip().count("\n") == 0
    assert "'nope'" in result.output and ", ".join(list_backends()) in result.output


def test_tvl1_parameters_are_exposed_with_opencv_defaults():
    """flowkit backends tvl1 lists every --tvl1-* option with OpenCV's default."""
    listed = _listed_options("tvl1")
    for option, default in [("--tvl1-tau", "0.25"), ("--tvl1-lambda", "0.15"),
                            ("--tvl1-theta", "0.3"), ("--tvl1-nscales", "5"),
                            ("--tvl1-warps", "5"), ("--tvl1-epsilon", "0.01"),
                            ("--tvl1-inner-iterations", "30"), ("--tvl1-outer-iterations", "10"),
                            ("--tvl1-scale-step", "0.8"), ("--tvl1-gamma", "0.0"),
                            ("--tvl1-median-filtering", "5")]:
        assert listed[option][1] == f"default: {default}", option


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
    assert "training samples: random multi-scale 32 px crop, random horizontal flip, seed 0" \
        in result.output
    # --no-flip: the samples of flowkit train --no-flip; a rightward video's flow stays red.
    result = run("view", out, "--out", tmp_path / "noflip.png", "--frames", "2",
                 "--crop-size", "32", "--no-flip", "--video", "right/right_0.mkv",
                 "--max-magnitude", "2")
    assert result.exit_code == 0, result.output
    assert "training samples: random multi-scale 32 px crop, no flip, seed 0" in result.output
    noflip = cv2.imread(str(tmp_path / "noflip.png"))[:-121, :, ::-1]  # above the legend disc
    cyan = (noflip[..., 0] < 120) & (noflip[..., 1] > 200) & (noflip[..., 2] > 200)
    red = (noflip[..., 0] > 200) & (noflip[..., 1] < 120) & (noflip[..., 2] < 120)
    assert red.sum() > 1000 and cyan.sum() == 0


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
    with Manifest.open(out) as manifest:
        first = next(iter(manifest))
        manifest.put(dataclasses.replace(first, num_frames=7))
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
    """flowkit flow --method tvl1 on RubberWhale: EPE <= 0.18 over known pixels (OpenCV: 0.156)."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent")
    folder = data / "middlebury"
    result = run("flow", folder / "RubberWhale-frame10.png", folder / "RubberWhale-frame11.png",
                 "--method", "tvl1", "--out", tmp_path / "f.flo", "--viz", tmp_path / "f.png")
    assert result.exit_code == 0, result.output
    flow = read_flo(tmp_path / "f.flo")
    epe = endpoint_error(flow, read_flo(folder / "RubberWhale-flow10.flo"))
    assert epe <= 0.18
    assert cv2.imread(str(tmp_path / "f.png")).shape == (388, 584, 3)


def test_flow_command_rejects_images_of_different_sizes(tmp_path):
    """Two images of different sizes: exit 2 naming the second image."""
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((20, 30, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((20, 31, 3), np.uint8))
    result = run("flow", tmp_path / "a.png", tmp_path / "b.png", "--out", tmp_path / "f.flo")
    assert result.exit_code == EXIT_USAGE and "b.png" in result.output


def test_synth_writes_videos_labels_and_truth(tmp_path):
    """flowkit synth writes the videos, a labels.txt list file and truth.json."""
    result = run("synth", "--out", tmp_path, "--num-videos", "2", "--num-frames", "3", "--width", "64",
                 "--height", "48")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "labels.txt").read_text().splitlines()) == 2
    assert (tmp_path / "truth.json").exists()


# ---- one convention: --out, one-line errors, flow formats, one final progress line ---------

@pytest.mark.parametrize("args, words", [
    (["extract", "{videos}"], "missing option '--out'"),
    (["extract", "{videos}", "--out", "{tmp}/o", "--workers", "0"],
     "invalid value for '--workers': 0 is not in the range"),
    (["extract", "{videos}", "--out", "{tmp}/o", "--bogus"], "no such option '--bogus'"),
    (["view", "{tmp}/nothing", "--out", "{tmp}/p.png"], "'FOLDER': Directory"),
    (["merge", "{tmp}", "--move"], "missing option '--out'"),
    (["export", "{tmp}", "--out", "{tmp}/f", "--layout", "mine"],
     "invalid value for '--layout'"),
    (["synth", "--out", "{tmp}/s", "--classes", "3"], "--classes applies to --task motion"),
    (["flow", "{videos}/labels.txt", "--out", "{tmp}/f.flo"], "missing argument 'SECOND'"),
    (["train", "{tmp}", "--epochs", "two"], "invalid value for '--epochs'"),
    (["eval", "{tmp}/no-run"], "'RUN': Path"),
    (["view", "{tmp}", "--out", "{tmp}/grid.jpg"], "'--out': {tmp}/grid.jpg is written as a PNG"),
    (["flow", "{videos}/labels.txt", "{videos}/labels.txt", "--out", "{tmp}/f.flo", "--viz",
      "{tmp}/f.jpg"], "invalid value for '--viz'"),
])
def test_click_usage_errors_are_one_line_naming_the_option(tiny_videos, tmp_path, args, words):
    """Usage errors click finds (bad value, missing or unknown option, no such file) read as
    flowkit's own: `flowkit: error: ...` naming the option, then where the help is; exit 2."""
    args = [a.format(videos=tiny_videos, tmp=tmp_path) for a in args]
    result = run(*args)
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == "" and "Usage:" not in result.stderr
    assert result.stderr.splitlines() == [result.stderr.splitlines()[0],
                                          f"try 'flowkit {args[0]} --help'"]
    assert result.stderr.startswith("flowkit: error: ")
    assert words.format(tmp=tmp_path) in result.stderr


def test_unknown_commands_and_group_options_are_one_line_too():
    """`flowkit bogus` and `flowkit --bogus`: one error line, the hint names flowkit --help."""
    for args, words in ((["bogus"], "no such command 'bogus'"),
                        (["--bogus"], "no such option '--bogus'")):
        result = run(*args)
        assert result.exit_code == EXIT_USAGE
        assert result.stderr.splitlines() == [f"flowkit: error: {words}", "try 'flowkit --help'"]


def test_every_command_writing_files_takes_its_folder_or_file_as_out(tmp_path):
    """The output is `--out` on every command that writes one; no command takes it as an
    argument; -h is --help everywhere."""
    writers = {"synth", "extract", "merge", "view", "flow", "export", "import", "train", "eval"}
    for name, command in main.commands.items():
        arguments = [p.name for p in command.params if isinstance(p, click.Argument)]
        assert not [a for a in arguments if "out" in a], name
        options = {o for p in command.params if isinstance(p, click.Option) for o in p.opts}
        assert ("--out" in options) == (name in writers), name
        assert run(name, "-h").output.startswith(f"Usage: flowkit {name} "), name


def test_positional_output_folders_are_gone(tmp_path):
    """The old `flowkit synth DIR` form is a usage error (it would otherwise write nowhere
    expected), as is `flowkit merge OUT PART...` without --out."""
    result = run("synth", tmp_path / "s")
    assert result.exit_code == EXIT_USAGE and "missing option '--out'" in result.stderr
    assert not (tmp_path / "s").exists()


@pytest.fixture
def image_pair(tmp_path):
    """Two 64x48 PNGs of a texture moved by (1.5, -0.5) px."""
    from helpers import translated_texture_pair

    first, second = translated_texture_pair(64, 48, 1.5, -0.5)
    cv2.imwrite(str(tmp_path / "a.png"), first[..., ::-1])
    cv2.imwrite(str(tmp_path / "b.png"), second[..., ::-1])
    return tmp_path / "a.png", tmp_path / "b.png"


def test_flow_command_writes_the_format_of_the_extension(image_pair, tmp_path):
    """--out f.flo is Middlebury, f.png a KITTI 16-bit PNG, f.npy float32 H x W x 2: the same
    flow in each (PNG within its 1/64 px steps)."""
    from flowkit.flow.files import read_flow, read_kitti_png

    flows = {}
    for name in ("f.flo", "f.png", "f.npy"):
        result = run("flow", *image_pair, "--method", "farneback", "--out", tmp_path / name)
        assert result.exit_code == 0, result.output
        flows[name] = read_flow(tmp_path / name)
    assert (tmp_path / "f.flo").read_bytes()[:4] == b"PIEH"
    assert np.load(tmp_path / "f.npy").dtype == np.float32
    np.testing.assert_array_equal(flows["f.npy"], flows["f.flo"])
    assert np.abs(flows["f.png"] - flows["f.flo"]).max() <= 1 / 128 + 1e-6
    assert read_kitti_png(tmp_path / "f.png")[1].all()
    assert abs(float(flows["f.flo"][..., 0].mean()) - 1.5) < 0.3  # it is the motion


def test_flow_command_refuses_other_extensions_in_one_line(image_pair, tmp_path):
    """--out f.jpg: exit 2, one line listing the formats, nothing written, before any work."""
    result = run("flow", *image_pair, "--method", "farneback", "--out", tmp_path / "f.jpg")
    assert result.exit_code == EXIT_USAGE and not (tmp_path / "f.jpg").exists()
    assert len(result.stderr.splitlines()) == 1
    assert ".flo (Middlebury), .png (KITTI 16-bit PNG), .npy (float32" in result.stderr
    result = run("flow", *image_pair, "--out", tmp_path / "f.png", "--viz", tmp_path / "f.png")
    assert result.exit_code == EXIT_USAGE and "--viz" in result.stderr


def test_progress_bar_prints_its_final_line_once(tiny_videos, tmp_path):
    """An extraction's bar ends with one 100% line, not three (update, refresh and close each
    printed it: in a log every carriage return makes a line); a rerun with nothing to do
    draws no bar."""
    import re

    for workers in ("1", "2"):
        out = tmp_path / workers
        result = run("extract", tiny_videos, "--out", out, "--short-side", "0",
                     "--flow", "farneback", "--workers", workers)
        assert result.exit_code == 0, result.output
        lines = [line for line in re.split(r"[\r\n]", result.stderr) if line.strip()]
        assert sum("4/4" in line for line in lines) == 1, lines
        assert lines[-1].startswith("100%")
    result = run("extract", tiny_videos, "--out", out, "--short-side", "0", "--flow",
                 "farneback", "--workers", "2")
    assert result.exit_code == 0 and result.stderr == ""
