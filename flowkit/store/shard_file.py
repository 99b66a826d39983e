"""The file under a shard being written: HDF5 writes through it and never sees an OS error.

Why: when a write fails (disk full, I/O error), HDF5 2.0 is left in a state in which closing
the file, which it must do to let go of it, crashes the process (a segmentation fault in its
metadata cache), and h5py drops such failures silently when they happen while Python frees
an object. So the failure is kept here instead: the first OS error is recorded in
:attr:`ShardFile.error`, HDF5 is told the write succeeded, and from then on what it writes is
held in memory (it reads it back as written), so that it can finish and close the file
cleanly. The writer (:class:`flowkit.store.writer.ShardWriter`) checks :attr:`error` after
every operation, raises it as an OutputError, and drops the file: nothing held here is kept.

What is held in memory is what HDF5 writes after the failure, before the writer notices
(at most one frame's data) and while it closes the file (its caches: a few MB).
"""

from __future__ import annotations

import os
from pathlib import Path


class ShardFile:
    """A file-like object for h5py's ``fileobj`` driver on a new file at ``path``.

    Reads and writes are positional (``os.pread`` / ``os.pwrite``) at the position
    :meth:`seek` sets, as the driver does them: seek, then one read or write.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.error: OSError | None = None
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        self._position = 0
        self._held: list[tuple[int, bytes]] = []  # (offset, data) written after the error
        self._size: int | None = None            # the file's length after the error

    def __repr__(self) -> str:
        return str(self.path)  # h5py names the file by it (File.filename)

    # -- what h5py's fileobj driver calls ---------------------------------------------------
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._position = self._end() + offset if whence == os.SEEK_END else offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int) -> bytes:
        buffer = bytearray(size)
        self.readinto(buffer)
        return bytes(buffer)

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")
        size = len(view)
        done = 0
        try:
            while done < size:
                count = os.preadv(self._fd, [view[done:]], self._position + done)
                if count == 0:
                    break
                done += count
        except OSError as exc:
            self._fail(exc)
        view[done:] = bytes(size - done)  # beyond the end of the file: zeros
        for offset, data in self._held:  # in order: a later write wins
            start, end = max(offset, self._position), min(offset + len(data), self._position + size)
            if start < end:
                view[start - self._position:end - self._position] = \
                    data[start - offset:end - offset]
        return size

    def write(self, data: memoryview | bytes) -> int:
        view = memoryview(data).cast("B")
        done = 0
        if self.error is None:
            try:
                while done < len(view):
                    done += os.pwrite(self._fd, view[done:], self._position + done)
            except OSError as exc:
                self._fail(exc)
        if done < len(view):
            self._held.append((self._position + done, bytes(view[done:])))
        self._position += len(view)
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        size = self._position if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                self._fail(exc)
        if self.error is not None:
            self._size = size
            self._held = [(offset, data[:max(0, size - offset)])
                          for offset, data in self._held if offset < size]
        return size

    def flush(self) -> None:
        """Nothing to do: every write went to the kernel (or, after an error, is held)."""

    # -- the writer's side -----------------------------------------------------------------
    def fsync(self) -> None:
        """Flush the file's data to disk (raises OSError)."""
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the descriptor (h5py closes its file first) and forget what is held."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._held = []

    def _fail(self, exc: OSError) -> None:
        if self.error is None:
            try:
                self._size = os.fstat(self._fd).st_size
            except OSError:
                self._size = self._position
            self.error = exc

    def _end(self) -> int:
        if self.error is None:
            return os.fstat(self._fd).st_size
        held = max((offset + len(data) for offset, data in self._held), default=0)
        return max(self._size or 0, held)
