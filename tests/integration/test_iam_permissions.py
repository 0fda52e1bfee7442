"""Every AWS call a handler makes is allowed by its role in the SAM-transformed template.

Given each handler run over its events (success, duplicate, failure and poison paths) against moto, with
every boto3 API call it makes recorded; when each call is mapped to the IAM action(s) and resource it is
authorised against; then the function's execution role in the transformed template.yaml allows it.
moto does not enforce IAM here, so without this test a missing grant only shows up as AccessDenied on AWS
(and some of these calls sit in paths that swallow errors: failure reports, poison records).
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.sam.template import transform_tree
from tests.iam_grants import ACCOUNT, MISSING_OBJECT_IS_404, REGION, fake_stack_bindings
from tests.iam_policy import (
    Permission,
    granted_actions,
    is_allowed,
    required_permissions,
    tree_role_statements,
    unused_grants,
)
from tests.lambda_support import (
    FUNCTIONS,
    ROOT,
    CallRecorder,
    FakeLambdaContext,
    event,
    load_handler,
    recording_calls,
)

RUN = "events-demo"


@pytest.fixture(scope="module")
def transformed():
    """template.yaml and its nested templates (the ApiFunction's, the TriggerFunction's), transformed."""
    return transform_tree(ROOT / "template.yaml", {}, REGION)


@pytest.fixture
def recorder(fake_stack, monkeypatch):
    """Installed on the default session before the adapters create their (cached, lazily built) clients."""
    # the Scheduler announces the run's end on the stack's bus (as deployed: RUN_EVENTS_BUS_NAME)
    boto3.client("events", region_name=REGION).create_event_bus(Name="runs")
    monkeypatch.setenv("RUN_EVENTS_BUS_NAME", "runs")
    with recording_calls(CallRecorder()) as recorder:
        yield recorder


def on_queue(payload: dict, queue_url: str) -> dict:
    """The SQS event as the queue at ``queue_url`` delivers it (a failed record's backoff is set there)."""
    for record in payload["Records"]:
        record["eventSourceARN"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_url.rsplit('/', 1)[1]}"
    return payload


def exercise_every_path(recorder: CallRecorder, fake_stack) -> None:
    """StartRun, the whole Processor chain and the Scheduler over every event, incl. duplicates/failures."""
    handlers = {name: load_handler(name) for name in FUNCTIONS}

    def invoke(function: str, payload: dict):
        with recorder.invoking(function):
            return handlers[function](payload, FakeLambdaContext(function_name=function))

    bad = event("start-run")
    bad["sequences"][0]["routes"][0]["origin_iata"] = "ZZZ"
    assert invoke("start_run", bad)["status"] == "REJECTED"
    assert invoke("start_run", event("start-run"))["status"] == "RUNNING"
    assert invoke("start_run", event("start-run"))["status"] == "REJECTED"  # run exists

    # Processor: a failure first (route 0's state is neither carried nor stored → failure recorded, claim
    # released, backoff set on the record's queue)
    stateless = event("processor-intermediate")
    body = json.loads(stateless["Records"][0]["body"])
    body.pop("state")
    stateless["Records"][0]["body"] = json.dumps(body)
    with pytest.raises(BatchProcessingError):
        invoke("processor", on_queue(stateless, fake_stack.incoming_url))
    with pytest.raises(BatchProcessingError):
        invoke("processor", on_queue(event("processor-poison"), fake_stack.incoming_url))
    for stage in ("first", "first", "intermediate", "last", "aggregation", "merge"):  # "first" twice: duplicate
        assert invoke("processor", event(f"processor-{stage}")) == {"batchItemFailures": []}

    poison = on_queue(event("processor-poison"), fake_stack.outgoing_url)  # not a completion either
    with pytest.raises(BatchProcessingError):
        invoke("scheduler", poison)
    for stage in ("failed", "first", "intermediate", "last", "aggregation", "aggregation", "merge", "merge"):
        assert invoke("scheduler", event(f"scheduler-{stage}")) == {"batchItemFailures": []}
    assert fake_stack.item(f"RUN#{RUN}", "RUN")["status"] == "COMPLETED"

    # the status API over the finished run, a new run, a task (twice: the replay path) and a 404
    for name, code in (
        ("api-get-run", 200),
        ("api-list-jobs", 200),
        ("api-get-results", 200),
        ("api-post-runs", 202),
        ("api-post-task", 202),
        ("api-post-task", 200),
    ):
        response = invoke("api", event(name))
        assert response["statusCode"] == code, (name, response)
    unknown = event("api-get-run")
    unknown["rawPath"] = unknown["requestContext"]["http"]["path"] = "/runs/nope"
    assert invoke("api", unknown)["statusCode"] == 404
    # the routes of issue 15.1 too: runs listed three ways, a task followed, any job's status and file
    task_id = json.loads(invoke("api", event("api-post-task"))["body"])["task_id"]
    for path, query, code in (
        ("/runs", "", 200),
        ("/runs", "status=COMPLETED", 200),
        ("/runs", "test_run_id=default", 200),
        (f"/tasks/{task_id}", "", 200),
        (f"/status/{RUN}-s0-r0", "", 200),
        (f"/download/{RUN}-merge/merged_percentiles", "", 302),
    ):
        assert invoke("api", get(path, query))["statusCode"] == code, (path, query)
    # an approval decided through the API is announced on the run events bus
    table = JobsTable(fake_stack.table, client=fake_stack.dynamodb)  # the test's client: not recorded
    table.request_approval(RUN, "nightly", json.dumps({"job_name": "nightly"}), ["x > 1"], time.time() + 3600)
    decide = event("api-post-runs")
    decide["rawPath"] = decide["requestContext"]["http"]["path"] = f"/runs/{RUN}/approval"
    decide["routeKey"] = decide["requestContext"]["routeKey"] = "$default"
    decide["body"] = json.dumps({"decided_by": "ops@example.com"})
    assert invoke("api", decide)["statusCode"] == 200


def get(path: str, query: str = "") -> dict:
    """An HTTP API (v2) GET event for the API function, made from events/api-get-run.json."""
    request = event("api-get-run")
    request["rawPath"] = request["requestContext"]["http"]["path"] = path
    request["rawQueryString"] = query
    request["routeKey"] = request["requestContext"]["routeKey"] = "$default"
    request.pop("pathParameters", None)
    return request


def needed(recorder: CallRecorder, function: str) -> set[Permission]:
    return {p for call in recorder.calls[function] for p in required_permissions(call, REGION, ACCOUNT)}


def test_every_recorded_call_is_allowed_by_the_functions_role(transformed, fake_stack, recorder):
    exercise_every_path(recorder, fake_stack)
    denied = {}
    for function, logical_id in FUNCTIONS.items():
        statements = tree_role_statements(transformed, logical_id, fake_stack_bindings(fake_stack))
        missing = sorted(
            f"{p.action} on {p.resource}" for p in needed(recorder, function) if not is_allowed(statements, p)
        )
        if missing:
            denied[logical_id] = missing
    assert denied == {}


def test_the_recording_covers_the_calls_that_matter(fake_stack, recorder):
    """Guards the test above against recording nothing (or the wrong clients)."""
    exercise_every_path(recorder, fake_stack)
    actions = {function: {p.action for p in needed(recorder, function)} for function in FUNCTIONS}
    assert {"s3:PutObject", "dynamodb:PutItem", "sqs:SendMessage"} <= actions["start_run"]
    assert {"s3:GetObject", "dynamodb:PutItem", "dynamodb:UpdateItem", "sqs:SendMessage"} <= actions["scheduler"]
    assert "events:PutEvents" in actions["scheduler"]  # the run's end, announced for the downstream triggers
    assert "events:PutEvents" in actions["api"]  # an approval decided
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= actions["processor"]
    assert {"sqs:SendMessage", "sqs:ChangeMessageVisibility"} <= actions["processor"]
    assert "dynamodb:DeleteItem" not in actions["processor"]  # a failure releases its claim by recording itself
    assert {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= actions["api"]
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "sqs:SendMessage"} <= actions["api"]
    # the estimates read the queue's depth and the tasks' recent counters
    assert {"sqs:GetQueueAttributes", "dynamodb:BatchGetItem"} <= actions["api"]
    # a job's outcome is written with its run's counters in one transaction (authorised per item)
    assert "TransactWriteItems" in {c.operation for c in recorder.calls["processor"]}
    # the countdown to MERGE is a conditional update; a duplicate's failed condition is checked with a read
    operations = {c.operation for c in recorder.calls["scheduler"]}
    assert {"UpdateItem", "GetItem"} <= operations


def test_the_processor_claims_jobs_and_deletes_nothing(transformed, fake_stack):
    """The Processor claims and completes jobs by updating their records; it deletes no record or object."""
    statements = tree_role_statements(transformed, "ProcessorFunction", fake_stack_bindings(fake_stack))
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{fake_stack.table}"
    assert is_allowed(statements, Permission("dynamodb:UpdateItem", table, (f"RUN#{RUN}",)))
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, (f"RUN#{RUN}",)))
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, ("IDEMPOTENCY#processor",)))
    assert not is_allowed(statements, Permission("s3:DeleteObject", f"arn:aws:s3:::{fake_stack.bucket}/x"))


