"""One model process per device, fed frame pairs across videos by every extraction worker.

When each worker loads its own model and batches only the pairs of its current video, a GPU
sits mostly idle (issue 13). Instead a run starts one *flow server* per device: a process
holding the one backend, reading ``("pair", video key, sequence number, first, second)``
requests from every worker's connection and computing them in batches of up to ``batch_size``
pairs drawn across videos and workers. A batch waits at most ``max_wait_s`` to fill after its
first pair arrived, so a lone video still progresses. The flows go back on the connection of
the worker that asked (:mod:`flowkit.extract.flow_client` puts them in order).

Bounded: the server reads a request only while it holds fewer than ``2 * batch_size`` pairs
(one batch computing, the next filling); a worker sending more blocks in its send, and each
worker keeps at most its own bound of pairs in flight. A batch that raises is computed again
video by video, so that a video the backend refuses fails alone and the others get their flows.
A worker that goes away has its waiting pairs dropped. Frames travel as pickled uint8 arrays
over a Unix socket (measured in bench/end_to_end.py).

Which pairs share a batch depends on timing. A backend whose result for a pair does not depend
on its batch (tvl1-torch, OpenCV's) stores the same bytes as without the server; RAFT's
convolutions round differently by batch size (about 1e-5 px on the CPU), so a stored uint8
value may differ from a run without the server, or from another run, by one level, rarely.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener, wait
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from flowkit.errors import FlowkitError, FlowServerError
from flowkit.flow import FlowBackend, get_backend
from flowkit.lifecycle import die_with_parent, ignore_interrupts

MAX_WAIT_S = 0.01    # how long a partial batch waits for more pairs once its first has arrived
START_POLL_S = 0.1   # how often the parent checks that a starting server still lives
_POLL_S = 0.05
_FAMILY = "AF_UNIX"

BackendFactory = Callable[..., FlowBackend]  # called as factory(device=...)


def backend_factory(flow: str, flow_params: Any) -> BackendFactory:
    """A picklable callable building the backend ``flow`` with ``flow_params`` on a device."""
    return functools.partial(get_backend, flow, flow_params)


def error_text(exc: BaseException) -> str:
    """One line for a backend's exception, as the per-video path records it."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, FlowkitError) else f"{type(exc).__name__}: {text}"


# -- the server process ---------------------------------------------------------------------------

@dataclasses.dataclass
class _Pair:
    conn: Connection
    key: int
    seq: int
    first: np.ndarray
    second: np.ndarray
    arrived: float


