"""scripts/lab.py's plan, without training anything: which commands it runs for each flow method,
where their shards and runs go, and that each method's extract options work on the lab's frames."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowkit.cli.main import main as flowkit_main
from flowkit.video.motion_lab import MotionLabConfig, make_motion_dataset
from stddcn.config import DataConfig, ModelConfig

ROOT = Path(__file__).resolve().parents[1]


def load_lab():
    """scripts/lab.py as a module (scripts/ is no package)."""
    spec = importlib.util.spec_from_file_location("lab_script", ROOT / "scripts" / "lab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab = load_lab()


def fake_run(commands: list[list[str]]):
    """A stand-in for lab.run that records each command (without the interpreter) and writes
    what the real command would leave for the lab to find."""
    def run(command: list[str], log: Path) -> None:
        args = command[len(lab.FLOWKIT):]
        commands.append(args)
        out = Path(args[args.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        name = {"synth": "truth.json", "extract": "manifest.sqlite",
                "train": "last.pt"}.get(args[0])
        if name:
            (out / name).write_text("{}")
        else:  # eval: a made-up top-1 that depends on the run tested
            (out / "eval.json").write_text(json.dumps(
                {"top1": 0.5 if Path(args[1]).parent.name.startswith("rgb") else 0.75}))
    return run


def test_default_is_the_tvl1_lab_of_the_results_page(tmp_path, monkeypatch, capsys):
    """Without --flows: TV-L1 (no --flow option) into lab/shards, every run in lab/runs, and
    the table of docs/results.md without a flow column."""
    commands: list[list[str]] = []
    monkeypatch.setattr(lab, "run", fake_run(commands))
    monkeypatch.setattr(sys, "argv", ["lab.py", "--out", str(tmp_path), "--seeds", "0",
                                      "--variants", "rgb,flow,two-stream"])
    lab.main()
    extracts = [c for c in commands if c[0] == "extract"]
    assert extracts == [["extract", str(tmp_path / "videos" / "labels.txt"), "--out",
                         str(tmp_path / "shards"), "--short-side", "0"]]
    trained = [c[c.index("--out") + 1] for c in commands if c[0] == "train"]
    assert trained == [str(tmp_path / "runs" / f"{v}-seed0") for v in ("rgb", "flow", "two-stream")]
    assert all(c[1] == str(tmp_path / "shards") for c in commands if c[0] == "train")
    table = capsys.readouterr().out
    assert "| variant | test top-1 (mean +- std) | per seed |" in table
    assert "| flow | 75.0 +- 0.0 | 75.0 |" in table


@pytest.mark.parametrize("task, classes, epochs", [("motion", ["--classes", "8"], "30"),
                                                    ("binding", [], "90")])
def test_the_task_chooses_the_set_synth_makes_and_the_epochs(task, classes, epochs, tmp_path,
                                                             monkeypatch):
    commands: list[list[str]] = []
    monkeypatch.setattr(lab, "run", fake_run(commands))
    extra = [] if task == "motion" else ["--task", task]
    monkeypatch.setattr(sys, "argv", ["lab.py", "--out", str(tmp_path), "--seeds", "0",
                                      "--variants", "flow", *extra])
    lab.main()
    assert commands[0] == ["synth", "--out", str(tmp_path / "videos"), "--task", task,
                           *classes, "--videos-per-class", "30"]
    train = next(c for c in commands if c[0] == "train")
    assert train[train.index("--epochs") + 1] == epochs


def test_a_folder_refuses_runs_of_other_epochs_or_another_task(tmp_path, monkeypatch):
    """Finished runs are reused by folder name: a second call with other epochs (or task)
    would otherwise report the first call's runs as its own."""
    monkeypatch.setattr(lab, "run", fake_run([]))
    base = ["lab.py", "--out", str(tmp_path), "--seeds", "0", "--variants", "flow"]
    monkeypatch.setattr(sys, "argv", [*base, "--epochs", "5"])
    lab.main()
    for other in (["--epochs", "6"], ["--epochs", "5", "--task", "binding"]):
        monkeypatch.setattr(sys, "argv", [*base, *other])
        with pytest.raises(SystemExit, match="give another --out"):
            lab.main()
    monkeypatch.setattr(sys, "argv", [*base, "--epochs", "5"])
    lab.main()  # the same settings resume


