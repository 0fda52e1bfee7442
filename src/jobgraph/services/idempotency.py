"""Once per job: a job is claimed on its own record, run, and its outcome recorded exactly once.

The claim and the completion are two conditional writes of the job record (core.ports.JobStore: DynamoDB in
adapters/dynamodb/jobs.py, the in-memory fake in adapters/memory/jobs.py); a queue consumer's batch completes
its successes together (HeldOutcomes: one transaction, the run's counters written once). A duplicate (a redelivery, a second
copy of the message, a Step Functions retry) whose job completed before is answered from that record — the
stored completion — without running or writing again; one whose job another claimant is running now fails
with JobInProgressError and is retried after its backoff. Shared by the Processor (and the ECS worker) and
scenario 3's StepTask.

The stages (core.stages) need numpy and pyarrow. This module does not import them until a job runs:
PrepareRun's function imports services/step_tasks.py, and so this module, without the ScientificLayer.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from jobgraph.core.errors import JobInProgressError
from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus
from jobgraph.core.ports import JobOutcome, JobStore, Record
from jobgraph.core.results import ResultStore
from jobgraph.services.observability import MetricUnit, add_metric, logger


def _stages() -> ModuleType:
    from jobgraph.core import stages  # numpy/pyarrow: only where jobs run (see the module's docstring)

    return stages


# A claim's lease when the caller has no Lambda context to ask: Lambda's longest timeout.
DEFAULT_LEASE_MS = 900_000


def _completion(job: IncomingJob, status: JobStatus, elapsed_ms: float, **extra: Any) -> CompletedJob:
    return CompletedJob(
        job_id=job.job_id,
        status=status,
        processing_time_ms=round(elapsed_ms, 3),
        test_run_id=job.test_run_id,
        run_id=job.run_id,
        correlation_id=job.correlation_id,
        sequence_id=job.sequence_id,
        exec_type=job.exec_type,
        route_index=job.route_index,
        total_routes=job.total_routes,
        scenarios=job.scenarios,
        seed=job.seed,
        **extra,
    )


def stored_completion(job: IncomingJob, record: Record, results: ResultStore, carry_max_bytes: int) -> CompletedJob:
    """The completion recorded for ``job`` (what a duplicate answers), from its job record.

    A route whose state travels in the messages gets it computed again in memory (deterministic, no
    write): the first run's completion may never have been sent (its batch failed to report)."""
    extra = {
        "output_key": record.get("output_key"),
        "input_size_bytes": record.get("input_size_bytes"),
        "state": _stages().replay_state(job, results, carry_max_bytes),
    }
    if record.get("updated_at"):
        extra["completed_at"] = record["updated_at"]
    return _completion(job, JobStatus.COMPLETED, float(record.get("processing_time_ms", 0)), **extra)


def answered(job: IncomingJob, completed: CompletedJob, refused: Record | None, results: ResultStore,
             carry_max_bytes: int) -> CompletedJob:  # fmt: skip
    """The completion that stands once ``completed`` was recorded: itself, or (``refused``: the record of a
    claimant whose lease had run out and that completed the job first) the stored one."""
    if refused is not None:
        logger.warning(
            "job completed by another claimant first",
            extra={"job_id": job.job_id, "claimed_by": refused.get("claimed_by")},
        )
        return stored_completion(job, refused, results, carry_max_bytes)
    add_metric(name="ProcessingTimeMs", unit=MetricUnit.Milliseconds, value=completed.processing_time_ms)
    add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    logger.info(
        "job completed",
        extra={
            "job_id": job.job_id,
            "output_key": completed.output_key,
            "processing_time_ms": completed.processing_time_ms,
        },
    )
    return completed


