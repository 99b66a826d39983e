"""An exclusive lock on an output folder or a run folder, so two runs never interleave writes.

Uses flock(2): the kernel drops the lock when the holder dies, even by kill -9, so a crashed
run never leaves a stale lock behind. A flock belongs to the open file, which fork() shares:
a forked child (multiprocessing's manager, a worker) would keep the lock after the run died.
Forked children therefore close the lock's descriptor at once (exec'd ones never get it: it is
opened close-on-exec).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from flowkit.errors import LockError
from flowkit.writing import writing

LOCK_NAME = ".flowkit.lock"

_held: set[int] = set()  # descriptors of the locks this process holds


def _close_inherited_locks() -> None:
    """In a forked child: let go of the parent's lock descriptors (the parent keeps its lock)."""
    for fd in list(_held):
        try:
            os.close(fd)
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_close_inherited_locks)


class FolderLock:
    """``with FolderLock(folder):`` holds the folder or raises LockError at once."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "FolderLock":
        with writing(self.path.parent):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            raise LockError(self._held_message(holder)) from None
        _held.add(fd)
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        except OSError:  # the pid is a hint for messages; a full disk stops the run later
            pass
        return self

    def _held_message(self, holder: str) -> str:
        folder = self.path.parent
        if not holder.isdigit() or _alive(int(holder)):
            return (f"{folder}: another flowkit run (pid {holder or 'unknown'}) is writing here; "
                    "wait for it to finish or choose another --out")
        others = [pid for pid in _processes_holding(self.path) if pid != os.getpid()]
        if others:
            pids = " ".join(map(str, others))
            return (f"{folder}: the flowkit run that locked it (pid {holder}) has died, but a "
                    f"process it left behind (pid {pids}) still holds {LOCK_NAME}; end it "
                    f"(kill {pids}) and rerun")
        return (f"{folder}: the flowkit run that locked it (pid {holder}) has died, but a "
                f"process it left behind still holds {LOCK_NAME} (find it with: fuser "
                f"{self.path}); end it and rerun")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            _held.discard(self._fd)
            try:
                os.ftruncate(self._fd, 0)
            except OSError:  # a full or failing disk: the kernel drops the lock all the same
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def holder(folder: Path) -> str | None:
    """The pid (as the lock file says; "" when it says none) of the flowkit run that holds
    ``folder``'s lock (an extraction, import or merge writing it now), or None when no run
    holds it.

    A flock cannot be queried, only tried: this takes a shared lock without waiting and
    drops it at once. A run starting within those microseconds finds the folder locked and
    says so (LockError, exit 2): a rerun starts it.
    """
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # none (no run ever wrote here), or one we may not read: not known held
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.pread(fd, 64, 0).decode(errors="replace").strip()
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _processes_holding(path: Path) -> list[int]:
    """Pids with ``path`` open, found through /proc (Linux; empty elsewhere or if unreadable)."""
    target = os.path.realpath(path)
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{entry}/fd/{fd}") == target:
                    pids.append(int(entry))
                    break
            except OSError:
                continue
    return sorted(pids)
