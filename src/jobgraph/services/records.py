"""SQS batches of the queue consumers (Processor, Scheduler, ECS worker): parsing, FIFO order, concurrency,
backoff.

A batch from a FIFO queue holds messages of several message groups (aircraft), each group's in order.
``FifoBatch.process`` runs the groups concurrently — up to ``max_concurrency`` at once, each group's
records in order through its own Powertools ``SqsFifoPartialProcessor`` with ``skip_group_on_error`` —
so a failure fails only the rest of its own group, and the invocation's billed time is the slowest
group's, not the sum of ten jobs' I/O waits. Powertools' own concurrent processor (AsyncBatchProcessor)
ignores message groups, and its FIFO processor runs records one at a time; this composes the two ideas.

Every failed record is made visible again after an exponential backoff (core/retry.py) before the batch
returns, instead of after the queue's visibility timeout (ChangeMessageVisibility on the queue the
record came from). A batch whose every record failed still fails the invocation, as Powertools does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError, ExceptionInfo
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from pydantic import ValidationError

from jobgraph.adapters.sqs import FifoQueue, queue_url_for_arn
from jobgraph.core.models import CompletedJob, IncomingJob, ProducerJob
from jobgraph.core.retry import backoff_s
from jobgraph.services.observability import MetricUnit, add_metric, logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.base import FailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_sqs import SQSClient

    from jobgraph.services.settings import QueueConsumerSettings


class InvocationContext(Protocol):
    """What a consumer reads from its context (the claim's lease: services.idempotency.lease_of): a Lambda's
    LambdaContext, or the ECS worker's WorkerContext."""

    def get_remaining_time_in_millis(self) -> int: ...


# a record handler: one parsed record (JobRecord, CompletionRecord) in, its outcome out (what Powertools calls)
RecordHandler = Callable[[Any], object]


class JobRecord(SqsRecordModel):
    # a job as jobgraph sends it, or seed 001's producer message (a SYNTHETIC job: ProducerJob)
    body: Json[IncomingJob | ProducerJob]

    def job(self, test_run_id: str) -> IncomingJob:
        """The job to run: the body itself, or the SYNTHETIC job a producer's message stands for."""
        if isinstance(self.body, IncomingJob):
            return self.body
        return self.body.as_job(self.attributes.MessageGroupId or self.body.job_id, test_run_id)


class CompletionRecord(SqsRecordModel):
    body: Json[CompletedJob]


def receive_count(record: SqsRecordModel) -> int:
    return int(record.attributes.ApproximateReceiveCount)


class ReportingFifoProcessor(SqsFifoPartialProcessor):
    """FIFO partial processor that skips only the failed message group, and reports poison messages.

    ``skip_group_on_error=True``: the default FIFO behaviour fails every message after the first failure in
    the batch, so one poison message would hold back (and eventually dead-letter) other sequences' jobs.
    Skipping only the failed group keeps per-aircraft order and lets every other aircraft proceed.
    """

    def __init__(self, model: type[SqsRecordModel], on_poison: Callable[[str, str, str], None] | None = None) -> None:
        super().__init__(model=model, skip_group_on_error=True)
        self.on_poison = on_poison
        # FifoBatch decides about the whole batch; one group failing entirely is a partial failure
        self.raise_on_entire_batch_failure = False

    def failure_handler(self, record: Any, exception: ExceptionInfo) -> FailureResponse:
        _type, error, _tb = exception
        if isinstance(error, ValidationError):
            # the body is not a job at all: keep it for inspection; it is retried (with backoff) until
            # the queue's redrive policy dead-letters it after maxReceiveCount receives
            message_id, body = getattr(record, "message_id", "?"), getattr(record, "body", "")
            logger.error(
                "poison message: it goes to the DLQ after the queue's maxReceiveCount receives",
                extra={"message_id": message_id, "errors": error.errors(include_url=False)[:5]},
            )
            add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)
            if self.on_poison:
                try:
                    self.on_poison(message_id, str(error), body if isinstance(body, str) else str(body))
                except Exception:
                    logger.exception("could not record the poison message")
        return super().failure_handler(record, exception)


