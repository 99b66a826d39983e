"""Writing output files: whole or never half, and OS errors as one OutputError saying what to do.

Small files (manifest, settings, label lists) are replaced atomically, so that a reader or a
killed run never sees half of one. Disk full, a read-only file system, a missing permission or
an I/O error on the output are not a video's fault: the run must stop (exit code 3) and say so,
instead of failing every video after it. HDF5 reports these as OSError, sometimes with the errno
only inside its message, and some (a failed flush of its cache on a full disk) as RuntimeError
or another type: an HDF5 error counts as the output's when its message carries the errno of the
failed system call ("file write failed: ... errno = 28"), which only its file driver writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from pathlib import Path
from typing import Iterator

from flowkit.errors import FlowkitError, OutputError

_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space (or choose another --out), "
                  "then rerun the same command to resume",
    errno.EDQUOT: "disk quota exceeded; free some space (or choose another --out), then rerun "
                  "the same command to resume",
    errno.EFBIG: "file too large for this file system; use a smaller --videos-per-shard or "
                 "another --out, then rerun",
    errno.EROFS: "read-only file system; choose a writable --out",
    errno.EACCES: "permission denied; make the folder writable or choose another --out",
    errno.EPERM: "operation not permitted; make the folder writable or choose another --out",
    errno.EIO: "input/output error on the device; check the disk, then rerun the same command "
               "to resume",
}
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def output_errno(exc: BaseException) -> int | None:
    """The errno of an OSError, also when HDF5 only writes it into the message; for another
    exception, the errno HDF5's file driver wrote into its message (None: not an OS error)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    match = _HDF5_ERRNO.search(str(exc))
    return int(match.group(1)) if match else None


def is_output_error(exc: BaseException) -> bool:
    """Whether ``exc``, raised while writing the output, is the output's fault: any OSError,
    or an exception of another type (HDF5's RuntimeError) naming the errno of a failed
    system call. Other exceptions (a bug, a bad value) are not."""
    if isinstance(exc, OutputError):
        return True
    if not isinstance(exc, Exception) or isinstance(exc, FlowkitError):
        return False  # an interruption, or flowkit's own error: never rewritten
    return isinstance(exc, OSError) or output_errno(exc) is not None


def output_error(path: Path | str, exc: BaseException) -> OutputError:
    """One line naming ``path``, the cause and what to do."""
    code = output_errno(exc)
    advice = _ADVICE.get(code) if code is not None else None
    if advice is None:
        cause = os.strerror(code) if code is not None else " ".join(str(exc).split())[:200]
        advice = f"{cause}; fix the cause, then rerun the same command to resume"
    return OutputError(f"{path}: cannot write: {advice}")


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Inside the block, an OSError (or HDF5's wrapped one, of whatever type: see
    :func:`is_output_error`) becomes an OutputError on ``path``."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:
        if not is_output_error(exc):
            raise
        raise output_error(path, exc) from None


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a half temporary would keep a full disk full
        raise
