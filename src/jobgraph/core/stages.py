"""The five stages, as the Processor Lambda and the reference solver both call them.

Each stage reads what earlier stages stored, computes, and writes its outputs through a ResultStore.
Stages are deterministic and write-once per key, so running one twice yields the same bytes.

A route's state (what route r hands to route r+1 and the last route to AGGREGATION) travels in the
messages when it is small enough (``carries_state``): the route job returns it for its completion, and the
Scheduler copies it into the next job. Above the line it is an S3 object, written by the route and read by
the next job. Either way the numbers are the same, bit for bit.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from jobgraph.core import parquet_codec, stats
from jobgraph.core.delay_model import RouteResult, RouteState, curfew_breaches, simulate_route
from jobgraph.core.errors import MissingStateError, ObjectNotFoundError
from jobgraph.core.models import CarriedState, ExecType, IncomingJob, carries_state
from jobgraph.core.results import ResultStore

METRICS = ("final_arrival_delay_min", "total_departure_delay_min")


@dataclass(frozen=True)
class JobOutput:
    """What a stage produced: the key of its main output, and a route's state if it travels on in the messages."""

    key: str
    state: CarriedState | None = None
    input_size_bytes: int | None = None  # a SYNTHETIC job's input object, when it names one


def previous_state(job: IncomingJob, store: ResultStore, route_index: int) -> RouteState:
    """The state of route ``route_index`` of the job's sequence: carried by the job, else its S3 object."""
    if job.state is not None:
        if job.state.route_index != route_index:
            raise MissingStateError(
                f"{job.job_id}: carries the state of route {job.state.route_index}, needs route {route_index}"
            )
        return parquet_codec.uncarry_state(job.state, job.scenarios)
    assert job.sequence_id is not None  # a route job has one (IncomingJob's validator)
    try:
        return parquet_codec.decode_state(store.get_state(job.run_id, job.sequence_id, route_index))
    except ObjectNotFoundError:
        raise MissingStateError(
            f"{job.job_id}: state of route {route_index} of sequence {job.sequence_id} is not stored"
        ) from None


def simulate_job(job: IncomingJob, store: ResultStore) -> RouteResult:
    """A route job's delays, from the previous route's state (pure but for reading that state)."""
    # IncomingJob's validator requires these of a route job; the assert narrows their types
    assert job.route is not None and job.route_index is not None and job.sequence_id is not None
    previous = previous_state(job, store, job.route_index - 1) if job.route_index > 0 else None
    return simulate_route(
        job.route,
        route_index=job.route_index,
        sequence_id=job.sequence_id,
        seed=job.seed,
        scenarios=job.scenarios,
        previous=previous,
    )


def run_route(job: IncomingJob, store: ResultStore, carry_max_bytes: int = 0) -> JobOutput:
    """FIRST / INTERMEDIATE / LAST: delays of one route given the previous route's state.

    The route's own state is returned for the messages when it fits ``carry_max_bytes``, else stored."""
    assert job.route_index is not None and job.sequence_id is not None  # IncomingJob's validator requires them
    result = simulate_job(job, store)
    key = store.put_delays(
        job.run_id,
        job.job_id,
        parquet_codec.encode_delays(job.sequence_id, job.route_index, result.departure_delay, result.arrival_delay),
    )
    if carries_state(job.scenarios, carry_max_bytes):
        return JobOutput(key, parquet_codec.carry_state(result.state))
    # state last: its presence means this route's outputs are complete
    store.put_state(job.run_id, job.sequence_id, job.route_index, parquet_codec.encode_state(result.state))
    return JobOutput(key)


def replay_state(job: IncomingJob, store: ResultStore, carry_max_bytes: int) -> CarriedState | None:
    """The state a completed route job handed on, computed again in memory (no write): for the completion a
    duplicate re-sends. None when the state is an S3 object (written by the first run) or the previous
    route's state is not at hand."""
    if not job.exec_type.is_route or not carries_state(job.scenarios, carry_max_bytes):
        return None
    try:
        return parquet_codec.carry_state(simulate_job(job, store).state)
    except MissingStateError:
        return None


