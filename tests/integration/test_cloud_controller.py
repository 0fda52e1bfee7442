"""The local cloud as an AWS endpoint: what is deployed through CloudFormation runs, through the public APIs only.

One endpoint with its controller (the same pair `jobgraph cloud up` serves) for the module; a SAM template with an
inline function on a queue is created, invoked, fed, updated and deleted through boto3, and what AWS would write
(REPORT lines, CloudWatch metrics) is read back the way runs/aws_usage.py reads it.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from jobgraph.localcloud.controller import Controller
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.runs.aws_usage import REPORT_LINE, lambda_reports
from tests.processes import wait_for

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Greeting: {Type: String, Default: hello}
Resources:
  Queue:
    Type: AWS::SQS::Queue
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${AWS::StackName}-echo"
      Runtime: python3.13
      Handler: index.handler
      Timeout: 10
      InlineCode: |
        import json, os
        def handler(event, context):
            print("echo", json.dumps(event, sort_keys=True))
            if isinstance(event, dict) and event.get("fail"):
                raise ValueError("asked to fail")
            return {"greeting": os.environ["GREETING"], "request": context.aws_request_id}
      Environment:
        Variables: {GREETING: !Ref Greeting}
      Events:
        FromQueue:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn, BatchSize: 1}
Outputs:
  FunctionName: {Value: !Ref Echo}
  QueueUrl: {Value: !Ref Queue}
"""


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    with LocalEndpoint() as endpoint:
        controller = Controller(endpoint, tmp_path_factory.mktemp("cloud")).start()
        try:
            yield endpoint, controller
        finally:
            controller.stop()


def deploy(cloudformation, stack: str, change_set_type: str, greeting: str) -> dict:
    """What `sam deploy` does: a change set, its description, its execution, the wait for the stack."""
    created = cloudformation.create_change_set(
        StackName=stack,
        ChangeSetName=f"deploy-{greeting}",
        TemplateBody=TEMPLATE,
        ChangeSetType=change_set_type,
        Parameters=[{"ParameterKey": "Greeting", "ParameterValue": greeting}],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    described = cloudformation.describe_change_set(ChangeSetName=created["Id"])
    assert described["Status"] == "CREATE_COMPLETE", described.get("StatusReason")
    cloudformation.execute_change_set(ChangeSetName=created["Id"])
    final = f"{change_set_type}_COMPLETE"

    def done():
        stack_info = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
        return stack_info if not stack_info["StackStatus"].endswith("IN_PROGRESS") else None

    stack_info = wait_for(done, f"{stack} to stabilise", every_s=0.2)
    assert stack_info["StackStatus"] == final, stack_info
    return {o["OutputKey"]: o["OutputValue"] for o in stack_info["Outputs"]}


def invoke(lambda_client, name: str, payload: dict, **kwargs) -> tuple[dict, object]:
    response = lambda_client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs)
    return response, json.loads(response["Payload"].read() or b"null")


