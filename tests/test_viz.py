"""Middlebury colour coding of flow, preview grids, and PNG saving.

Expected colours are those of the reference algorithm (Baker et al., colorcode.cpp), worked out
by hand: the wheel starts at red for rightward flow, goes through yellow (down), and reaches
cyan-blue for leftward flow; colour = 1 - r * (1 - wheel colour) inside radius 1, 0.75 * wheel
colour beyond it, truncated to integers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from flowkit.errors import ConfigError, InputError
from flowkit.flow.viz import color_wheel, flow_to_color, preview_grid, save_png


def _uniform(u: float, v: float, height: int = 2, width: int = 3) -> np.ndarray:
    flow = np.empty((height, width, 2), dtype=np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return flow


def test_color_wheel_has_55_colours_at_reference_anchors() -> None:
    """The wheel has 15+6+4+11+13+6 = 55 colours; segments start red, yellow, green, cyan, ..."""
    wheel = color_wheel()
    assert wheel.shape == (55, 3)
    anchors = {0: (255, 0, 0), 15: (255, 255, 0), 21: (0, 255, 0), 25: (0, 255, 255),
               36: (0, 0, 255), 49: (255, 0, 255)}
    for index, rgb in anchors.items():
        assert tuple(wheel[index]) == rgb
    assert tuple(wheel[1]) == (255, 17, 0)  # 255 * 1 // 15
    assert tuple(wheel[54]) == (255, 0, 43)  # 255 - 255 * 5 // 6


@pytest.mark.parametrize("u, v, rgb", [
    (1.0, 0.0, (255, 0, 0)),      # right, at max magnitude: wheel colour 0, red
    (-1.0, 0.0, (0, 209, 255)),   # left: wheel colour 27 = (0, 255 - 255*2//11, 255), cyan-ish
    (0.0, 1.0, (255, 229, 0)),    # down: halfway between colours 13 and 14, yellow-ish
    (0.5, 0.0, (255, 127, 127)),  # right at half the max: half-saturated red
    (2.0, 0.0, (191, 0, 0)),      # right beyond the max: red darkened to 75%
    (0.0, 0.0, (255, 255, 255)),  # no motion: white
])
def test_known_colours(u: float, v: float, rgb: tuple[int, int, int]) -> None:
    """Uniform flow with max_magnitude 1 maps to the reference algorithm's colour."""
    image = flow_to_color(_uniform(u, v), max_magnitude=1.0)
    assert image.shape == (2, 3, 3) and image.dtype == np.uint8
    assert (image == rgb).all()


def test_default_normalises_by_largest_magnitude() -> None:
    """Without max_magnitude the longest vector is fully saturated, half of it half-saturated."""
    flow = np.array([[[4.0, 0.0], [2.0, 0.0]]], dtype=np.float32)
    assert flow_to_color(flow).tolist() == [[[255, 0, 0], [255, 127, 127]]]


def test_zero_flow_without_max_is_white() -> None:
    """An all-zero flow colours white (no division by zero)."""
    assert (flow_to_color(_uniform(0.0, 0.0)) == 255).all()


def test_negative_zero_colours_like_zero() -> None:
    """Rightward flow with v = -0.0 is red like v = +0.0 (not across the wheel's seam)."""
    assert (flow_to_color(_uniform(1.0, -0.0), max_magnitude=1.0) == (255, 0, 0)).all()


def test_unknown_flow_is_black_and_ignored_for_max() -> None:
    """Unknown pixels (1e10) are black and do not set the normalising magnitude."""
    flow = np.array([[[1e10, 1e10], [3.0, 0.0]]], dtype=np.float32)
    assert flow_to_color(flow).tolist() == [[[0, 0, 0], [255, 0, 0]]]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_bad_max_magnitude_raises_config_error(bad: float) -> None:
    """A max_magnitude that is not positive and finite raises ConfigError."""
    with pytest.raises(ConfigError, match="max_magnitude"):
        flow_to_color(_uniform(1.0, 0.0), max_magnitude=bad)


def test_flow_to_color_rejects_wrong_shape() -> None:
    """A flow that is not (H, W, 2) float raises InputError."""
    with pytest.raises(InputError):
        flow_to_color(np.zeros((2, 3, 3), dtype=np.float32))


def _frames(count: int, height: int = 10, width: int = 12) -> list[np.ndarray]:
    return [np.full((height, width, 3), 10 * (i + 1), dtype=np.uint8) for i in range(count)]


def test_preview_grid_layout() -> None:
    """3 frames of 10x12 with gap 4 give a 24x44 grid: frames on top, flows below, grey gaps."""
    frames = _frames(3)
    flows = [_uniform(1.0, 0.0, 10, 12), _uniform(2.0, 0.0, 10, 12), None]
    grid = preview_grid(frames, flows, gap=4)
    assert grid.shape == (2 * 10 + 4, 3 * 12 + 2 * 4, 3) and grid.dtype == np.uint8
    for i in range(3):
        assert (grid[:10, i * 16:i * 16 + 12] == 10 * (i + 1)).all()
    assert (grid[10:14] == 128).all()        # gap between the rows
    assert (grid[:, 12:16] == 128).all()     # gap between the first two columns
    # One magnitude (2) for the whole grid: flow 0 is half-saturated, flow 1 fully red.
    assert (grid[14:, 0:12] == (255, 127, 127)).all()
    assert (grid[14:, 16:28] == (255, 0, 0)).all()
    assert (grid[14:, 32:44] == 0).all()     # missing flow: black tile


def test_preview_grid_given_max_magnitude() -> None:
    """A given max_magnitude overrides the grid's largest magnitude."""
    grid = preview_grid(_frames(1), [_uniform(2.0, 0.0, 10, 12)], max_magnitude=4.0, gap=0)
    assert grid.shape == (20, 12, 3)
    assert (grid[10:] == (255, 127, 127)).all()


def test_preview_grid_rejects_mismatched_inputs() -> None:
    """Different list lengths or a flow of another size raise InputError."""
    with pytest.raises(InputError, match="as many flows as frames"):
        preview_grid(_frames(2), [None])
    with pytest.raises(InputError, match="flow 0"):
        preview_grid(_frames(1), [_uniform(1.0, 0.0, 5, 5)])


def test_save_png_round_trip(tmp_path: Path) -> None:
    """save_png writes RGB so that OpenCV reads the same pixels back in BGR order."""
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[0, 0] = (255, 0, 0)
    image[1, 2] = (1, 2, 3)
    save_png(tmp_path / "a.png", image)
    back = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back[..., ::-1], image)


def test_save_png_unwritable_raises_input_error(tmp_path: Path) -> None:
    """Saving into a missing folder raises InputError naming the file."""
    with pytest.raises(InputError, match=r"a\.png"):
        save_png(tmp_path / "missing" / "a.png", np.zeros((2, 2, 3), dtype=np.uint8))
