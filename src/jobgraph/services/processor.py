"""Processor: run one incoming job through its stage, store outputs, record it, report completion.

Exactly once, on the job record (adapters/dynamodb.py): a job is claimed by one conditional update, run,
and completed by one conditional update that never overwrites a completion. A duplicate (a redelivery, a
second copy of the message, a Step Functions retry) whose job completed before is answered from that
record — the stored completion — without running or writing again; one whose job another claimant is
running now fails with JobInProgressError and is retried after its backoff.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core import stages
from jobgraph.core.errors import JobInProgressError
from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus
from jobgraph.core.results import ResultStore
from jobgraph.services.observability import MetricUnit, add_metric, logger
from jobgraph.services.records import FifoBatch, JobRecord, process_batch_then_send, receive_count, retry_backoff
from jobgraph.services.settings import ProcessorSettings, load_settings

# A claim's lease when the caller has no Lambda context to ask: Lambda's longest timeout.
DEFAULT_LEASE_MS = 900_000


@dataclass(frozen=True)
class ProcessorDeps:
    results: ResultStore
    table: JobsTable
    outgoing: FifoQueue
    # the largest route state that travels in the messages instead of S3 (0: always S3)
    carry_state_max_bytes: int = 0

    @classmethod
    def from_settings(cls, settings: ProcessorSettings) -> ProcessorDeps:
        return cls(
            results=ResultStore(S3BlobStore(settings.bucket_name, settings.results_prefix)),
            table=JobsTable(settings.table_name, settings.record_ttl_days),
            outgoing=FifoQueue(settings.outgoing_queue_url),
            carry_state_max_bytes=settings.carry_state_max_bytes,
        )


def _completion(job: IncomingJob, status: JobStatus, elapsed_ms: float, **extra) -> CompletedJob:
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


def stored_completion(job: IncomingJob, record: dict, results: ResultStore, carry_max_bytes: int) -> CompletedJob:
    """The completion recorded for ``job`` (what a duplicate answers), from its job record.

    A route whose state travels in the messages gets it computed again in memory (deterministic, no
    write): the first run's completion may never have been sent (its batch failed to report)."""
    extra = {
        "output_key": record.get("output_key"),
        "input_size_bytes": record.get("input_size_bytes"),
        "state": stages.replay_state(job, results, carry_max_bytes),
    }
    if record.get("updated_at"):
        extra["completed_at"] = record["updated_at"]
    return _completion(job, JobStatus.COMPLETED, float(record.get("processing_time_ms", 0)), **extra)


def run_recorded(
    job: IncomingJob,
    results: ResultStore,
    table: JobsTable,
    attempt: int = 1,
    report: Callable[..., None] | None = None,
    carry_max_bytes: int = 0,
    claimed_status: str | None = None,
) -> CompletedJob:
    """Run the job's stage and record its outcome in the jobs table (and ``report`` a failure, if given).
    ``claimed_status``: the status the job's claim left on its record (record_job's expected_status).

    On failure the failure is recorded (releasing the claim) and reported, then re-raised so the caller's
    retry mechanism (SQS redelivery in scenarios 1 and 2, a Step Functions Retry in scenario 3) runs the
    job again. If another claimant completed the job meanwhile, its completion is returned.
    """
    logger.thread_safe_append_keys(correlation_id=job.correlation_id, job_id=job.job_id, exec_type=job.exec_type.value)
    started = time.perf_counter()
    try:
        output = stages.run_job(job, results, carry_max_bytes)
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
    refused = table.record_job(completed, attempt, claimed_status)
    if refused is not None:
        # a claimant whose lease had run out and this one both ran it: the first completion stands
        logger.warning("job completed by another claimant first", extra={"claimed_by": refused.get("claimed_by")})
        return stored_completion(job, refused, results, carry_max_bytes)
    add_metric(name="ProcessingTimeMs", unit=MetricUnit.Milliseconds, value=completed.processing_time_ms)
    add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("job completed", extra={"output_key": output.key, "processing_time_ms": completed.processing_time_ms})
    return completed


