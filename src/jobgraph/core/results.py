"""The result layout of GUIDE §5 on any BlobStore.

    <root>/<run_id>/delays/<job_id>.parquet          one per route job
    <root>/<run_id>/percentiles/<sequence_id>.json   one per sequence (AGGREGATION)
    <root>/<run_id>/merged_percentiles.json          one per run (MERGE)

Working data lives beside it under ``_jobgraph/`` (run ids cannot start with "_"):

    _jobgraph/runs/<run_id>/manifest.json            the run: scenarios, seed, sequence ids
    _jobgraph/runs/<run_id>/sequences/<a>-<b>.json   the run's input sequences whose ids are a..b (100 ids a file)
    _jobgraph/runs/<run_id>/state/<sequence_id>/route_<r>.parquet   state after route r (write-once per r)
    _jobgraph/requests/<run_id>.json                 scenario 3: a run request too large for an execution input
    _jobgraph/runs/<run_id>/plan.json                scenario 3: the jobs of each sequence (the Map's ItemReader)

Route state is written once per route index and never updated in place, so a redelivered route job
reads the same input and rewrites identical outputs: retries and duplicates cannot double-apply.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import TypeAdapter

from jobgraph.core.errors import ObjectNotFoundError
from jobgraph.core.models import Sequence
from jobgraph.core.ports import BlobStore
from jobgraph.core.run import RunManifest

JSON = "application/json"
PARQUET = "application/vnd.apache.parquet"
_SEQUENCE_BLOCK = TypeAdapter(list[Sequence])


def delays_key(run_id: str, job_id: str) -> str:
    return f"{run_id}/delays/{job_id}.parquet"


def synthetic_key(run_id: str, job_id: str) -> str:
    return f"{run_id}/synthetic/{job_id}.bin"


def percentiles_prefix(run_id: str) -> str:
    return f"{run_id}/percentiles/"


def percentiles_key(run_id: str, sequence_id: int) -> str:
    return f"{percentiles_prefix(run_id)}{sequence_id}.json"


def sequence_of_percentiles_key(key: str) -> str:
    """The sequence id (as written) that a percentiles_key names."""
    return key.rsplit("/", 1)[1].removesuffix(".json")


def merged_key(run_id: str) -> str:
    return f"{run_id}/merged_percentiles.json"


def manifest_key(run_id: str) -> str:
    return f"_jobgraph/runs/{run_id}/manifest.json"


# A run's sequences are stored a block of ids to an object: StartRun writes one object per 100 sequence ids
# (not one per sequence: an S3 PUT costs as much as 12 GETs), and a Scheduler reads a block once and keeps
# it for every route of those sequences. The block of a sequence follows from its id alone.
SEQUENCE_IDS_PER_OBJECT = 100


def sequence_block(sequence_id: int) -> int:
    return sequence_id // SEQUENCE_IDS_PER_OBJECT


def find_sequence(blocks: Callable[[str, int], dict[int, Sequence]], run_id: str, sequence_id: int) -> Sequence:
    """A sequence from its block, as ``blocks`` (ResultStore.get_sequences, or a cache of it) gives them."""
    found = blocks(run_id, sequence_block(sequence_id)).get(sequence_id)
    if found is None:
        raise ObjectNotFoundError(f"run {run_id} stored no sequence {sequence_id}")
    return found


def sequences_key(run_id: str, block: int) -> str:
    """The object holding the run's sequences whose ids are in ``block`` (sequence_block)."""
    first = block * SEQUENCE_IDS_PER_OBJECT
    return f"_jobgraph/runs/{run_id}/sequences/{first}-{first + SEQUENCE_IDS_PER_OBJECT - 1}.json"


def request_key(run_id: str) -> str:
    return f"_jobgraph/requests/{run_id}.json"


def plan_key(run_id: str) -> str:
    return f"_jobgraph/runs/{run_id}/plan.json"


def route_state_key(run_id: str, sequence_id: int, route_index: int) -> str:
    return f"_jobgraph/runs/{run_id}/state/{sequence_id}/route_{route_index}.parquet"


def dump_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode()


READS_IN_FLIGHT = 10  # objects read at once by one call (botocore keeps 10 connections per client by default)


