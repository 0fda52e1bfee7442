"""services/records.FifoBatch: a batch's message groups at once, each in order; a failure fails only its group;
failed records back off exponentially, a group together."""

from __future__ import annotations

import itertools
import random
import threading

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel

from jobgraph.core.retry import backoff_s
from jobgraph.services import records
from jobgraph.services.records import FifoBatch, RetryBackoff, message_groups
from tests.fifo_records import Recorder, interleaved, record


def test_groups_run_at_once_and_each_group_in_order():
    handler = Recorder(barrier=threading.Barrier(3))
    batch = FifoBatch(SqsRecordModel, max_concurrency=10)
    assert batch.process({"Records": interleaved(3, 3)}, None, handler) == {"batchItemFailures": []}
    assert handler.peak == 3
    for group in ("g0", "g1", "g2"):
        assert [m for m in handler.seen if m.startswith(group)] == [f"{group}-{i}" for i in range(3)]


def test_concurrency_is_bounded():
    handler = Recorder()
    FifoBatch(SqsRecordModel, max_concurrency=2).process({"Records": interleaved(6, 2)}, None, handler)
    assert handler.peak <= 2 and len(handler.seen) == 12


def test_the_bound_holds_when_every_group_is_ready_at_once(monkeypatch):
    """Six groups, bound 2, and no group may finish before all six are handed to the pool: a pool wider than
    the bound would then start a thread for each group. The pool's threads are counted by the initializer the
    executor runs once in each thread it starts."""
    handed_over = threading.Event()
    started: list[str] = []

    class CountingPool(records.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, initializer=lambda: started.append(threading.current_thread().name), **kwargs)

        def map(self, fn, *iterables, **kwargs):
            results = super().map(fn, *iterables, **kwargs)  # every group submitted
            handed_over.set()
            return results

    monkeypatch.setattr(records, "ThreadPoolExecutor", CountingPool)
    recorder = Recorder()
    gate_opened: list[bool] = []

    def handler(record):
        if record.messageId.endswith("-0"):
            gate_opened.append(handed_over.wait(timeout=10))
        return recorder(record)

    FifoBatch(SqsRecordModel, max_concurrency=2).process({"Records": interleaved(6, 2)}, None, handler)
    assert gate_opened == [True] * 6
    assert len(started) == 2 and recorder.peak <= 2
    for group in (f"g{g}" for g in range(6)):
        assert [m for m in recorder.seen if m.startswith(group)] == [f"{group}-0", f"{group}-1"]


def test_one_at_a_time_when_the_bound_is_one():
    handler = Recorder()
    FifoBatch(SqsRecordModel, max_concurrency=1).process({"Records": interleaved(4, 2)}, None, handler)
    assert handler.peak == 1


def test_a_failure_fails_only_the_rest_of_its_group():
    handler = Recorder(fail={"g1-1"})
    response = FifoBatch(SqsRecordModel, max_concurrency=10).process({"Records": interleaved(3, 4)}, None, handler)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["g1-1", "g1-2", "g1-3"]
    assert "g1-2" not in handler.seen and {f"g0-{i}" for i in range(4)} <= set(handler.seen)


def test_a_batch_whose_every_record_failed_fails_the_invocation():
    handler = Recorder(fail={"g0-0", "g1-0"})
    with pytest.raises(BatchProcessingError):
        FifoBatch(SqsRecordModel, max_concurrency=10).process({"Records": interleaved(2, 2)}, None, handler)


def test_failed_records_are_released_then_backed_off_a_group_together():
    calls = []

    class Spy(RetryBackoff):
        def apply(self, records):
            calls.append(("backoff", [r["messageId"] for r in records]))

    released = []
    batch = FifoBatch(SqsRecordModel, max_concurrency=4, backoff=Spy(1, 300))
    handler = Recorder(fail={"g0-1"})
    batch.process({"Records": interleaved(2, 3)}, None, handler, release=lambda ids: released.append(sorted(ids)))
    assert released == [["g0-1", "g0-2"]]
    assert calls == [("backoff", ["g0-1", "g0-2"])]


def test_a_groups_records_share_the_delay_of_its_first_failed_record():
    policy = RetryBackoff(2, 300, rng=random.Random(1))
    records = [record("a", 0, receives=3), record("a", 1, receives=1), record("b", 0, receives=1)]
    delays = {r["messageId"]: seconds for r, seconds in policy.delays(records)}
    assert delays["a-0"] == delays["a-1"] and 6 <= delays["a-0"] <= 8  # 2 x 2^(3-1), up to a quarter less
    assert 2 <= delays["b-0"] <= 2  # first receive: the base (ceil of 1.5..2)


def test_backoff_grows_is_capped_and_can_be_turned_off():
    rng = random.Random(7)
    waits = [backoff_s(attempt, 1, 300, rng) for attempt in range(1, 9)]
    assert waits[:3] == [1, 2, waits[2]] and 3 <= waits[2] <= 4
    assert all(b > a for a, b in itertools.pairwise(waits))
    assert backoff_s(30, 5, 300, rng) <= 300 and backoff_s(30, 5, 300, rng) >= 225
    assert backoff_s(3, 0, 300) == 0


def test_records_without_a_group_are_groups_of_their_own():
    plain = [record("x", 0), record("x", 1)]
    for r in plain:
        del r["attributes"]["MessageGroupId"]
    assert [len(g) for g in message_groups(plain)] == [1, 1]