def run_claimed(
    job: IncomingJob,
    results: ResultStore,
    table: JobsTable,
    claimant: str,
    lease_ms: int,
    attempt: int = 1,
    report: Callable[..., None] | None = None,
    carry_max_bytes: int = 0,
) -> CompletedJob:
    """Claim the job on its record, then run and record it; a completed job answers from its record.

    ``claimant`` names who runs it (an SQS message id: its redelivery after a crash re-claims at once);
    ``lease_ms`` is how long the claim holds off others (the invocation's remaining time, after which
    Lambda has stopped it anyway). Raises JobInProgressError while another claimant's lease runs."""
    claim = table.claim_job(job, claimant, lease_ms, attempt)
    if claim.granted:
        return run_recorded(job, results, table, attempt, report, carry_max_bytes, claim.status)
    refused = claim.record
    if refused.get("status") == JobStatus.COMPLETED.value.upper():
        logger.info("job completed before: answering from its record", extra={"job_id": job.job_id})
        return stored_completion(job, refused, results, carry_max_bytes)
    raise JobInProgressError(
        f"{job.job_id} is claimed by {refused.get('claimed_by')!r} until epoch ms {refused.get('lease_until_ms')}"
    )


def lease_of(context) -> int:
    """The claim's lease: the time the invocation (or the worker's batch) may still take."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if remaining is not None else DEFAULT_LEASE_MS


@dataclass(frozen=True)
class ProcessorRuntime:
    """Everything the handler needs, built once per execution environment (cold start)."""

    settings: ProcessorSettings
    deps: ProcessorDeps
    batch: FifoBatch

    pending: list[CompletedJob] = field(default_factory=list)  # this invocation's completions, not yet sent

    def handle_record(self, record: JobRecord, lambda_context=None) -> dict:
        deps = self.deps

        def report_failure(completed: CompletedJob, attempt: int = 1) -> None:
            # a failure is reported at once (it may be the job's last attempt); successes go out batched
            deps.outgoing.send_completion(completed, attempt)

        completed = run_claimed(
            record.job(self.settings.test_run_id),
            deps.results,
            deps.table,
            claimant=record.messageId,
            lease_ms=lease_of(lambda_context),
            attempt=receive_count(record),
            report=report_failure,
            carry_max_bytes=deps.carry_state_max_bytes,
        )
        # also when the record answered (a redelivery): the first attempt may have stopped before its
        # completion went out; the outgoing queue's deduplication and the Scheduler's idempotence make a
        # second copy harmless
        self.pending.append(completed)
        return {"job_id": completed.job_id, "status": completed.status.value}

    def run_batch(self, event: dict, context, release=None) -> dict:
        """Process an SQS batch (message groups concurrently, FIFO partial failures, backoff), then report
        its successes: up to 10 per call.

        If reporting fails the invocation fails, and SQS redelivers the whole batch: its jobs answer from
        their job records and their completions are sent again."""
        return process_batch_then_send(
            event, context, self.batch, self.handle_record, self.pending, self.deps.outgoing.send_completions, release
        )


@cache
def processor_runtime() -> ProcessorRuntime:
    """The Processor Lambda's runtime, from its environment (once per execution environment)."""
    return build_processor_runtime(load_settings(ProcessorSettings))


def build_processor_runtime(settings: ProcessorSettings) -> ProcessorRuntime:
    """Deps and FIFO batch processor for ``settings``.

    Shared by the Processor Lambda and the ECS worker (services/worker.py): both claim a job on the same
    job record, so a job one of them completed is never run again by either.
    """
    deps = ProcessorDeps.from_settings(settings)
    batch = FifoBatch(
        JobRecord,
        on_poison=deps.table.record_poison,
        max_concurrency=settings.group_concurrency,
        backoff=retry_backoff(settings),
    )
    return ProcessorRuntime(settings=settings, deps=deps, batch=batch)