def run_aggregation(job: IncomingJob, store: ResultStore) -> str:
    """AGGREGATION: per-sequence statistics from the last route's state."""
    assert job.sequence_id is not None and job.total_routes is not None  # IncomingJob's validator requires them
    final = previous_state(job, store, job.total_routes - 1)
    samples = {"final_arrival_delay_min": final.arrival_delay, "total_departure_delay_min": final.total_departure_delay}
    breaches = int(curfew_breaches(final).sum())
    document = {
        "run_id": job.run_id,
        "sequence_id": job.sequence_id,
        "scenarios": final.scenarios,
        "routes": job.total_routes,
        **{name: stats.describe(values) for name, values in samples.items()},
        "curfew_breach_probability": breaches / final.scenarios,
        "curfew_breaches": breaches,
        "summary": {name: stats.histogram(values) for name, values in samples.items()},
    }
    return store.put_percentiles(job.run_id, job.sequence_id, document)


def merge_documents(run_id: str, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Run statistics from per-sequence summaries only (never the delays files)."""
    scenarios = {d["scenarios"] for d in documents}
    merged = {name: stats.merge_histograms(d["summary"][name] for d in documents) for name in METRICS}
    samples = merged[METRICS[0]]["count"]
    breaches = sum(d["curfew_breaches"] for d in documents)
    return {
        "run_id": run_id,
        "sequences": len(documents),
        "scenarios_per_sequence": scenarios.pop() if len(scenarios) == 1 else sorted(scenarios),
        "samples": samples,
        **{name: stats.describe_histogram(hist) for name, hist in merged.items()},
        "curfew_breach_probability": breaches / samples,
        "curfew_breaches": breaches,
        "percentile_method": f"histogram, {stats.BIN_WIDTH_MIN} min bins, linear interpolation",
    }


def run_merge(job: IncomingJob, store: ResultStore) -> str:
    """MERGE: one per run, over every sequence listed in the run manifest."""
    manifest = store.get_manifest(job.run_id)
    documents, missing = store.percentiles_of(job.run_id, manifest.sequence_ids)
    if missing:
        raise MissingStateError(f"{job.job_id}: no percentiles yet for sequences {missing[:10]}")
    return store.put_merged(job.run_id, merge_documents(job.run_id, documents))


def synthetic_payload(job_id: str, size_kb: int) -> bytes:
    """``size_kb`` KiB derived from the job id: the same job always writes the same bytes."""
    block = hashlib.sha256(job_id.encode()).digest()
    return (block * (size_kb * 1024 // len(block) + 1))[: size_kb * 1024]


def run_synthetic(job: IncomingJob, store: ResultStore) -> JobOutput:
    """The perf runner's job: read its ``input_key`` if it names one (seed 001: "S3 key with job details";
    its size is recorded), work for ``work_duration_ms`` (sleep: the wait a real job spends on I/O), then
    write ``data_size_kb`` of output. A missing input fails the job (retried, then dead-lettered)."""
    assert job.work_duration_ms is not None and job.data_size_kb is not None  # IncomingJob's validator requires them
    size = len(store.get_input(job.input_key)) if job.input_key else None
    time.sleep(job.work_duration_ms / 1000)
    key = store.put_synthetic(job.run_id, job.job_id, synthetic_payload(job.job_id, job.data_size_kb))
    return JobOutput(key, input_size_bytes=size)


def run_job(job: IncomingJob, store: ResultStore, carry_max_bytes: int = 0) -> JobOutput:
    """Dispatch on exec type; returns the key of the job's main output (and a route's carried state)."""
    if job.exec_type.is_route:
        return run_route(job, store, carry_max_bytes)
    if job.exec_type is ExecType.AGGREGATION:
        return JobOutput(run_aggregation(job, store))
    if job.exec_type is ExecType.SYNTHETIC:
        return run_synthetic(job, store)
    return JobOutput(run_merge(job, store))