def test_flows_get_their_own_shards_and_runs_and_share_the_rgb_stream(tmp_path, monkeypatch,
                                                                        capsys):
    """--flows tvl1,dis-fast: two extractions (each timed), rgb trained once per seed on the first
    method's shards, flow per method, each method's two-stream fusing the shared rgb run with
    its own flow run on its own shards; the table has a flow column and the extraction times."""
    commands: list[list[str]] = []
    monkeypatch.setattr(lab, "run", fake_run(commands))
    monkeypatch.setattr(sys, "argv", ["lab.py", "--out", str(tmp_path), "--seeds", "0,1",
                                      "--variants", "rgb,flow,two-stream",
                                      "--flows", "dis-fast,tvl1"])
    lab.main()
    extracts = {c[c.index("--out") + 1]: c[6:] for c in commands if c[0] == "extract"}
    assert extracts == {str(tmp_path / "shards-dis-fast"): lab.FLOWS["dis-fast"],
                        str(tmp_path / "shards"): []}
    assert set(json.loads((tmp_path / lab.TIMES).read_text())) == {"dis-fast", "tvl1"}
    trains = {c[c.index("--out") + 1]: c for c in commands if c[0] == "train"}
    runs, dis_runs = tmp_path / "runs", tmp_path / "runs-dis-fast"
    assert sorted(trains) == sorted(str(p) for seed in "01" for p in (
        runs / f"rgb-seed{seed}", runs / f"flow-seed{seed}", runs / f"two-stream-seed{seed}",
        dis_runs / f"flow-seed{seed}", dis_runs / f"two-stream-seed{seed}"))
    assert trains[str(runs / "rgb-seed0")][1] == str(tmp_path / "shards-dis-fast")
    assert trains[str(dis_runs / "flow-seed1")][1] == str(tmp_path / "shards-dis-fast")
    fused = trains[str(dis_runs / "two-stream-seed1")]
    assert fused[1] == str(tmp_path / "shards-dis-fast")
    assert fused[fused.index("--streams") + 1:fused.index("--streams") + 3] == [
        str(runs / "rgb-seed1"), str(dis_runs / "flow-seed1")]
    table = capsys.readouterr().out
    assert "| dis-fast | flow | 75.0 +- 0.0 | 75.0, 75.0 |" in table
    assert "| tvl1 | rgb | 50.0 +- 0.0 | 50.0, 50.0 |" in table
    assert "| flow | extraction of the videos (s) |" in table


def test_a_rerun_skips_what_is_done_and_a_resumed_extraction_is_not_timed(tmp_path,
                                                                          monkeypatch):
    """A second lab run runs nothing; an extraction that finds a manifest (an interrupted one)
    is resumed and its time left out."""
    commands: list[list[str]] = []
    monkeypatch.setattr(lab, "run", fake_run(commands))
    (tmp_path / "shards-farneback").mkdir()
    (tmp_path / "shards-farneback" / "manifest.sqlite").write_text("")
    argv = ["lab.py", "--out", str(tmp_path), "--seeds", "0", "--variants", "flow",
            "--flows", "tvl1,farneback"]
    monkeypatch.setattr(sys, "argv", argv)
    lab.main()
    times = json.loads((tmp_path / lab.TIMES).read_text())
    assert times["farneback"] is None and times["tvl1"] >= 0
    done = len(commands)
    lab.main()
    assert len(commands) == done


def test_a_teacher_run_is_taken_from_the_same_flow_method():
    """D3D's --teacher runs/flow3d-seed{seed} is that method's flow3d run."""
    out = Path("/lab")
    assert lab.run_option("runs/flow3d-seed{seed}", "2", out, "tvl1") == "/lab/runs/flow3d-seed2"
    assert lab.run_option("runs/flow3d-seed{seed}", "2", out, "farneback") \
        == "/lab/runs-farneback/flow3d-seed2"
    assert lab.run_option("--clip-len", "2", out, "farneback") == "--clip-len"


