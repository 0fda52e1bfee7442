"""A moto-backed copy of the stack's data plane (bucket, table, FIFO queues with DLQs) for handler tests, the
status API served on it, and the local cloud's moto server with a fresh jobs table per test (the table adapter's
exactly-once tests: a module may define its own ``endpoint``/``table`` instead)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import boto3
import pytest
from moto import mock_aws

from tests.lambda_support import reset_cached_clients


@dataclass
class FakeStack:
    s3: object
    sqs: object
    dynamodb: object
    bucket: str
    table: str
    incoming_url: str
    outgoing_url: str
    incoming_dlq_url: str
    outgoing_dlq_url: str

    def drain(self, queue_url: str) -> list[dict]:
        """Receive and delete every visible message; return (body, group id) dicts in order."""
        out = []
        while True:
            response = self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=0
            )
            messages = response.get("Messages", [])
            if not messages:
                return out
            for message in messages:
                out.append({"body": json.loads(message["Body"]), "group": message["Attributes"]["MessageGroupId"]})
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def item(self, pk: str, sk: str) -> dict | None:
        from boto3.dynamodb.types import TypeDeserializer

        response = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
        if "Item" not in response:
            return None
        return {k: TypeDeserializer().deserialize(v) for k, v in response["Item"].items()}


def create_table(client, name: str) -> None:
    """The jobs table as template.yaml declares it (keys and indexes), so the tests cannot drift from it."""
    from jobgraph.sam.template import load_template
    from tests.lambda_support import ROOT

    declared = load_template(ROOT / "template.yaml")["Resources"]["JobsTable"]["Properties"]
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=declared["AttributeDefinitions"],
        KeySchema=declared["KeySchema"],
        GlobalSecondaryIndexes=declared["GlobalSecondaryIndexes"],
    )


def create_fifo_queue(client, name: str) -> tuple[str, str]:
    dlq = client.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = client.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}),
        },
    )["QueueUrl"]
    return url, dlq


@pytest.fixture
def fake_stack(monkeypatch):
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        sqs = boto3.client("sqs", region_name="eu-west-1")
        dynamodb = boto3.client("dynamodb", region_name="eu-west-1")
        s3.create_bucket(Bucket="jobgraph-results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        create_table(dynamodb, "jobgraph-jobs")
        incoming, incoming_dlq = create_fifo_queue(sqs, "test-incoming")
        outgoing, outgoing_dlq = create_fifo_queue(sqs, "test-outgoing")
        env = {
            "BUCKET_NAME": "jobgraph-results",
            "TABLE_NAME": "jobgraph-jobs",
            "INCOMING_QUEUE_URL": incoming,
            "OUTGOING_QUEUE_URL": outgoing,
            "TEST_RUN_ID": "default",
            "DEFAULT_SCENARIOS": "1000",
            "POWERTOOLS_SERVICE_NAME": "test",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_cached_clients()
        yield FakeStack(
            s3, sqs, dynamodb, "jobgraph-results", "jobgraph-jobs", incoming, outgoing, incoming_dlq, outgoing_dlq
        )
        reset_cached_clients()


@pytest.fixture
def api(fake_stack):
    """The status API (FastAPI's TestClient, redirects not followed) on ``fake_stack``; ``api.stack``, ``api.deps``."""
    from fastapi.testclient import TestClient

    from jobgraph.api.app import create_app
    from jobgraph.services import status
    from jobgraph.services.settings import ApiSettings, load_settings

    status.api_deps.cache_clear()
    deps = status.ApiDeps.from_settings(load_settings(ApiSettings))
    client = TestClient(create_app(lambda: deps), raise_server_exceptions=False, follow_redirects=False)
    client.stack, client.deps = fake_stack, deps
    yield client
    status.api_deps.cache_clear()


@pytest.fixture(scope="module")
def endpoint():
    """The local cloud's moto server (one per module): each request atomic, as DynamoDB's."""
    from jobgraph.localcloud.server import LocalEndpoint

    with LocalEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def table(endpoint, request):
    """A fresh jobs table on ``endpoint`` for each test (its name from the test's, parameters included)."""
    from jobgraph.adapters.dynamodb import JobsTable

    name = f"jobs-{abs(hash(request.node.name)) % 10**8}"
    create_table(endpoint.client("dynamodb"), name)
    return JobsTable(name, client=endpoint.client("dynamodb"))
