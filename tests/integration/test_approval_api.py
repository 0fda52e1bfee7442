"""The status API's approval routes on moto: GET/POST /runs/{run_id}/approval — 404 without an approval, the
decision announced on the stack's bus, 409 for the opposite decision, 410 once expired, 422 for bad input, and
on AWS the caller's IAM identity as the decider whatever the body says."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from fastapi.testclient import TestClient

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.services import status
from jobgraph.services.settings import ApiSettings, load_settings


@pytest.fixture
def api(fake_stack, monkeypatch):
    events = boto3.client("events", region_name="eu-west-1")
    events.create_event_bus(Name="runs")
    queue = fake_stack.sqs.create_queue(QueueName="trigger")["QueueUrl"]
    arn = fake_stack.sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="run-end", EventBusName="runs", EventPattern=json.dumps({"source": ["jobgraph"]}))
    events.put_targets(Rule="run-end", EventBusName="runs", Targets=[{"Id": "q", "Arn": arn}])
    monkeypatch.setenv("RUN_EVENTS_BUS_NAME", "runs")
    status.api_deps.cache_clear()
    deps = status.ApiDeps.from_settings(load_settings(ApiSettings))
    from jobgraph.api.app import create_app

    client = TestClient(create_app(lambda: deps), raise_server_exceptions=False)
    client.table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)
    client.queue = queue
    client.sqs = fake_stack.sqs
    yield client
    status.api_deps.cache_clear()


def pending(api, run_id: str, expires_in_s: float = 3600) -> None:
    event = {"job_name": "nightly", "job_run_id": run_id, "status": "SUCCESS"}
    api.table.request_approval(run_id, "nightly", json.dumps(event), ["metrics.x = 2 > 1"], time.time() + expires_in_s)


def announced(api) -> list[dict]:
    messages = api.sqs.receive_message(QueueUrl=api.queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_run_without_an_approval_is_404(api):
    for response in (api.get("/runs/r1/approval"), api.post("/runs/r1/approval", json={"decided_by": "ops"})):
        assert response.status_code == 404, response.text
        assert response.json()["error"] == "not_found"


def test_approving_a_pending_run_announces_it_once(api):
    pending(api, "r1")
    body = api.get("/runs/r1/approval").json()
    assert body["status"] == "PENDING_APPROVAL" and body["reasons"] == ["metrics.x = 2 > 1"] and not body["announced"]
    response = api.post("/runs/r1/approval", json={"decided_by": "ops@example.com", "comment": "risk accepted"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["decided_by"], body["comment"], body["announced"]) == (
        "APPROVED", "ops@example.com", "risk accepted", True
    )  # fmt: skip
    (event,) = announced(api)
    assert event["detail-type"] == "Run Approved" and event["detail"]["run_id"] == "r1"
    assert api.post("/runs/r1/approval", json={"decided_by": "ops@example.com"}).status_code == 200
    assert announced(api) == []  # the same decision again: no second announcement
    conflict = api.post("/runs/r1/approval", json={"decision": "REJECTED", "decided_by": "other"})
    assert conflict.status_code == 409 and "APPROVED by ops@example.com" in conflict.json()["message"]


def test_an_expired_approval_is_410_and_shows_expired(api):
    pending(api, "r2", expires_in_s=-1)
    assert api.get("/runs/r2/approval").json()["status"] == "EXPIRED"
    response = api.post("/runs/r2/approval", json={"decided_by": "late"})
    assert response.status_code == 410 and response.json()["error"] == "expired"
    assert announced(api) == []


def test_a_rejection_announces_nothing(api):
    pending(api, "r3")
    response = api.post("/runs/r3/approval", json={"decision": "REJECTED", "decided_by": "ops"})
    assert response.status_code == 200 and response.json()["status"] == "REJECTED"
    assert announced(api) == []


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/runs/r4/approval", {"decision": "MAYBE"}, "body.decision"),
        ("/runs/r4/approval", {"decided_by": "x" * 300}, "body.decided_by"),
        ("/runs/r4/approval", {"colour": "red"}, "body.colour"),
        ("/runs/..bad/approval", {}, "path.run_id"),
    ],
)
def test_bad_input_is_422_naming_the_field(api, path, payload, field):
    response = api.post(path, json=payload)
    assert response.status_code == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_on_aws_the_decider_is_the_callers_iam_identity(api):
    # Given the ApiFunction's handler (Mangum) and an HTTP API event as IAM auth delivers it
    from tests.lambda_support import FakeLambdaContext, event, load_handler

    pending(api, "r5")
    request = event("api-get-run")
    request["routeKey"] = "POST /runs/{run_id}/approval"
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/runs/r5/approval"
    request["requestContext"]["http"]["method"] = "POST"
    request["pathParameters"] = {"run_id": "r5"}
    request["body"] = json.dumps({"decided_by": "someone-else"})
    request["requestContext"]["authorizer"] = {
        "iam": {"accessKey": "AKIAEXAMPLE", "accountId": "123456789012", "callerId": "AIDAEXAMPLE",
                "cognitoIdentity": None, "principalOrgId": None,
                "userArn": "arn:aws:iam::123456789012:user/ops", "userId": "AIDAEXAMPLE"}
    }  # fmt: skip
    # When it approves, Then the decider is the signed caller, not what the body claims
    response = load_handler("api")(request, FakeLambdaContext(function_name="api"))
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["decided_by"] == "arn:aws:iam::123456789012:user/ops"
    assert api.table.get_approval("r5")["decided_by"] == "arn:aws:iam::123456789012:user/ops"


def test_the_api_role_may_decide_approvals_and_announce_them_and_nothing_of_the_triggers():
    from jobgraph.sam.template import transform_tree
    from tests.iam_policy import Permission, bindings_for, is_allowed, tree_role_statements
    from tests.lambda_support import ROOT

    # the ApiFunction is in templates/shared/status-api.yaml, nested by template.yaml (and the other scenarios)
    tree = transform_tree(ROOT / "template.yaml", {}, "eu-west-1")
    bindings = bindings_for("bucket", "jobs", {"IncomingQueue": "incoming.fifo"}, "eu-west-1", "123456789012")
    granted = tree_role_statements(tree, "ApiFunction", bindings)
    table = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs"
    assert is_allowed(granted, Permission("dynamodb:UpdateItem", table, ("APPROVAL#r1",)))
    assert is_allowed(granted, Permission("events:PutEvents", "arn:aws:events:eu-west-1:123456789012:event-bus/runs"))
    assert not is_allowed(granted, Permission("dynamodb:UpdateItem", table, ("TRIGGER#r1",)))
    assert not is_allowed(
        granted, Permission("events:PutEvents", "arn:aws:events:eu-west-1:123456789012:event-bus/default")
    )
