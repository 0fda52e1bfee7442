"""Downstream trigger targets: one AWS call per target type (boto3 clients created lazily, injectable).

Each ``fire`` returns a short receipt (event id, message id, execution ARN, job run id, DAG run id) that the
trigger record keeps; AWS errors propagate as ClientError so the trigger's SQS message is retried.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache

from jobgraph.core.errors import StoreError
from jobgraph.core.triggers import (
    EventBridgeTarget,
    GlueTarget,
    MwaaTarget,
    SnsTarget,
    SqsTarget,
    StepFunctionsTarget,
)


@cache
def default_client(service: str):
    import boto3

    return boto3.client(service)


class TargetFailedError(StoreError):
    """The target answered, but said it did not take the request (e.g. PutEvents FailedEntryCount)."""


class Targets:
    """Fires one trigger on its target; ``client(service)`` gives the boto3 client (injected in tests)."""

    def __init__(self, client: Callable[[str], object] = default_client):
        self.client = client

    def fire(self, target, payload, dedup_key: str) -> str:
        handler = getattr(self, f"_{target.type}")
        return handler(target, payload, dedup_key)

    def _eventbridge(self, target: EventBridgeTarget, payload, _key: str) -> str:
        response = self.client("events").put_events(
            Entries=[
                {
                    "EventBusName": target.event_bus_arn,
                    "Source": target.source,
                    "DetailType": target.detail_type,
                    "Detail": json.dumps(payload),
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise TargetFailedError(f"PutEvents: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        return response["Entries"][0]["EventId"]

    def _sqs(self, target: SqsTarget, payload, key: str) -> str:
        extra = {}
        if target.queue_url.endswith(".fifo"):
            extra = {"MessageGroupId": target.message_group_id, "MessageDeduplicationId": _token(key, 128)}
        response = self.client("sqs").send_message(QueueUrl=target.queue_url, MessageBody=json.dumps(payload), **extra)
        return response["MessageId"]

    def _stepfunctions(self, target: StepFunctionsTarget, payload, key: str) -> str:
        # the execution name is the trigger key: a repeat with the same input is a no-op for standard workflows
        response = self.client("stepfunctions").start_execution(
            stateMachineArn=target.state_machine_arn, name=_token(key, 80), input=json.dumps(payload)
        )
        return response["executionArn"]

    def _glue(self, target: GlueTarget, payload, _key: str) -> str:
        arguments = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (payload or {}).items()}
        response = self.client("glue").start_job_run(JobName=target.job_name, Arguments=arguments)
        return response["JobRunId"]

    def _sns(self, target: SnsTarget, payload, key: str) -> str:
        extra = {"Subject": target.subject} if target.subject else {}
        if target.topic_arn.endswith(".fifo"):
            extra |= {"MessageGroupId": target.message_group_id, "MessageDeduplicationId": _token(key, 128)}
        response = self.client("sns").publish(TopicArn=target.topic_arn, Message=json.dumps(payload), **extra)
        return response["MessageId"]

    def _mwaa(self, target: MwaaTarget, payload, key: str) -> str:
        response = self.client("mwaa").invoke_rest_api(
            Name=target.environment_name,
            Path=f"/dags/{target.dag_id}/dagRuns",
            Method="POST",
            Body={
                "dag_run_id": _token(key, 250),
                "conf": payload if isinstance(payload, dict) else {"payload": payload},
            },
        )
        status = int(response.get("RestApiStatusCode", 0))
        if status >= 300:
            raise TargetFailedError(f"MWAA {target.environment_name}: Airflow answered {status}")
        return str(response.get("RestApiResponse", {}).get("dag_run_id", _token(key, 250)))


def _token(key: str, limit: int) -> str:
    """A name/dedup id from the trigger key: letters, digits, - and _ only (Step Functions, SQS, Airflow)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", key)[:limit]
