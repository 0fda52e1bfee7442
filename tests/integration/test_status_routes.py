"""Issue 15.1's routes on moto: a task's life through the real Processor (QUEUED → COMPLETED with its download),
any job's status and download (302 / 404 / 409), the runs listing by status, test run and date, estimates,
and scenario 3's runner (runs as executions, tasks on StepTask)."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import boto3
from fastapi.testclient import TestClient

from jobgraph.adapters.sqs import sqs_event
from jobgraph.core.ids import is_task_id, route_job_id, run_id_of_job
from jobgraph.core.models import ExecType, JobStatus
from jobgraph.core.progress import bucket_value, time_bucket
from jobgraph.core.results import request_key
from jobgraph.services import status
from jobgraph.services.settings import ApiSettings, load_settings
from tests.doubles import report_by_id
from tests.lambda_support import FakeLambdaContext, load_handler

REGION = "eu-west-1"


def process_queued(stack) -> dict:
    """What the Processor Lambda does with the incoming queue's messages (one invocation)."""
    messages = stack.sqs.receive_message(
        QueueUrl=stack.incoming_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]
    arn = stack.sqs.get_queue_attributes(QueueUrl=stack.incoming_url, AttributeNames=["QueueArn"])["Attributes"]
    return load_handler("processor")(sqs_event(messages, arn["QueueArn"], REGION), FakeLambdaContext())


# ----------------------------------------------------------------------------------------------- tasks
def test_a_task_is_queued_then_completed_by_the_processor_with_its_download(api):
    # Given a task accepted by the API
    accepted = api.post(
        "/tasks", json={"work_duration_ms": 2, "data_size_kb": 3}, headers={"Idempotency-Key": "k-000001"}
    )
    assert accepted.status_code == 202, accepted.text
    task = accepted.json()
    task_id = task["task_id"]
    assert is_task_id(task_id) and task["status"] == "QUEUED" and task["attempts"] == 0
    assert task["created_at"] and task["status_url"].endswith(f"/tasks/{task_id}")
    # no task ran in the last hours: the estimate goes by the work it asked for, behind its own queue
    assert task["estimated_time_seconds"] == 1 and task["download_url"] is None
    assert api.get(f"/download/{task_id}/data").status_code == 409  # not ready yet

    # When the Processor runs its message
    assert process_queued(api.stack) == {"batchItemFailures": []}

    # Then the task record is COMPLETED, with its attempt, times and a presigned URL of its output
    done = api.get(f"/tasks/{task_id}").json()
    assert done["status"] == "COMPLETED" and done["attempts"] == 1 and done["estimated_time_seconds"] is None
    assert done["output_key"] == f"{task_id}/synthetic/{task_id}.bin" and done["processing_time_ms"] >= 2
    assert done["created_at"] <= done["updated_at"]
    assert len(urlparse_get(done["download_url"])) == 3 * 1024
    # GET /status knows it as a job too, and /download redirects to the same object
    job = api.get(f"/status/{task_id}").json()
    assert job["task"] is True and job["status"] == "COMPLETED" and set(job["files"]) == {"data"}
    redirect = api.get(f"/download/{task_id}/output")
    assert redirect.status_code == 302 and f"/{task_id}/synthetic/" in redirect.headers["location"]
    assert api.get(f"/download/{task_id}/delays").status_code == 404
    # the task is no run: it joined none and no run record was made for it
    assert api.get(f"/runs/{task_id}").status_code == 404


def urlparse_get(url: str) -> bytes:
    """GET a presigned URL of the (moto) bucket through boto3: bucket and key from its path."""
    parts = urlparse(url)
    host_bucket = parts.netloc.split(".s3", 1)[0] if ".s3" in parts.netloc else None
    bucket, key = (host_bucket, parts.path.lstrip("/")) if host_bucket else parts.path.lstrip("/").split("/", 1)
    return boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()


def test_recent_tasks_median_and_the_queue_ahead_make_the_estimate(api):
    table = api.deps.table
    # ten tasks completed this hour in 1.5 s each
    for index in range(10):
        task_id = f"task-{index:032x}"
        table.record_task_queued(task_id, f"key-{index:05d}", "g", {"work_duration_ms": 1500, "data_size_kb": 0})
        table.record_job(report_by_id(task_id, task_id, ExecType.SYNTHETIC, 1500.0))
    ahead = [api.post("/tasks", json={}, headers={"Idempotency-Key": f"queued-{i:04d}"}).json() for i in range(25)]
    # the last one has 25 messages on the queue (its own included), 10 at a time, 1.5 s each (within the bucket)
    median = bucket_value(time_bucket(1500.0))
    assert ahead[-1]["estimated_time_seconds"] == math.ceil(math.ceil((1 + 25) / 10) * median / 1000)
    assert table.task_progress([datetime.now(UTC).strftime("%Y-%m-%dT%H")]).completed == 10


