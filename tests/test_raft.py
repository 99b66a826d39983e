"""RAFT: the same function as the original release, both checkpoint formats, bad weights, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from flowkit.cli.main import main
from flowkit.errors import BackendError, ConfigError
from flowkit.flow import get_backend
from flowkit.flow.files import read_flo, read_rgb_image
from flowkit.flow.raft.backend import RAFTFlow, padding
from flowkit.flow.raft.checkpoint import read_state_dict
from flowkit.flow.raft.config import RAFTConfig
from flowkit.store.reader import open_shards
from flowkit.video.synth import SynthConfig, make_synthetic_videos
from helpers import shared_data_dir, translated_texture_pair

DATA = shared_data_dir()
pytestmark = pytest.mark.skipif(
    DATA is None, reason="shared data folder ../shared/data is absent; RAFT tests need its "
                         "reference weights and outputs")


def weights(size: str) -> Path:
    assert DATA is not None
    return DATA / "raft" / f"raft-{size}-random-seed0.pth"


def rubberwhale() -> tuple[np.ndarray, np.ndarray]:
    assert DATA is not None
    folder = DATA / "middlebury"
    return (read_rgb_image(folder / "RubberWhale-frame10.png"),
            read_rgb_image(folder / "RubberWhale-frame11.png"))


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1).mean())


@pytest.mark.parametrize("iters", [12, 20])
@pytest.mark.parametrize("size", ["large", "small"])
def test_matches_the_reference_implementation(size: str, iters: int) -> None:
    """Random-weight checkpoints on RubberWhale: low-resolution and upsampled flow match the
    original RAFT's outputs to mean EPE < 1e-3 (measured 0.0 on this CPU)."""
    reference = np.load(DATA / "raft" / f"raft-{size}-random-seed0-rubberwhale.npz")
    backend = RAFTFlow(RAFTConfig(weights=str(weights(size)), small=size == "small",
                                  iters=iters))
    first, second = rubberwhale()
    flow_up = backend(first[None], second[None])[0]
    assert flow_up.shape == (388, 584, 2)
    assert epe(flow_up, reference[f"flow_up_iters{iters}"]) < 1e-3

    pad = padding(388, 584)
    assert pad == (0, 0, 2, 2)
    images = [F.pad(torch.from_numpy(image).permute(2, 0, 1)[None].float(), pad,
                    mode="replicate") for image in (first, second)]
    with torch.inference_mode():
        flow_low, _ = backend.model(*images, iters=iters)
    flow_low = flow_low[0].permute(1, 2, 0).numpy()
    assert epe(flow_low, reference[f"flow_low_iters{iters}"]) < 1e-3
    # The reference moves: a wrong lookup window or iteration count would not pass.
    assert np.linalg.norm(reference[f"flow_up_iters{iters}"], axis=-1).mean() > 1.0


