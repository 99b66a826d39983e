"""Accuracy of a flow field against ground truth: the average endpoint error (EPE).

EPE is the mean Euclidean distance between estimated and true flow vectors, the standard
measure of Middlebury, Sintel and KITTI. Ground truth marks pixels without a known flow with
huge values (Middlebury uses 1e10); those pixels are left out.
"""

from __future__ import annotations

import numpy as np

from flowkit.errors import InputError

UNKNOWN_FLOW_THRESHOLD = 1e9


def valid_flow_mask(truth: np.ndarray) -> np.ndarray:
    """(H, W) bool mask of pixels whose (H, W, 2) ground-truth flow is known.

    A pixel is unknown when either component is non-finite or has magnitude >= 1e9
    (the Middlebury convention).
    """
    truth = _as_flow(truth, "truth")
    finite = np.isfinite(truth).all(axis=-1)
    # Where a value is NaN the comparison is False, and `finite` already excludes the pixel.
    with np.errstate(invalid="ignore"):
        small = (np.abs(truth) < UNKNOWN_FLOW_THRESHOLD).all(axis=-1)
    return finite & small


def endpoint_error(
    flow: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Mean endpoint error in pixels of (H, W, 2) ``flow`` against (H, W, 2) ``truth``.

    Args:
        flow: estimated flow.
        truth: ground-truth flow.
        valid: (H, W) bool mask of pixels to average over; None uses
            :func:`valid_flow_mask` of ``truth``, so unknown pixels never count.

    Raises:
        InputError: shapes differ, or no pixel is valid.
    """
    flow = _as_flow(flow, "flow")
    truth = _as_flow(truth, "truth")
    if flow.shape != truth.shape:
        raise InputError(f"flow and truth differ in shape: {flow.shape} vs {truth.shape}")
    if valid is None:
        valid = valid_flow_mask(truth)
    valid = np.asarray(valid)
    if valid.shape != flow.shape[:2] or valid.dtype != np.bool_:
        raise InputError(
            f"valid must be an (H, W) bool mask of shape {flow.shape[:2]}, "
            f"got {valid.shape} {valid.dtype}"
        )
    if not valid.any():
        raise InputError("no valid pixel to average the endpoint error over")
    difference = flow[valid].astype(np.float64) - truth[valid].astype(np.float64)
    return float(np.sqrt((difference**2).sum(axis=-1)).mean())


def _as_flow(array: np.ndarray, label: str) -> np.ndarray:
    """``array`` as an ndarray, after checking it is (H, W, 2)."""
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise InputError(f"{label} must be an (H, W, 2) flow array, got shape {array.shape}")
    return array