def test_a_task_cannot_name_a_run_and_a_run_cannot_take_a_task_id(api, seed_000_sequence):
    response = api.post("/tasks", json={"run_id": "somebodys-run"}, headers={"Idempotency-Key": "k-000002"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "body.run_id"
    taken = api.post("/runs", json={"run_id": "task-" + "0" * 32, "sequences": [seed_000_sequence]})
    assert taken.status_code == 422 and "task ids" in taken.json()["message"]
    assert api.get("/tasks/task-nope").status_code == 422  # not a task id at all
    assert api.get("/tasks/task-" + "f" * 32).status_code == 404


# --------------------------------------------------------------------------------- any job's status
def test_any_job_has_a_status_and_its_file_once_completed(api, seed_000_sequence):
    api.post("/runs", json={"run_id": "j1-s9", "sequences": [seed_000_sequence]})  # a run id that looks like a job
    table = api.deps.table
    first, last = route_job_id("j1-s9", 0, 0), route_job_id("j1-s9", 0, 1)
    assert run_id_of_job(first) == "j1-s9" and run_id_of_job("j1-s9-merge") == "j1-s9"
    api.stack.s3.put_object(Bucket=api.stack.bucket, Key=f"j1-s9/delays/{first}.parquet", Body=b"PAR1")
    table.record_job(report_by_id("j1-s9", first, ExecType.FIRST, 8.0, sequence_id=0, route_index=0,
                                  output_key=f"j1-s9/delays/{first}.parquet"))  # fmt: skip
    table.record_job(report_by_id("j1-s9", last, ExecType.LAST, 3.0, JobStatus.FAILED, sequence_id=0, route_index=1,
                                  error_message="boom"), attempt=2)  # fmt: skip

    body = api.get(f"/status/{first}").json()
    assert body["run_id"] == "j1-s9" and body["status"] == "COMPLETED" and body["exec_type"] == "FIRST"
    assert body["created_at"] and body["task"] is False and set(body["files"]) == {"delays"}
    redirect = api.get(f"/download/{first}/delays")
    assert redirect.status_code == 302 and f"j1-s9/delays/{first}.parquet" in redirect.headers["location"]
    assert urlparse_get(redirect.headers["location"]) == b"PAR1"

    failed = api.get(f"/status/{last}").json()
    assert failed["status"] == "FAILED" and failed["last_attempt"] == 2 and failed["files"] == {}
    not_ready = api.get(f"/download/{last}/delays")
    assert not_ready.status_code == 409 and not_ready.json()["error"] == "not_ready"
    wrong_type = api.get(f"/download/{first}/merged_percentiles")
    assert wrong_type.status_code == 404 and "only 'delays'" in wrong_type.json()["message"]
    for unknown in ("j1-s9-s0-r7", "j1-s9-agg", "nothing-like-a-job"):
        response = api.get(f"/status/{unknown}")
        assert response.status_code == 404 and response.json()["errors"][0]["field"] == "path.job_id", unknown
    assert api.get("/download/x/unknown-type").status_code == 422
    assert api.get("/status/..%2Fetc").status_code in (404, 422)


# --------------------------------------------------------------------------------------- run progress
def test_run_progress_and_estimate_come_from_the_counters(api, seed_000_sequence):
    sequences = [{**seed_000_sequence, "sequence_id": i} for i in range(3)]
    api.post("/runs", json={"run_id": "est", "sequences": sequences})
    table = api.deps.table
    for i in range(3):
        table.record_job(
            report_by_id("est", route_job_id("est", i, 0), ExecType.FIRST, 400.0, sequence_id=i, route_index=0)
        )
    body = api.get("/runs/est").json()
    # 3 × (2 routes + AGGREGATION) + MERGE = 10 jobs, 3 done: 7 left, 3 sequences in parallel, ~400 ms each
    assert body["jobs_total"] == 10 and body["progress"]["jobs_by_status"] == {"COMPLETED": 3, "PENDING": 7}
    median = bucket_value(time_bucket(400.0))
    assert body["estimated_time_seconds"] == math.ceil(math.ceil(7 / 3) * median / 1000)
    # a failure then a success of the same job moves it, once, from FAILED to COMPLETED
    job = route_job_id("est", 0, 1)
    table.record_job(report_by_id("est", job, ExecType.LAST, 5.0, JobStatus.FAILED, sequence_id=0, route_index=1))
    table.record_job(report_by_id("est", job, ExecType.LAST, 5.0, JobStatus.FAILED, sequence_id=0, route_index=1), 2)
    assert api.get("/runs/est").json()["progress"]["jobs_by_status"] == {"COMPLETED": 3, "FAILED": 1, "PENDING": 6}
    table.record_job(report_by_id("est", job, ExecType.LAST, 5.0, sequence_id=0, route_index=1), 3)
    table.record_job(
        report_by_id("est", job, ExecType.LAST, 9.0, sequence_id=0, route_index=1), 3
    )  # duplicate: refused
    progress = api.get("/runs/est").json()["progress"]
    assert progress["jobs_by_status"] == {"COMPLETED": 4, "PENDING": 6}
    assert progress["jobs_by_stage"] == {"FIRST": {"COMPLETED": 3}, "LAST": {"COMPLETED": 1}}
    assert table.count_jobs("est") == 4 and table.count_jobs("est", "FAILED") == 0
    assert table.get_job("est", job)["processing_time_ms"] == 5  # the first completion stays


# --------------------------------------------------------------------------------------- runs listing
def test_runs_are_listed_by_status_test_run_and_date(api, seed_000_sequence):
    for run_id, test_run in (("a1", "perf-a"), ("a2", "perf-a"), ("b1", "perf-b"), ("b2", "perf-b"), ("c1", "perf-c")):
        api.post("/runs", json={"run_id": run_id, "sequences": [seed_000_sequence], "test_run_id": test_run})
    table = api.deps.table
    table.complete_run("a1", "a1/merged_percentiles.json")
    table.fail_run("b1", "a job used up its attempts")

    assert ids(api.get("/runs?status=COMPLETED")) == ["a1"]
    assert ids(api.get("/runs?status=FAILED")) == ["b1"]
    assert ids(api.get("/runs?status=RUNNING")) == ["c1", "b2", "a2"]  # newest first
    assert ids(api.get("/runs?test_run_id=perf-a")) == ["a2", "a1"]
    assert ids(api.get("/runs?test_run_id=perf-b&status=FAILED")) == ["b1"]
    every = ids(api.get("/runs"))  # the last week, every status, newest first
    assert every == ["c1", "b2", "b1", "a2", "a1"]
    # two at a time through the merged partitions, each run once, the week as of the first page (the clock
    # moving on between pages changes nothing)
    seen, token = [], None
    while True:
        page = api.get("/runs?limit=2" + (f"&next_token={token}" if token else "")).json()
        seen += [r["run_id"] for r in page["runs"]]
        token = page["next_token"]
        if token is None:
            break
        time.sleep(1.05)
    assert seen == every
    summary = api.get("/runs?status=FAILED").json()["runs"][0]
    assert summary["error"] == "a job used up its attempts" and summary["created_at"] and summary["jobs_total"] == 4
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert ids(api.get(f"/runs?since={tomorrow}")) == []
    today = datetime.now(UTC).date().isoformat()
    assert len(ids(api.get(f"/runs?until={today}&since={today}"))) == 5
    # a token from another filter, a garbled one, a bad date
    token = api.get("/runs?status=RUNNING&limit=1").json()["next_token"]
    assert api.get(f"/runs?status=FAILED&next_token={token}").status_code == 400
    assert api.get("/runs?next_token=garbage").status_code == 400
    assert api.get("/runs?since=yesterday").status_code == 422


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [run["run_id"] for run in response.json()["runs"]]


# ----------------------------------------------------------------------------------------- scenario 3
class RecordingLambda:
    def __init__(self):
        self.calls = []

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        return {"StatusCode": 202}


def test_scenario_3_starts_runs_as_executions_and_tasks_on_step_task(fake_stack, monkeypatch, seed_000_sequence):
    from jobgraph.api.app import create_app

    sfn = boto3.client("stepfunctions", region_name=REGION)
    role = "arn:aws:iam::123456789012:role/sfn"
    machine = sfn.create_state_machine(
        name="sfn",
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
        roleArn=role,
    )
    monkeypatch.setenv("SCENARIO", "3")
    monkeypatch.setenv("STATE_MACHINE_ARN", machine["stateMachineArn"])
    monkeypatch.setenv("STEP_TASK_FUNCTION", "scenario-3-dev-step-task")
    monkeypatch.delenv("INCOMING_QUEUE_URL")
    lambda_client = RecordingLambda()
    deps = status.ApiDeps.from_settings(
        load_settings(ApiSettings), client=lambda service: lambda_client if service == "lambda" else None
    )
    api = TestClient(create_app(lambda: deps), raise_server_exceptions=False)

    started = api.post("/runs", json={"run_id": "sfn-1", "sequences": [seed_000_sequence], "scenarios": 7})
    assert started.status_code == 202, started.text
    assert started.json()["scenario"] == 3 and started.json()["first_jobs_sent"] is None
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert execution["name"] == "sfn-1"
    described = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert described == {"run_id": "sfn-1", "request_key": request_key("sfn-1")}
    stored = json.loads(fake_stack.s3.get_object(Bucket=fake_stack.bucket, Key=request_key("sfn-1"))["Body"].read())
    assert stored["run_id"] == "sfn-1" and stored["scenarios"] == 7 and len(stored["sequences"]) == 1
    assert api.post("/runs", json={"run_id": "sfn-1", "sequences": [seed_000_sequence]}).status_code == 409
    assert fake_stack.drain(fake_stack.incoming_url) == []  # nothing on a queue in this scenario

    task = api.post("/tasks", json={"work_duration_ms": 1}, headers={"Idempotency-Key": "sfn-task-1"}).json()
    (call,) = lambda_client.calls
    assert call["FunctionName"] == "scenario-3-dev-step-task" and call["InvocationType"] == "Event"
    payload = json.loads(call["Payload"])
    assert set(payload) == {"job"} and payload["job"]["job_id"] == task["task_id"] == payload["job"]["run_id"]
    assert task["status"] == "QUEUED"