def test_the_api_writes_only_run_and_task_records(transformed, fake_stack):
    statements = tree_role_statements(transformed, "ApiFunction", fake_stack_bindings(fake_stack))
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{fake_stack.table}"
    assert is_allowed(statements, Permission("dynamodb:PutItem", table, (f"RUN#{RUN}",)))
    assert is_allowed(statements, Permission("dynamodb:PutItem", table, ("TASK#task-1",)))
    assert is_allowed(statements, Permission("dynamodb:PutItem", table, ("TASKKEY#key-1",)))
    assert not is_allowed(statements, Permission("dynamodb:PutItem", table, ("IDEMPOTENCY#processor",)))
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, (f"RUN#{RUN}",)))


@pytest.mark.parametrize("function", ["SchedulerFunction", "StartRunFunction", "ApiFunction"])
def test_other_functions_cannot_delete(transformed, fake_stack, function):
    statements = tree_role_statements(transformed, function, fake_stack_bindings(fake_stack))
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{fake_stack.table}"
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, ("IDEMPOTENCY#processor",)))
    assert not is_allowed(statements, Permission("s3:DeleteObject", f"arn:aws:s3:::{fake_stack.bucket}/x"))


# What a role may allow although no recorded call makes it, each with the reason.
SQS_EVENT_SOURCE = {
    "sqs:ReceiveMessage": "the SQS event source mapping polls the queue with the function's role",
    "sqs:DeleteMessage": "the event source mapping deletes a batch's processed messages",
    "sqs:GetQueueAttributes": "the event source mapping reads the queue's attributes",
}
UNRECORDED = {
    "ProcessorFunction": {**SQS_EVENT_SOURCE, **MISSING_OBJECT_IS_404},  # a route's missing previous state
    "SchedulerFunction": SQS_EVENT_SOURCE,
    "StartRunFunction": {},
    "ApiFunction": {},  # its s3:ListBucket is a recorded call (a run's results listed)
}


