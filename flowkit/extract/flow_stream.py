"""A video's frame pairs to flows, in order: batched here, or through a flow server.

:func:`flowkit.extract.shard.extract_video` adds each pair as it is decoded and finishes at the
end of the video; the flows reach ``append`` in pair order either way. In the worker's own
backend the pairs are computed ``batch_size`` at a time, within the video (the per-video path);
a :class:`flowkit.extract.flow_client.RemoteFlow` sends them to its device's flow server, where
batches mix videos and workers.
"""

from __future__ import annotations

from typing import Callable, Protocol

import numpy as np

from flowkit.flow.base import FlowBackend


class FlowStream(Protocol):
    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        """Take the pair ``first -> second``; flows may be appended now or later."""

    def finish(self) -> None:
        """Append every remaining flow."""


class BatchedFlows:
    """Pairs computed by ``backend`` ``batch_size`` at a time, flows appended in order."""

    def __init__(self, backend: FlowBackend, append: Callable[[np.ndarray], None],
                 batch_size: int) -> None:
        self._backend, self._append, self._batch_size = backend, append, batch_size
        self._firsts: list[np.ndarray] = []
        self._seconds: list[np.ndarray] = []

    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        self._firsts.append(first)
        self._seconds.append(second)
        if len(self._firsts) == self._batch_size:
            self.finish()

    def finish(self) -> None:
        if self._firsts:
            for flow in self._backend(np.stack(self._firsts), np.stack(self._seconds)):
                self._append(flow)
            self._firsts.clear()
            self._seconds.clear()


def open_flow_stream(backend: FlowBackend, append: Callable[[np.ndarray], None],
                     batch_size: int) -> FlowStream:
    """The stream for one video: the backend's own (a flow server's client) or batches here."""
    open_stream = getattr(backend, "open_stream", None)
    if open_stream is not None:
        return open_stream(append)
    return BatchedFlows(backend, append, batch_size)
