"""A memo the threads of one process share: each value made once, even when they ask for it at the same time.

``functools.cache`` and ``lru_cache`` make a missing value in every caller that asks before the first has
stored it. A Processor or Scheduler runs a batch's message groups in threads (GROUP_CONCURRENCY), so on a
cold start ten threads asked at once for the same boto3 client (ten clients made, on boto3's default
session, which is not meant to be shared by threads) and for the same block of a run's sequences (ten
GETs of one S3 object). ``shared_cache`` makes a missing value once: the first caller makes it, the others
wait for it and get it. What it raises is kept by nobody: the caller that made it and those waiting on it
get the exception, and the next call tries again.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future


class SharedCache[R]:
    """``function(*args)`` memoised (positional, hashable arguments), at most ``maxsize`` values (the least
    recently used go first; None: no bound); ``cache_clear()`` forgets them, as functools' caches do."""

    def __init__(self, function: Callable[..., R], maxsize: int | None = None):
        self._function = function
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._values: OrderedDict[tuple[Hashable, ...], R] = OrderedDict()
        self._making: dict[tuple[Hashable, ...], Future[R]] = {}
        functools.update_wrapper(self, function)

    def __call__(self, *args: Hashable) -> R:
        with self._lock:
            if args in self._values:
                self._values.move_to_end(args)
                return self._values[args]
            making = self._making.get(args)
            if making is None:
                making = self._making[args] = Future()
                mine = True
            else:
                mine = False
        if not mine:
            return making.result()  # made by the caller that asked first
        try:
            value = self._function(*args)
        except BaseException as exc:
            with self._lock:
                del self._making[args]
            making.set_exception(exc)
            raise
        with self._lock:
            del self._making[args]
            self._values[args] = value
            if self._maxsize is not None and len(self._values) > self._maxsize:
                self._values.popitem(last=False)
        making.set_result(value)
        return value

    def cache_clear(self) -> None:
        with self._lock:
            self._values.clear()


def shared_cache[R](maxsize: int | None = None) -> Callable[[Callable[..., R]], SharedCache[R]]:
    """Decorator: ``@shared_cache()`` (no bound) or ``@shared_cache(maxsize=64)``."""

    def decorate(function: Callable[..., R]) -> SharedCache[R]:
        return SharedCache(function, maxsize)

    return decorate
