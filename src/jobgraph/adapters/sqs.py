"""Sending jobs and completions to the FIFO queues (boto3 imported lazily)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from jobgraph.adapters.clients import LazyClient, default_client
from jobgraph.core.errors import StoreError
from jobgraph.core.models import CompletedJob, IncomingJob

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

MAX_BATCH = 10  # SQS SendMessageBatch limit
# SendMessageBatch: the bodies of one call add up to at most 1 MiB (a route state carried in the messages
# can make ten of them larger than that)
MAX_BATCH_BYTES = 1024 * 1024


def dedup_id(*parts: str) -> str:
    """FIFO MessageDeduplicationId from the deterministic job id (≤128 chars, safe alphabet)."""
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


class FifoQueue:
    client: LazyClient[SQSClient] = LazyClient("sqs")

    def __init__(self, queue_url: str, client: SQSClient | None = None):
        self.queue_url = queue_url
        self._client = client

    def _send_batches(self, entries: list[SendMessageBatchRequestEntryTypeDef]) -> None:
        """Entries in calls of at most 10 messages and 1 MiB of bodies, in order."""
        batch: list[SendMessageBatchRequestEntryTypeDef] = []
        size = 0
        for entry in entries:
            body = len(entry["MessageBody"].encode())
            if batch and (len(batch) == MAX_BATCH or size + body > MAX_BATCH_BYTES):
                self._send_batch(batch)
                batch, size = [], 0
            batch.append(entry)
            size += body
        if batch:
            self._send_batch(batch)

    def _send_batch(self, entries: list[SendMessageBatchRequestEntryTypeDef]) -> None:
        """SendMessageBatch with one retry of entries SQS reports as failed (throttling, internal)."""
        for _attempt in range(3):
            response = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = {f["Id"]: f for f in response.get("Failed", [])}
            if not failed:
                return
            sender_faults = [f for f in failed.values() if f.get("SenderFault")]
            if sender_faults:
                raise StoreError(f"SQS rejected messages: {sender_faults[:3]}")
            entries = [e for e in entries if e["Id"] in failed]
        raise StoreError(f"SQS kept failing {len(entries)} messages: {list(failed.values())[:3]}")

    def send_jobs(self, jobs: Iterable[IncomingJob]) -> int:
        """Send incoming jobs, 10 per call; message group = correlation_id, dedup = job_id."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": str(i),
                "MessageBody": job.model_dump_json(exclude_none=True),
                "MessageGroupId": job.correlation_id,
                "MessageDeduplicationId": dedup_id(job.job_id),
            }
            for i, job in enumerate(jobs)
        ]
        self._send_batches(entries)
        return len(entries)

    def send_completion(self, completed: CompletedJob, attempt: int = 1) -> None:
        """One completion (a failure report, sent as it happens)."""
        self.send_completions([completed], attempt)

    def send_completions(self, completions: Iterable[CompletedJob], attempt: int = 1) -> int:
        """Completions, 10 per call. Deduplicated per job and status; failures per attempt, so each is reported."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = []
        for i, completed in enumerate(completions):
            parts = [completed.job_id, completed.status.value]
            if completed.status.value == "failed":
                parts.append(str(attempt))
            entries.append(
                {
                    "Id": str(i),
                    "MessageBody": completed.model_dump_json(exclude_none=True),
                    "MessageGroupId": completed.correlation_id,
                    "MessageDeduplicationId": dedup_id(*parts),
                }
            )
        self._send_batches(entries)
        return len(entries)

    def set_visibility(self, entries: list[tuple[str, int]]) -> int:
        """Messages in hand (receipt handle, seconds) visible again after their seconds; returns how many
        SQS refused (logged by the caller; such a message comes back after the visibility it had)."""
        refused = 0
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start : start + MAX_BATCH]
            response = self.client.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": int(seconds)}
                    for i, (handle, seconds) in enumerate(chunk)
                ],
            )
            refused += len(response.get("Failed", []))
        return refused

    def depth(self) -> tuple[int, int]:
        """(visible, in flight) messages, as SQS approximates them."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def send_job(self, job: IncomingJob, deduplication_id: str) -> str:
        """One job with an explicit deduplication id (API tasks: the client's key); returns the MessageId."""
        response = self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=job.model_dump_json(exclude_none=True),
            MessageGroupId=job.correlation_id,
            MessageDeduplicationId=dedup_id(deduplication_id),
        )
        return response["MessageId"]


def queue_url_for_arn(queue_arn: str, client: SQSClient | None = None) -> str:
    """A queue's URL from its ARN (an SQS record's eventSourceARN), on the endpoint the client talks to:
    ``https://sqs.<region>.amazonaws.com/<account>/<name>`` on AWS, the local cloud's under it."""
    parts = queue_arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise StoreError(f"not an SQS queue ARN: {queue_arn[:120]!r}")
    endpoint = (client or default_client("sqs")).meta.endpoint_url.rstrip("/")
    return f"{endpoint}/{parts[4]}/{parts[5]}"


def sqs_event(messages: list[MessageTypeDef], queue_arn: str, region: str) -> dict[str, Any]:
    """The SQS event Lambda's event source mapping would pass for ReceiveMessage ``messages``.

    The ECS worker (services/worker.py) hands its batches to the Processor's Powertools batch processor in
    this shape, and the local Lambda runtime (localcloud/event_sources/poller.py) builds its invocations with it.
    """
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
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }
