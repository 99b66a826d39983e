"""Every registered flow backend: output contract, batching, accuracy on known motion, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flowkit.errors import BackendError, ConfigError
from flowkit.flow import FlowBackend, get_backend, list_backends
from flowkit.flow.farneback import FarnebackConfig
from flowkit.flow.metrics import endpoint_error
from flowkit.flow.raft.config import RAFTConfig
from flowkit.flow.tvl1 import TVL1Config
from helpers import rubberwhale, shared_data_dir, translated_texture_pair

BACKENDS = list_backends()
# Backends with learned weights: the test weights are random, so they cannot find motion.
LEARNED = {"raft"}
# Backends written in PyTorch: they run on GPUs where the machine has them.
TORCH = {"raft", "tvl1-torch"}
# Batched convolutions may sum in another order than single ones: flow agrees to float rounding.
BATCH_TOLERANCE = {"raft": 1e-4}
MARGIN = 16  # pixels cropped from each border: the periodic texture wraps around there
WIDTH, HEIGHT = 160, 128  # large enough for every backend (RAFT needs 121 px a side)


def make_backend(name: str, device: str = "cpu") -> FlowBackend:
    """Backend ``name`` with its defaults; RAFT-small (random weights, 2 iterations) for raft."""
    if name != "raft":
        return get_backend(name, device=device)
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared data folder ../shared/data is absent; raft tests need its weights")
    config = RAFTConfig(weights=str(data / "raft" / "raft-small-random-seed0.pth"), small=True,
                        iters=2)
    return get_backend(name, config, device=device)


@pytest.mark.parametrize("name", BACKENDS)
def test_output_shape_and_dtype(name: str) -> None:
    """A (2, 128, 160, 3) uint8 batch gives (2, 128, 160, 2) finite float32 flow."""
    first, second = translated_texture_pair(WIDTH, HEIGHT, 1.0, 0.5)
    batch0, batch1 = np.stack([first, second]), np.stack([second, first])
    flow = make_backend(name)(batch0, batch1)
    assert flow.shape == (2, HEIGHT, WIDTH, 2)
    assert flow.dtype == np.float32
    assert np.isfinite(flow).all()


@pytest.mark.parametrize("name", BACKENDS)
def test_empty_batch(name: str) -> None:
    """A batch of 0 pairs gives a (0, H, W, 2) float32 array."""
    frames = np.zeros((0, HEIGHT, WIDTH, 3), dtype=np.uint8)
    flow = make_backend(name)(frames, frames)
    assert flow.shape == (0, HEIGHT, WIDTH, 2)
    assert flow.dtype == np.float32


@pytest.mark.parametrize("name", BACKENDS)
def test_batch_equals_single_calls(name: str) -> None:
    """A batch of 2 pairs gives the flows of two 1-pair calls on the same instance: exactly
    for the OpenCV backends, within 1e-4 px for RAFT (measured 1.5e-5)."""
    a0, a1 = translated_texture_pair(WIDTH, HEIGHT, 1.25, -0.5, seed=1)
    b0, b1 = translated_texture_pair(WIDTH, HEIGHT, -0.75, 1.5, seed=2)
    backend = make_backend(name)
    batched = backend(np.stack([a0, b0]), np.stack([a1, b1]))
    single_a = backend(a0[None], a1[None])
    single_b = backend(b0[None], b1[None])
    tolerance = BATCH_TOLERANCE.get(name, 0.0)
    np.testing.assert_allclose(batched[0], single_a[0], rtol=0, atol=tolerance)
    np.testing.assert_allclose(batched[1], single_b[0], rtol=0, atol=tolerance)


@pytest.mark.parametrize("dx, dy", [(1.25, -0.5), (-0.75, 1.5)])
@pytest.mark.parametrize("name", sorted(set(BACKENDS) - LEARNED))
def test_subpixel_translation(name: str, dx: float, dy: float) -> None:
    """A 128x96 texture moved by sub-pixel (dx, dy) has interior mean flow within 0.1 px, same sign.

    Measured: tvl1 within 0.045 px (it shrinks u slightly), farneback within 0.005 px, dis
    (medium) within 0.016 px.
    """
    first, second = translated_texture_pair(128, 96, dx, dy)
    flow = get_backend(name)(first[None], second[None])[0]
    mean_u, mean_v = flow[MARGIN:-MARGIN, MARGIN:-MARGIN].reshape(-1, 2).mean(axis=0)
    assert np.sign(mean_u) == np.sign(dx) and np.sign(mean_v) == np.sign(dy)
    assert abs(mean_u - dx) < 0.1
    assert abs(mean_v - dy) < 0.1


def _bad_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    good = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    return [
        ("float frames", good.astype(np.float32), good.astype(np.float32)),
        ("no batch axis", good[0], good[0]),
        ("grayscale", good[..., 0], good[..., 0]),
        ("four channels", np.zeros((1, 32, 32, 4), np.uint8), np.zeros((1, 32, 32, 4), np.uint8)),
        ("sizes differ", good, np.zeros((1, 32, 48, 3), dtype=np.uint8)),
        ("batch sizes differ", good, np.zeros((2, 32, 32, 3), dtype=np.uint8)),
    ]


@pytest.mark.parametrize("label, first, second", _bad_pairs(), ids=[c[0] for c in _bad_pairs()])
@pytest.mark.parametrize("name", BACKENDS)
def test_bad_frames_raise_backend_error(
    name: str, label: str, first: np.ndarray, second: np.ndarray
) -> None:
    """Frames that are not matching (B, H, W, 3) uint8 batches raise BackendError."""
    backend = make_backend(name)
    with pytest.raises(BackendError):
        backend(first, second)


@pytest.mark.parametrize("name", BACKENDS)
def test_unavailable_device_raises_config_error(name: str) -> None:
    """A device the backend cannot use here (OpenCV: any GPU; PyTorch: CUDA on a machine
    without it, checked by test_raft for machines with one) is refused, naming the device."""
    import torch

    if name in TORCH and torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the device is usable")
    with pytest.raises(ConfigError, match="cuda"):
        make_backend(name, device="cuda")


@pytest.mark.parametrize("name", BACKENDS)
def test_wrong_config_type_raises_config_error(name: str) -> None:
    """A config of another type is refused with ConfigError."""
    with pytest.raises(ConfigError):
        get_backend(name, config=object())


@pytest.mark.parametrize("name", BACKENDS)
def test_settings_name_backend_and_parameters(name: str) -> None:
    """settings() holds the backend name and every config field."""
    backend = make_backend(name)
    settings = backend.settings()
    assert settings["backend"] == name
    assert set(settings) == {"backend"} | {f.name for f in dataclasses.fields(backend.config)}


def test_tvl1_defaults_are_opencv_defaults() -> None:
    """TVL1Config() holds OpenCV DualTVL1's default parameters."""
    assert dataclasses.asdict(TVL1Config()) == {
        "tau": 0.25, "lambda_": 0.15, "theta": 0.3, "nscales": 5, "warps": 5, "epsilon": 0.01,
        "inner_iterations": 30, "outer_iterations": 10, "scale_step": 0.8, "gamma": 0.0,
        "median_filtering": 5,
    }


