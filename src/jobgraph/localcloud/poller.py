"""Event source mappings, emulated: poll SQS like Lambda's ESM does and invoke local workers.

Per mapping, ``MaximumConcurrency`` poller threads each own one worker process. A poller receives up to
``BatchSize`` messages (moto's SQS enforces FIFO group order and visibility), invokes the handler, deletes
the successes and leaves ``batchItemFailures`` (or the whole batch, when the invocation failed) for
redelivery, so moto's redrive moves a message to the DLQ after ``maxReceiveCount`` receives.

One deliberate difference from AWS: a message to retry is made visible again after ``retry_delay_s``
(default 1 s) rather than after the queue's full visibility timeout (≥ 6 × the function timeout), so a
local rehearsal with faults takes seconds, not hours.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.workers import FunctionSpec, Worker


@dataclass(frozen=True)
class MappingSpec:
    function: FunctionSpec
    queue_url: str
    queue_arn: str
    batch_size: int
    concurrency: int
    report_batch_item_failures: bool
    max_receive_count: int | None
    region: str = "eu-west-1"


@dataclass
class RuntimeStats:
    """Counters shared by all pollers (guarded by one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    invocations: Counter = field(default_factory=Counter)
    cold_starts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    error_times: dict = field(default_factory=lambda: defaultdict(deque))
    deaths: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)
    redeliveries: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    queue_wait_ms: dict = field(default_factory=lambda: defaultdict(list))
    invocation_ms: dict = field(default_factory=lambda: defaultdict(list))
    in_flight: Counter = field(default_factory=Counter)
    last_error: dict = field(default_factory=dict)
    done_jobs: dict = field(default_factory=lambda: defaultdict(set))  # function -> job ids it finished
    oldest_age_s: dict = field(default_factory=dict)  # queue url -> largest wait seen since last read

    def take_oldest_age(self, queue_url: str) -> float | None:
        """Largest queue wait of a first receive since the previous call (ApproximateAgeOfOldestMessage)."""
        with self.lock:
            return self.oldest_age_s.pop(queue_url, None)

    def add(self, **counters) -> None:
        with self.lock:
            for name, (key, value) in counters.items():
                getattr(self, name)[key] += value


def lambda_event(messages: list[dict], mapping: MappingSpec) -> dict:
    """The SQS event Lambda would pass for these messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": mapping.region,
            }
            for m in messages
        ]
    }


def _job_id(message: dict) -> str | None:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return None
    return body.get("job_id") if isinstance(body, dict) else None


class Poller(threading.Thread):
    def __init__(
        self,
        mapping: MappingSpec,
        worker: Worker,
        sqs,
        stats: RuntimeStats,
        stop: threading.Event,
        faults: FaultPlan,
        rng_seed: int,
        retry_delay_s: int = 1,
    ):
        super().__init__(daemon=True, name=f"poller-{mapping.function.logical_id}-{rng_seed}")
        self.mapping, self.worker, self.sqs, self.stats = mapping, worker, sqs, stats
        self.stop_event, self.faults, self.retry_delay_s = stop, faults, retry_delay_s
        self.rng = random.Random(rng_seed)
        self.fatal: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self.poll_once(wait_seconds=1)
        except BaseException as exc:  # surfaced by the runtime; a poller must not die silently
            self.fatal = exc
            self.stop_event.set()
        finally:
            self.worker.stop()

    def poll_once(self, wait_seconds: int = 0) -> int:
        response = self.sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=self.mapping.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        name = self.mapping.function.logical_id
        now_ms = time.time() * 1000
        last_attempt = False
        for message in messages:
            count = int(message["Attributes"].get("ApproximateReceiveCount", "1"))
            if count == 1:
                wait_ms = now_ms - int(message["Attributes"]["SentTimestamp"])
                with self.stats.lock:
                    self.stats.queue_wait_ms[name].append(wait_ms)
                    queue = self.mapping.queue_url
                    self.stats.oldest_age_s[queue] = max(self.stats.oldest_age_s.get(queue, 0.0), wait_ms / 1000)
            else:
                self.stats.add(redeliveries=(name, 1))
            if self.mapping.max_receive_count and count >= self.mapping.max_receive_count:
                last_attempt = True
            if self.faults.duplicate(self.rng, message["Body"]):
                self._duplicate(message)
        self.stats.add(received=(name, len(messages)), in_flight=(name, len(messages)))
        fault = self.faults.invocation_fault(self.rng, last_attempt)
        if fault:
            self.stats.add(faults=(fault, 1))
        try:
            outcome = self.worker.invoke(lambda_event(messages, self.mapping), fault)
        finally:
            self.stats.add(in_flight=(name, -len(messages)))
        with self.stats.lock:
            self.stats.invocations[name] += 1
            self.stats.cold_starts[name] += int(outcome.cold_start)
            self.stats.invocation_ms[name].append(outcome.duration_ms)
        retry = {m["MessageId"] for m in messages}
        if outcome.ok:
            if self.mapping.report_batch_item_failures and isinstance(outcome.result, dict):
                retry = {f["itemIdentifier"] for f in outcome.result.get("batchItemFailures", [])}
            else:
                retry = set()
        else:
            with self.stats.lock:
                self.stats.errors[name] += 1
                self.stats.error_times[name].append(time.time())
                self.stats.deaths[name] += int(outcome.died)
                self.stats.last_error[name] = outcome.error
        done = [m for m in messages if m["MessageId"] not in retry]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        self.stats.add(deleted=(name, len(done)))
        finished = {job_id for job_id in map(_job_id, done) if job_id}
        if finished:
            with self.stats.lock:
                self.stats.done_jobs[name].update(finished)
        for message in messages:
            if message["MessageId"] in retry:
                self.sqs.change_message_visibility(
                    QueueUrl=self.mapping.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=self.retry_delay_s,
                )
        return len(messages)

    def _duplicate(self, message: dict) -> None:
        """At-least-once delivery, made visible: the same body again, with a dedup id SQS has not seen."""
        attributes = message["Attributes"]
        self.sqs.send_message(
            QueueUrl=self.mapping.queue_url,
            MessageBody=message["Body"],
            MessageGroupId=attributes["MessageGroupId"],
            MessageDeduplicationId=f"dup-{message['MessageId']}",
        )
        self.stats.add(duplicates=(self.mapping.function.logical_id, 1))
