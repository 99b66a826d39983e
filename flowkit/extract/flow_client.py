"""The worker's side of a flow server: send frame pairs, get their flows back in order.

A :class:`RemoteFlow` stands in a worker for the backend (see :mod:`flowkit.extract.flow_server`).
Each video opens a stream; the stream sends its pairs numbered 0, 1, 2 ... without waiting,
and writes each flow as soon as it and all before it are back. A worker keeps at most
``in_flight`` pairs sent and not yet back (it waits for flows when it has that many), so its
memory stays bounded and the server is never asked for more than its workers can take. A
thread reads the connection all the time, so the server never blocks sending to us.

Flows of a video that failed (a decode error, the backend refusing a pair) may still come back
after it: they are counted and dropped. The server going away stops the run: FlowServerError.
"""

from __future__ import annotations

import queue
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client
from typing import Any, Callable

import numpy as np

from flowkit.errors import BackendError, FlowServerError
from flowkit.flow.base import FlowBackend

_LOST = ("lost",)
_BYE_WAIT_S = 5.0


class RemoteFlow(FlowBackend):
    """A backend computed by the flow server at ``address``; use :meth:`open_stream`."""

    name = "remote"

    @classmethod
    def check_device(cls, device: str) -> None:
        """The server checked its device when it started."""

    def __init__(self, address: str, authkey: bytes, device: str, in_flight: int) -> None:
        super().__init__(None, device)
        self._in_flight_limit = max(1, in_flight)
        try:
            self._conn = Client(address, family="AF_UNIX", authkey=authkey)
        except (OSError, EOFError, AuthenticationError) as exc:
            raise self._lost(f"cannot be reached ({exc})") from None
        self._answers: queue.Queue[tuple] = queue.Queue()
        self._in_flight = 0
        self._stream: RemoteStream | None = None
        self._keys = 0
        self._reader = threading.Thread(target=self._receive, name="flowkit-flow-client",
                                        daemon=True)
        self._reader.start()

    def _lost(self, how: str) -> FlowServerError:
        return FlowServerError(
            f"the flow process for {self.device} {how}: out of memory, or a crash in a native "
            "library; finished shards are kept: rerun the same command to resume")

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Flow of a batch of pairs, waiting for it (streams overlap better)."""
        flows: list[np.ndarray] = []
        stream = self.open_stream(flows.append)
        for a, b in zip(first, second):
            stream.add(a, b)
        stream.finish()
        return np.stack(flows)

    def open_stream(self, append: Callable[[np.ndarray], None]) -> "RemoteStream":
        """A new video's stream: ``append`` receives its flows in order. Any earlier stream
        is over (its flows still to come are dropped)."""
        self._keys += 1
        self._stream = RemoteStream(self, self._keys, append)
        return self._stream

    def close(self) -> None:
        """Say goodbye to the server and stop reading."""
        try:
            self._conn.send(("bye",))
        except (OSError, ValueError):
            pass
        else:
            self._reader.join(_BYE_WAIT_S)
        self._conn.close()

    # -- used by RemoteStream --------------------------------------------------------------

    def _send_pair(self, key: int, seq: int, first: np.ndarray, second: np.ndarray) -> None:
        while self._in_flight >= self._in_flight_limit:
            self._collect(block=True)
        try:
            self._conn.send(("pair", key, seq, first, second))
        except (OSError, ValueError):
            raise self._lost("died") from None
        self._in_flight += 1
        self._collect(block=False)

    def _collect(self, block: bool) -> None:
        """Take answers that have arrived (waiting for one if ``block``) to their stream."""
        while True:
            try:
                message = self._answers.get(block=block)
            except queue.Empty:
                return
            if message is _LOST:
                self._answers.put(_LOST)  # every later call fails alike
                raise self._lost("died")
            for key, seq, flow, error in message[1]:
                self._in_flight -= 1
                if self._stream is not None and key == self._stream.key:
                    self._stream.arrived(seq, flow, error)
            block = False

    def _receive(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._answers.put(_LOST)
                return
            if message[0] == "bye":
                return
            self._answers.put(message)


class RemoteStream:
    """The pairs of one video sent to a flow server; flows written in order as they return."""

    def __init__(self, client: RemoteFlow, key: int, append: Callable[[np.ndarray], None]
                 ) -> None:
        self.key = key
        self._client, self._append = client, append
        self._sent = self._written = 0
        self._waiting: dict[int, np.ndarray] = {}
        self._error: str | None = None

    def add(self, first: np.ndarray, second: np.ndarray) -> None:
        """Send the pair ``first -> second``; write whatever flows are back."""
        self._client._send_pair(self.key, self._sent, first, second)
        self._sent += 1
        self._write_ready()

    def finish(self) -> None:
        """Wait for every flow of this video and write them."""
        while self._written < self._sent:
            self._write_ready()
            if self._written < self._sent:
                self._client._collect(block=True)
        self._write_ready()

    def arrived(self, seq: int, flow: Any, error: str | None) -> None:
        if error is not None:
            self._error = self._error or error
        else:
            self._waiting[seq] = flow

    def _write_ready(self) -> None:
        if self._error is not None:
            raise BackendError(self._error)
        while self._written in self._waiting:
            self._append(self._waiting.pop(self._written))
            self._written += 1