@pytest.mark.parametrize("text", ["tvl1,raft", "dis", "tvl1,tvl1"])
def test_unknown_or_repeated_flow_methods_are_refused(text):
    """--flows names methods of FLOWS, each once."""
    with pytest.raises(SystemExit, match="--flows takes distinct names"):
        lab.parse_flows(text)


@pytest.mark.parametrize("flow", [f for f in lab.FLOWS if f not in ("tvl1", "tvl1-torch")])
def test_each_cheap_flow_method_extracts_the_labs_64_px_frames(flow, tmp_path):
    """The extract options of each cheap method are valid and succeed on 64x64 lab videos (DIS
    fast and ultrafast only with their finest scale lowered; TV-L1's are the extract default)."""
    videos = tmp_path / "videos"
    make_motion_dataset(videos, MotionLabConfig(num_classes=2, videos_per_class=2,
                                                num_frames=3))
    result = CliRunner().invoke(flowkit_main, [
        "extract", str(videos / "labels.txt"), "--out", str(tmp_path / "shards"),
        "--short-side", "0", "--workers", "1", "--quiet", *lab.FLOWS[flow]],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "4 ok, 0 failed" in result.output


def test_dis_fast_presets_are_refused_on_the_labs_frames_without_the_lower_finest_scale(tmp_path):
    """Why FLOWS lowers the finest scale of fast and ultrafast: their own (2) needs 91 px."""
    videos = tmp_path / "videos"
    make_motion_dataset(videos, MotionLabConfig(num_classes=2, videos_per_class=2,
                                                num_frames=3))
    result = CliRunner().invoke(flowkit_main, [
        "extract", str(videos / "labels.txt"), "--out", str(tmp_path / "shards"),
        "--short-side", "0", "--workers", "1", "--quiet", "--flow", "dis", "--dis-preset", "fast"])
    assert result.exit_code != 0 and "too small for finest_scale 2" in result.output


def test_every_variant_is_a_valid_train_command_and_paper_variants_are_the_papers(tmp_path):
    """Each TRAINED variant's options parse into a TrainConfig; those built on PAPER train the
    STDDCN of Hao & Zhang (RGB frame first, plain transitions into stages 2-4, pooled
    teacher) except for the one setting each ablation names; "stddcn" takes flowkit's
    defaults."""
    from flowkit.cli.train import build_config, train_command

    (tmp_path / "runs" / "flow3d-seed0").mkdir(parents=True)  # d3d's teacher must exist
    configs = {}
    for variant, (model, options) in lab.TRAINED.items():
        args = [str(tmp_path), "--model", model, "--out", str(tmp_path / variant), *lab.COMMON,
                *(lab.run_option(option, "0", tmp_path, "tvl1") for option in options)]
        # under flowkit's group, as the CLI runs it: click caches a command's help option
        # from the first context made, and a bare one would take -h away from `flowkit train`
        with flowkit_main.make_context("flowkit", ["train"]) as group:
            params = train_command.make_context("train", args, parent=group).params
        configs[variant] = build_config(params.pop("data_root"), params.pop("model_name"),
                                        params.pop("out"), params.pop("config_file"),
                                        {k: v for k, v in params.items() if k != "resume"})
    def paper_settings(variant):
        config = configs[variant]
        return (config.data.rgb_frame, config.model.cross_norm, config.model.connect_blocks,
                config.model.fusion)
    assert paper_settings("stddcn-paper") == ("first", False, (2, 3, 4), "pooled")
    assert paper_settings("stddcn-kd-only") == paper_settings("stddcn-paper")
    assert paper_settings("stddcn-centre")[0] == "centre"
    assert paper_settings("stddcn-stage1")[2] == (1, 2, 3, 4)
    assert paper_settings("stddcn-conv-fusion")[3] == "conv"
    defaults = (DataConfig().rgb_frame, ModelConfig().cross_norm, ModelConfig().connect_blocks,
                ModelConfig().fusion)
    assert paper_settings("stddcn") == defaults
