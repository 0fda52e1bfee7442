"""Event source mappings, emulated: poll SQS like Lambda's ESM does and invoke local workers.

Per mapping, one receiver thread takes up to ``BatchSize`` messages whenever one of the mapping's
``MaximumConcurrency`` invokers is free (moto's SQS enforces FIFO group order and visibility) and hands
the batch to it; the invoker runs it in its worker process, deletes the successes and leaves
``batchItemFailures`` (or the whole batch, when the invocation failed) for redelivery, so moto's redrive
moves a message to the DLQ after ``maxReceiveCount`` receives.

Why a single receiver: moto's ReceiveMessage is not atomic across threads (two concurrent calls can hand
out the same message, or two messages of one FIFO group), and a long poll decides which groups are busy
when it starts, delaying a group's next message by up to the wait time. One receiver per queue, polling
without a wait, has neither problem; when the queue is empty it sleeps until moto signals a new message
(``wait_for_messages``), so an idle mapping costs the single-threaded server nothing.

Retries as on AWS: the functions set a failed record's visibility to their exponential backoff before
they return (services/records.py), and the poller leaves it so. One deliberate difference: when an
invocation fails as a whole (a crash, an injected fault, a batch whose every record failed), AWS makes
its messages visible again after the queue's visibility timeout (≥ 6 × the function timeout) unless the
function shortened it; locally they come back after the same backoff curve from ``retry_delay_s``
(default localcloud.timescale.LOCAL_RETRY_DELAY_S, 1 s: 1, 2, 4 s…), so a local rehearsal with faults takes seconds, not hours.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from jobgraph.adapters.sqs import sqs_event
from jobgraph.core.retry import backoff_s
from jobgraph.localcloud.faults import FaultPlan, on_last_receive
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, Worker
from jobgraph.localcloud.timescale import LOCAL_RETRY_DELAY_S

IDLE_MIN_S = 0.005
IDLE_MAX_S = 0.05
WAKE_UP_S = 0.25
LOCAL_BACKOFF_MAX_S = 30


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
    deaths: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    received: Counter = field(default_factory=Counter)
    redeliveries: Counter = field(default_factory=Counter)
    deleted: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    queue_wait_ms: dict = field(default_factory=lambda: defaultdict(list))
    invocation_ms: dict = field(default_factory=lambda: defaultdict(list))
    # per batch, how long it held its worker slot: from the receive that got it to the slot free again (the
    # invocation, the event's way to the worker and the result's back, the log lines, the deletes)
    slot_ms: dict = field(default_factory=lambda: defaultdict(list))
    init_ms: dict = field(default_factory=lambda: defaultdict(list))  # one per cold start
    in_flight: Counter = field(default_factory=Counter)
    last_error: dict = field(default_factory=dict)
    done_jobs: dict = field(default_factory=lambda: defaultdict(set))  # function -> job ids it finished

    def record_invocation(self, name: str, outcome) -> None:
        """One invocation's billing figures, and its error if it failed (the caller holds the lock)."""
        self.invocations[name] += 1
        self.cold_starts[name] += int(outcome.cold_start)
        self.invocation_ms[name].append(outcome.duration_ms)
        if outcome.cold_start:
            self.init_ms[name].append(outcome.init_ms)
        if not outcome.ok:
            self.errors[name] += 1
            self.deaths[name] += int(outcome.died)
            self.last_error[name] = outcome.error

    def add(self, **counters) -> None:
        with self.lock:
            for name, (key, value) in counters.items():
                getattr(self, name)[key] += value


def lambda_event(messages: list[dict], mapping: MappingSpec) -> dict:
    """The SQS event Lambda would pass for these messages."""
    return sqs_event(messages, mapping.queue_arn, mapping.region)


def _job_id(message: dict) -> str | None:
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return None
    return body.get("job_id") if isinstance(body, dict) else None