class _Server:
    """The loop of a flow server: a reader thread fills the pool, the main thread computes
    batches from it, a sender thread answers, an accepting thread adds workers."""

    def __init__(self, backend: FlowBackend, listener: Listener, batch_size: int,
                 max_wait_s: float) -> None:
        self._backend, self._listener = backend, listener
        self._batch_size, self._max_wait_s = batch_size, max_wait_s
        self._capacity = 2 * batch_size
        self._changed = threading.Condition()
        self._pool: list[_Pair] = []
        self._computing = 0
        self._conns: list[Connection] = []
        self._outbox: queue.Queue[tuple[Connection, Any | None]] = queue.Queue()
        self.stats = {"pairs": 0, "batches": 0, "max_batch": 0, "max_held": 0,
                      "mixed_batches": 0}

    def run(self) -> None:
        for target in (self._accept, self._read, self._send):
            threading.Thread(target=target, daemon=True).start()
        while True:
            batch = self._next_batch()
            results = self._compute(batch)
            answers: dict[int, tuple[Connection, list]] = {}
            for pair, flow, error in results:
                answers.setdefault(id(pair.conn), (pair.conn, []))[1].append(
                    (pair.key, pair.seq, flow, error))
            for conn, items in answers.values():
                self._outbox.put((conn, ("flows", items)))
            with self._changed:
                self._computing = 0
                self._changed.notify_all()

    def _held(self) -> int:
        return len(self._pool) + self._computing

    def _next_batch(self) -> list[_Pair]:
        """The oldest waiting pairs of one frame size, once ``batch_size`` wait or the oldest
        has waited ``max_wait_s``."""
        with self._changed:
            while True:
                if len(self._pool) >= self._batch_size:
                    break
                if self._pool:
                    left = self._pool[0].arrived + self._max_wait_s - time.monotonic()
                    if left <= 0:
                        break
                    self._changed.wait(left)
                else:
                    self._changed.wait()
            shape = self._pool[0].first.shape
            batch = [p for p in self._pool if p.first.shape == shape][:self._batch_size]
            taken = {id(p) for p in batch}
            self._pool = [p for p in self._pool if id(p) not in taken]
            self._computing = len(batch)
            self._changed.notify_all()
        stats = self.stats
        stats["pairs"] += len(batch)
        stats["batches"] += 1
        stats["max_batch"] = max(stats["max_batch"], len(batch))
        stats["mixed_batches"] += len({(id(p.conn), p.key) for p in batch}) > 1
        return batch

    def _compute(self, batch: list[_Pair]) -> list[tuple[_Pair, np.ndarray | None, str | None]]:
        try:
            return list(zip(batch, self._flows(batch), [None] * len(batch)))
        except Exception as exc:  # noqa: BLE001  isolate the video at fault, below
            videos: dict[tuple[int, int], list[_Pair]] = {}
            for pair in batch:
                videos.setdefault((id(pair.conn), pair.key), []).append(pair)
            if len(videos) == 1:
                return [(pair, None, error_text(exc)) for pair in batch]
        results = []
        for pairs in videos.values():
            try:
                results += list(zip(pairs, self._flows(pairs), [None] * len(pairs)))
            except Exception as exc:  # noqa: BLE001  this video fails; the others go on
                results += [(pair, None, error_text(exc)) for pair in pairs]
        return results

    def _flows(self, pairs: list[_Pair]) -> np.ndarray:
        return self._backend(np.stack([p.first for p in pairs]),
                             np.stack([p.second for p in pairs]))

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, multiprocessing.AuthenticationError):
                continue
            with self._changed:
                self._conns.append(conn)

    def _read(self) -> None:
        """Receive requests while fewer than 2 x batch_size pairs are held (back-pressure)."""
        while True:
            with self._changed:
                while self._held() >= self._capacity:
                    self._changed.wait()
                conns = list(self._conns)
            if not conns:
                time.sleep(_POLL_S)
                continue
            for conn in wait(conns, timeout=_POLL_S):
                with self._changed:
                    if self._held() >= self._capacity:
                        break
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    self._drop(conn)
                    continue
                self._handle(conn, message)

    def _handle(self, conn: Connection, message: tuple) -> None:
        kind = message[0]
        if kind == "pair":
            _, key, seq, first, second = message
            with self._changed:
                self._pool.append(_Pair(conn, key, seq, first, second, time.monotonic()))
                self.stats["max_held"] = max(self.stats["max_held"], self._held())
                self._changed.notify_all()
        elif kind == "stats":
            self._outbox.put((conn, ("stats", dict(self.stats))))
        elif kind == "bye":
            with self._changed:
                self._conns.remove(conn)
            self._outbox.put((conn, ("bye",)))

    def _drop(self, conn: Connection) -> None:
        """A worker went away: forget its connection and the pairs it left waiting."""
        with self._changed:
            if conn in self._conns:
                self._conns.remove(conn)
            self._pool = [p for p in self._pool if p.conn is not conn]
            self._changed.notify_all()
        self._outbox.put((conn, None))

    def _send(self) -> None:
        """Answer workers in order. Only this thread closes connections (after "bye", or on the
        ``None`` a dropped worker leaves in the outbox): closing one from the reader while an
        answer to it is being written breaks that write inside multiprocessing."""
        while True:
            conn, message = self._outbox.get()
            try:
                if message is not None:
                    conn.send(message)
                if message is None or message[0] == "bye":
                    conn.close()
            except (OSError, ValueError):  # that worker went away
                continue


