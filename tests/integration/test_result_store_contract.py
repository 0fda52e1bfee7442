"""One contract suite for the storage port, run against both implementations (GUIDE §8).

S3 runs under moto's ``mock_aws``; the local-disk twin must behave identically, key for key.
"""

from __future__ import annotations

import threading

import boto3
import numpy as np
import pytest
from moto import mock_aws

from jobgraph.adapters.local_disk import LocalDiskBlobStore
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core import parquet_codec
from jobgraph.core.delay_model import RouteState
from jobgraph.core.errors import ObjectNotFoundError, StoreError
from jobgraph.core.models import Sequence
from jobgraph.core.results import READS_IN_FLIGHT, ResultStore
from jobgraph.core.run import RunManifest


@pytest.fixture(params=["s3", "s3-prefixed", "local"])
def blobs(request, tmp_path):
    if request.param == "local":
        yield LocalDiskBlobStore(tmp_path / "results")
        return
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(Bucket="results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        yield S3BlobStore("results", prefix="team/a" if request.param == "s3-prefixed" else "", client=client)


@pytest.fixture
def store(blobs):
    return ResultStore(blobs)


def test_put_get_exists_list(blobs):
    assert not blobs.exists("r1/merged_percentiles.json")
    blobs.put("r1/delays/b.parquet", b"bb")
    blobs.put("r1/delays/a.parquet", b"aa")
    blobs.put("r2/delays/a.parquet", b"zz")
    assert blobs.get("r1/delays/a.parquet") == b"aa"
    assert blobs.exists("r1/delays/a.parquet")
    assert blobs.list("r1/") == ["r1/delays/a.parquet", "r1/delays/b.parquet"]
    assert blobs.list("nothing/") == []


def test_overwrite_replaces_whole_object(blobs):
    blobs.put("k/x.json", b"first version, longer")
    blobs.put("k/x.json", b"second")
    assert blobs.get("k/x.json") == b"second"


def test_missing_object_raises_domain_error(blobs):
    with pytest.raises(ObjectNotFoundError, match=r"r9/merged_percentiles\.json"):
        blobs.get("r9/merged_percentiles.json")


def test_result_layout_keys(store, blobs):
    data = parquet_codec.encode_delays(3, 1, np.array([1.0, 2.0]), np.array([0.5, 2.5]))
    assert store.put_delays("run", "run-s3-r1", data) == "run/delays/run-s3-r1.parquet"
    assert store.put_percentiles("run", 3, {"sequence_id": 3}) == "run/percentiles/3.json"
    assert store.put_merged("run", {"run_id": "run"}) == "run/merged_percentiles.json"
    assert blobs.list("run/") == [
        "run/delays/run-s3-r1.parquet",
        "run/merged_percentiles.json",
        "run/percentiles/3.json",
    ]
    frame = parquet_codec.decode_delays(store.get_delays("run", "run-s3-r1"))
    assert list(frame.columns) == [
        "sequence_id",
        "route_index",
        "scenario_id",
        "departure_delay_min",
        "arrival_delay_min",
    ]
    assert [str(t) for t in frame.dtypes] == ["int64", "int64", "int64", "float64", "float64"]
    assert frame["scenario_id"].tolist() == [0, 1]
    assert store.get_percentiles("run", 3) == {"sequence_id": 3}
    assert store.get_merged("run") == {"run_id": "run"}
    assert store.has_merged("run")


def test_state_round_trip_is_exact(store):
    state = RouteState(
        route_index=2,
        scheduled_arrival_min=1234.5,
        arrival_delay=np.random.default_rng(0).normal(size=100),
        total_departure_delay=np.random.default_rng(1).exponential(size=100),
    )
    store.put_state("run", 1, 2, parquet_codec.encode_state(state))
    back = parquet_codec.decode_state(store.get_state("run", 1, 2))
    assert back.route_index == 2 and back.scheduled_arrival_min == 1234.5
    assert np.array_equal(back.arrival_delay, state.arrival_delay)
    assert np.array_equal(back.total_departure_delay, state.total_departure_delay)
    with pytest.raises(ObjectNotFoundError):
        store.get_state("run", 1, 3)


def test_manifest_and_sequences(store, seed_000_sequence):
    manifest = RunManifest(run_id="run", scenarios=10, seed=1, sequence_ids=[0], total_route_jobs=2)
    store.put_manifest(manifest)
    sequence = Sequence.model_validate(seed_000_sequence)
    assert store.get_manifest("run") == manifest
    # one object per block of 100 sequence ids, each sequence found from its id alone
    ids = [250, 0, 99, 100]
    keys = store.put_sequences("run", [sequence.model_copy(update={"sequence_id": i}) for i in ids])
    assert keys == [f"_jobgraph/runs/run/sequences/{a}-{a + 99}.json" for a in (0, 100, 200)]
    assert sorted(store.blobs.list("_jobgraph/runs/run/sequences/")) == sorted(keys)
    for i in ids:
        assert store.get_sequence("run", i).sequence_id == i
        assert store.get_sequence("run", i).routes[1].destination_iata == "DME"
    assert sorted(store.get_sequences("run", 0)) == [0, 99]
    with pytest.raises(ObjectNotFoundError, match="run run stored no sequence 5"):
        store.get_sequence("run", 5)  # its block is stored, it is not in it
    with pytest.raises(ObjectNotFoundError):
        store.get_sequence("run", 300)  # its block is not stored


def test_local_keys_cannot_escape_the_root(tmp_path):
    blobs = LocalDiskBlobStore(tmp_path)
    for key in ("../x", "/etc/passwd", "a//b", "a/./b"):
        with pytest.raises(StoreError, match="invalid key"):
            blobs.put(key, b"")


class MeetingReads:
    """A BlobStore wrapper whose GETs wait (up to 5 s) until ``meet`` of them are in flight together."""

    def __init__(self, blobs, meet: int):
        self.blobs, self.meet = blobs, meet
        self._changed = threading.Condition()
        self.in_flight = self.most_in_flight = 0

    def __getattr__(self, name):
        return getattr(self.blobs, name)

    def get(self, key: str) -> bytes:
        with self._changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._changed.notify_all()
            if not self._changed.wait_for(lambda: self.most_in_flight >= self.meet, timeout=5):
                self.meet = 0  # they never met: the reads go on without waiting (and the test fails)
        try:
            return self.blobs.get(key)
        finally:
            with self._changed:
                self.in_flight -= 1


def test_percentiles_of_many_sequences_are_read_together_in_their_order(blobs):
    """MERGE's read: the documents in the manifest's order, the sequences without one named, the reads in flight
    together (READS_IN_FLIGHT at most)."""
    store = ResultStore(blobs)
    ids = list(range(3, 40))
    for sequence_id in ids:
        if sequence_id % 7:
            store.put_percentiles("run", sequence_id, {"sequence_id": sequence_id})
    meeting = MeetingReads(blobs, meet=READS_IN_FLIGHT)
    documents, missing = ResultStore(meeting).percentiles_of("run", reversed(ids))
    assert [d["sequence_id"] for d in documents] == [i for i in reversed(ids) if i % 7]
    assert missing == [35, 28, 21, 14, 7]
    assert meeting.most_in_flight == READS_IN_FLIGHT
    assert store.percentiles_of("run", []) == ([], []) and store.percentiles_of("run", [7]) == ([], [7])
