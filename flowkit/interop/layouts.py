"""The two rawframe layouts (MMAction2: 1-based names, denseflow: 0-based) and folder naming."""

from __future__ import annotations

import dataclasses
import re
from pathlib import PurePosixPath

from flowkit.errors import ConfigError

LAYOUTS = ("mmaction2", "denseflow")
LIST_NAME = "rawframes_list.txt"            # "video_dir num_frames label": RGB pipelines
FLOW_LIST_NAME = "rawframes_list_flow.txt"  # "video_dir num_flows label": Flow pipelines
EXPORT_INFO_NAME = "flowkit_export.json"
IMPORTED_BACKEND = "imported"   # flow_backend of shards packed from rawframe folders


@dataclasses.dataclass(frozen=True)
class RawframeLayout:
    """File names of one rawframe convention: ``{prefix}{index:05d}.jpg`` from ``first``."""

    name: str
    first: int
    rgb: str
    flow_x: str
    flow_y: str

    def file_name(self, prefix: str, index: int) -> str:
        """Name of item ``index`` (0-based, as in flowkit) for a file ``prefix``."""
        return f"{prefix}{index + self.first:05d}.jpg"

    def patterns(self) -> dict[str, re.Pattern[str]]:
        return {kind: re.compile(re.escape(prefix) + r"(\d+)\.jpg")
                for kind, prefix in (("rgb", self.rgb), ("x", self.flow_x), ("y", self.flow_y))}


_LAYOUTS = {
    "mmaction2": RawframeLayout("mmaction2", 1, "img_", "x_", "y_"),
    "denseflow": RawframeLayout("denseflow", 0, "img_", "flow_x_", "flow_y_"),
}


def get_layout(name: str) -> RawframeLayout:
    """The layout called ``name``. Raises ConfigError listing the valid names."""
    try:
        return _LAYOUTS[name]
    except KeyError:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {name!r}") from None


# -- export -----------------------------------------------------------------------------------

def video_folder(video_id: str) -> str:
    """Rawframe folder of a video: its id without the file extension ('/' kept)."""
    path = PurePosixPath(video_id)
    return str(path.with_suffix("")) if path.suffix else str(path)


