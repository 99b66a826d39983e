"""Preemption: SIGTERM, which SLURM and Kubernetes send some seconds before they kill a job,
stops training at the next safe point, where the loop writes a checkpoint to resume from.

A safe point is any moment outside the commit of a step (the optimiser's update and the step
counters): in one process, a SIGTERM during data loading, the forward or backward pass or
validation abandons that work at once (:class:`Abandoned`), because nothing of the run's
state has changed yet; during a commit or a checkpoint write it waits for the end of it.
Under torchrun a rank never abandons work in the middle of a collective: every rank stops
after the same step (:meth:`StopRequests.stop_now` agrees across ranks).

A long C++ call (one backward pass of a large 3D network on a CPU) runs to its end before
Python sees the signal: give the scheduler's grace period at least one step's time.

A scheduler signals every process of the job, DataLoader workers included. A worker that died
at once would break the batch its rank is waiting for, and torch would raise its death in the
training process in the middle of the checkpoint; so a worker outlives the notice by
:data:`WORKER_GRACE_S` (the training process stops it long before), and the training process
stops watching its workers' deaths once it is stopping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType
from typing import Any, Iterator

import torch
import torch.distributed as dist

from stddcn.distributed import Context

#: how long a DataLoader worker lives on after SIGTERM (see the module)
WORKER_GRACE_S = 30.0


class Abandoned(BaseException):
    """Raised by the SIGTERM handler inside :meth:`StopRequests.abandonable`: the work under
    way is dropped, the run's state is as after the last committed step."""


class StopRequests:
    """``with StopRequests(context) as stops:`` SIGTERM sets ``stops.requested``.

    Installed in the main thread of the training process only; the handler it installs does
    nothing in forked DataLoader workers (the training process stops them), and the handler
    before it is restored on exit.
    """

    def __init__(self, context: Context) -> None:
        self.context = context
        self.requested = False
        self._abandonable = False
        self._pid = os.getpid()
        self._previous: Any = None
        self._previous_sigchld: Any = None
        self._installed = False

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            if self._previous_sigchld is not None:
                signal.signal(signal.SIGCHLD, self._previous_sigchld)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked worker: the training process decides
            return
        if not self.requested:  # the workers' deaths are no news now (see the module)
            self._previous_sigchld = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.requested = True
        if self._abandonable:
            self._abandonable = False
            raise Abandoned

    @contextlib.contextmanager
    def abandonable(self) -> Iterator[None]:
        """Work inside may be dropped by a SIGTERM (one process only; see the module); a stop
        requested before is raised at once."""
        if self.context.distributed:
            yield
            return
        if self.requested:
            raise Abandoned
        self._abandonable = True
        try:
            yield
        finally:
            self._abandonable = False

    def stop_now(self) -> bool:
        """Whether to stop here: a stop was requested on any rank (a collective under
        torchrun: every rank calls it at the same points)."""
        if not self.context.distributed:
            return self.requested
        device = self.context.device if self.context.device.startswith("cuda") else "cpu"
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag)
        self.requested = bool(flag.item() > 0)
        return self.requested


def outlive_sigterm(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: SIGTERM ends this worker :data:`WORKER_GRACE_S` later
    instead of at once (see the module)."""
    def later(signum: int, frame: FrameType | None) -> None:
        timer = threading.Timer(WORKER_GRACE_S, os._exit, args=(128 + signum,))
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, later)
