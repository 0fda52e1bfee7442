"""Scheduler: turn a completion into the next job(s). No pandas/pyarrow anywhere on this path.

FIRST/INTERMEDIATE → next route; last route → AGGREGATION; AGGREGATION → count the sequence down and, for
exactly one completion, emit the MERGE; MERGE → run COMPLETED with timings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import InvalidJobError
from jobgraph.core.graph import is_last_route, merge_job, next_for_sequence
from jobgraph.core.memo import SharedCache
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, JobStatus, Sequence
from jobgraph.core.ports import JobsTablePort
from jobgraph.core.results import ResultStore, find_sequence
from jobgraph.core.run import RunSpec
from jobgraph.services.data import data_layer
from jobgraph.services.observability import MetricUnit, add_metric, logger
from jobgraph.services.records import (
    CompletionRecord,
    FifoBatch,
    InvocationContext,
    process_batch_then_send,
    retry_backoff,
)
from jobgraph.services.run_events import announce_run_end, run_end_events
from jobgraph.services.settings import SchedulerSettings, load_settings

SEQUENCE_CACHE_BLOCKS = 64  # blocks of a run's sequences a warm Scheduler keeps (100 ids each: results.py)


@dataclass(frozen=True)
class SchedulerDeps:
    results: ResultStore
    table: JobsTablePort  # runs (countdown, MERGE claim, run end) and jobs (attempts)
    incoming: FifoQueue
    # the run's end goes to this bus for the downstream triggers (None: no bus in this stack)
    events: RunEvents | None = None
    event_context: dict[str, Any] = field(default_factory=dict)
    job_max_attempts: int = 0  # 0: a failed job never fails its run (SQS retries it; the DLQ keeps it)
    sequence: Callable[[str, int], Sequence] = field(init=False)

    def __post_init__(self) -> None:
        # A run's sequences never change once StartRun stored them, so a warm Scheduler reads each block of
        # them once (one S3 GET per 100 sequences, not one per route job), also when a batch's group threads
        # ask for it together (core/memo.py)
        blocks = SharedCache(self.results.get_sequences, maxsize=SEQUENCE_CACHE_BLOCKS)
        object.__setattr__(self, "sequence", lambda run_id, sequence_id: find_sequence(blocks, run_id, sequence_id))

    @classmethod
    def from_settings(cls, settings: SchedulerSettings) -> SchedulerDeps:
        events, event_context = run_end_events(settings)
        data = data_layer(settings)
        return cls(
            results=data.results,
            table=data.table,
            incoming=data.queue("incoming"),
            events=events,
            event_context=event_context,
            job_max_attempts=settings.job_max_attempts,
        )


def schedule(completed: CompletedJob, deps: SchedulerDeps, send: Callable[[IncomingJob], None] | None = None) -> str:
    """Act on one completion; returns what was done (for logs and tests).

    ``send`` takes the next job; by default it is sent at once. The Scheduler Lambda collects them and
    sends one batch per invocation (SchedulerRuntime.run_batch)."""
    if send is None:

        def send(job: IncomingJob) -> None:
            deps.incoming.send_jobs([job])

    logger.thread_safe_append_keys(correlation_id=completed.correlation_id, job_id=completed.job_id)
    if completed.status is JobStatus.FAILED:
        # the Processor recorded the failure; SQS retries the job itself — nothing to schedule, unless this
        # was its last attempt: then the job goes to the DLQ and its run can never complete
        logger.warning("job reported failed", extra={"error_message": completed.error_message})
        if (
            deps.job_max_attempts
            and deps.table.job_attempts(completed.run_id, completed.job_id) >= deps.job_max_attempts
        ):
            failed_now = deps.table.fail_run(completed.run_id, f"{completed.job_id}: {completed.error_message}")
            announce(completed.run_id, deps)
            return "run failed" if failed_now else "run already ended"
        return "failure noted"

    if completed.exec_type is ExecType.SYNTHETIC:
        return "synthetic job done"  # the perf runner's load has no follow-up job

    if completed.exec_type.is_route:
        sequence = None if is_last_route(completed) else deps.sequence(completed.run_id, sequence_of(completed))
        job = next_for_sequence(RunSpec.of(completed), completed, sequence)
        assert job is not None  # a route completion always unlocks a job (next_for_sequence raises otherwise)
        send(job)
        return f"sent {job.exec_type} {job.job_id}"

    if completed.exec_type is ExecType.AGGREGATION:
        counted = deps.table.count_down_sequence(completed.run_id, sequence_of(completed))
        if deps.table.claim_merge(completed.run_id, completed.job_id):
            job = merge_job(RunSpec.of(completed))
            send(job)
            return f"sent MERGE {job.job_id}"
        return "sequence counted" if counted else "duplicate aggregation ignored"

    completed_now = deps.table.complete_run(completed.run_id, completed.output_key or "")
    run: dict[str, Any] | None = None
    if completed_now:
        run = deps.table.get_run(completed.run_id)
        add_metric(name="RunDurationSeconds", unit=MetricUnit.Seconds, value=float(run["duration_s"]))
        logger.info("run completed", extra={"run_id": completed.run_id, "duration_s": float(run["duration_s"])})
    # also on a redelivery: the first delivery may have died between completing and announcing
    announce(completed.run_id, deps, run)
    return "run completed" if completed_now else "run already completed"


def sequence_of(completed: CompletedJob) -> int:
    """The sequence a route or AGGREGATION completion belongs to; InvalidJobError when it names none (the
    message was not made from a job: the sequence's next step cannot be found)."""
    if completed.sequence_id is None:
        raise InvalidJobError(f"{completed.job_id}: {completed.exec_type} completion lacks sequence_id")
    return completed.sequence_id


def announce(run_id: str, deps: SchedulerDeps, run: dict[str, Any] | None = None) -> None:
    """The run's end on the stack's bus for the downstream triggers (no-op without a bus or if done before);
    ``run``: the record just read after completing it (one read per MERGE completion, not two)."""
    if deps.events is None:
        return
    event_id = announce_run_end(deps.table, deps.events, run_id, run, **deps.event_context)
    if event_id:
        logger.info("run end announced", extra={"run_id": run_id, "event_id": event_id})


@dataclass(frozen=True)
class SchedulerRuntime:
    settings: SchedulerSettings
    deps: SchedulerDeps
    batch: FifoBatch

    pending: list[IncomingJob] = field(default_factory=list)  # this invocation's next jobs, not yet sent

    def handle_record(self, record: CompletionRecord) -> str:
        return schedule(record.body, self.deps, self.pending.append)

    def run_batch(self, event: dict[str, Any], context: InvocationContext | None) -> dict[str, Any]:
        """Act on a batch of completions (groups concurrently, FIFO partial failures, backoff), then send
        the next jobs: 10 per call.

        If sending fails the invocation fails and SQS redelivers the batch; acting on a completion twice
        is harmless (the count-down and the MERGE claim are idempotent, job ids deduplicate)."""
        return process_batch_then_send(
            event, context, self.batch, self.handle_record, self.pending, self.deps.incoming.send_jobs
        )


@cache
def scheduler_runtime() -> SchedulerRuntime:
    settings = load_settings(SchedulerSettings)
    deps = SchedulerDeps.from_settings(settings)
    batch = FifoBatch(
        CompletionRecord,
        on_poison=deps.table.record_poison,
        max_concurrency=settings.group_concurrency,
        backoff=retry_backoff(settings),
    )
    return SchedulerRuntime(settings, deps, batch)
