"""The local cloud's service latency profile (localcloud/latency.py): drawn per service and action, applied to
the workload's requests only, and outside the server's one-request-at-a-time lock."""

from __future__ import annotations

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobgraph.core.errors import ConfigurationError
from jobgraph.localcloud import latency as latency_module
from jobgraph.localcloud.latency import DEFAULT_PROFILE, Latency, load_profile, parse_profile
from jobgraph.localcloud.server import LocalEndpoint

FIXED_S = 0.4


def fixed(ms: float) -> dict:
    return {"p50_ms": ms, "p99_ms": ms}


def test_draws_have_the_profiles_median_and_99th_percentile():
    latency = Latency(20, 80)
    rng = random.Random(3)
    draws = sorted(latency.draw_ms(rng) for _ in range(20000))
    assert draws[10000] == pytest.approx(20, rel=0.05)
    assert draws[19800] == pytest.approx(80, rel=0.1)


def test_the_default_profile_says_it_is_assumptions_and_covers_the_data_path():
    profile = load_profile("default")
    assert profile.source == "assumptions" and "assumptions" in profile.label
    for service, action in (("s3", "GetObject"), ("s3", "PutObject"), ("dynamodb", "UpdateItem"),
                            ("sqs", "SendMessageBatch"), ("sqs", "ReceiveMessage"), ("logs", "PutLogEvents")):  # fmt: skip
        assert profile.latency(service, action) is not None, (service, action)
    assert DEFAULT_PROFILE["services"]["s3"]["PutObject"] == {"p50_ms": 30, "p99_ms": 120}


def test_a_file_profile_overrides_and_bad_ones_are_named(tmp_path):
    good = tmp_path / "measured.json"
    good.write_text(json.dumps({"label": "measured", "source": "measured", "services": {"s3": {"*": fixed(7)}}}))
    profile = load_profile(good)
    assert profile.latency("s3", "GetObject") == Latency(7, 7) and profile.latency("dynamodb", "GetItem") is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"services": {"s3": {"GetObject": {"p50_ms": 50, "p99_ms": 10}}}}))
    with pytest.raises(ConfigurationError, match=r"services\.s3\.GetObject: need 0 <= p50_ms <= p99_ms"):
        load_profile(bad)
    with pytest.raises(ConfigurationError, match="not a readable JSON file"):
        load_profile(tmp_path / "missing.json")
    with pytest.raises(ConfigurationError, match=r"services\.sqs: expected"):
        parse_profile({"services": {"sqs": 5}})


class _SleepLog:
    """latency.py's ``time`` with each sleep's start and end recorded: the server's waits, seen from inside."""

    def __init__(self):
        self.slept: list[tuple[float, float]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        began = time.monotonic()
        time.sleep(seconds)
        with self._lock:
            self.slept.append((began, time.monotonic()))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    level = peak = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


def test_requests_in_flight_together_wait_together_and_the_harness_does_not_wait(monkeypatch):
    # Checked from the server's side, not by wall-clock totals: a stall of the (shared, noisy) machine
    # can delay a request's arrival, but cannot make two waits overlap if the lock were held while waiting.
    log = _SleepLog()
    monkeypatch.setattr(latency_module, "time", log)
    profile = parse_profile({"services": {"s3": {"*": fixed(FIXED_S * 1000)}}})
    with LocalEndpoint(latency=profile) as endpoint:
        harness = endpoint.client("s3")  # the run harness's own client: not delayed
        harness.create_bucket(Bucket="latency-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        assert log.slept == [] and profile.summary()["by_service"] == {}
        workload = endpoint.client("s3", billed=True)
        together = threading.Barrier(4)

        def put(i: int) -> float:
            together.wait(timeout=30)
            began = time.perf_counter()
            workload.put_object(Bucket="latency-test", Key=f"k{i}", Body=b"x")
            return time.perf_counter() - began

        with ThreadPoolExecutor(max_workers=4) as pool:
            each = list(pool.map(put, range(4)))
        assert harness.list_objects_v2(Bucket="latency-test")["KeyCount"] == 4
    assert min(each) >= FIXED_S  # every request waited its service time...
    # none of them had used its service time up queueing for the lock (a wait under the lock would have)...
    assert len(log.slept) == 4, log.slept
    # ...outside the one-request-at-a-time lock: inside it, no two waits could ever overlap
    assert most_at_once(log.slept) >= 2, log.slept
    assert profile.summary()["by_service"]["s3"]["requests"] == 4


def test_the_documented_example_profile_loads(tmp_path):
    from tests.lambda_support import ROOT

    readme = (ROOT / "docs" / "cli.md").read_text()  # moved out of README with the command line
    section = readme[readme.index("**Service latency locally.**") :]
    example = section[section.index("```json") + len("```json") : section.index("```", section.index("```json") + 7)]
    path = tmp_path / "measured.json"
    path.write_text(example)
    profile = load_profile(path)
    assert profile.source == "measured" and profile.latency("s3", "GetObject") == Latency(18, 70)
    assert profile.latency("states", "StartExecution") == Latency(10, 40)  # the "*" service
