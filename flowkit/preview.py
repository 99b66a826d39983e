"""Previews that explain themselves: each row of RGB frames above their flow in colour is
labelled (video, class, frame indices, or "training sample"), and a legend gives the colour
wheel with its magnitude scale, the storage bound and how much flow was clipped at it.

A preview is a list of :class:`Panel` (a caption above a picture) composed into one image no
taller than ``max_height``: the pictures shrink, the captions keep their size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from flowkit.flow.viz import (GAP_VALUE, TEXT_MARGIN, color_legend, max_flow_magnitude,
                              preview_grid, text_block, wrap_text)
from flowkit.store.flowstats import saturated_components
from flowkit.store.reader import Video

DEFAULT_MAX_HEIGHT = 2000  # pixels: what a browser shows whole on most screens
MIN_TILE = 128  # pixels: smaller frames (a 64x64 laboratory video) are enlarged, pixel by pixel
MIN_TEXT_WIDTH = 480  # pixels: captions wrap at the widest picture, but not narrower than this
_GAP = 4


@dataclasses.dataclass(frozen=True)
class Panel:
    """One labelled part of a preview: ``caption`` (lines split at newlines) above ``image``."""

    caption: str
    image: np.ndarray
    shrinks: bool = True  # False: keep its size when the page must fit a height (the legend)


def picked_frames(video: Video, count: int) -> list[int]:
    """``count`` frame indices spread over ``video``, preferring frames where a flow starts."""
    num_flows, step = len(video.flows), video.flow_step
    if num_flows:
        flows = np.linspace(0, num_flows - 1, min(count, num_flows)).round().astype(int)
        chosen = flows * step
    else:
        num_frames = len(video.frames)
        chosen = np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int)
    return list(dict.fromkeys(int(i) for i in chosen))


def flows_starting_at(video: Video, frames: Sequence[int]) -> list[np.ndarray | None]:
    """The flow that starts at each of ``frames`` (None where none does: between flow steps,
    or at the last frame)."""
    step = video.flow_step
    return [video.flows[i // step] if i % step == 0 and i // step < len(video.flows) else None
            for i in frames]


def shown_magnitude(videos: Sequence[Video], count: int) -> float:
    """The largest flow length among the flows a preview of ``videos`` shows (1.0 if none)."""
    shown = [max_flow_magnitude(flow) for video in videos
             for flow in flows_starting_at(video, picked_frames(video, count))
             if flow is not None]
    return max(shown, default=0.0) or 1.0


def video_panel(video: Video, count: int, max_magnitude: float) -> Panel:
    """``count`` stored frames of ``video`` above the flow that starts at each."""
    chosen = picked_frames(video, count)
    step = video.flow_step
    flows = flows_starting_at(video, chosen)
    grid = preview_grid(list(video.frames[chosen]), flows, max_magnitude=max_magnitude, gap=_GAP)
    caption = (f"{video.video_id}  {_class_text(video)}  frames {_indices(chosen)}; "
               f"below each frame: its flow to frame +{step}")
    return Panel(caption, _enlarged(grid, video.frames[0].shape[:2]))


def describe_transform(transform: Callable) -> str:
    """What ``transform`` does, in words, from its parts: "random multi-scale 56 px crop, no
    flip" for ``tsn_train_transform(56, normalize=None, flip=False)``."""
    from flowkit.data.transforms import (CenterCrop, Compose, HorizontalFlip, MultiScaleCrop,
                                         RandomResizedCrop, Resize)

    parts = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    words = []
    for part in parts:
        if isinstance(part, MultiScaleCrop):
            words.append(f"random multi-scale {part.size} px crop")
        elif isinstance(part, RandomResizedCrop):
            words.append(f"random resized {part.size} px crop")
        elif isinstance(part, CenterCrop):
            words.append(f"centre {part.size} px crop")
        elif isinstance(part, Resize):
            words.append(f"short side to {part.short_side} px")
        elif isinstance(part, HorizontalFlip):
            words.append("random horizontal flip" if part.p == 0.5
                         else f"horizontal flip with probability {part.p:g}")
        else:
            words.append(type(part).__name__)
    if any(isinstance(part, MultiScaleCrop | RandomResizedCrop) for part in parts) and not any(
            isinstance(part, HorizontalFlip) for part in parts):
        words.append("no flip")
    return ", ".join(words) or "no transform"


