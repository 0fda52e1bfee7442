"""SQS FIFO records as a Lambda event source hands them over, and a record handler that notes what it saw (how many
ran at once, which failed), for the tests of services/records."""

from __future__ import annotations

import threading

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel


def record(group: str, index: int, body: str = "ok", receives: int = 1) -> dict:
    return {
        "messageId": f"{group}-{index}",
        "receiptHandle": f"handle-{group}-{index}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receives),
            "SentTimestamp": "1795338000000",
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1795338000100",
            "MessageGroupId": group,
            "SequenceNumber": str(index),
            "MessageDeduplicationId": f"{group}-{index}",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q.fifo",
        "awsRegion": "eu-west-1",
    }


def interleaved(groups: int, per_group: int) -> list[dict]:
    """A FIFO batch: each group's messages in order, groups interleaved as SQS may hand them out."""
    return [record(f"g{g}", i) for i in range(per_group) for g in range(groups)]


class Recorder:
    def __init__(self, fail: set[str] = frozenset(), barrier: threading.Barrier | None = None):
        self.fail, self.barrier = fail, barrier
        self.seen: list[str] = []
        self.lock = threading.Lock()
        self.active = self.peak = 0

    def __call__(self, record: SqsRecordModel) -> str:
        item = record
        with self.lock:
            self.seen.append(item.messageId)
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            if self.barrier is not None and item.messageId.endswith("-0"):
                self.barrier.wait(timeout=10)  # every group's first record in flight at once, or it breaks
            if item.messageId in self.fail:
                raise RuntimeError(f"{item.messageId} failed")
            return item.messageId
        finally:
            with self.lock:
                self.active -= 1
