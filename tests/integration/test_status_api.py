"""The status API (FastAPI app) on moto: runs started, status, job pages, result links, idempotent tasks, errors."""

from __future__ import annotations

import json

import pytest

from jobgraph.core.models import ExecType, JobStatus
from jobgraph.services import status
from tests.doubles import report_by_id


def test_post_runs_starts_a_run_like_start_run(api, seed_000_sequence):
    # Given sequences in the body, When POST /runs, Then 202 with the run id and the FIRST jobs are queued
    response = api.post("/runs", json={"run_id": "api-1", "sequences": [seed_000_sequence], "scenarios": 10})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["run_id"] == "api-1" and body["jobs_total"] == 4 and body["first_jobs_sent"] == 1
    assert body["status_url"].endswith("/runs/api-1")
    sent = api.stack.drain(api.stack.incoming_url)
    assert [m["body"]["exec_type"] for m in sent] == ["FIRST"]
    assert api.stack.item("RUN#api-1", "RUN")["status"] == "RUNNING"


def test_post_runs_from_a_generator_spec(api):
    response = api.post("/runs", json={"generate": {"count": 3, "seed": 7}, "scenarios": 5})
    assert response.status_code == 202, response.text
    assert response.json()["run_id"].startswith("api-")
    assert len(api.stack.drain(api.stack.incoming_url)) == 3


