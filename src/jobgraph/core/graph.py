"""The job graph: which job comes first, and which job a completion unlocks (GUIDE §1).

Per sequence: route 0 … route R-1 (FIRST, INTERMEDIATE…, LAST), then AGGREGATION; per run, one MERGE
after every sequence's AGGREGATION. Pure functions shared by the solver, StartRun and the Scheduler.
"""

from __future__ import annotations

from jobgraph.core.errors import InvalidJobError
from jobgraph.core.ids import aggregation_job_id, correlation_id, merge_job_id, route_job_id, synthetic_job_id
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, Sequence, exec_type_for
from jobgraph.core.run import Implementation, RunManifest, RunSpec


def route_job(spec: RunSpec, sequence: Sequence, route_index: int) -> IncomingJob:
    total = len(sequence.routes)
    return IncomingJob(
        job_id=route_job_id(spec.run_id, sequence.sequence_id, route_index),
        **spec.fields(),
        correlation_id=correlation_id(spec.run_id, sequence.sequence_id),
        sequence_id=sequence.sequence_id,
        exec_type=exec_type_for(route_index, total),
        route_index=route_index,
        total_routes=total,
        route=sequence.routes[route_index],
    )


def aggregation_job(spec: RunSpec, sequence_id: int, total_routes: int) -> IncomingJob:
    return IncomingJob(
        job_id=aggregation_job_id(spec.run_id, sequence_id),
        **spec.fields(),
        correlation_id=correlation_id(spec.run_id, sequence_id),
        sequence_id=sequence_id,
        exec_type=ExecType.AGGREGATION,
        total_routes=total_routes,
    )


def merge_job(spec: RunSpec) -> IncomingJob:
    return IncomingJob(
        job_id=merge_job_id(spec.run_id),
        **spec.fields(),
        correlation_id=correlation_id(spec.run_id),
        exec_type=ExecType.MERGE,
    )


def synthetic_job(
    spec: RunSpec, job_id: str, correlation_id: str, work_duration_ms: int, data_size_kb: int
) -> IncomingJob:
    """One perf-runner job (no graph, no follow-up): ``jobgraph load`` and the status API's POST /tasks."""
    return IncomingJob(
        job_id=job_id,
        **spec.fields(),
        correlation_id=correlation_id,
        exec_type=ExecType.SYNTHETIC,
        work_duration_ms=work_duration_ms,
        data_size_kb=data_size_kb,
    )


def synthetic_jobs(
    spec: RunSpec, count: int, work_duration_ms: int, data_size_kb: int, groups: int
) -> list[IncomingJob]:
    """The perf runner's load: ``count`` independent jobs spread over ``groups`` correlation ids, FIFO
    message groups (FIFO delivers one group in order, so the groups bound how many run at once)."""
    return [
        synthetic_job(
            spec,
            synthetic_job_id(spec.run_id, index),
            correlation_id(spec.run_id, lane=index % groups),
            work_duration_ms,
            data_size_kb,
        )
        for index in range(count)
    ]


def run_manifest(spec: RunSpec, sequences: list[Sequence], implementation: Implementation) -> RunManifest:
    """What a run was asked to do, stored beside its results by every implementation."""
    return RunManifest(
        **spec.fields(),
        sequence_ids=[s.sequence_id for s in sequences],
        total_route_jobs=sum(len(s.routes) for s in sequences),
        implementation=implementation,
    )


def jobs_per_sequence(sequence: Sequence) -> int:
    """Route jobs plus the AGGREGATION."""
    return len(sequence.routes) + 1


def total_jobs(sequences: list[Sequence]) -> int:
    """Every job of a run, MERGE included."""
    return sum(jobs_per_sequence(s) for s in sequences) + 1


def is_last_route(completed: CompletedJob) -> bool:
    return (
        completed.route_index is not None
        and completed.total_routes is not None
        and completed.route_index == completed.total_routes - 1
    )


def next_for_sequence(spec: RunSpec, completed: CompletedJob, sequence: Sequence | None) -> IncomingJob | None:
    """The job a completed route unlocks: the next route, or AGGREGATION after the last route.

    Returns None for AGGREGATION and MERGE completions (the run-level countdown handles those).
    ``sequence`` is needed only when a next route exists. A state the completion carries goes on in the job.
    """
    if not completed.exec_type.is_route:
        return None
    sequence_id, route_index, total_routes = completed.sequence_id, completed.route_index, completed.total_routes
    if sequence_id is None or route_index is None or total_routes is None:
        raise InvalidJobError(
            f"{completed.job_id}: {completed.exec_type} completion lacks sequence_id, route_index or total_routes"
        )
    if is_last_route(completed):
        job = aggregation_job(spec, sequence_id, total_routes)
    elif sequence is None:
        raise ValueError(f"{completed.job_id}: the sequence is needed to schedule route {route_index + 1}")
    else:
        job = route_job(spec, sequence, route_index + 1)
    return job if completed.state is None else job.model_copy(update={"state": completed.state})
