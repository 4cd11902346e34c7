"""read_ahead: same items in the same order, errors where they happened, and a prompt stop."""

from __future__ import annotations

import threading
import time

import pytest

from smec_compress.data.read_ahead import read_ahead


def test_yields_every_item_in_order():
    assert list(read_ahead(range(1000), depth=3)) == list(range(1000))
    assert list(read_ahead([])) == []


def test_items_are_produced_in_another_thread_ahead_of_the_consumer():
    produced: list[int] = []
    threads = set()

    def source():
        for i in range(5):
            threads.add(threading.current_thread().name)
            produced.append(i)
            yield i

    items = read_ahead(source(), depth=2)
    assert next(items) == 0
    deadline = time.monotonic() + 10
    while len(produced) < 4 and time.monotonic() < deadline:  # the producer runs on while we hold item 0
        time.sleep(0.01)
    time.sleep(0.1)
    assert produced == [0, 1, 2, 3]  # item 0 taken, two queued, one waiting for room: no further
    assert list(items) == [1, 2, 3, 4]
    assert threads == {"smec-read-ahead"}


def test_an_error_while_producing_is_raised_after_the_items_before_it():
    def source():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer_and_closes_the_source():
    state = {"produced": 0, "closed": False}

    def source():
        try:
            for i in range(10_000):
                state["produced"] += 1
                yield i
        finally:
            state["closed"] = True

    for item in read_ahead(source(), depth=2):
        if item == 3:
            break
    assert state["closed"]
    assert state["produced"] <= 3 + 1 + 2 + 1  # consumed, the one in hand, the queue, the one being offered
    assert not any(t.name == "smec-read-ahead" for t in threading.enumerate())


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        list(read_ahead(range(3), depth=0))