class MappingPoller:
    """One event source mapping: a receiver thread and one invoker thread per worker process."""

    def __init__(
        self,
        mapping: MappingSpec,
        workers: list[Worker],
        sqs,
        stats: RuntimeStats,
        stop: threading.Event,
        faults: FaultPlan,
        rng_seed: int,
        retry_delay_s: int = LOCAL_RETRY_DELAY_S,
        wait_for_messages=None,
    ):
        self.mapping, self.workers, self.sqs, self.stats = mapping, workers, sqs, stats
        self.wait_for_messages = wait_for_messages or stop.wait
        self.stop_event, self.faults, self.retry_delay_s = stop, faults, retry_delay_s
        self.rng = random.Random(rng_seed)
        self.fatal: BaseException | None = None
        self._free: queue.Queue[int] = queue.Queue()
        self._inboxes = [queue.Queue(maxsize=1) for _ in workers]
        name = mapping.function.logical_id
        self._threads = [threading.Thread(target=self._guard, args=(self._receive,), daemon=True, name=f"{name}-rx")]
        for slot in range(len(workers)):
            self._free.put(slot)
            rng = random.Random(rng_seed * 1000 + slot)
            thread = threading.Thread(target=self._guard, args=(self._invoke_loop, slot, rng), daemon=True)
            thread.name = f"{name}-{slot}"
            self._threads.append(thread)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.05, deadline - time.monotonic()))

    def _guard(self, target, *args) -> None:
        try:
            target(*args)
        except BaseException as exc:  # surfaced by the runtime; a poller must not die silently
            self.fatal = self.fatal or exc
            self.stop_event.set()

    # --- receiving --------------------------------------------------------------------------------
    def _receive(self) -> None:
        idle = IDLE_MIN_S
        while not self.stop_event.is_set():
            try:
                slot = self._free.get(timeout=0.1)
            except queue.Empty:
                continue
            received_at = time.monotonic()
            messages = self.sqs.receive_message(
                QueueUrl=self.mapping.queue_url,
                MaxNumberOfMessages=self.mapping.batch_size,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                self._free.put(slot)
                # sleep until a message arrives (or a retry's visibility lapses), then back off a little:
                # a visible message may still be undeliverable while its FIFO group is in flight
                self.wait_for_messages(WAKE_UP_S)
                self.stop_event.wait(idle)
                idle = min(idle * 2, IDLE_MAX_S)
                continue
            idle = IDLE_MIN_S
            self._note_received(messages)
            self._inboxes[slot].put((messages, received_at))

    def _note_received(self, messages: list[dict]) -> None:
        name = self.mapping.function.logical_id
        now_ms = time.time() * 1000
        for message in messages:
            count = int(message["Attributes"].get("ApproximateReceiveCount", "1"))
            with self.stats.lock:
                if count == 1:
                    self.stats.queue_wait_ms[name].append(now_ms - int(message["Attributes"]["SentTimestamp"]))
                else:
                    self.stats.redeliveries[name] += 1
            if self.faults.duplicate(self.rng, message["Body"]):
                self._duplicate(message)
        self.stats.add(received=(name, len(messages)), in_flight=(name, len(messages)))

    def _duplicate(self, message: dict) -> None:
        """At-least-once delivery, made visible: the same body again, with a dedup id SQS has not seen."""
        attributes = message["Attributes"]
        fifo = (
            {"MessageGroupId": attributes["MessageGroupId"], "MessageDeduplicationId": f"dup-{message['MessageId']}"}
            if "MessageGroupId" in attributes
            else {}  # a standard queue (the trigger queue): no group, no deduplication
        )
        self.sqs.send_message(QueueUrl=self.mapping.queue_url, MessageBody=message["Body"], **fifo)
        self.stats.add(duplicates=(self.mapping.function.logical_id, 1))

    # --- invoking ---------------------------------------------------------------------------------
    def _invoke_loop(self, slot: int, rng: random.Random) -> None:
        worker = self.workers[slot]
        try:
            while not self.stop_event.is_set():
                try:
                    messages, received_at = self._inboxes[slot].get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    self.dispatch(worker, rng, messages)
                finally:
                    with self.stats.lock:
                        self.stats.slot_ms[self.mapping.function.logical_id].append(
                            (time.monotonic() - received_at) * 1000
                        )
                    self._free.put(slot)
        finally:
            worker.stop()

    def dispatch(self, worker: Worker, rng: random.Random, messages: list[dict]) -> None:
        """Invoke the function with one batch and settle every message: delete it or return it for retry."""
        name = self.mapping.function.logical_id
        fault = self.faults.invocation_fault(rng, on_last_receive(messages, self.mapping.max_receive_count))
        if fault:
            self.stats.add(faults=(fault, 1))
        try:
            outcome = worker.invoke(lambda_event(messages, self.mapping), fault)
        finally:
            self.stats.add(in_flight=(name, -len(messages)))
        retry = {m["MessageId"] for m in messages}
        if outcome.ok:
            if self.mapping.report_batch_item_failures and isinstance(outcome.result, dict):
                retry = {f["itemIdentifier"] for f in outcome.result.get("batchItemFailures", [])}
            else:
                retry = set()
        with self.stats.lock:
            self.stats.record_invocation(name, outcome)
        done = [m for m in messages if m["MessageId"] not in retry]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            if response.get("Failed"):
                raise RuntimeError(f"{name}: SQS did not delete processed messages: {response['Failed'][:3]}")
        finished = {job_id for job_id in map(_job_id, done) if job_id}
        with self.stats.lock:
            self.stats.deleted[name] += len(done)
            self.stats.done_jobs[name].update(finished)
        if outcome.ok:
            return  # the function set its failed records' backoff itself (module docstring)
        for message in messages:
            if message["MessageId"] in retry:
                # the local stand-in for the queue's visibility timeout (module docstring)
                attempt = int(message["Attributes"].get("ApproximateReceiveCount", "1"))
                self.sqs.change_message_visibility(
                    QueueUrl=self.mapping.queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                    VisibilityTimeout=backoff_s(attempt, self.retry_delay_s, LOCAL_BACKOFF_MAX_S),
                )
