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
# Image formats of the flow planes: JPEG as denseflow and MMAction2 write them (lossy), or PNG,
# lossless, which MMAction2 reads as well (RawframeDataset's filename_tmpl "{}_{:05d}.png").
FLOW_FORMATS = ("jpeg", "png")
_EXTENSIONS = {"jpeg": "jpg", "png": "png"}


@dataclasses.dataclass(frozen=True)
class RawframeLayout:
    """File names of one rawframe convention: ``{prefix}{index:05d}.jpg`` from ``first``
    (flow planes may be ``.png`` instead)."""

    name: str
    first: int
    rgb: str
    flow_x: str
    flow_y: str

    def file_name(self, prefix: str, index: int, image_format: str = "jpeg") -> str:
        """Name of item ``index`` (0-based, as in flowkit) for a file ``prefix`` in
        ``image_format`` (one of FLOW_FORMATS)."""
        return f"{prefix}{index + self.first:05d}.{extension(image_format)}"

    def patterns(self) -> dict[str, re.Pattern[str]]:
        """Regular expressions of the rgb, x and y file names; group 1 is the index, group 2
        the extension (jpg for RGB; jpg or png for flow)."""
        flow = "|".join(_EXTENSIONS.values())
        return {kind: re.compile(re.escape(prefix) + r"(\d+)\.(" + (flow if kind != "rgb"
                                                                   else "jpg") + ")")
                for kind, prefix in (("rgb", self.rgb), ("x", self.flow_x), ("y", self.flow_y))}


_LAYOUTS = {
    "mmaction2": RawframeLayout("mmaction2", 1, "img_", "x_", "y_"),
    "denseflow": RawframeLayout("denseflow", 0, "img_", "flow_x_", "flow_y_"),
}


def extension(image_format: str) -> str:
    """File extension (no dot) of a flow image format. Raises ConfigError listing the valid."""
    try:
        return _EXTENSIONS[image_format]
    except KeyError:
        raise ConfigError(f"flow image format must be one of {', '.join(FLOW_FORMATS)}, "
                          f"got {image_format!r}") from None


def format_of(extension_: str) -> str:
    """The flow image format of a file extension (no dot): "jpg" -> "jpeg", "png" -> "png"."""
    return {ext: name for name, ext in _EXTENSIONS.items()}[extension_]


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