class ResultStore:
    """Typed access to the layout; encoding of numpy state/delays is delegated to parquet_codec."""

    def __init__(self, blobs: BlobStore):
        self.blobs = blobs

    # --- results ------------------------------------------------------------------------------
    def put_delays(self, run_id: str, job_id: str, data: bytes) -> str:
        key = delays_key(run_id, job_id)
        self.blobs.put(key, data, PARQUET)
        return key

    def get_delays(self, run_id: str, job_id: str) -> bytes:
        return self.blobs.get(delays_key(run_id, job_id))

    def get_input(self, key: str) -> bytes:
        """A producer's input object (a SYNTHETIC job's ``input_key``), relative to the store's root."""
        return self.blobs.get(key)

    def put_synthetic(self, run_id: str, job_id: str, data: bytes) -> str:
        key = synthetic_key(run_id, job_id)
        self.blobs.put(key, data)
        return key

    def put_percentiles(self, run_id: str, sequence_id: int, document: dict[str, Any]) -> str:
        key = percentiles_key(run_id, sequence_id)
        self.blobs.put(key, dump_json(document), JSON)
        return key

    def get_percentiles(self, run_id: str, sequence_id: int) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.blobs.get(percentiles_key(run_id, sequence_id)))
        return document

    def percentiles_of(self, run_id: str, sequence_ids: Iterable[int]) -> tuple[list[dict[str, Any]], list[int]]:
        """The percentiles documents of ``sequence_ids`` in their order, READS_IN_FLIGHT read at a time, and
        the ids of the sequences that have none yet. (MERGE read them one after another: 50 objects took a
        second of S3 latency, 10,000 would take minutes.)"""
        ids = list(sequence_ids)

        def read(sequence_id: int) -> dict[str, Any] | None:
            try:
                return self.get_percentiles(run_id, sequence_id)
            except ObjectNotFoundError:
                return None

        if len(ids) < 2:
            found = [read(sequence_id) for sequence_id in ids]
        else:
            with ThreadPoolExecutor(min(READS_IN_FLIGHT, len(ids)), thread_name_prefix="percentiles") as pool:
                found = list(pool.map(read, ids))
        documents = [document for document in found if document is not None]
        return documents, [sequence_id for sequence_id, document in zip(ids, found, strict=True) if document is None]

    def put_merged(self, run_id: str, document: dict[str, Any]) -> str:
        key = merged_key(run_id)
        self.blobs.put(key, dump_json(document), JSON)
        return key

    def get_merged(self, run_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.blobs.get(merged_key(run_id)))
        return document

    def has_merged(self, run_id: str) -> bool:
        return self.blobs.exists(merged_key(run_id))

    # --- working data -------------------------------------------------------------------------
    def put_manifest(self, manifest: RunManifest) -> str:
        key = manifest_key(manifest.run_id)
        self.blobs.put(key, manifest.model_dump_json(indent=2).encode(), JSON)
        return key

    def get_manifest(self, run_id: str) -> RunManifest:
        return RunManifest.model_validate_json(self.blobs.get(manifest_key(run_id)))

    def put_sequences(self, run_id: str, sequences: Iterable[Sequence]) -> list[str]:
        """Store a run's sequences, one object per block of ids (sequences_key); returns the keys written."""
        blocks: dict[int, list[Sequence]] = {}
        for sequence in sequences:
            blocks.setdefault(sequence_block(sequence.sequence_id), []).append(sequence)
        keys = []
        for block, members in sorted(blocks.items()):
            keys.append(sequences_key(run_id, block))
            self.blobs.put(keys[-1], _SEQUENCE_BLOCK.dump_json(members), JSON)
        return keys

    def get_sequences(self, run_id: str, block: int) -> dict[int, Sequence]:
        """The run's sequences whose ids are in ``block``, by id."""
        members = _SEQUENCE_BLOCK.validate_json(self.blobs.get(sequences_key(run_id, block)))
        return {sequence.sequence_id: sequence for sequence in members}

    def get_sequence(self, run_id: str, sequence_id: int) -> Sequence:
        """One stored sequence (ObjectNotFoundError if the run stored none with that id)."""
        return find_sequence(self.get_sequences, run_id, sequence_id)

    def put_request(self, run_id: str, request: dict[str, Any]) -> str:
        key = request_key(run_id)
        self.blobs.put(key, json.dumps(request).encode(), JSON)
        return key

    def get_request(self, run_id: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.blobs.get(request_key(run_id)))
        return document

    def put_plan(self, run_id: str, items: list[dict[str, Any]]) -> str:
        key = plan_key(run_id)
        self.blobs.put(key, json.dumps(items, separators=(",", ":")).encode(), JSON)
        return key

    def put_state(self, run_id: str, sequence_id: int, route_index: int, data: bytes) -> str:
        key = route_state_key(run_id, sequence_id, route_index)
        self.blobs.put(key, data, PARQUET)
        return key

    def get_state(self, run_id: str, sequence_id: int, route_index: int) -> bytes:
        return self.blobs.get(route_state_key(run_id, sequence_id, route_index))