def original_to_torchvision(state: dict[str, torch.Tensor], small: bool
                            ) -> dict[str, torch.Tensor]:
    """torchvision's key names for an original-release state dict (the inverse of the loader's
    mapping, written out independently from torchvision's module structure)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        key = key.removeprefix("module.")
        encoder = re.match(r"^(fnet|cnet)\.(.*)$", key)
        if encoder:
            prefix = {"fnet": "feature_encoder", "cnet": "context_encoder"}[encoder.group(1)]
            rest = encoder.group(2)
            if re.match(r"layer\d\.\d\.norm[34]\.", rest):
                continue  # the same module as downsample.1: torchvision has it once
            rest = re.sub(r"^conv1\.", "convnormrelu.0.", rest)
            rest = re.sub(r"^norm1\.", "convnormrelu.1.", rest)
            rest = re.sub(r"^conv2\.", "conv.", rest)
            rest = re.sub(r"^(layer\d\.\d)\.conv(\d)\.", r"\1.convnormrelu\2.0.", rest)
            rest = re.sub(r"^(layer\d\.\d)\.norm(\d)\.", r"\1.convnormrelu\2.1.", rest)
            out[f"{prefix}.{rest}"] = tensor
            continue
        key = re.sub(r"^update_block\.encoder\.convc(\d)\.",
                     r"update_block.motion_encoder.convcorr\1.0.", key)
        key = re.sub(r"^update_block\.encoder\.convf(\d)\.",
                     r"update_block.motion_encoder.convflow\1.0.", key)
        key = re.sub(r"^update_block\.encoder\.conv\.", "update_block.motion_encoder.conv.0.", key)
        if small:
            key = re.sub(r"^update_block\.gru\.conv([zrq])\.",
                         r"update_block.recurrent_block.convgru1.conv\1.", key)
        key = re.sub(r"^update_block\.gru\.conv([zrq])(\d)\.",
                     r"update_block.recurrent_block.convgru\2.conv\1.", key)
        key = re.sub(r"^update_block\.mask\.0\.", "mask_predictor.convrelu.0.", key)
        key = re.sub(r"^update_block\.mask\.2\.", "mask_predictor.conv.", key)
        out[key] = tensor
    return out


@pytest.mark.parametrize("size", ["large", "small"])
def test_torchvision_state_dict_gives_the_same_flow(size: str, tmp_path: Path) -> None:
    """A state dict under torchvision's key names loads into the same model: every tensor
    equal, and the same flow on a 160x128 pair."""
    small = size == "small"
    original = torch.load(weights(size), map_location="cpu", weights_only=True)
    converted = original_to_torchvision(original, small)
    assert any(key.startswith("feature_encoder.convnormrelu.0.") for key in converted)
    assert not any(key.startswith(("fnet.", "cnet.", "module.")) for key in converted)
    path = tmp_path / f"raft_{size}_torchvision.pth"
    torch.save(converted, path)

    ours, theirs = (RAFTFlow(RAFTConfig(weights=str(p), small=small, iters=3))
                    for p in (weights(size), path))
    reference_state = ours.model.state_dict()
    for key, tensor in theirs.model.state_dict().items():
        assert torch.equal(tensor, reference_state[key]), key
    first, second = translated_texture_pair(160, 128, 1.5, -0.5)
    np.testing.assert_array_equal(theirs(first[None], second[None]), ours(first[None], second[None]))


def test_batch_of_large_equals_pairs_one_by_one() -> None:
    """RAFT-large on a batch of 3 pairs of odd size (150x130, padded) gives each pair's
    one-by-one flow within 1e-4 px (measured 5e-6: summation order of batched convolutions)."""
    backend = RAFTFlow(RAFTConfig(weights=str(weights("large")), iters=3))
    pairs = [translated_texture_pair(150, 130, dx, dy, seed=seed)
             for seed, (dx, dy) in enumerate([(1.0, 0.5), (-2.0, 1.0), (0.25, -1.5)])]
    batched = backend(np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    assert batched.shape == (3, 130, 150, 2)
    for index, (first, second) in enumerate(pairs):
        single = backend(first[None], second[None])[0]
        np.testing.assert_allclose(batched[index], single, rtol=0, atol=1e-4)


def test_padding_splits_evenly_with_the_odd_pixel_at_the_end() -> None:
    """(left, right, top, bottom) to multiples of 8, as the original's InputPadder."""
    assert padding(388, 584) == (0, 0, 2, 2)
    assert padding(240, 320) == (0, 0, 0, 0)
    assert padding(130, 150) == (1, 1, 3, 3)
    assert padding(129, 121) == (3, 4, 3, 4)


def test_frames_too_small_for_the_correlation_pyramid_are_refused() -> None:
    """Below 121 pixels a side (padded below 128) RAFT cannot look up its coarsest level."""
    backend = RAFTFlow(RAFTConfig(weights=str(weights("small")), small=True, iters=1))
    frames = np.zeros((1, 100, 200, 3), dtype=np.uint8)
    with pytest.raises(BackendError, match="at least 121 pixels.*200x100"):
        backend(frames, frames)
    frames = np.zeros((1, 121, 121, 3), dtype=np.uint8)
    assert backend(frames, frames).shape == (1, 121, 121, 2)


def test_bf16_autocast_runs_and_stays_close_to_fp32() -> None:
    """bf16 autocast (here on the CPU) changes RAFT-small's flow on a 160x128 pair by a mean
    EPE well under 0.5 px (RubberWhale figures are in docs/benchmarks.md)."""
    first, second = translated_texture_pair(160, 128, 1.5, -0.5)
    flows = [RAFTFlow(RAFTConfig(weights=str(weights("small")), small=True, iters=4,
                                 precision=precision))(first[None], second[None])[0]
             for precision in ("fp32", "bf16")]
    assert np.isfinite(flows[1]).all()
    assert 0.0 < epe(flows[0], flows[1]) < 0.5


@pytest.mark.parametrize("build, message", [
    (lambda tmp: tmp / "missing.pth", "not found"),
    (lambda tmp: _write(tmp / "noise.pth", b"not a checkpoint at all"), "not a PyTorch checkpoint"),
    (lambda tmp: _save(tmp / "list.pth", [1, 2, 3]), "not a RAFT state dict"),
    (lambda tmp: _save(tmp / "other.pth", {"conv1.weight": torch.zeros(3)}), "not RAFT weights"),
])
def test_files_that_are_not_raft_weights_are_refused(build, message: str, tmp_path: Path) -> None:
    """Missing files, non-checkpoints, other pickles and other models' weights are refused with
    ConfigError naming the file."""
    path = build(tmp_path)
    with pytest.raises(ConfigError, match=message) as error:
        read_state_dict(path, small=False)
    assert str(path) in str(error.value)


