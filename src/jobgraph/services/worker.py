"""ECS worker (scenario 2): long-poll the incoming FIFO queue and run each job like the Processor Lambda.

A Fargate task runs ``python3.13 -m jobgraph.services.worker`` (or the ``jobgraph-worker`` script):

- ReceiveMessage long-polls (WaitTimeSeconds 20, up to 10 messages, the task definition's environment).
- Each batch goes through the Processor's own runtime (services/processor.py): the same claim on the job
  record, the same batch processing — message groups concurrently (GROUP_CONCURRENCY), each in order, a
  failure holding back only the later messages of its own group (aircraft). Every message that succeeded
  is deleted; the failed one and the rest of its group stay undeleted and are made visible again after an
  exponential backoff (RETRY_BACKOFF_BASE_SECONDS × 2^(attempt−1), capped, jittered), in order, as SQS
  FIFO redelivers them. A malformed body is recorded and retried until the queue's redrive policy
  dead-letters it.
- While a batch is processed, a heartbeat thread extends the visibility of the messages still in hand
  (ChangeMessageVisibilityBatch every HEARTBEAT_SECONDS), so a long job is not handed to another task; it
  lets go of failed messages before their backoff is set.
- SIGTERM (ECS stopping the task: scale-down, deployment, spot) sets a flag: the batch in hand is finished,
  nothing more is received, and the process exits 0 — within the container's stopTimeout (the last long
  poll returns within 20 s; a batch received after the signal is released at once, not processed).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from jobgraph.adapters.clients import default_client
from jobgraph.adapters.sqs import MAX_BATCH, FifoQueue, sqs_event
from jobgraph.core.errors import ConfigurationError
from jobgraph.services.observability import MetricUnit, logger, metrics
from jobgraph.services.processor import ProcessorRuntime, build_processor_runtime
from jobgraph.services.settings import WorkerSettings, load_settings

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

EXIT_CONFIGURATION = 2

# (messages, process) -> ids of the messages to retry; ``process`` runs messages through the Processor.
# The seam the local cloud's fault injector wraps (localcloud/ecs/task.py); the default just calls it.
type BatchRunner = Callable[[list[MessageTypeDef], Callable[[list[MessageTypeDef]], set[str]]], set[str]]


def run_batch(messages: list[MessageTypeDef], process: Callable[[list[MessageTypeDef]], set[str]]) -> set[str]:
    return process(messages)


@dataclass
class WorkerContext:
    """What the Processor reads from a Lambda context: the time a job may still take (its claim's lease).

    A claim's lease is the visibility timeout, the time after which a crashed task's message is delivered
    again (to any task); the same message re-claims at once anyway (its id is the claimant).
    """

    visibility_timeout_s: int
    function_name: str = "jobgraph-worker"
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return self.visibility_timeout_s * 1000


class VisibilityHeartbeat:
    """Keeps the messages of the batch in hand invisible while it is processed (a daemon thread)."""

    def __init__(self, sqs: SQSClient, queue_url: str, interval_s: float, visibility_timeout_s: int) -> None:
        self.sqs, self.queue_url = sqs, queue_url
        self.interval_s, self.visibility_timeout_s = interval_s, visibility_timeout_s
        self._held: dict[str, str] = {}  # message id -> receipt handle
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.beats = 0

    def __enter__(self) -> VisibilityHeartbeat:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="visibility-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._held.clear()

    def hold(self, messages: list[MessageTypeDef]) -> None:
        with self._lock:
            self._held.update((m["MessageId"], m["ReceiptHandle"]) for m in messages)

    def release(self, message_ids: Iterable[str]) -> None:
        """Stop extending these messages; a beat in progress finishes first (it holds the lock), so no
        later beat can undo a visibility set after this returns."""
        with self._lock:
            for message_id in message_ids:
                self._held.pop(message_id, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                self._beat(list(self._held.items()))
            self.beats += 1

    def _beat(self, held: list[tuple[str, str]]) -> None:
        for start in range(0, len(held), MAX_BATCH):
            chunk = held[start : start + MAX_BATCH]
            try:
                response = self.sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": self.visibility_timeout_s}
                        for i, (_message_id, handle) in enumerate(chunk)
                    ],
                )
            except Exception:  # a missed beat is not fatal: the next one tries again
                logger.exception("visibility heartbeat failed")
                continue
            if response.get("Failed"):
                logger.warning("visibility not extended", extra={"failed": response["Failed"][:3]})


@dataclass
class BatchOutcome:
    received: int
    deleted: int
    retried: int
    duration_ms: float
    queue_wait_ms: list[float] = field(default_factory=list)  # first receives only
    redeliveries: int = 0


class QueueWorker:
    """The polling loop of one task: receive, process, delete or retry, until stopped."""

    def __init__(
        self,
        settings: WorkerSettings,
        runtime: ProcessorRuntime,
        *,
        sqs: SQSClient | None = None,
        batch_runner: BatchRunner = run_batch,
        region: str | None = None,
    ) -> None:
        self.settings, self.runtime = settings, runtime
        self.sqs: SQSClient = sqs or default_client("sqs")
        self.batch_runner = batch_runner
        self.region = region or self.sqs.meta.region_name
        self.stopping = threading.Event()
        self.batches = 0
        self._queue_arn: str | None = None
        self._heartbeat: VisibilityHeartbeat | None = None  # of the batch in hand
        self.context = WorkerContext(settings.visibility_timeout_s)

    @property
    def queue_url(self) -> str:
        return self.settings.incoming_queue_url

    @property
    def queue_arn(self) -> str:
        if self._queue_arn is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = attributes["Attributes"]["QueueArn"]
        return self._queue_arn

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        """Finish the batch in hand, then exit the loop (the SIGTERM handler)."""
        if not self.stopping.is_set():
            logger.info("stopping: finishing the batch in hand", extra={"signal": signum})
        self.stopping.set()

    # --- the loop ---------------------------------------------------------------------------------
    def run(self, max_batches: int | None = None) -> None:
        """Poll until stopped (or ``max_batches`` non-empty batches were handled: tests)."""
        logger.info("worker started", extra={"queue_url": self.queue_url, "wait_time_s": self.settings.wait_time_s})
        while not self.stopping.is_set():
            messages = self.receive()
            if not messages:
                continue
            if self.stopping.is_set():
                # received during the last long poll after SIGTERM: hand it back at once rather than start it
                self.retry_later(messages, backoff=False)
                break
            self.handle(messages)
            if max_batches is not None and self.batches >= max_batches:
                break
        logger.info("worker stopped", extra={"batches": self.batches})

    def receive(self) -> list[MessageTypeDef]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.settings.max_messages,
            WaitTimeSeconds=self.settings.wait_time_s,
            VisibilityTimeout=self.settings.visibility_timeout_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def handle(self, messages: list[MessageTypeDef]) -> BatchOutcome:
        """Process one batch; delete what succeeded, return the rest for redelivery in order."""
        started = time.perf_counter()
        now_ms = time.time() * 1000
        waits: list[float] = []
        redeliveries = 0
        for message in messages:
            if int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) == 1:
                waits.append(round(now_ms - int(message["Attributes"]["SentTimestamp"]), 1))
            else:
                redeliveries += 1
        heartbeat = VisibilityHeartbeat(
            self.sqs, self.queue_url, self.settings.heartbeat_s, self.settings.visibility_timeout_s
        )
        with heartbeat:
            heartbeat.hold(messages)
            self._heartbeat = heartbeat
            try:
                retry = self.batch_runner(messages, self.process)
            except Exception:
                logger.exception("batch failed: every message is retried")
                retry = {m["MessageId"] for m in messages}
                heartbeat.release(retry)
                self.retry_later(messages)
            finally:
                self._heartbeat = None
            done = [m for m in messages if m["MessageId"] not in retry]
            heartbeat.release(m["MessageId"] for m in done)
            self.delete(done)
        self.batches += 1
        outcome = BatchOutcome(
            received=len(messages),
            deleted=len(done),
            retried=len(messages) - len(done),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            queue_wait_ms=waits,
            redeliveries=redeliveries,
        )
        metrics.add_metric(name="WorkerBatchMessages", unit=MetricUnit.Count, value=outcome.received)
        with contextlib.suppress(Exception):  # metrics must not fail a batch that did its work
            metrics.flush_metrics()
        # one line per batch: the local cloud's report (and CloudWatch Logs Insights) read these fields
        logger.info("batch processed", extra={"batch": outcome.__dict__})
        return outcome

    def process(self, messages: list[MessageTypeDef]) -> set[str]:
        """Run messages through the Processor's batch path (ProcessorRuntime.run_batch); returns the ids to
        retry, whose backoff the batch path has set (after the heartbeat let go of them)."""
        heartbeat = self._heartbeat
        release = heartbeat.release if heartbeat is not None else None
        try:
            # the Processor Lambda's own batch path: message groups concurrently, FIFO partial failures and
            # backoff, then the successes' completions sent 10 per call
            response = self.runtime.run_batch(sqs_event(messages, self.queue_arn, self.region), self.context, release)
        except BatchProcessingError:  # every record failed (each is logged already): all are retried
            return {m["MessageId"] for m in messages}
        return {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}

    def delete(self, messages: list[MessageTypeDef]) -> None:
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            if response.get("Failed"):
                # the job is done and recorded; a redelivery is answered from its job record (refused claim)
                logger.warning("processed messages not deleted", extra={"failed": response["Failed"][:3]})

    def retry_later(self, messages: list[MessageTypeDef], backoff: bool = True) -> None:
        """Make messages visible again after their backoff (or at once): SQS redelivers a group's in order.

        For a batch that failed as a whole (its report could not be sent, an injected fault); failed
        records of a batch that ran have their backoff set by the batch path."""
        event = sqs_event(messages, self.queue_arn, self.region)["Records"]
        policy = self.runtime.batch.backoff if backoff else None
        delays = policy.delays(event) if policy is not None else [(r, 0) for r in event]
        FifoQueue(self.queue_url, self.sqs).set_visibility([(r["receiptHandle"], s) for r, s in delays])


def main(
    batch_runner: BatchRunner = run_batch, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> int:
    """Entry point of the container: settings from the environment, then poll until SIGTERM."""
    try:
        settings = load_settings(WorkerSettings)
    except ConfigurationError as exc:
        logger.error("invalid configuration", extra={"error": str(exc)})
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    runtime = build_processor_runtime(settings)
    metrics.set_default_dimensions(TestRunId=settings.test_run_id)
    worker = QueueWorker(settings, runtime, batch_runner=batch_runner)
    for signum in signals:
        signal.signal(signum, worker.stop)
    worker.run()
    return 0


def cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    cli()
