"""Running an iterator a few items ahead in a background thread (decoding overlaps flow)."""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
_POLL_S = 0.1


class _Raised:
    """An exception of the producer thread, carried to the consumer in order."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def prefetch(items: Iterable[T], depth: int) -> Iterator[T]:
    """Yield ``items`` in order while a thread produces up to ``depth`` of them ahead.

    An exception raised by ``items`` is raised here at its place in the sequence. Leaving the
    loop early stops the thread and closes ``items`` (a generator's ``finally`` blocks run).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    buffer: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001  handed to the consumer
            put(_Raised(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="flowkit-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