def test_weights_of_the_other_size_name_the_flag_to_use(tmp_path: Path) -> None:
    """Small weights for the large model (and back) are refused, saying which flag fixes it."""
    with pytest.raises(ConfigError, match="RAFT-small weights.*add --raft-small"):
        RAFTFlow(RAFTConfig(weights=str(weights("small"))))
    with pytest.raises(ConfigError, match="RAFT-large weights.*drop --raft-small"):
        RAFTFlow(RAFTConfig(weights=str(weights("large")), small=True))


def test_tensors_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    """A RAFT-named state dict whose tensors do not fit the model fails with ConfigError."""
    state = torch.load(weights("small"), map_location="cpu", weights_only=True)
    state["module.update_block.flow_head.conv2.bias"] = torch.zeros(3)
    path = _save(tmp_path / "bad.pth", state)
    with pytest.raises(ConfigError, match="do not fit the model"):
        RAFTFlow(RAFTConfig(weights=str(path), small=True))


def test_config_requires_weights_and_checks_its_fields(tmp_path: Path) -> None:
    """No weights, bad iterations or precision raise ConfigError; fp16 is refused on the CPU;
    the weights path is stored absolute."""
    with pytest.raises(ConfigError, match="--raft-weights"):
        RAFTConfig()
    with pytest.raises(ConfigError, match="iters"):
        RAFTConfig(weights=str(weights("small")), small=True, iters=0)
    with pytest.raises(ConfigError, match="precision"):
        RAFTConfig(weights=str(weights("small")), small=True, precision="fp8")
    with pytest.raises(ConfigError, match="fp16 on the CPU"):
        RAFTFlow(RAFTConfig(weights=str(weights("small")), small=True, precision="fp16"))
    assert Path(RAFTConfig(weights=str(weights("small"))).weights).is_absolute()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


# -- command line ---------------------------------------------------------------------------------

def test_flow_command_with_raft_writes_the_backends_flow(tmp_path: Path) -> None:
    """`flowkit flow --method raft --raft-weights F --raft-small --raft-iters 12` writes the
    same flow the reference implementation gives (EPE < 1e-3)."""
    folder = DATA / "middlebury"
    out = tmp_path / "flow.flo"
    result = CliRunner().invoke(main, [
        "flow", str(folder / "RubberWhale-frame10.png"), str(folder / "RubberWhale-frame11.png"),
        "--out", str(out), "--method", "raft", "--raft-weights", str(weights("small")),
        "--raft-small", "--raft-iters", "12"])
    assert result.exit_code == 0, result.output
    reference = np.load(DATA / "raft" / "raft-small-random-seed0-rubberwhale.npz")
    assert epe(read_flo(out), reference["flow_up_iters12"]) < 1e-3


