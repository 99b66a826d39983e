"""How processes of a run end: workers die with their parent; signals end a run as interrupted.

A scheduler or the OOM killer may kill only the main ``flowkit extract`` process. Its workers
(joblib/loky processes, the multiprocessing manager) must not live on writing into the folder:
each calls :func:`die_with_parent` (Linux: PR_SET_PDEATHSIG; everywhere: a thread that polls
the parent pid). SIGTERM in the main process becomes :class:`Interrupted`, like Ctrl-C, so the
run unwinds (workers stopped, temporary files removed) and the CLI exits 143.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from typing import Iterator

WATCH_INTERVAL_S = 0.2  # how often a worker checks that its parent still lives
_PR_SET_PDEATHSIG = 1
_PARENT_DEATH_SIGNAL = signal.SIGUSR1
_WATCHDOG = "flowkit-parent-watch"  # thread name; threads do not survive a fork, so a forked
                                    # child finds none and starts its own


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT or SIGTERM); ``signum`` says which.

    A KeyboardInterrupt, not an Exception: per-video error handling must never swallow it.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent) ends; idempotent, cheap to repeat.

    Call it in each worker process. A process already orphaned exits at once.
    """
    if any(thread.name == _WATCHDOG for thread in threading.enumerate()):
        return
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        _set_parent_death_signal(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before we could watch it
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid,), name=_WATCHDOG, daemon=True).start()


def ignore_interrupts() -> None:
    """Ignore SIGINT in this worker (main thread only; elsewhere a no-op): Ctrl-C reaches every
    process of the terminal's group, and the run, not each worker, unwinds on it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _set_parent_death_signal(parent_pid: int) -> None:
    """Linux: the kernel signals us when the parent dies (prctl(2) PR_SET_PDEATHSIG).

    The kernel also signals when the parent's *thread* that started us ends (a run started from
    a thread that returns); the handler therefore exits only if the parent process is gone.
    """
    def on_parent_death(signum: int, frame: object) -> None:
        if os.getppid() != parent_pid:
            os._exit(1)

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        signal.signal(_PARENT_DEATH_SIGNAL, on_parent_death)
        libc.prctl(_PR_SET_PDEATHSIG, int(_PARENT_DEATH_SIGNAL), 0, 0, 0)
    except (OSError, AttributeError, ValueError):  # no prctl: the watchdog thread still works
        pass


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_INTERVAL_S)
    os._exit(1)


def raise_interrupted(signum: int, frame: object) -> None:
    """Signal handler: stop the main thread with :class:`Interrupted`."""
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Inside the block (main thread), SIGTERM unwinds the run like Ctrl-C; the handler before
    is restored after. Forked children keep the default action, so stopping them stays plain."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _default_sigterm_in_child() -> None:
    if signal.getsignal(signal.SIGTERM) is raise_interrupted:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_child)


def exit_code(signum: int) -> int:
    """The shell's convention for a process ended by signal ``signum``: 128 + signum."""
    return 128 + int(signum)
