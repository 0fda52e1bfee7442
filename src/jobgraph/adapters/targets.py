"""Downstream targets: one AWS call per trigger type (boto3 clients created lazily, injectable).

``fire`` sends what seed 003 says each target receives (core.triggers builds it) under the trigger's
``token``, the same on every attempt, so targets that can drop a repeat do: a Step Functions execution
name, a FIFO deduplication id, an Airflow dag_run_id. Glue takes no idempotency token: ``find`` looks for a
run carrying the token in its ``--jobgraph_trigger_id`` argument instead. Each call returns a short receipt
(execution ARN, job run id, event id, message id, DAG run id).

Errors are sorted by what they say about the call: ``TargetRefusedError`` when the target answered that it
did not take the request (a 4xx, a failed entry, an Airflow error), so a retry is safe; anything else
(a timeout, a dropped connection, a 5xx) may or may not have been applied and propagates as it is. The
clients make no retries of their own, so no request is silently sent twice.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from jobgraph.adapters.clients import ClientFactory
from jobgraph.core.errors import TargetRefusedError
from jobgraph.core.triggers import (
    EventBridgeTarget,
    GlueJobTarget,
    MwaaDagTarget,
    SnsTarget,
    SqsMwaaTarget,
    SqsTarget,
    StepFunctionTarget,
    Trigger,
    WorkflowConfig,
    dag_conf,
    glue_arguments,
    orchestration_input,
    sqs_mwaa_message,
)

if TYPE_CHECKING:
    from mypy_boto3_glue.type_defs import GetJobRunsResponseTypeDef
    from mypy_boto3_sns.type_defs import PublishInputTypeDef
    from mypy_boto3_sqs.type_defs import SendMessageRequestTypeDef

GLUE_LOOKUP_PAGES = 5  # GetJobRuns pages (up to 200 runs each) searched for a run of an earlier attempt


@cache
def single_attempt_client(service: str, region: str | None = None) -> Any:
    """boto3's client of ``service`` in ``region`` that makes one attempt per call (made once per service and
    region); Any as in adapters.clients.default_client (Targets holds it as a ClientFactory, typed per service)."""
    import boto3
    from botocore.config import Config

    # one attempt per call: a retry after an ambiguous failure is the claim's decision, not the SDK's
    return boto3.client(  # type: ignore[call-overload]  # boto3-stubs overloads on literal service names
        service, region_name=region, config=Config(retries={"mode": "standard", "max_attempts": 1})
    )


class Targets:
    """Fires one trigger on its target; ``client(service, region)`` gives the boto3 client (injected in tests)."""

    def __init__(self, client: ClientFactory = single_attempt_client):
        self.client = client

    def fire(self, trigger: Trigger, event: dict[str, Any], token: str, config: WorkflowConfig) -> str:
        from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError

        handler = getattr(self, f"_{trigger.type}")
        try:
            receipt: str = handler(trigger, event, token, config)
            return receipt
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if status >= 500:
                raise  # the service failed: the request may have been applied
            error = exc.response.get("Error", {})
            raise TargetRefusedError(f"{error.get('Code')}: {error.get('Message')}") from exc
        except (ParamValidationError, EndpointConnectionError) as exc:
            raise TargetRefusedError(str(exc)) from exc  # never sent

    def find(self, trigger: Trigger, token: str) -> str | None:
        """The receipt of an earlier attempt with this token, where the target can be asked (Glue); else None."""
        if not isinstance(trigger, GlueJobTarget):
            return None
        glue = self.client("glue", trigger.region)
        kwargs: dict[str, str] = {}
        for _ in range(GLUE_LOOKUP_PAGES):
            response: GetJobRunsResponseTypeDef = glue.get_job_runs(JobName=trigger.job_name, MaxResults=200, **kwargs)
            for run in response.get("JobRuns", []):
                if (run.get("Arguments") or {}).get("--jobgraph_trigger_id") == token:
                    return run["Id"]
            if not response.get("NextToken"):
                return None
            kwargs = {"NextToken": response["NextToken"]}
        return None

    def _glue_job(self, trigger: GlueJobTarget, event: dict[str, Any], token: str, _config: WorkflowConfig) -> str:
        response = self.client("glue", trigger.region).start_job_run(
            JobName=trigger.job_name, Arguments=glue_arguments(trigger, event, token)
        )
        return response["JobRunId"]

    def _step_function(
        self, trigger: StepFunctionTarget, event: dict[str, Any], token: str, _config: WorkflowConfig
    ) -> str:
        from botocore.exceptions import ClientError

        region = trigger.arn.split(":")[3]
        try:
            response = self.client("stepfunctions", region).start_execution(
                stateMachineArn=trigger.arn, name=token, input=json.dumps(orchestration_input(event))
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            # an earlier attempt started it (and it has finished, or its input differs): fired already
            return trigger.arn.replace(":stateMachine:", ":execution:") + f":{token}"
        return response["executionArn"]

    def _eventbridge(
        self, trigger: EventBridgeTarget, event: dict[str, Any], _token: str, _config: WorkflowConfig
    ) -> str:
        client = self.client(
            "events", trigger.event_bus.split(":")[3] if trigger.event_bus.startswith("arn:") else None
        )
        response = client.put_events(
            Entries=[
                {
                    "EventBusName": trigger.event_bus,
                    "Source": trigger.source,
                    "DetailType": trigger.detail_type,
                    "Detail": json.dumps(orchestration_input(event)),
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise TargetRefusedError(f"PutEvents: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
        return response["Entries"][0]["EventId"]

    def _mwaa_dag(self, trigger: MwaaDagTarget, event: dict[str, Any], token: str, _config: WorkflowConfig) -> str:
        from botocore.exceptions import ClientError

        try:
            response = self.client("mwaa", trigger.region).invoke_rest_api(
                Name=trigger.environment_name,
                Path=f"/dags/{trigger.dag_id}/dagRuns",
                Method="POST",
                Body={"dag_run_id": token, "conf": dag_conf(trigger, event)},
            )
        except ClientError as exc:
            # Airflow's 4xx comes back as RestApiClientException; 409: a DAG run of this id exists already
            if exc.response.get("RestApiStatusCode") == 409:
                return token
            raise
        return str((response.get("RestApiResponse") or {}).get("dag_run_id", token))

    def _send(self, queue_url: str, body: dict[str, Any], group: str | None, token: str) -> str:
        request: SendMessageRequestTypeDef = {"QueueUrl": queue_url, "MessageBody": json.dumps(body)}
        if queue_url.endswith(".fifo"):
            assert group is not None, "a FIFO queue's target has a message group (core.triggers validates it)"
            request |= {"MessageGroupId": group, "MessageDeduplicationId": token}
        host = urlparse(queue_url).hostname or ""
        region = host.split(".")[1] if host.startswith("sqs.") else None
        response = self.client("sqs", region).send_message(**request)
        return response["MessageId"]

    def _sqs_mwaa(self, trigger: SqsMwaaTarget, event: dict[str, Any], token: str, config: WorkflowConfig) -> str:
        message = sqs_mwaa_message(trigger, event, token)
        return self._send(config.queue_url_of(trigger), message, trigger.message_group_id or trigger.dag_id, token)

    def _sqs(self, trigger: SqsTarget, event: dict[str, Any], token: str, _config: WorkflowConfig) -> str:
        return self._send(trigger.queue_url, orchestration_input(event), trigger.message_group_id, token)

    def _sns(self, trigger: SnsTarget, event: dict[str, Any], token: str, _config: WorkflowConfig) -> str:
        request: PublishInputTypeDef = {
            "TopicArn": trigger.topic_arn,
            "Message": json.dumps(orchestration_input(event)),
        }
        if trigger.subject:
            request["Subject"] = trigger.subject
        if trigger.topic_arn.endswith(".fifo"):
            assert trigger.message_group_id is not None, "SnsTarget validates it for a FIFO topic"
            request |= {"MessageGroupId": trigger.message_group_id, "MessageDeduplicationId": token}
        response = self.client("sns", trigger.topic_arn.split(":")[3]).publish(**request)
        return response["MessageId"]