def test_a_stack_deployed_through_change_sets_runs_updates_and_goes(cloud):
    endpoint, controller = cloud
    cloudformation, lambda_client = endpoint.client("cloudformation"), endpoint.client("lambda")
    outputs = deploy(cloudformation, "echo", "CREATE", "hello")
    name = outputs["FunctionName"]
    events = cloudformation.describe_stack_events(StackName="echo")["StackEvents"]
    assert {"Echo", "Queue", "echo"} <= {e["LogicalResourceId"] for e in events}  # per-resource events, as AWS

    # RequestResponse runs the function locally, with its request id and its log tail
    response, body = invoke(lambda_client, name, {"n": 1}, LogType="Tail")
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert body["greeting"] == "hello"
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {body['request']}" in tail and 'echo {"n": 1}' in tail
    assert REPORT_LINE.search(tail.splitlines()[-1])

    # a function error is Lambda's: FunctionError Unhandled and {"errorType", "errorMessage"}
    response, body = invoke(lambda_client, name, {"fail": True})
    assert response["FunctionError"] == "Unhandled"
    assert body == {"errorType": "ValueError", "errorMessage": "asked to fail"}

    # the SQS event source mapping runs it too; an Event invocation is accepted (202) and runs later
    endpoint.client("sqs").send_message(QueueUrl=outputs["QueueUrl"], MessageBody=json.dumps({"from": "sqs"}))
    assert lambda_client.invoke(FunctionName=name, InvocationType="Event", Payload=b'{"async": 1}')["StatusCode"] == 202
    logs = endpoint.client("logs")

    def logged() -> list[str]:
        pages = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern='"echo"')
        return [e["message"] for e in pages["events"]]

    wait_for(
        lambda: any("Records" in m for m in logged()) and any('"async"' in m for m in logged()), "logs", every_s=0.2
    )

    # every invocation left exactly one REPORT line in CloudWatch Logs, as aws_usage reads them
    with controller.stats.lock:
        made = controller.stats.invocations[name]
    assert made == 4
    start = time.time() - 600

    reports = lambda_reports(logs, name, datetime.fromtimestamp(start, UTC), datetime.now(UTC))
    assert reports["requests"] == made
    assert reports["memory_mb"] == 128 and len(reports["init_durations_ms"]) >= 1

    # ... and the AWS/Lambda and AWS/SQS metrics say the same
    cloudwatch = endpoint.client("cloudwatch")

    def metric(namespace: str, metric_name: str, dimension: tuple[str, str]) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName=metric_name, Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
            StartTime=datetime.fromtimestamp(start, UTC), EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60,
            Statistics=["Sum"],
        )["Datapoints"]  # fmt: skip
        return sum(p["Sum"] for p in points)

    assert metric("AWS/Lambda", "Invocations", ("FunctionName", name)) == made
    assert metric("AWS/Lambda", "Errors", ("FunctionName", name)) == 1
    queue = outputs["QueueUrl"].rsplit("/", 1)[1]
    assert metric("AWS/SQS", "NumberOfMessagesSent", ("QueueName", queue)) == 1
    assert metric("AWS/SQS", "NumberOfMessagesDeleted", ("QueueName", queue)) == 1

    # an update gives the function its new configuration, in new execution environments
    deploy(cloudformation, "echo", "UPDATE", "bye")
    assert invoke(lambda_client, name, {})[1]["greeting"] == "bye"
    assert controller.pids(), "the function's workers run"

    # a deleted stack's processes stop; its function is gone
    cloudformation.delete_stack(StackName="echo")
    assert not [s for s in cloudformation.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert controller.pids() == []
    assert name not in controller.status()["functions"]


def test_a_transform_error_fails_the_change_set_with_cloudformations_reason(cloud):
    endpoint, _controller = cloud
    cloudformation = endpoint.client("cloudformation")
    broken = TEMPLATE.replace("Type: SQS", "Type: NoSuchEventSource")
    created = cloudformation.create_change_set(
        StackName="broken", ChangeSetName="c1", TemplateBody=broken, ChangeSetType="CREATE"
    )
    described = cloudformation.describe_change_set(ChangeSetName=created["Id"])
    assert described["Status"] == "FAILED"
    assert described["StatusReason"].startswith("Transform AWS::Serverless-2016-10-31 failed with:")
    assert "NoSuchEventSource" in described["StatusReason"]


def test_a_function_the_local_cloud_cannot_run_rolls_its_stack_back_with_the_reason(cloud):
    endpoint, controller = cloud
    cloudformation = endpoint.client("cloudformation")
    old = TEMPLATE.replace("Runtime: python3.13", "Runtime: python2.7")
    cloudformation.create_stack(StackName="old", TemplateBody=old, Capabilities=["CAPABILITY_IAM"])
    stack = wait_for(
        lambda: next(
            (
                s
                for s in cloudformation.describe_stacks(StackName="old")["Stacks"]
                if "ROLLBACK_COMPLETE" in s["StackStatus"]
            ),
            None,
        ),
        "the rollback",
        every_s=0.2,
    )
    reasons = [
        e.get("ResourceStatusReason") or ""
        for e in cloudformation.describe_stack_events(StackName="old")["StackEvents"]
    ]
    assert any("python2.7" in reason for reason in reasons), reasons
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    cloudformation.delete_stack(StackName="old")
    # deleted with its stack, the function takes its failure along: `cloud status` names only what exists
    wait_for(lambda: "old-echo" not in controller.status()["failures"], "the failure to go", every_s=0.2)
