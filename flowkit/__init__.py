"""flowkit: optical flow extraction into HDF5 shards for video action recognition.

The package by capability (docs/architecture.md): ``flowkit.video`` (decoding, synthetic
videos) and ``flowkit.flow`` (flow backends) at the bottom, ``flowkit.store`` (shards,
manifest) above them, ``flowkit.extract`` (the run) and ``flowkit.data`` (torch Datasets) above
the store, ``flowkit.interop`` and ``flowkit.preview`` on top. Here: the shard reader, and the
folder lock that extraction and training (stddcn) take on the folders they write.
"""

__version__ = "0.1.0"

from flowkit.lock import FolderLock  # noqa: E402
from flowkit.store.reader import ShardReader, open_shards  # noqa: E402

__all__ = ["FolderLock", "ShardReader", "open_shards", "__version__"]