def _serve(make_backend: BackendFactory, device: str, address: str, authkey: bytes,
           batch_size: int, max_wait_s: float, threads: int | None, parent_pid: int,
           ready: Connection) -> None:
    """The flow server process: build the backend, say ready (or why not), serve forever."""
    die_with_parent(parent_pid)
    ignore_interrupts()  # Ctrl-C stops the parent, which stops us
    try:
        backend = make_backend(device=device)
        if threads:
            _set_threads(threads)
        listener = Listener(address, family=_FAMILY, authkey=authkey)
    except Exception as exc:  # noqa: BLE001  told to the parent, which stops the run
        ready.send(("error", error_text(exc)))
        return
    ready.send(("ready",))
    ready.close()
    _Server(backend, listener, batch_size, max_wait_s).run()


def _set_threads(threads: int) -> None:
    """Use ``threads`` OpenCV and (when loaded) PyTorch CPU threads in this process."""
    import sys

    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


# -- the parent's side ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ServerAddresses:
    """Where each device's flow server listens; picklable, handed to every worker.

    Called with a device, it connects a :class:`flowkit.extract.flow_client.RemoteFlow` to that
    device's server: pass it as ``make_backend`` to :func:`flowkit.extract.shard.extract_shard`.
    """

    addresses: dict[str, str]
    authkey: bytes
    in_flight: int  # pairs a worker may have sent and not yet had back

    def __call__(self, device: str) -> FlowBackend:
        from flowkit.extract.flow_client import RemoteFlow

        return RemoteFlow(self.addresses[device], self.authkey, device, self.in_flight)

    def stats(self, device: str) -> dict[str, int]:
        """The counters of ``device``'s server: pairs, batches, max_batch, max_held (the most
        pairs it held at once), mixed_batches (batches with pairs of several videos)."""
        conn = Client(self.addresses[device], family=_FAMILY, authkey=self.authkey)
        with conn:
            conn.send(("stats",))
            return conn.recv()[1]


@contextlib.contextmanager
def flow_servers(make_backend: BackendFactory, devices: Sequence[str], batch_size: int, *,
                 max_wait_s: float = MAX_WAIT_S, threads: int | None = None
                 ) -> Iterator[ServerAddresses]:
    """Start one flow server per device (each building ``make_backend(device=...)``), yield
    their addresses once all are ready, and stop them on leaving.

    Raises:
        FlowServerError: a server could not build its backend, or died while starting.
    """
    context = multiprocessing.get_context("spawn")  # no CUDA state forked, no parent threads
    folder = tempfile.mkdtemp(prefix="flowkit-servers-")
    authkey = os.urandom(16)
    processes: list[Any] = []
    try:
        addresses = {}
        for index, device in enumerate(dict.fromkeys(devices)):
            address = os.path.join(folder, f"{index}.sock")
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_serve, name=f"flowkit-flow-server-{device}", daemon=True,
                args=(make_backend, device, address, authkey, batch_size, max_wait_s, threads,
                      os.getpid(), send))
            process.start()
            send.close()
            processes.append((device, process, receive))
            addresses[device] = address
        for device, process, receive in processes:
            _wait_ready(device, process, receive)
        yield ServerAddresses(addresses, authkey, in_flight=2 * batch_size)
    finally:
        for _, process, _ in processes:
            process.terminate()
        for _, process, _ in processes:
            process.join()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(device: str, process: Any, receive: Connection) -> None:
    while not receive.poll(START_POLL_S):
        if not process.is_alive():
            raise FlowServerError(f"the flow process for {device} died while starting "
                                  f"(exit code {process.exitcode})")
    try:
        message = receive.recv()
    except EOFError:
        raise FlowServerError(f"the flow process for {device} died while starting") from None
    if message[0] == "error":
        raise FlowServerError(f"the flow process for {device} could not start: {message[1]}")
