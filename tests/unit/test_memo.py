"""core/memo.py: a value asked for by many threads at once is made once; failures are not kept; a bound holds."""

from __future__ import annotations

import threading
import time

import pytest

from jobgraph.adapters import clients
from jobgraph.core import airports
from jobgraph.core.memo import SharedCache, shared_cache
from tests.concurrency import at_once


class Maker:
    """Counts its calls; each takes a while, so callers released together overlap."""

    def __init__(self, fail_first: int = 0, meet: int = 1):
        self.calls: list[tuple] = []
        self.fail_first = fail_first
        self.meet = meet  # a make waits (up to 5 s) until this many are in progress together
        self._changed = threading.Condition()
        self.making = self.most_making = 0  # makes in progress now, and at most

    def __call__(self, *args):
        with self._changed:
            self.calls.append(args)
            failing = len(self.calls) <= self.fail_first
            self.making += 1
            self.most_making = max(self.most_making, self.making)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.most_making >= self.meet, timeout=5)
        time.sleep(0.05)
        with self._changed:
            self.making -= 1
        if failing:
            raise RuntimeError(f"cannot make {args}")
        return {"made": args}


def test_threads_asking_together_get_one_value_made_once():
    maker = Maker()
    cache = SharedCache(maker)
    got = at_once(10, lambda i: cache("dynamodb"))
    assert maker.calls == [("dynamodb",)]
    assert all(value is got[0] for value in got) and got[0] == {"made": ("dynamodb",)}


def test_different_keys_are_made_side_by_side_each_once():
    maker = Maker(meet=4)
    cache = SharedCache(maker)
    got = at_once(8, lambda i: cache("run", i % 4))
    assert sorted(maker.calls) == [("run", k) for k in range(4)]
    assert [value["made"] for value in got] == [("run", i % 4) for i in range(8)]
    # no lock is held while a value is made: the four were made at the same time (each waited for the others)
    assert maker.most_making == 4


def test_a_failure_reaches_the_callers_waiting_for_it_and_is_not_kept():
    maker = Maker(fail_first=1)
    cache = SharedCache(maker)
    got = at_once(5, lambda i: cache("s3"))
    assert len(maker.calls) == 1
    assert all(isinstance(outcome, RuntimeError) and "cannot make ('s3',)" in str(outcome) for outcome in got)
    assert cache("s3") == {"made": ("s3",)}  # asked again: made again, and kept this time
    assert cache("s3") == {"made": ("s3",)} and len(maker.calls) == 2


def test_the_least_recently_used_value_goes_first_beyond_maxsize():
    maker = Maker()
    cache = SharedCache(maker, maxsize=2)
    for key in ("a", "b", "a", "c", "a", "b"):
        cache(key)
    # "b" went when "c" came ("a" had been used since); "a" stayed throughout
    assert maker.calls == [("a",), ("b",), ("c",), ("b",)]


def test_cache_clear_forgets_and_the_decorator_keeps_the_name():
    @shared_cache()
    def table() -> list[int]:
        """The doc."""
        made.append(1)
        return [1, 2]

    made: list[int] = []
    assert table() is table() and made == [1]
    table.cache_clear()
    assert table() == [1, 2] and made == [1, 1]
    assert (table.__name__, table.__doc__) == ("table", "The doc.")


@pytest.fixture
def fresh_clients():
    clients.default_client.cache_clear()
    yield
    clients.default_client.cache_clear()


def test_group_threads_on_a_cold_start_share_one_boto3_client_per_service(fresh_clients, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    got = at_once(10, lambda i: clients.default_client(("dynamodb", "s3")[i % 2]))
    dynamodb, s3 = got[0], got[1]
    assert dynamodb.meta.service_model.service_name == "dynamodb" and s3.meta.service_model.service_name == "s3"
    assert all(client is (dynamodb, s3)[i % 2] for i, client in enumerate(got))


def test_the_airport_table_is_loaded_once_by_threads_asking_together(monkeypatch):
    import airportsdata

    loads = []
    load = airportsdata.load

    def counted(code_type):
        loads.append(code_type)
        return load(code_type)

    monkeypatch.setattr(airportsdata, "load", counted)
    airports._iata_table.cache_clear()
    try:
        assert at_once(6, lambda i: airports.is_known_iata("DUB")) == [True] * 6
        assert loads == ["IATA"]
    finally:
        airports._iata_table.cache_clear()
