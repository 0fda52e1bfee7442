"""Processor: run one incoming job through its stage, store outputs, record it, report completion."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core import stages
from jobgraph.core.models import CompletedJob, IncomingJob, JobStatus
from jobgraph.core.results import ResultStore
from jobgraph.services.observability import MetricUnit, logger, metrics
from jobgraph.services.records import JobRecord, ReportingFifoProcessor, process_batch_then_send, receive_count
from jobgraph.services.settings import ProcessorSettings, load_settings


@dataclass(frozen=True)
class ProcessorDeps:
    results: ResultStore
    table: JobsTable
    outgoing: FifoQueue

    @classmethod
    def from_settings(cls, settings: ProcessorSettings) -> ProcessorDeps:
        return cls(
            results=ResultStore(S3BlobStore(settings.bucket_name, settings.results_prefix)),
            table=JobsTable(settings.table_name, settings.record_ttl_days),
            outgoing=FifoQueue(settings.outgoing_queue_url),
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


def run_recorded(
    job: IncomingJob,
    results: ResultStore,
    table: JobsTable,
    attempt: int = 1,
    report: Callable[..., None] | None = None,
) -> CompletedJob:
    """Run the job's stage and record it in the jobs table (and ``report`` it, if given).

    On failure the failure is recorded and reported, then re-raised so the caller's retry mechanism (SQS
    redelivery in scenario 1, a Step Functions Retry in scenario 3) runs the job again.
    """
    logger.append_keys(correlation_id=job.correlation_id, job_id=job.job_id, exec_type=job.exec_type.value)
    started = time.perf_counter()
    try:
        output_key = stages.run_job(job, results)
    except Exception as exc:
        failed = _completion(
            job,
            JobStatus.FAILED,
            (time.perf_counter() - started) * 1000,
            error_message=f"{type(exc).__name__}: {exc}",
        )
        logger.exception("job failed", extra={"attempt": attempt})
        metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
        try:
            table.record_job(failed, attempt)
            if report is not None:
                report(failed, attempt)
        except Exception:  # reporting must not mask the job's own error
            logger.exception("could not report the failure")
        raise
    completed = _completion(job, JobStatus.COMPLETED, (time.perf_counter() - started) * 1000, output_key=output_key)
    table.record_job(completed, attempt)
    if report is not None:
        report(completed)
    metrics.add_metric(name="ProcessingTimeMs", unit=MetricUnit.Milliseconds, value=completed.processing_time_ms)
    metrics.add_metric(name="JobsCompleted", unit=MetricUnit.Count, value=1)
    logger.info("job completed", extra={"output_key": output_key, "processing_time_ms": completed.processing_time_ms})
    return completed


def process_job(job: IncomingJob, deps: ProcessorDeps, attempt: int = 1) -> CompletedJob:
    """Run the job; a failure is recorded and reported at once, then re-raised so SQS retries (and finally
    DLQs) it. A success is reported by the caller, batched with the rest of its invocation
    (ProcessorRuntime.run_batch: one call per 10)."""

    def report_failure(completed: CompletedJob, attempt: int = 1) -> None:
        if completed.status is JobStatus.FAILED:
            deps.outgoing.send_completion(completed, attempt)

    return run_recorded(job, deps.results, deps.table, attempt, report=report_failure)


def once_per_job(
    run: Callable[..., CompletedJob], table: JobsTable, static_pk: str
) -> tuple[IdempotencyConfig, Callable[..., CompletedJob]]:
    """``run(job=..., attempt=...)`` made idempotent on the job id (Powertools, records in the jobs table).

    A repeated job whose first run completed returns the stored completion instead of running (and
    recording) again; a failed run leaves no record, so a retry really retries. ``static_pk`` is the
    partition key of the records (the functions' roles may delete only their own).
    """
    persistence = DynamoDBPersistenceLayer(
        table_name=table.table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=static_pk,
        expiry_attr="expires_at",
        boto3_client=table.client,
    )
    config = IdempotencyConfig(event_key_jmespath="job_id", expires_after_seconds=6 * 3600)
    run_once = idempotent_function(
        data_keyword_argument="job",
        persistence_store=persistence,
        config=config,
        output_serializer=PydanticSerializer(CompletedJob),
    )(run)
    return config, run_once


@dataclass(frozen=True)
class ProcessorRuntime:
    """Everything the handler needs, built once per execution environment (cold start)."""

    settings: ProcessorSettings
    deps: ProcessorDeps
    batch: ReportingFifoProcessor
    idempotency: IdempotencyConfig
    run_once: Callable[..., CompletedJob]

    pending: list[CompletedJob] = field(default_factory=list)  # this invocation's completions, not yet sent

    def handle_record(self, record: JobRecord) -> dict:
        completed = self.run_once(job=record.body, attempt=receive_count(record))
        # also when the idempotency record answered (a redelivery): the first attempt may have stopped
        # before its completion went out; the outgoing queue's deduplication and the Scheduler's
        # idempotence make a second copy harmless
        self.pending.append(completed)
        return completed.model_dump(mode="json")

    def run_batch(self, event: dict, context) -> dict:
        """Process an SQS batch (FIFO partial failures), then report its successes: up to 10 per call.

        If reporting fails the invocation fails, and SQS redelivers the whole batch: its jobs answer from
        their idempotency records and their completions are sent again."""
        return process_batch_then_send(
            event, context, self.batch, self.handle_record, self.pending, self.deps.outgoing.send_completions
        )


@cache
def processor_runtime() -> ProcessorRuntime:
    settings = load_settings(ProcessorSettings)
    deps = ProcessorDeps.from_settings(settings)

    def run(job: IncomingJob, attempt: int = 1) -> CompletedJob:
        return process_job(job, deps, attempt)

    # a redelivered or duplicated job whose first run completed returns the stored completion instead of
    # running (and reporting) again; a failed run leaves no record, so SQS retries really retry
    config, run_once = once_per_job(run, deps.table, "IDEMPOTENCY#processor")
    return ProcessorRuntime(
        settings=settings,
        deps=deps,
        batch=ReportingFifoProcessor(JobRecord, on_poison=deps.table.record_poison),
        idempotency=config,
        run_once=run_once,
    )