def test_farneback_defaults() -> None:
    """FarnebackConfig() holds the usual OpenCV example parameters."""
    assert dataclasses.asdict(FarnebackConfig()) == {
        "pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
        "poly_sigma": 1.2, "flags": 0,
    }


@pytest.mark.parametrize("options, field", [
    ({"tau": 0.3}, "tau"),
    ({"lambda_": 0.0}, "lambda_"),
    ({"nscales": 0}, "nscales"),
    ({"warps": 2.5}, "warps"),
    ({"scale_step": 1.0}, "scale_step"),
    ({"gamma": -0.1}, "gamma"),
    ({"median_filtering": 7}, "median_filtering"),
    ({"epsilon": float("nan")}, "epsilon"),
])
def test_tvl1_config_rejects_out_of_range(options: dict, field: str) -> None:
    """An out-of-range TVL1Config field raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=f"TVL1Config.{field} "):
        TVL1Config(**options)


@pytest.mark.parametrize("options, field", [
    ({"pyr_scale": 1.0}, "pyr_scale"),
    ({"levels": -1}, "levels"),
    ({"winsize": 0}, "winsize"),
    ({"poly_sigma": 0.0}, "poly_sigma"),
    ({"flags": 4}, "flags"),
])
def test_farneback_config_rejects_out_of_range(options: dict, field: str) -> None:
    """An out-of-range FarnebackConfig field raises ConfigError naming the field."""
    with pytest.raises(ConfigError, match=f"FarnebackConfig.{field} "):
        FarnebackConfig(**options)


@pytest.mark.slow
def test_tvl1_rubberwhale_endpoint_error() -> None:
    """TV-L1 defaults on Middlebury RubberWhale: EPE <= 0.18 on known pixels (measured 0.157;
    the margin is for OpenCV, whose flow moves by up to 0.012 px with CPU and release)."""
    first, second, truth = rubberwhale()
    flow = get_backend("tvl1")(first[None], second[None])[0]
    assert endpoint_error(flow, truth) <= 0.18


def test_tvl1_small_frames_do_not_change_later_pairs() -> None:
    """Regression: OpenCV's DualTVL1 lowers its own nscales when a small frame stops the pyramid
    early, and kept it for every later pair of the reused solver (a 6.5 px move then came out as
    5.07 px). A pair after a 20x20 one gives the flow a fresh backend gives."""
    backend = get_backend("tvl1")
    tiny = np.zeros((1, 20, 20, 3), dtype=np.uint8)
    first, second = translated_texture_pair(320, 240, 6.5, 0.0)
    fresh = get_backend("tvl1")(first[None], second[None])
    backend(tiny, tiny)
    np.testing.assert_array_equal(backend(first[None], second[None]), fresh)
