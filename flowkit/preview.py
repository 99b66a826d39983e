"""A picture of a stored video: evenly spaced RGB frames above their flow in colour."""

from __future__ import annotations

import numpy as np

from flowkit.reader import Video
from flowkit.viz import preview_grid


def video_preview(video: Video, count: int = 4, max_magnitude: float | None = None) -> np.ndarray:
    """(2H + gap, count W + ..., 3) uint8 grid of ``count`` frames and the flows starting there.

    Frames are spread evenly over the video; with step s, frame k*s shows flow k. A frame with
    no flow (the last one, or RGB-only output) gets a black tile.
    """
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
    return preview_grid(list(frames), flows, max_magnitude=max_magnitude)
