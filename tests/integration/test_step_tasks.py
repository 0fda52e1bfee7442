"""Scenario 3's handlers (PrepareRun, StepTask) in-process against moto: the plan, the jobs, exactly-once
completion under Step Functions retries, and every AWS call they make allowed by their roles in
templates/scenario-3.yaml."""

from __future__ import annotations

import json
from collections import defaultdict

import boto3
import pytest
from pydantic import ValidationError

from jobgraph.core.errors import MissingStateError
from jobgraph.core.results import request_key
from jobgraph.sam.template import transform_tree
from tests.iam_grants import ACCOUNT, MISSING_OBJECT_IS_404, REGION
from tests.iam_policy import (
    Call,
    bindings_for,
    granted_actions,
    is_allowed,
    required_permissions,
    tree_role_statements,
    unused_grants,
)
from tests.lambda_support import ROOT, FakeLambdaContext, event, load_handler, recording_calls

RUN = "events-demo"
FUNCTIONS = {"prepare_run": "PrepareRunFunction", "step_task": "StepTaskFunction"}


@pytest.fixture
def recorded(fake_stack, monkeypatch):
    """The two handlers, with every boto3 call they make recorded per function."""
    calls: dict[str, list[Call]] = defaultdict(list)
    current = {"function": None}

    def record(params, model, **_kwargs):
        if current["function"] is not None:
            calls[current["function"]].append(Call(model.service_model.service_name, model.name, dict(params)))

    # StepTask announces run ends on the stack's bus (as deployed: RUN_EVENTS_BUS_NAME, the nested triggers')
    boto3.client("events", region_name=REGION).create_event_bus(Name="runs")
    monkeypatch.setenv("RUN_EVENTS_BUS_NAME", "runs")
    with recording_calls(record):
        handlers = {name: load_handler(name) for name in FUNCTIONS}

        def invoke(function: str, payload: dict):
            current["function"] = function
            try:
                return handlers[function](payload, FakeLambdaContext(function_name=function))
            finally:
                current["function"] = None

        yield invoke, calls


def plan(fake_stack, key: str) -> list[dict]:
    return json.loads(fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=key)["Body"].read())


def task(job: dict, retry_count: int = 0) -> dict:
    return {"job": job, "retry_count": retry_count}


def test_prepare_run_registers_the_run_and_writes_its_plan(recorded, fake_stack):
    invoke, _calls = recorded
    prepared = invoke("prepare_run", event("start-run"))
    assert prepared["status"] == "RUNNING" and prepared["jobs_total"] == 5
    assert prepared["bucket"] == fake_stack.bucket and prepared["merge"]["job_id"] == f"{RUN}-merge"
    (item,) = plan(fake_stack, prepared["plan_key"])
    assert [j["job_id"] for j in item["routes"]] == [f"{RUN}-s0-r{r}" for r in range(3)]
    assert [j["exec_type"] for j in item["routes"]] == ["FIRST", "INTERMEDIATE", "LAST"]
    assert item["aggregation"]["job_id"] == f"{RUN}-s0-agg"
    assert fake_stack.item(f"RUN#{RUN}", "RUN")["status"] == "RUNNING"
    # the same run again, and a bad request, are rejected with a cause for the Fail state
    again = invoke("prepare_run", event("start-run"))
    assert again["status"] == "REJECTED" and "already exists" in again["cause"]


def test_prepare_run_reads_a_stored_request_only_under_the_runs_own_key(recorded, fake_stack):
    invoke, _calls = recorded
    request = {**event("start-run"), "run_id": "stored"}
    fake_stack.s3.put_object(Bucket=fake_stack.bucket, Key=request_key("stored"), Body=json.dumps(request))
    prepared = invoke("prepare_run", {"run_id": "stored", "request_key": request_key("stored")})
    assert prepared["status"] == "RUNNING" and prepared["run_id"] == "stored"
    other = invoke("prepare_run", {"run_id": "x", "request_key": request_key("stored")})
    assert other["status"] == "REJECTED" and "_jobgraph/requests/R.json" in other["cause"]
    missing = invoke("prepare_run", {"run_id": "nothing", "request_key": request_key("nothing")})
    assert missing["status"] == "REJECTED" and "not found" in missing["cause"]


