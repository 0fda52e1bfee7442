"""Calls raced head-on from threads, for the tests of exactly-once claims and records."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def at_once(count: int, call: Callable[[int], object]) -> list:
    """``call(i)`` from ``count`` threads released together; returns each result or the exception raised."""
    barrier = threading.Barrier(count)

    def run(i: int):
        barrier.wait(timeout=30)
        try:
            return call(i)
        except Exception as exc:  # collected: the test says which outcomes are allowed
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