@dataclass(frozen=True)
class RetryBackoff:
    """Sets failed records' visibility to base × 2^(attempt−1) seconds (capped, jittered) on their queue."""

    base_s: float
    max_s: int
    rng: random.Random = field(default_factory=random.Random, compare=False)
    sqs: SQSClient | None = None  # an injected client (tests); default: the cached boto3 client

    def delays(self, records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        """(record, seconds) per failed record: a group's records share its first failed record's delay,
        so the group comes back together and in order."""
        by_group: dict[str, int] = {}
        out: list[tuple[dict[str, Any], int]] = []
        for record in records:
            attributes = record.get("attributes", {})
            group = attributes.get("MessageGroupId") or record["messageId"]
            if group not in by_group:
                attempt = int(attributes.get("ApproximateReceiveCount", "1"))
                by_group[group] = backoff_s(attempt, self.base_s, self.max_s, self.rng)
            out.append((record, by_group[group]))
        return out

    def apply(self, records: list[dict[str, Any]]) -> None:
        """Before the batch returns: each failed record visible again after its backoff."""
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for record, seconds in self.delays(records):
            by_queue.setdefault(record["eventSourceARN"], []).append((record["receiptHandle"], seconds))
        for queue_arn, entries in by_queue.items():
            try:
                queue = FifoQueue(queue_url_for_arn(queue_arn, self.sqs), self.sqs)
                refused = queue.set_visibility(entries)
            except Exception:  # the message still comes back, after the visibility it had
                logger.exception("could not set the retry backoff", extra={"queue": queue_arn})
                continue
            logger.info(
                "failed messages return after backoff",
                extra={"queue": queue_arn, "delays_s": sorted({s for _, s in entries}), "refused": refused},
            )


def retry_backoff(settings: QueueConsumerSettings) -> RetryBackoff:
    """The consumer's backoff from its settings (QueueConsumerSettings); base 0: visible again at once."""
    return RetryBackoff(settings.retry_backoff_base_s, settings.retry_backoff_max_s)


def message_groups(records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The batch's records by FIFO message group, each group in its order (a record without a group, from a
    standard queue, is a group of its own)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        group = record.get("attributes", {}).get("MessageGroupId") or f"message:{record.get('messageId')}"
        groups.setdefault(group, []).append(record)
    return list(groups.values())


@dataclass(frozen=True)
class FifoBatch:
    """How a queue consumer processes one SQS batch: the record model, what to do with poison, how many
    message groups at once, and the retry backoff."""

    model: type[SqsRecordModel]
    on_poison: Callable[[str, str, str], None] | None = None
    max_concurrency: int = 1
    backoff: RetryBackoff | None = None

    def _run_group(
        self, records: list[dict[str, Any]], handler: RecordHandler, context: InvocationContext | None
    ) -> tuple[list[dict[str, Any]], list[ExceptionInfo]]:
        processor = ReportingFifoProcessor(self.model, self.on_poison)
        try:
            # Powertools only hands the context on to a handler that takes lambda_context: any context will do
            with processor(records, handler, cast("LambdaContext | None", context)):
                processor.process()
        finally:
            logger.thread_safe_clear_keys()  # the group's job keys, on a pooled thread
        failed = {item["itemIdentifier"] for item in processor.response()["batchItemFailures"]}
        return [r for r in records if r["messageId"] in failed], list(processor.exceptions)

    def process(
        self,
        event: dict[str, Any],
        context: InvocationContext | None,
        handler: RecordHandler,
        release: Callable[[Iterable[str]], None] | None = None,
    ) -> dict[str, Any]:
        """Run ``handler`` over the batch (groups concurrently, each in order); back failed records off.

        Returns the partial batch response; raises BatchProcessingError when every record failed (the
        invocation fails; SQS redelivers after the backoff). ``release(message_ids)`` is called before
        the backoff is set (the ECS worker stops its visibility heartbeat for those messages)."""
        records = event.get("Records", [])
        groups = message_groups(records)
        workers = min(self.max_concurrency, len(groups))
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="group") as pool:
                outcomes = list(pool.map(lambda group: self._run_group(group, handler, context), groups))
        else:
            outcomes = [self._run_group(group, handler, context) for group in groups]
        failed_ids = {r["messageId"] for failed, _ in outcomes for r in failed}
        failed = [r for r in records if r["messageId"] in failed_ids]  # the batch's order
        if failed:
            if release is not None:
                release(failed_ids)
            if self.backoff is not None:
                self.backoff.apply(failed)
        if records and len(failed) == len(records):
            exceptions = [exc for _, excs in outcomes for exc in excs]
            raise BatchProcessingError(
                msg=f"All records failed processing. {len(exceptions)} individual errors logged separately below.",
                child_exceptions=exceptions,
            )
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in failed]}


def process_batch_then_send[T](
    event: dict[str, Any],
    context: InvocationContext | None,
    batch: FifoBatch,
    record_handler: RecordHandler,
    pending: list[T],
    send: Callable[[list[T]], object],
    release: Callable[[Iterable[str]], None] | None = None,
) -> dict[str, Any]:
    """Process an SQS batch whose record handler appends to ``pending``, then ``send`` what was appended in
    one go. A failed send fails the invocation, so SQS redelivers the batch."""
    pending.clear()
    response = batch.process(event, context, record_handler, release)
    if pending:
        send(list(pending))
        pending.clear()
    return response
