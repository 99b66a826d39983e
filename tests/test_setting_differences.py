"""A resume with other settings names what the user typed: the extract options, their values
as typed, and only --flow when the method changed."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.config import ExtractConfig, setting_differences
from flowkit.flow import make_backend_config
from flowkit.store.writer import StorageConfig
from flowkit.video.decode import DecodeConfig


def _settings(**changes) -> dict:
    return ExtractConfig(**changes).output_settings()


def test_another_method_is_named_once_without_its_parameters():
    """tvl1-torch -> tvl1 used to list flow_params.kernels: eager -> None among the rest."""
    assert setting_differences(_settings(flow="tvl1-torch"), _settings(flow="tvl1")) == \
        "--flow: tvl1-torch -> tvl1"


def test_options_and_values_are_named_as_typed():
    """Parameters by their --<method>-<parameter> option, output settings by theirs, sizes as
    WxH, a native short side as 0 (saved None or 0), no value as (default)."""
    old = _settings(flow="tvl1-torch", decode=DecodeConfig(short_side=256))
    new = _settings(flow="tvl1-torch",
                    flow_params=make_backend_config("tvl1-torch", kernels="static", tau=0.125),
                    decode=DecodeConfig(short_side=None, size=(340, 256), fps=12.5),
                    storage=StorageConfig(bound=15.0, flow_dtype="float16"), flow_step=2)
    assert setting_differences(old, new).split(", ") == [
        "--fps: (default) -> 12.5", "--short-side: 256 -> 0", "--size: (default) -> 340x256",
        "--tvl1-torch-tau: 0.25 -> 0.125",
        "--step: 1 -> 2", "--bound: 20.0 -> 15.0", "--flow-dtype: uint8 -> float16"]


def test_tvl1_torch_kernels_are_not_an_output_setting():
    """A store made with kernels "eager" (the default before "auto") resumes with any kernels:
    they change how flow is computed, not the flows (equal up to float rounding)."""
    saved = _settings(flow="tvl1-torch",
                      flow_params=make_backend_config("tvl1-torch", kernels="eager"))
    for kernels in ("auto", "static", "triton"):
        now = _settings(flow="tvl1-torch",
                        flow_params=make_backend_config("tvl1-torch", kernels=kernels))
        assert now == saved and setting_differences(saved, now) == ""


def test_flags_read_as_the_flag_given_or_not():
    """--raft-small on; --dis-no-mean-normalization given is on, although the parameter is
    off; a parameter an older config lacks is (not recorded); a setting no option sets keeps
    its dotted name."""
    raft = {"flow": "raft", "flow_params": {"weights": "w.pth", "small": False, "iters": 12}}
    small = {"flow": "raft", "flow_params": {"weights": "w.pth", "small": True, "iters": 12}}
    assert setting_differences(raft, small) == "--raft-small: off -> on"
    dis = _settings(flow="dis")
    plain = _settings(flow="dis", flow_params=make_backend_config("dis", mean_normalization=False))
    assert setting_differences(dis, plain) == "--dis-no-mean-normalization: off -> on"
    older = {**dis, "flow_params": {k: v for k, v in dis["flow_params"].items()
                                    if k != "patch_size"}}
    assert setting_differences(older, dis) == "--dis-patch-size: (not recorded) -> 8"
    threads = _settings(flow="dis", decode=dataclasses.replace(DecodeConfig(), threads=2))
    assert setting_differences(dis, threads) == "decode.threads: 0 -> 2"


def test_a_resume_with_another_method_names_the_options(tiny_videos, tmp_path):
    """Through the CLI: one line naming --flow and --short-side, exit 2."""
    runner = CliRunner()
    base = ["extract", str(tiny_videos / "labels.txt"), "--out", str(tmp_path), "--workers",
            "1", "--quiet"]
    assert runner.invoke(main, [*base, "--flow", "farneback", "--short-side", "0"]).exit_code == 0
    result = runner.invoke(main, [*base, "--flow", "dis"])
    assert result.exit_code == 2
    assert ("holds output made with other settings (--short-side: 0 -> 256, "
            "--flow: farneback -> dis); rerun with the same options") in result.output
    assert "flow_params" not in result.output and "None" not in result.output


@pytest.mark.parametrize("short_side", [None, 0])
def test_a_native_short_side_saved_either_way_resumes(short_side):
    """None (saved by --short-side 0 before) and 0 (saved now) are the same setting."""
    assert _settings(decode=DecodeConfig(short_side=short_side)) == \
        _settings(decode=DecodeConfig(short_side=0))