def test_step_task_runs_the_plan_and_a_retry_of_a_completed_job_is_recorded_once(recorded, fake_stack):
    invoke, _calls = recorded
    prepared = invoke("prepare_run", event("start-run"))
    (item,) = plan(fake_stack, prepared["plan_key"])
    first, second, third = item["routes"]
    # a route whose previous state is missing fails, is recorded FAILED, and releases its claim
    with pytest.raises(MissingStateError, match="state of route 0"):
        invoke("step_task", task(second))
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{second['job_id']}")["status"] == "FAILED"
    done = invoke("step_task", task(first))
    assert done["status"] == "completed" and done["output_key"] == f"{RUN}/delays/{first['job_id']}.parquet"
    # Step Functions retries a task whose invocation failed after the job completed: same answer, one record
    assert invoke("step_task", task(first, retry_count=1)) == done
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{first['job_id']}")["reports"] == 1
    # the failed route's retry now runs, and records its attempt
    assert invoke("step_task", task(second, retry_count=1))["status"] == "completed"
    assert fake_stack.item(f"RUN#{RUN}", f"JOB#{second['job_id']}")["last_attempt"] == 2
    invoke("step_task", task(third))
    invoke("step_task", task(item["aggregation"]))
    merged = invoke("step_task", task(prepared["merge"]))
    assert merged["output_key"] == f"{RUN}/merged_percentiles.json"
    run = fake_stack.item(f"RUN#{RUN}", "RUN")
    assert run["status"] == "COMPLETED" and run["merged_key"] == merged["output_key"]


def test_a_task_payload_that_is_not_a_job_is_refused(recorded, fake_stack):
    invoke, _calls = recorded
    with pytest.raises(ValidationError, match="validation error"):
        invoke("step_task", {"job": {"job_id": "x"}, "retry_count": 0})


def test_every_recorded_call_is_allowed_by_the_functions_role(recorded, fake_stack):
    invoke, calls = recorded
    prepared = invoke("prepare_run", event("start-run"))
    invoke("prepare_run", event("start-run"))  # rejected: run exists
    fake_stack.s3.put_object(
        Bucket=fake_stack.bucket, Key=request_key("r2"), Body=json.dumps({**event("start-run"), "run_id": "r2"})
    )
    invoke("prepare_run", {"run_id": "r2", "request_key": request_key("r2")})
    (item,) = plan(fake_stack, prepared["plan_key"])
    with pytest.raises(MissingStateError, match="state of route 0"):
        invoke("step_task", task(item["routes"][1]))
    for job in [*item["routes"], item["routes"][0], item["aggregation"], prepared["merge"]]:
        invoke("step_task", task(job))
    # the state machine's AnnounceRunCompleted state (twice: at least once)
    assert invoke("step_task", {"announce_run_end": RUN})["event_id"]
    assert invoke("step_task", {"announce_run_end": RUN})["event_id"] is None
    tree = transform_tree(ROOT / "templates" / "scenario-3.yaml", {}, REGION)
    bindings = bindings_for(fake_stack.bucket, fake_stack.table, {}, REGION, ACCOUNT)
    denied, actions, excess = {}, {}, {}
    for function, logical_id in FUNCTIONS.items():
        needed = {p for call in calls[function] for p in required_permissions(call, REGION, ACCOUNT)}
        actions[function] = {p.action for p in needed}
        statements = tree_role_statements(tree, logical_id, bindings)
        missing = sorted(f"{p.action} on {p.resource}" for p in needed if not is_allowed(statements, p))
        if missing:
            denied[logical_id] = missing
        # and least privilege the other way: nothing allowed that no call used (but a missing object's 404)
        if extra := unused_grants(statements, actions[function], MISSING_OBJECT_IS_404):
            excess[logical_id] = extra
        assert set(MISSING_OBJECT_IS_404) <= granted_actions(statements), logical_id
    assert denied == {}
    assert excess == {}, excess
    # and the recording saw the calls that matter
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:PutItem"} <= actions["prepare_run"]
    assert {"s3:GetObject", "s3:PutObject", "dynamodb:UpdateItem", "dynamodb:GetItem"} <= actions["step_task"]
    assert "dynamodb:DeleteItem" not in actions["step_task"]  # a failure releases the claim by recording itself
    assert "events:PutEvents" in actions["step_task"]  # the run's end, for the downstream triggers


