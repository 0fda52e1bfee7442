"""SQS records parsed by Powertools' batch processor, and the FIFO processor the two queue handlers use."""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.parser.types import Json
from pydantic import ValidationError

from jobgraph.core.models import CompletedJob, IncomingJob
from jobgraph.services.observability import MetricUnit, logger, metrics


class JobRecord(SqsRecordModel):
    body: Json[IncomingJob]  # type: ignore[assignment]


class CompletionRecord(SqsRecordModel):
    body: Json[CompletedJob]  # type: ignore[assignment]


def receive_count(record: SqsRecordModel) -> int:
    return int(record.attributes.ApproximateReceiveCount)


class ReportingFifoProcessor(SqsFifoPartialProcessor):
    """FIFO partial processor that skips only the failed message group, and reports poison messages.

    ``skip_group_on_error=True``: the default FIFO behaviour fails every message after the first failure in
    the batch, so one poison message would hold back (and eventually dead-letter) other sequences' jobs.
    Skipping only the failed group keeps per-aircraft order and lets every other aircraft proceed.
    """

    def __init__(self, model, on_poison=None):
        super().__init__(model=model, skip_group_on_error=True)
        self.on_poison = on_poison

    def failure_handler(self, record, exception):
        _type, error, _tb = exception
        if isinstance(error, ValidationError):
            # the body is not a job at all: keep it for inspection; SQS retries, then dead-letters it
            message_id, body = getattr(record, "message_id", "?"), getattr(record, "body", "")
            logger.error("poison message", extra={"message_id": message_id, "errors": error.errors()[:5]})
            metrics.add_metric(name="PoisonMessages", unit=MetricUnit.Count, value=1)
            if self.on_poison:
                try:
                    self.on_poison(message_id, str(error), body if isinstance(body, str) else str(body))
                except Exception:
                    logger.exception("could not record the poison message")
        return super().failure_handler(record, exception)


def process_batch_then_send(
    event: dict,
    context,
    processor: SqsFifoPartialProcessor,
    record_handler,
    pending: list,
    send: Callable[[list], object],
) -> dict:
    """Process an SQS batch (FIFO partial failures) whose record handler appends to ``pending``, then
    ``send`` what was appended in one go. A failed send fails the invocation, so SQS redelivers the batch."""
    pending.clear()
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    if pending:
        send(list(pending))
        pending.clear()
    return response
