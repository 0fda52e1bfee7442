"""The local cloud's moto speed-ups change nothing but speed."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws

from jobgraph.localcloud import motopatches


def test_lazy_queue_attributes_equal_motos_own():
    assert "lazy SQS queue attributes" in motopatches.apply()
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import Queue, sqs_backends

    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dlq = sqs.create_queue(QueueName="d.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        url = sqs.create_queue(
            QueueName="q.fifo",
            Attributes={
                "FifoQueue": "true",
                "VisibilityTimeout": "360",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
                "KmsMasterKeyId": "alias/aws/sqs",
            },
        )["QueueUrl"]
        plain = sqs.create_queue(QueueName="plain")["QueueUrl"]
        for index in range(5):
            sqs.send_message(
                QueueUrl=url, MessageBody="x", MessageGroupId=f"g{index % 2}", MessageDeduplicationId=str(index)
            )
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)  # some in flight, some visible
        backend = sqs_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
        for name in ("q.fifo", "d.fifo", "plain"):
            queue = backend.get_queue(name)
            assert dict(queue.attributes) == Queue.moto_attributes.fget(queue), name
        counts = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert counts == {"ApproximateNumberOfMessages": "3", "ApproximateNumberOfMessagesNotVisible": "2"}
        assert (
            sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"]["VisibilityTimeout"] == "30"
        )