def test_the_step_task_events_run_the_demo_run(recorded, fake_stack):
    """events/step-task-*.json (also for `sam local invoke StepTaskFunction -e …`) after PrepareRun(start-run)."""
    invoke, _calls = recorded
    assert invoke("prepare_run", event("start-run"))["status"] == "RUNNING"
    for stage in ("first", "intermediate", "last", "aggregation", "merge"):
        assert invoke("step_task", event(f"step-task-{stage}"))["status"] == "completed", stage
    assert fake_stack.item(f"RUN#{RUN}", "RUN")["status"] == "COMPLETED"


def test_the_status_api_of_scenario_3_may_make_every_call_it_makes(fake_stack, monkeypatch, seed_000_sequence):
    """POST /runs (an execution), POST /tasks (an asynchronous StepTask invocation), GET /tasks, /runs and a job's
    status, recorded and checked against the ApiFunction's role as nested in templates/scenario-3.yaml."""
    from fastapi.testclient import TestClient

    from jobgraph.api.app import create_app
    from jobgraph.services import status
    from jobgraph.services.settings import ApiSettings, load_settings

    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    machine = sfn.create_state_machine(name="m", definition=definition, roleArn=f"arn:aws:iam::{ACCOUNT}:role/r")
    monkeypatch.setenv("SCENARIO", "3")
    monkeypatch.setenv("STATE_MACHINE_ARN", machine["stateMachineArn"])
    monkeypatch.setenv("STEP_TASK_FUNCTION", "scenario-3-dev-step-task")
    monkeypatch.delenv("INCOMING_QUEUE_URL")
    calls: list[Call] = []

    def record(params, model, **_kwargs):
        calls.append(Call(model.service_model.service_name, model.name, dict(params)))

    class Lambda:  # moto's Lambda would need Docker to run the function: the call itself is what counts here
        def invoke(self, **params):
            calls.append(Call("lambda", "Invoke", params))

    with recording_calls(record):
        deps = status.ApiDeps.from_settings(
            load_settings(ApiSettings), client=lambda service: Lambda() if service == "lambda" else None
        )
        api = TestClient(create_app(lambda: deps))
        assert api.post("/runs", json={"run_id": "r3", "sequences": [seed_000_sequence]}).status_code == 202
        task = api.post("/tasks", json={}, headers={"Idempotency-Key": "iam-task-1"}).json()
        assert api.get(f"/tasks/{task['task_id']}").status_code == 200
        assert api.get("/runs?status=RUNNING").status_code == 200
        assert api.get("/status/r3-s0-r0").status_code == 404  # not started: no record (a GetItem all the same)
    tree = transform_tree(ROOT / "templates" / "scenario-3.yaml", {}, REGION)
    bindings = bindings_for(fake_stack.bucket, fake_stack.table, {}, REGION, ACCOUNT)
    bindings.refs["JobGraphStateMachine"] = machine["stateMachineArn"]
    bindings.refs["StepTaskFunction"] = "scenario-3-dev-step-task"
    statements = tree_role_statements(tree, "ApiFunction", bindings)
    needed = {p for call in calls for p in required_permissions(call, REGION, ACCOUNT)}
    assert sorted(f"{p.action} on {p.resource}" for p in needed if not is_allowed(statements, p)) == []
    assert {"states:StartExecution", "lambda:InvokeFunction", "s3:PutObject", "dynamodb:PutItem"} <= {
        p.action for p in needed
    }
    # what the API's role allows in scenario 3 only (test_iam_permissions.py checks the rest) is used here
    queues = {"IncomingQueue": "incoming.fifo", "OutgoingQueue": "outgoing.fifo"}  # names only matter there
    scenario_1 = tree_role_statements(
        transform_tree(ROOT / "template.yaml", {}, REGION),
        "ApiFunction",
        bindings_for(fake_stack.bucket, fake_stack.table, queues, REGION, ACCOUNT),
    )
    only_here = granted_actions(statements) - granted_actions(scenario_1)
    assert only_here and only_here <= {p.action for p in needed}, only_here
