"""The extraction run: input videos -> planned shards -> worker processes -> the output folder.

- ``run``: :func:`flowkit.extract.run.extract`, which plans (``plan``), runs the shards
  (``pool``: local worker processes; ``cluster``: Dask) and records them in the manifest;
- ``shard``: one shard and one video, in a worker (decode -> flow -> shard);
- ``flow_server``, ``flow_client``, ``flow_stream``: flow batched across videos in one
  process per device;
- ``inputs``, ``partitions``, ``merge``: which videos a run takes, split over jobs and joined;
- ``progress``, ``prefetch``: a progress bar, decoding ahead (the folder lock is flowkit.lock).

Imports ``flowkit.store``, ``flowkit.config`` and the layers below, never ``flowkit.data``,
``flowkit.interop`` or ``flowkit.preview`` (docs/architecture.md).
"""