def holds(tree, logical_id: str) -> bool:
    return any(logical_id in node.transformed["Resources"] for _trail, node in tree.walk())


@pytest.mark.parametrize("template", ["template.yaml", "templates/scenario-2.yaml"])
def test_each_role_allows_only_what_its_code_calls(template, fake_stack, recorder):
    """Least privilege, the other way round: every action a function's role allows is one its recorded calls
    use, or one of the few the code needs without calling it (UNRECORDED, with why)."""
    exercise_every_path(recorder, fake_stack)
    tree = transform_tree(ROOT / template, {}, REGION)
    excess, unneeded_reasons = {}, {}
    for function, logical_id in FUNCTIONS.items():
        if not holds(tree, logical_id):  # scenario 2's Processor is the ECS worker (test_iam_worker.py)
            continue
        statements = tree_role_statements(tree, logical_id, fake_stack_bindings(fake_stack))
        used = {p.action for p in needed(recorder, function)}
        if extra := unused_grants(statements, used, UNRECORDED[logical_id]):
            excess[logical_id] = extra
        if stale := set(UNRECORDED[logical_id]) - granted_actions(statements):
            unneeded_reasons[logical_id] = sorted(stale)
    assert excess == {}, "\n".join(f"{name} allows unused {', '.join(actions)}" for name, actions in excess.items())
    assert unneeded_reasons == {}, f"UNRECORDED names actions the roles no longer allow: {unneeded_reasons}"
