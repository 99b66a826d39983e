"""flowkit: optical flow extraction into HDF5 shards for video action recognition."""

__version__ = "0.1.0"

from flowkit.store.reader import ShardReader, open_shards  # noqa: E402

__all__ = ["ShardReader", "open_shards", "__version__"]
