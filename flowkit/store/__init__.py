"""The output folder: HDF5 shards of frames and flow, and the manifest that lists every video.

- ``writer``, ``shard_file``, ``reader``, ``open_files``, ``index``: the shard format
  (docs/format.md), written atomically (through a file that keeps an OS error from HDF5), read
  lazily with a bounded number of files open and the stored videos listed compactly;
- ``codec``, ``chunks``, ``checksums``: how arrays become bytes, are read fast, and are checked;
- ``flowstats``: how much flow the bound clipped, recorded per video;
- ``manifest``, ``folder``: every video's fate (SQLite), and the folder's file names;
- ``verify``, ``summary``: reading a folder back (``flowkit verify``, ``flowkit info``).

Imports ``flowkit.video`` and ``flowkit.flow`` below it, never ``flowkit.extract``,
``flowkit.data`` or anything above (docs/architecture.md).
"""
