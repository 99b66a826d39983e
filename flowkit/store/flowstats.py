"""How much flow a bound clips, and how long the flow is: statistics recorded per video.

A user picks ``--bound`` (15, 20, 32 ...) without seeing the flow; these counts, made from the
float flow before quantisation, say what the bound did. Per video:

- ``components``: flow components counted (2 per pixel per flow: u and v);
- ``clipped``: components with |u| >= B or |v| >= B (each counted on its own): those uint8 and
  jpeg storage saturate at +-B; float16 storage keeps them unclipped, and the count says what
  the bound B of the run would clip;
- ``histogram``: pixels by flow length |f| = sqrt(u^2 + v^2) in the fixed bins of
  :data:`MAGNITUDE_EDGES` (bin i holds edges[i] <= |f| < edges[i+1]; the last has no end), so
  histograms of videos and of datasets add up; it sums to components / 2;
- ``max_magnitude``: the largest |f| in pixels.

docs/format.md gives their names as video group attributes and manifest fields.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

import numpy as np

from flowkit.errors import ShardError
from flowkit.store.codec import dequantize_flow

MAGNITUDE_EDGES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, math.inf)  # pixels
NUM_BINS = len(MAGNITUDE_EDGES) - 1
ATTR_PREFIX = "flow_stats_"  # video group attributes: flow_stats_bound, flow_stats_clipped, ...
_SQUARED_EDGES = np.array(MAGNITUDE_EDGES[1:-1], dtype=np.float32) ** 2


@dataclasses.dataclass(frozen=True)
class FlowStats:
    """Clipping and flow-length counts of some flow, against the bound ``bound`` (pixels)."""

    bound: float
    components: int = 0
    clipped: int = 0
    max_magnitude: float = 0.0
    histogram: tuple[int, ...] = (0,) * NUM_BINS

    @property
    def clipped_share(self) -> float | None:
        """clipped / components; None when there is no flow (a one-frame video)."""
        return self.clipped / self.components if self.components else None

    def __add__(self, other: "FlowStats") -> "FlowStats":
        if other.bound != self.bound:
            raise ShardError(f"flow statistics against different bounds ({self.bound:g} and "
                             f"{other.bound:g} px) cannot be added")
        return FlowStats(self.bound, self.components + other.components,
                         self.clipped + other.clipped,
                         max(self.max_magnitude, other.max_magnitude),
                         tuple(a + b for a, b in zip(self.histogram, other.histogram)))

    def to_json(self) -> dict[str, Any]:
        """The manifest form: bound, components, clipped, max_magnitude, histogram."""
        return {"bound": self.bound, "components": self.components, "clipped": self.clipped,
                "max_magnitude": self.max_magnitude, "histogram": list(self.histogram)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "FlowStats | None":
        """The manifest form back; None (unknown) when absent or not of this form."""
        try:
            stats = cls(float(data["bound"]), int(data["components"]), int(data["clipped"]),
                        float(data["max_magnitude"]), tuple(int(n) for n in data["histogram"]))
        except (KeyError, TypeError, ValueError):
            return None
        return stats if len(stats.histogram) == NUM_BINS else None

    def to_attrs(self) -> dict[str, Any]:
        """Video group attributes: ``flow_stats_`` + bound, components, clipped, max_magnitude,
        edges (float64, the last inf) and histogram (int64)."""
        return {ATTR_PREFIX + "bound": self.bound, ATTR_PREFIX + "components": self.components,
                ATTR_PREFIX + "clipped": self.clipped,
                ATTR_PREFIX + "max_magnitude": self.max_magnitude,
                ATTR_PREFIX + "edges": np.array(MAGNITUDE_EDGES, dtype=np.float64),
                ATTR_PREFIX + "histogram": np.array(self.histogram, dtype=np.int64)}

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> "FlowStats | None":
        """Group attributes back; None (unknown) when the video has none (shards written
        before they were recorded) or they use other bins."""
        try:
            edges = tuple(float(e) for e in np.asarray(attrs[ATTR_PREFIX + "edges"]).ravel())
            data = {key: attrs[ATTR_PREFIX + key] for key in
                    ("bound", "components", "clipped", "max_magnitude", "histogram")}
        except KeyError:
            return None
        data["histogram"] = np.asarray(data["histogram"]).ravel().tolist()
        return cls.from_json(data) if edges == MAGNITUDE_EDGES else None


def flow_stats(flow: np.ndarray, bound: float) -> FlowStats:
    """The statistics of float flow ``flow`` (..., 2) in pixels (one field or a batch).

    Lengths are compared squared, in the flow's precision: |f| >= e as u^2 + v^2 >= e^2.
    """
    flow = np.asarray(flow)
    if flow.size == 0:
        return FlowStats(float(bound))
    u, v = flow[..., 0].astype(np.float32, copy=False), flow[..., 1].astype(np.float32, copy=False)
    squared = u * u + v * v
    at_least = [np.count_nonzero(squared >= edge) for edge in _SQUARED_EDGES]
    pixels = squared.size
    histogram = (pixels - at_least[0],
                 *(a - b for a, b in zip(at_least, at_least[1:])), at_least[-1])
    return FlowStats(float(bound), int(flow.size), int(np.count_nonzero(np.abs(flow) >= bound)),
                     float(np.sqrt(squared.max())), tuple(int(n) for n in histogram))


def combined(stats: Iterable[FlowStats]) -> FlowStats | None:
    """The sum of ``stats`` (all against one bound); None when there are none."""
    total = None
    for item in stats:
        total = item if total is None else total + item
    return total


def saturated_components(quantized: np.ndarray) -> int:
    """Components of uint8-quantised flow stored at 0 or 255: at the bound, clipped."""
    return int(np.count_nonzero((quantized == 0) | (quantized == 255)))


def quantized_flow_stats(quantized: np.ndarray, bound: float) -> FlowStats:
    """The statistics of uint8-quantised flow (imported JPEG flow, no float flow exists):
    lengths of the dequantised flow, clipped = components stored at 0 or 255 (saturated)."""
    stats = flow_stats(dequantize_flow(quantized, bound), bound)
    return dataclasses.replace(stats, clipped=saturated_components(quantized))


def bin_labels() -> list[str]:
    """Short names of the histogram bins in pixels: "<0.5", "0.5-1", ..., ">=64"."""
    edges = [f"{edge:g}" for edge in MAGNITUDE_EDGES]
    return [f"<{edges[1]}", *(f"{a}-{b}" for a, b in zip(edges[1:-2], edges[2:-1])),
            f">={edges[-2]}"]


def json_edges() -> list[float | None]:
    """:data:`MAGNITUDE_EDGES` for JSON, which has no infinity: the open end is null."""
    return [edge if math.isfinite(edge) else None for edge in MAGNITUDE_EDGES]