def sample_panels(root: Path | str, video_ids: Sequence[str], transform: Callable,
                  count: int = 4, seed: int = 0, max_magnitude: float | None = None
                  ) -> list[Panel]:
    """What a network is given: ``count`` TSN segments of each video after ``transform``.

    The samples come from one :class:`ShardDataset` of ``video_ids`` (rgb+flow, stacks of one
    flow), item i drawn from its own generator as in training, so each video gets its own
    segments, crop and flip (mirrored, u negated). ``transform`` must not normalise, so that the
    frames can be shown; the captions say what it does (:func:`describe_transform`).
    """
    from flowkit.data.dataset import ShardDataset  # torch loads only when a sample is shown
    from flowkit.data.sampling import SegmentSampler

    unique = list(dict.fromkeys(video_ids))
    dataset = ShardDataset(root, "rgb+flow", SegmentSampler(num_segments=count, flow_length=1),
                           split={video_id: 0 for video_id in unique}, transform=transform,
                           seed=seed)
    description = describe_transform(transform)
    panels = {}
    for index, video_id in enumerate(unique):
        item = dataset[index]
        frames = item["rgb"].permute(0, 2, 3, 1).numpy()
        flows = list(item["flow"].permute(0, 2, 3, 1).numpy())
        grid = preview_grid(list(frames), flows, max_magnitude=max_magnitude, gap=_GAP)
        caption = (f"{video_id}  training sample: {description} (seed {seed}),\n"
                   f"frames {_indices(item['frame_indices'].tolist())}")
        panels[video_id] = Panel(caption, _enlarged(grid, frames.shape[1:3]))
    return [panels[video_id] for video_id in video_ids]


def clipped_fraction(video: Video) -> float | None:
    """Share of stored flow components at the bound (quantised to 0 or 255: |f| >= B), counted
    by reading all of them; None when the flow is stored as float16 (not clipped) or there is
    none. Shards record this share at extraction (:attr:`Video.flow_stats`)."""
    counts = _stored_clipping(video)
    return counts[0] / counts[1] if counts else None


def _stored_clipping(video: Video) -> tuple[int, int] | None:
    """(components at the bound, components) of the stored quantised flow, or None."""
    if video.flow_bound is None or len(video.flows) == 0:
        return None
    stored = video.flows.quantized(slice(None))
    return saturated_components(stored), stored.size


def _clipping(video: Video) -> tuple[float, int, int] | None:
    """(bound, clipped, components) of a video's flow: recorded at extraction, else counted
    from the stored flow (shards made before it was recorded); None when unknown or empty."""
    stats = video.flow_stats
    if stats is not None:
        return (stats.bound, stats.clipped, stats.components) if stats.components else None
    counts = _stored_clipping(video)
    return (video.flow_bound, *counts) if counts else None


