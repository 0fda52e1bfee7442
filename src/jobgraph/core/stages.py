"""The five stages, as the Processor Lambda and the reference solver both call them.

Each stage reads what earlier stages stored, computes, and writes its outputs through a ResultStore.
Stages are deterministic and write-once per key, so running one twice yields the same bytes.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from jobgraph.core import parquet_codec, stats
from jobgraph.core.delay_model import curfew_breaches, simulate_route
from jobgraph.core.errors import MissingStateError, ObjectNotFoundError
from jobgraph.core.models import ExecType, IncomingJob
from jobgraph.core.results import ResultStore

METRICS = ("final_arrival_delay_min", "total_departure_delay_min")


def run_route(job: IncomingJob, store: ResultStore) -> str:
    """FIRST / INTERMEDIATE / LAST: delays of one route given the previous route's stored state."""
    # IncomingJob's validator requires these of a route job; the assert narrows their types
    assert job.route is not None and job.route_index is not None and job.sequence_id is not None
    previous = None
    if job.route_index > 0:
        try:
            previous = parquet_codec.decode_state(store.get_state(job.correlation_id, job.route_index - 1))
        except ObjectNotFoundError:
            raise MissingStateError(
                f"{job.job_id}: state of route {job.route_index - 1} of {job.correlation_id} is not stored"
            ) from None
    result = simulate_route(
        job.route,
        route_index=job.route_index,
        sequence_id=job.sequence_id,
        seed=job.seed,
        scenarios=job.scenarios,
        previous=previous,
    )
    key = store.put_delays(
        job.run_id,
        job.job_id,
        parquet_codec.encode_delays(job.sequence_id, job.route_index, result.departure_delay, result.arrival_delay),
    )
    # state last: its presence means this route's outputs are complete
    store.put_state(job.correlation_id, job.route_index, parquet_codec.encode_state(result.state))
    return key


def run_aggregation(job: IncomingJob, store: ResultStore) -> str:
    """AGGREGATION: per-sequence statistics from the last route's state."""
    assert job.sequence_id is not None and job.total_routes is not None  # IncomingJob's validator requires them
    last = job.total_routes - 1
    try:
        final = parquet_codec.decode_state(store.get_state(job.correlation_id, last))
    except ObjectNotFoundError:
        raise MissingStateError(
            f"{job.job_id}: state of last route {last} of {job.correlation_id} is not stored"
        ) from None
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
    documents = []
    missing = []
    for sequence_id in manifest.sequence_ids:
        try:
            documents.append(store.get_percentiles(job.run_id, sequence_id))
        except ObjectNotFoundError:
            missing.append(sequence_id)
    if missing:
        raise MissingStateError(f"{job.job_id}: no percentiles yet for sequences {missing[:10]}")
    return store.put_merged(job.run_id, merge_documents(job.run_id, documents))


def synthetic_payload(job_id: str, size_kb: int) -> bytes:
    """``size_kb`` KiB derived from the job id: the same job always writes the same bytes."""
    block = hashlib.sha256(job_id.encode()).digest()
    return (block * (size_kb * 1024 // len(block) + 1))[: size_kb * 1024]


def run_synthetic(job: IncomingJob, store: ResultStore) -> str:
    """The perf runner's job: work for ``work_duration_ms`` (sleep: the wait a real job spends on I/O),
    then write ``data_size_kb`` of output."""
    assert job.work_duration_ms is not None and job.data_size_kb is not None  # IncomingJob's validator requires them
    time.sleep(job.work_duration_ms / 1000)
    return store.put_synthetic(job.run_id, job.job_id, synthetic_payload(job.job_id, job.data_size_kb))


def run_job(job: IncomingJob, store: ResultStore) -> str:
    """Dispatch on exec type; returns the key of the job's main output."""
    if job.exec_type.is_route:
        return run_route(job, store)
    if job.exec_type is ExecType.AGGREGATION:
        return run_aggregation(job, store)
    if job.exec_type is ExecType.SYNTHETIC:
        return run_synthetic(job, store)
    return run_merge(job, store)
