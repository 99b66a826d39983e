"""prefetch: order, errors at their place, early exit stops the producer and closes it."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from flowkit.extract.prefetch import prefetch


def test_yields_every_item_in_order() -> None:
    """Items come out in the producer's order, whatever the depth."""
    for depth in (1, 3, 100):
        assert list(prefetch(iter(range(50)), depth)) == list(range(50))


def test_producer_runs_ahead_by_at_most_depth() -> None:
    """While the consumer holds the first item, the thread produces at most depth more
    (one more may be decoded and waiting to be put)."""
    produced: list[int] = []

    def numbers() -> Iterator[int]:
        for number in range(100):
            produced.append(number)
            yield number

    items = prefetch(numbers(), depth=4)
    assert next(items) == 0
    time.sleep(0.3)
    assert 2 <= len(produced) <= 1 + 4 + 1
    items.close()


def test_an_error_is_raised_after_the_items_before_it() -> None:
    """An exception of the producer reaches the consumer after the items produced before it."""
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("corrupt frame 2")

    seen = []
    with pytest.raises(ValueError, match="corrupt frame 2"):
        for item in prefetch(failing(), depth=8):
            seen.append(item)
    assert seen == [1, 2]


def test_leaving_early_stops_the_thread_and_closes_the_generator() -> None:
    """Breaking out of the loop runs the generator's finally block and ends the thread."""
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = prefetch(endless(), depth=2)
    for item in items:
        if item == 5:
            break
    items.close()
    assert closed.wait(2.0)
    assert threading.active_count() == before


def test_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        list(prefetch(iter([1]), depth=0))