def legend_panel(videos: Sequence[Video], max_magnitude: float) -> Panel:
    """The colour wheel (rim: ``max_magnitude`` px), the bound, and the share of the shown
    videos' flow values clipped at it (the worst video named); for float16 flow, which is
    stored unclipped, the share beyond the bound, where it was recorded."""
    lines = ["flow colours (the disc: flow (u, v) at (u, v) from its centre): hue = direction,",
             "right red, down yellow, left cyan, up violet; saturation = length: white 0 px,",
             f"full colour {max_magnitude:.3g} px (the rim), darker beyond"]
    counts = {video.video_id: _clipping(video) for video in videos}
    known = {video_id: count for video_id, count in counts.items() if count is not None}
    if known:
        bound = next(iter(known.values()))[0]
        worst = max(known, key=lambda video_id: known[video_id][1] / known[video_id][2])
        overall = sum(c[1] for c in known.values()) / sum(c[2] for c in known.values())
        shares = (f"{overall:.2%} of the shown videos' flow values (most: {worst}, "
                  f"{known[worst][1] / known[worst][2]:.2%})")
        if any(video.flow_bound is None for video in videos if video.video_id in known):
            lines.append(f"flow stored as float16, unclipped; beyond +-{bound:g} px: {shares}")
        else:
            lines.append(f"stored within +-{bound:g} px; clipped at the bound: {shares}")
    elif videos:
        lines.append("flow stored as float16: nothing clipped")
    disc = color_legend(max_magnitude)
    return Panel("\n".join(lines), disc, shrinks=False)


def compose(panels: Sequence[Panel], max_height: int = DEFAULT_MAX_HEIGHT) -> np.ndarray:
    """Panels one below the other, captions above pictures, on a white page; pictures shrink
    by one factor so that the page is at most ``max_height`` pixels tall (when it can be), and
    captions wrap at word boundaries to the widest picture (at least ``MIN_TEXT_WIDTH``)."""
    def layout(scale: float) -> tuple[list[np.ndarray], float]:
        widest = max((round(panel.image.shape[1] * (scale if panel.shrinks else 1.0))
                      for panel in panels), default=0)
        width = max(widest, MIN_TEXT_WIDTH) - 2 * TEXT_MARGIN
        captions = [text_block(wrap_text(panel.caption, width)) for panel in panels]
        fixed = sum(c.shape[0] for c in captions) + 2 * _GAP * len(panels) + sum(
            panel.image.shape[0] for panel in panels if not panel.shrinks)
        pictures = sum(panel.image.shape[0] for panel in panels if panel.shrinks)
        return captions, min(1.0, max(max_height - fixed, 1) / max(pictures, 1))

    captions, scale = layout(1.0)
    if scale < 1.0:  # narrower pictures: wrap the captions to them, and fit the height again
        captions, scale = layout(scale)
    parts = []
    for caption, panel in zip(captions, panels):
        image = panel.image
        if scale < 1.0 and panel.shrinks:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        parts += [caption, image, np.full((2 * _GAP, 1, 3), 255, np.uint8)]
    width = max(part.shape[1] for part in parts)
    page = [np.pad(part, ((0, 0), (0, width - part.shape[1]), (0, 0)), constant_values=255)
            for part in parts[:-1]]
    return np.concatenate(page)


def _enlarged(grid: np.ndarray, tile: tuple[int, ...]) -> np.ndarray:
    """``grid`` enlarged by a whole factor (nearest pixel) so that its tiles reach MIN_TILE."""
    factor = -(-MIN_TILE // max(1, min(tile)))
    if factor <= 1:
        return grid
    return cv2.resize(grid, (grid.shape[1] * factor, grid.shape[0] * factor),
                      interpolation=cv2.INTER_NEAREST)


def _class_text(video: Video) -> str:
    """"class up (label 3)": the class folder of the id (UCF101's layout) and the label."""
    label = video.entry.label
    label_text = "no label" if label is None or label < 0 else f"label {label}"
    folder = video.video_id.split("/")[0] if "/" in video.video_id else None
    return f"class {folder} ({label_text})" if folder else label_text


def _indices(indices: Sequence[int]) -> str:
    return ", ".join(str(i) for i in indices)


__all__ = ["DEFAULT_MAX_HEIGHT", "GAP_VALUE", "Panel", "clipped_fraction", "compose",
           "describe_transform", "flows_starting_at", "legend_panel", "picked_frames",
           "sample_panels", "shown_magnitude", "video_panel"]