@pytest.mark.parametrize("extra, message", [
    ([], "needs a weights file: pass --raft-weights"),
    (["--raft-weights", "nowhere.pth"], "nowhere.pth: RAFT weights file not found"),
    (["--raft-weights", "SMALL"], "add --raft-small"),
    (["--raft-weights", "SMALL", "--raft-small", "--device", "cuda:7"], "cuda:7"),
    (["--raft-weights", "SMALL", "--raft-small", "--tvl1-tau", "0.2"], "--tvl1-tau applies"),
])
def test_flow_command_usage_errors_exit_2(extra: list[str], message: str, tmp_path: Path) -> None:
    """Missing or wrong weights, an absent GPU and another method's options: one line, exit 2."""
    if "cuda:7" in extra and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    extra = [str(weights("large")) if arg == "LARGE" else str(weights("small")) if arg == "SMALL"
             else arg for arg in extra]
    folder = DATA / "middlebury"
    result = CliRunner().invoke(main, [
        "flow", str(folder / "RubberWhale-frame10.png"), str(folder / "RubberWhale-frame11.png"),
        "--out", str(tmp_path / "f.flo"), "--method", "raft", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "f.flo").exists()


@pytest.fixture(scope="module")
def raft_videos(tmp_path_factory) -> Path:
    """Three 160x128 lossless videos of 4 frames: large enough for RAFT."""
    folder = tmp_path_factory.mktemp("raft_videos")
    make_synthetic_videos(folder, SynthConfig(num_videos=3, num_frames=4, width=160, height=128,
                                              codec="ffv1"))
    return folder


def test_extract_with_raft_stores_the_backends_flow(raft_videos: Path, tmp_path: Path) -> None:
    """`flowkit extract --flow raft` writes every pair's flow as the backend computes it on the
    decoded frames (stored raw here; float16 rounding), and saves RAFT's settings."""
    out = tmp_path / "shards"
    result = CliRunner().invoke(main, [
        "extract", str(raft_videos), "--out", str(out), "--flow", "raft", "--raft-weights",
        str(weights("small")), "--raft-small", "--raft-iters", "2", "--short-side", "0",
        "--flow-dtype", "float16", "--rgb", "raw", "--batch-size", "2", "--workers", "1",
        "--quiet"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "extract_config.json").read_text())
    assert saved["flow"] == "raft"
    assert saved["flow_params"] == {"weights": str(weights("small").resolve()), "small": True,
                                    "iters": 2, "precision": "fp32"}
    backend = get_backend("raft", RAFTConfig(weights=str(weights("small")), small=True, iters=2))
    with open_shards(out) as shards:
        assert len(shards) == 3
        for video_id in shards:
            video = shards[video_id]
            frames = video.frames[:]
            assert len(video.flows) == len(frames) - 1 == 3
            expected = backend(frames[:-1], frames[1:])
            np.testing.assert_allclose(video.flows[:], expected, rtol=2e-3, atol=1e-3)


def test_extract_over_several_devices_writes_what_one_device_writes(
        raft_videos: Path, tmp_path: Path) -> None:
    """--devices spreads shards over worker processes, one per device (two "cpu" devices
    here, as a machine without GPUs can): the flow written is identical to one device's."""
    outputs = {}
    for name, devices in (("one", []), ("two", ["--devices", "cpu,cpu"])):
        out = tmp_path / name
        result = CliRunner().invoke(main, [
            "extract", str(raft_videos), "--out", str(out), "--flow", "raft", "--raft-weights",
            str(weights("small")), "--raft-small", "--raft-iters", "2", "--short-side", "0",
            "--rgb", "none", "--videos-per-shard", "1", "--threads", "1", "--quiet", *devices])
        assert result.exit_code == 0, result.output
        with open_shards(out) as shards:
            outputs[name] = {video_id: shards[video_id].flows.quantized(slice(None))
                             for video_id in shards}
    assert outputs["one"].keys() == outputs["two"].keys()
    for video_id, flows in outputs["one"].items():
        np.testing.assert_array_equal(flows, outputs["two"][video_id])


def test_extract_refuses_bad_weights_before_writing_anything(raft_videos: Path,
                                                             tmp_path: Path) -> None:
    """Weights of the wrong size stop `extract` at once (exit 2), not once per video."""
    out = tmp_path / "shards"
    result = CliRunner().invoke(main, [
        "extract", str(raft_videos), "--out", str(out), "--flow", "raft", "--raft-weights",
        str(weights("small")), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "add --raft-small" in result.output
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision, bound", [("fp32", 1e-2), ("bf16", 0.5)])
def test_cuda_matches_cpu(precision: str, bound: float) -> None:
    """On a GPU, RAFT-large's RubberWhale flow matches the CPU fp32 flow (mean EPE; fp32 differs
    only by convolution algorithms, bf16 by its rounding)."""
    first, second = rubberwhale()
    config = RAFTConfig(weights=str(weights("large")), iters=12)
    on_cpu = RAFTFlow(config)(first[None], second[None])[0]
    gpu_config = RAFTConfig(weights=str(weights("large")), iters=12, precision=precision)
    on_gpu = RAFTFlow(gpu_config, device="cuda")(np.stack([first] * 2), np.stack([second] * 2))
    for flow in on_gpu:
        assert epe(flow, on_cpu) < bound


def test_channels_last_gives_the_same_flow_and_switches_back() -> None:
    """RAFT.channels_last (a GPU speed option) computes the same function: flows within float
    rounding of NCHW's, and switching it off again restores NCHW weights."""
    from flowkit.flow.raft.network import RAFT

    torch.manual_seed(0)
    model = RAFT(small=True).eval()
    image1, image2 = torch.rand((2, 1, 3, 128, 136)) * 255
    with torch.inference_mode():
        _, reference = model(image1, image2, iters=2)
        model.channels_last = True
        _, flow = model(image1, image2, iters=2)
        assert model.fnet.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        model.channels_last = False
        _, again = model(image1, image2, iters=2)
    torch.testing.assert_close(flow, reference, rtol=1e-4, atol=1e-4)
    assert model.fnet.conv1.weight.is_contiguous()
    assert torch.equal(again, reference)
