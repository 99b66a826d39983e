"""Pictures of stored videos: evenly spaced RGB frames above their flow in colour."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from flowkit.reader import Video
from flowkit.viz import GAP_VALUE, max_flow_magnitude, preview_grid

_GAP = 4


def videos_preview(videos: list[Video], count: int = 4,
                   max_magnitude: float | None = None) -> np.ndarray:
    """The previews of several videos one below the other, on one flow colour scale.

    ``max_magnitude`` None uses the largest flow shown in any of them.
    """
    picks = [_pick(video, count) for video in videos]
    if max_magnitude is None:
        shown = [max_flow_magnitude(f) for _, flows in picks for f in flows if f is not None]
        max_magnitude = max(shown, default=0.0) or 1.0
    return stack_vertically([preview_grid(list(frames), flows, max_magnitude=max_magnitude,
                                          gap=_GAP) for frames, flows in picks])


def sample_preview(root: Path | str, video_id: str, transform: Callable, count: int = 4,
                   seed: int = 0, max_magnitude: float | None = None) -> np.ndarray:
    """What a network is given: ``count`` TSN segments of a video after ``transform``.

    The sample comes from :class:`ShardDataset` itself (rgb+flow, stacks of one flow), so crops,
    scales and flips (mirrored, u negated) are exactly those of training. ``transform`` must not
    normalise, so that the frames can be shown.
    """
    from flowkit.data.dataset import ShardDataset  # torch loads only when a sample is shown
    from flowkit.data.sampling import SegmentSampler

    dataset = ShardDataset(root, "rgb+flow", SegmentSampler(num_segments=count, flow_length=1),
                           split={video_id: 0}, transform=transform, seed=seed)
    item = dataset[0]
    frames = item["rgb"].permute(0, 2, 3, 1).numpy()
    flows = list(item["flow"].permute(0, 2, 3, 1).numpy())
    return preview_grid(list(frames), flows, max_magnitude=max_magnitude, gap=_GAP)


def stack_vertically(images: list[np.ndarray]) -> np.ndarray:
    """RGB images one below the other, grey gaps between, narrower ones padded with grey."""
    width = max(image.shape[1] for image in images)
    rows = []
    for image in images:
        padded = np.full((image.shape[0], width, 3), GAP_VALUE, np.uint8)
        padded[:, :image.shape[1]] = image
        rows += [padded, np.full((_GAP, width, 3), GAP_VALUE, np.uint8)]
    return np.concatenate(rows[:-1])


def _pick(video: Video, count: int) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """``count`` frames spread over ``video`` and the flow starting at each (or None)."""
    num_frames = len(video.frames)
    num_flows = len(video.flows)
    step = video.flow_step
    flow_starts = np.arange(num_flows) * step
    if num_flows:  # prefer frames that have a flow, spread over the video
        chosen = flow_starts[np.linspace(0, num_flows - 1, min(count, num_flows)).round().astype(int)]
    else:
        chosen = np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int)
    chosen = list(dict.fromkeys(int(i) for i in chosen))
    frames = video.frames[chosen]
    flows = [video.flows[i // step] if i % step == 0 and i // step < num_flows else None
             for i in chosen]
    return frames, flows