def test_post_runs_twice_is_a_conflict(api, seed_000_sequence):
    payload = {"run_id": "dup", "sequences": [seed_000_sequence]}
    assert api.post("/runs", json=payload).status_code == 202
    response = api.post("/runs", json=payload)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "body.run_id"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"sequences": []}, "body.sequences"),
        ({}, "body"),
        ({"generate": {"count": 0, "seed": 1}}, "body.generate.count"),
        ({"generate": {"count": 101, "seed": 1}}, "body.generate.count"),  # must finish within 29 s
        ({"generate": {"count": 1, "seed": 1}, "scenarios": 0}, "body.scenarios"),
        ({"generate": {"count": 1, "seed": 1}, "run_id": "-bad"}, "body.run_id"),
        ({"generate": {"count": 1, "seed": 1}, "colour": "red"}, "body.colour"),
    ],
)
def test_bad_run_requests_are_422_naming_the_field(api, payload, field):
    response = api.post("/runs", json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert any(e["field"] == field for e in body["errors"]), body


def test_a_bad_route_names_the_route_field(api, seed_000_sequence):
    seed_000_sequence["routes"][1]["origin_iata"] = "XXX"
    response = api.post("/runs", json={"sequences": [seed_000_sequence]})
    assert response.status_code == 422
    assert any(e["field"].startswith("body.sequences[0].routes[1]") for e in response.json()["errors"])


def test_duplicate_sequence_ids_are_422(api, seed_000_sequence):
    response = api.post("/runs", json={"sequences": [seed_000_sequence, seed_000_sequence]})
    assert response.status_code == 422
    assert "duplicate" in response.json()["message"]


def test_malformed_json_is_422_not_500(api):
    response = api.post("/runs", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


def test_unknown_run_is_404_everywhere(api):
    for path in ("/runs/nope", "/runs/nope/jobs", "/runs/nope/results", "/runs/nope/jobs?status=FAILED"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"


def test_run_status_counts_progress_by_stage_and_status(api, seed_000_sequence):
    api.post("/runs", json={"run_id": "r1", "sequences": [seed_000_sequence], "scenarios": 10})
    table = api.deps.table
    table.record_job(report_by_id("r1", "r1-s0-r0", ExecType.FIRST, 12.0, sequence_id=0, route_index=0))
    table.record_job(
        report_by_id("r1", "r1-s0-r1", ExecType.LAST, 30.0, JobStatus.FAILED, sequence_id=0, route_index=1),
        attempt=1,
    )
    body = api.get("/runs/r1").json()
    assert body["status"] == "RUNNING" and body["jobs_total"] == 4  # 2 routes, AGGREGATION, MERGE
    assert body["progress"]["jobs_by_status"] == {"COMPLETED": 1, "FAILED": 1, "PENDING": 2}
    assert body["progress"]["jobs_by_stage"] == {"FIRST": {"COMPLETED": 1}, "LAST": {"FAILED": 1}}
    first = body["timings"]["processing_ms_by_stage"]["FIRST"]
    assert first["count"] == 1 and first["mean"] == 12.0  # the mean is exact,
    assert first["p50"] == pytest.approx(12.0, rel=0.09)  # percentiles come from quarter-octave buckets
    assert "LAST" not in body["timings"]["processing_ms_by_stage"]  # failed jobs have no time to count
    assert body["timings"]["started_at"] and body["timings"]["completed_at"] is None


def test_jobs_are_paginated_through_the_status_gsi_with_an_opaque_token(api, seed_000_sequence):
    api.post("/runs", json={"run_id": "r2", "sequences": [seed_000_sequence]})
    api.post("/runs", json={"run_id": "other", "sequences": [seed_000_sequence]})
    table = api.deps.table
    for index in range(7):
        table.record_job(
            report_by_id("r2", f"r2-job-{index}", ExecType.INTERMEDIATE, 1.0, sequence_id=0, route_index=1)
        )
        table.record_job(report_by_id("other", f"o-job-{index}", ExecType.INTERMEDIATE, 1.0, sequence_id=0))
    table.record_job(report_by_id("r2", "r2-bad", ExecType.LAST, 1.0, JobStatus.FAILED, sequence_id=0, route_index=1))

    seen, token, pages = [], None, 0
    while True:
        query = "/runs/r2/jobs?status=COMPLETED&limit=3" + (f"&next_token={token}" if token else "")
        page = api.get(query).json()
        pages += 1
        seen += [j["job_id"] for j in page["jobs"]]
        assert all(j["status"] == "COMPLETED" for j in page["jobs"])
        token = page["next_token"]
        if token is None:
            break
    assert sorted(seen) == [f"r2-job-{i}" for i in range(7)] and pages >= 3
    failed = api.get("/runs/r2/jobs?status=FAILED").json()
    assert [j["job_id"] for j in failed["jobs"]] == ["r2-bad"] and failed["next_token"] is None
    assert len(api.get("/runs/r2/jobs").json()["jobs"]) == 8


def test_a_foreign_or_garbled_token_is_400(api, seed_000_sequence):
    api.post("/runs", json={"run_id": "r3", "sequences": [seed_000_sequence]})
    for token in ("garbage", "eyJyIjoib3RoZXIifQ"):
        response = api.get(f"/runs/r3/jobs?next_token={token}")
        assert response.status_code == 400, token
        assert response.json()["errors"][0]["field"] == "query.next_token"
    assert api.get("/runs/r3/jobs?status=RUNNING").status_code == 422
    assert api.get("/runs/r3/jobs?limit=0").status_code == 422


def test_results_are_presigned_urls(api, seed_000_sequence):
    api.post("/runs", json={"run_id": "r4", "sequences": [seed_000_sequence]})
    body = api.get("/runs/r4/results").json()
    assert body["merged_percentiles"] is None and body["sequences"] == {}
    s3 = api.stack.s3
    s3.put_object(Bucket=api.stack.bucket, Key="r4/merged_percentiles.json", Body=b"{}")
    s3.put_object(Bucket=api.stack.bucket, Key="r4/percentiles/0.json", Body=b"{}")
    body = api.get("/runs/r4/results").json()
    assert "r4/merged_percentiles.json" in body["merged_percentiles"]
    assert "X-Amz-Signature=" in body["merged_percentiles"] or "Signature=" in body["merged_percentiles"]
    assert list(body["sequences"]) == ["0"]


def test_tasks_are_idempotent_per_client_key(api):
    # Given the same key twice, Then one message is queued and the same task id comes back
    first = api.post("/tasks", json={"work_duration_ms": 5}, headers={"Idempotency-Key": "key-00000001"})
    again = api.post("/tasks", json={"work_duration_ms": 5}, headers={"Idempotency-Key": "key-00000001"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["task_id"] == again.json()["task_id"]
    messages = api.stack.drain(api.stack.incoming_url)
    assert len(messages) == 1
    assert messages[0]["group"] == "api-tasks" and messages[0]["body"]["exec_type"] == "SYNTHETIC"
    # a body field works as the key too; another body under a used key is a conflict
    assert api.post("/tasks", json={"client_key": "key-00000002"}).status_code == 202
    conflict = api.post("/tasks", json={"work_duration_ms": 6}, headers={"Idempotency-Key": "key-00000001"})
    assert conflict.status_code == 409


def test_a_task_without_a_key_is_422(api):
    response = api.post("/tasks", json={})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header.Idempotency-Key"
    assert api.post("/tasks", json={}, headers={"Idempotency-Key": "short"}).status_code == 422


def test_the_lambda_handler_serves_the_app_through_mangum(fake_stack, seed_000_sequence):
    from tests.lambda_support import FakeLambdaContext, load_handler

    status.api_deps.cache_clear()
    handler = load_handler("api")
    event = {
        "version": "2.0",
        "routeKey": "POST /runs",
        "rawPath": "/runs",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {
            "http": {"method": "POST", "path": "/runs", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "req-1",
            "stage": "$default",
        },
        "body": json.dumps({"run_id": "via-lambda", "sequences": [seed_000_sequence]}),
        "isBase64Encoded": False,
    }
    response = handler(event, FakeLambdaContext())
    assert response["statusCode"] == 202, response
    assert json.loads(response["body"])["run_id"] == "via-lambda"
    status.api_deps.cache_clear()
