"""Versions of the libraries whose behaviour shapes the stored data."""

from __future__ import annotations

import platform


def library_versions() -> dict[str, str]:
    """flowkit, Python and the decoding, flow and storage libraries, by name."""
    import av
    import cv2
    import h5py
    import numpy

    import flowkit

    return {
        "flowkit": flowkit.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "av": av.__version__,
        "ffmpeg": ".".join(str(part) for part in av.library_versions.get("libavcodec", ())),
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
    }
