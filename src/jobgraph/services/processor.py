"""Processor: run one incoming job through its stage, store outputs, record it, report completion.

Exactly once, on the job record: services/idempotency.py claims the job, runs it and records its outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.models import CompletedJob
from jobgraph.core.ports import JobStore
from jobgraph.core.results import ResultStore
from jobgraph.services.data import data_layer
from jobgraph.services.idempotency import HeldOutcomes, lease_of, run_claimed
from jobgraph.services.records import (
    FifoBatch,
    InvocationContext,
    JobRecord,
    process_batch_then_send,
    receive_count,
    retry_backoff,
)
from jobgraph.services.settings import ProcessorSettings, load_settings


@dataclass(frozen=True)
class ProcessorDeps:
    results: ResultStore
    table: JobStore
    outgoing: FifoQueue
    # the largest route state that travels in the messages instead of S3 (0: always S3)
    carry_state_max_bytes: int = 0

    @classmethod
    def from_settings(cls, settings: ProcessorSettings) -> ProcessorDeps:
        data = data_layer(settings)
        return cls(
            results=data.results,
            table=data.table,
            outgoing=data.queue("outgoing"),
            carry_state_max_bytes=settings.carry_state_max_bytes,
        )


@dataclass(frozen=True)
class ProcessorRuntime:
    """Everything the handler needs, built once per execution environment (cold start)."""

    settings: ProcessorSettings
    deps: ProcessorDeps
    batch: FifoBatch
    held: HeldOutcomes  # this invocation's successes, recorded together before their completions go out

    pending: list[CompletedJob] = field(default_factory=list)  # this invocation's completions, not yet sent

    def handle_record(self, record: JobRecord, lambda_context: InvocationContext | None = None) -> dict[str, Any]:
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
            held=self.held,
        )
        # also when the record answered (a redelivery): the first attempt may have stopped before its
        # completion went out; the outgoing queue's deduplication and the Scheduler's idempotence make a
        # second copy harmless
        self.pending.append(completed)
        return {"job_id": completed.job_id, "status": completed.status.value}

    def run_batch(
        self,
        event: dict[str, Any],
        context: InvocationContext | None,
        release: Callable[[Iterable[str]], None] | None = None,
    ) -> dict[str, Any]:
        """Process an SQS batch (message groups concurrently, FIFO partial failures, backoff), record its
        successes together (one transaction), then report them: up to 10 per call.

        If recording or reporting fails the invocation fails, and SQS redelivers the whole batch: its jobs
        are claimed again by the same message ids (or answer from their job records) and their completions
        are sent again."""
        self.held.clear()  # a previous invocation that failed part-way may have left some

        def record_then_send(completions: list[CompletedJob]) -> None:
            stands = self.held.record()  # another claimant's completion, where one came first
            self.deps.outgoing.send_completions([stands.get(c.job_id, c) for c in completions])

        return process_batch_then_send(
            event, context, self.batch, self.handle_record, self.pending, record_then_send, release
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
    held = HeldOutcomes(deps.table, deps.results, deps.carry_state_max_bytes)
    return ProcessorRuntime(settings=settings, deps=deps, batch=batch, held=held)
