"""Export to and import from MMAction2 / denseflow rawframe folders.

A rawframe folder holds one video as JPEG files, one folder per video:

    OUT/
      ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01/      (the video id without its extension)
        img_00001.jpg ...               RGB frame 0             denseflow: img_00000.jpg
        x_00001.jpg, y_00001.jpg ...    u, v of flow 0 (gray)   denseflow: flow_x_00000.jpg, ...
      rawframes_list.txt                "video_dir num_frames label" per video (label -1: unknown)
      rawframes_list_flow.txt           "video_dir num_flows label": the list for Flow pipelines
      flowkit_export.json               layout, bound, flow step, source settings, folder -> id

mmaction2 names are 1-based, denseflow names 0-based; flowkit indices stay 0-based.

Flow JPEGs are the uint8-quantised planes (``q = round(255 * (clip(f, -B, B) + B) / 2B)``, see
docs/format.md); the bound B is not in the images, so ``flowkit_export.json`` records it and an
import takes it from there or from the user. File k of the flow (0-based index k) is flowkit
flow k, which maps frame ``k*step`` to frame ``(k+1)*step``.

Bytes are kept, never re-encoded, wherever the shard has them: RGB stored as JPEG and flow
stored as JPEG export byte for byte, and import stores the files' bytes as they are, so an
export followed by an import gives back bit-identical JPEG data. uint8 flow encoded as JPEG
on export is lossy (values move by up to several steps at motion edges); ``flow_format="png"``
writes lossless ``x_00001.png`` planes instead, which import stores as the uint8 values they
hold: the round trip is exact.

Above ``flowkit.extract`` (an import is planned and locked like a run) and ``flowkit.store``;
imports nothing of ``flowkit.data`` or ``flowkit.preview`` (docs/architecture.md).
"""

from flowkit.interop.export import export_rawframes
from flowkit.interop.layouts import (
                                     EXPORT_INFO_NAME,
                                     FLOW_FORMATS,
                                     FLOW_LIST_NAME,
                                     IMPORTED_BACKEND,
                                     LAYOUTS,
                                     LIST_NAME,
                                     RawframeLayout,
                                     get_layout,
                                     video_folder,
)
from flowkit.interop.pack import ImportReport, import_rawframes

__all__ = ["EXPORT_INFO_NAME", "FLOW_FORMATS", "FLOW_LIST_NAME", "IMPORTED_BACKEND", "LAYOUTS", "LIST_NAME", "ImportReport",
           "RawframeLayout", "export_rawframes", "get_layout", "import_rawframes", "video_folder"]