class HeldOutcomes:
    """A batch's successful outcomes, held until its jobs have run and then recorded together
    (JobStore.record_jobs: one transaction, the run's counters written once), before their completions are
    sent. Thread-safe: a batch's message groups run at once.

    A failure is recorded at once (it is reported at once). If recording fails the caller fails its
    invocation: SQS redelivers the batch, and the same claimants (message ids) claim and run the jobs again.
    """

    def __init__(self, table: JobStore, results: ResultStore, carry_max_bytes: int = 0):
        self.table, self.results, self.carry_max_bytes = table, results, carry_max_bytes
        self._held: list[tuple[IncomingJob, JobOutcome]] = []
        self._lock = threading.Lock()

    def hold(self, job: IncomingJob, outcome: JobOutcome) -> None:
        with self._lock:
            self._held.append((job, outcome))

    def clear(self) -> None:
        with self._lock:
            self._held.clear()

    def record(self) -> dict[str, CompletedJob]:
        """Record what is held (then hold nothing); returns, by job id, each completion that differs from the
        held one (another claimant's, which stands)."""
        with self._lock:
            held, self._held = self._held, []
        if not held:
            return {}
        refusals = self.table.record_jobs([outcome for _, outcome in held])
        changed = {}
        for (job, outcome), refused in zip(held, refusals, strict=True):
            stands = answered(job, outcome.completed, refused, self.results, self.carry_max_bytes)
            if stands is not outcome.completed:
                changed[job.job_id] = stands
        return changed


def run_recorded(
    job: IncomingJob,
    results: ResultStore,
    table: JobStore,
    attempt: int = 1,
    report: Callable[..., None] | None = None,
    carry_max_bytes: int = 0,
    claimed_status: str | None = None,
    held: HeldOutcomes | None = None,
) -> CompletedJob:
    """Run the job's stage and record its outcome in the jobs table (and ``report`` a failure, if given).
    ``claimed_status``: the status the job's claim left on its record (record_job's expected_status).
    ``held``: a success is held there, recorded with its batch (HeldOutcomes), not at once.

    On failure the failure is recorded (releasing the claim) and reported, then re-raised so the caller's
    retry mechanism (SQS redelivery in scenarios 1 and 2, a Step Functions Retry in scenario 3) runs the
    job again. If another claimant completed the job meanwhile, its completion is returned.
    """
    logger.thread_safe_append_keys(correlation_id=job.correlation_id, job_id=job.job_id, exec_type=job.exec_type.value)
    started = time.perf_counter()
    try:
        output = _stages().run_job(job, results, carry_max_bytes)
    except Exception as exc:
        failed = _completion(
            job,
            JobStatus.FAILED,
            (time.perf_counter() - started) * 1000,
            error_message=f"{type(exc).__name__}: {exc}",
        )
        logger.exception("job failed", extra={"attempt": attempt})
        add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        try:
            table.record_job(failed, attempt, claimed_status)
            if report is not None:
                report(failed, attempt)
        except Exception:  # reporting must not mask the job's own error
            logger.exception("could not report the failure")
        raise
    completed = _completion(
        job,
        JobStatus.COMPLETED,
        (time.perf_counter() - started) * 1000,
        output_key=output.key,
        state=output.state,
        input_size_bytes=output.input_size_bytes,
    )
    if held is not None:
        held.hold(job, JobOutcome(completed, attempt, claimed_status))
        return completed
    # refused: a claimant whose lease had run out and this one both ran it; the first completion stands
    refused = table.record_job(completed, attempt, claimed_status)
    return answered(job, completed, refused, results, carry_max_bytes)


def run_claimed(
    job: IncomingJob,
    results: ResultStore,
    table: JobStore,
    claimant: str,
    lease_ms: int,
    attempt: int = 1,
    report: Callable[..., None] | None = None,
    carry_max_bytes: int = 0,
    held: HeldOutcomes | None = None,
) -> CompletedJob:
    """Claim the job on its record, then run and record it (a success with its batch, if ``held``); a
    completed job answers from its record.

    ``claimant`` names who runs it (an SQS message id: its redelivery after a crash re-claims at once);
    ``lease_ms`` is how long the claim holds off others (the invocation's remaining time, after which
    Lambda has stopped it anyway). Raises JobInProgressError while another claimant's lease runs."""
    claim = table.claim_job(job, claimant, lease_ms, attempt)
    if claim.granted:
        return run_recorded(job, results, table, attempt, report, carry_max_bytes, claim.status, held)
    refused = claim.record
    if refused.get("status") == JobStatus.COMPLETED.value.upper():
        logger.info("job completed before: answering from its record", extra={"job_id": job.job_id})
        return stored_completion(job, refused, results, carry_max_bytes)
    raise JobInProgressError(
        f"{job.job_id} is claimed by {refused.get('claimed_by')!r} until epoch ms {refused.get('lease_until_ms')}"
    )


def lease_of(context: object) -> int:
    """The claim's lease: the time the invocation (or the worker's batch) may still take."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if remaining is not None else DEFAULT_LEASE_MS
