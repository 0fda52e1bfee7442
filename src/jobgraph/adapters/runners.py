"""Scenario 3's runner as the status API starts work on it: a Step Functions state machine (one execution per
run, named after it) and the StepTask function (a task's job, invoked asynchronously). boto3 imported lazily.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jobgraph.adapters.clients import LazyClient
from jobgraph.core.errors import RunExistsError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_stepfunctions import SFNClient


class StateMachine:
    client: LazyClient[SFNClient] = LazyClient("stepfunctions")

    def __init__(self, arn: str, client: SFNClient | None = None):
        self.arn = arn
        self._client = client

    def start(self, name: str, execution_input: dict[str, Any]) -> str:
        """Start the execution ``name``; RunExistsError if one of that name ran before (names are never reused)."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.start_execution(
                stateMachineArn=self.arn, name=name, input=json.dumps(execution_input)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                raise RunExistsError(f"run {name!r} was started on {self.arn} before") from None
            raise
        return response["executionArn"]


class AsyncFunction:
    """A Lambda function invoked with InvocationType Event: Lambda queues the event and retries a failed
    invocation twice, so the function must be idempotent (StepTask is, on the job id)."""

    client: LazyClient[LambdaClient] = LazyClient("lambda")

    def __init__(self, name: str, client: LambdaClient | None = None):
        self.name = name
        self._client = client

    def invoke(self, payload: dict[str, Any]) -> None:
        self.client.invoke(FunctionName=self.name, InvocationType="Event", Payload=json.dumps(payload).encode())
