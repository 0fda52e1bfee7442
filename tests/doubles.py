"""Recording doubles of what services send out (the run events bus, a FIFO queue), for tests on the fakes, and the
report a Processor sends on a job."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, JobStatus


class Bus:
    """core.ports.EventPublisher: keeps every event; ids event-1, event-2, ..."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    def publish(self, detail: dict[str, Any]) -> str:
        self.published.append(detail)
        return f"event-{len(self.published)}"


class Queue:
    """A FIFO queue's send_jobs: keeps the jobs sent, in order."""

    def __init__(self) -> None:
        self.sent: list[IncomingJob] = []

    def send_jobs(self, jobs: Iterable[IncomingJob]) -> int:
        batch = list(jobs)
        self.sent.extend(batch)
        return len(batch)


def report_on(
    job: IncomingJob,
    status: JobStatus = JobStatus.COMPLETED,
    *,
    ms: float = 1.0,
    output_key: str | None = None,
    error_message: str | None = None,
) -> CompletedJob:
    """The Processor's report on ``job``: every field of the job it carries back, with the outcome given."""
    return CompletedJob(
        job_id=job.job_id, status=status, output_key=output_key, error_message=error_message, processing_time_ms=ms,
        test_run_id=job.test_run_id, run_id=job.run_id, correlation_id=job.correlation_id, sequence_id=job.sequence_id,
        exec_type=job.exec_type, route_index=job.route_index, total_routes=job.total_routes, scenarios=job.scenarios,
        seed=job.seed,
    )  # fmt: skip


def report_by_id(
    run_id: str, job_id: str, exec_type: ExecType, ms: float, state: JobStatus = JobStatus.COMPLETED, **extra: Any
) -> CompletedJob:
    """The Processor's report on ``job_id`` of sequence 0 of ``run_id`` (test run "default"), the job not at hand."""
    return CompletedJob(job_id=job_id, status=state, processing_time_ms=ms, test_run_id="default", run_id=run_id,
                        correlation_id=f"{run_id}-s0", exec_type=exec_type, **extra)  # fmt: skip
