"""Hostile requests to the status API (issue 17.4): forged page tokens, oversized and deep bodies, lax types,
foreign Host headers. Each is a 4xx with a short ErrorBody, never a 500, and nothing is stored or queued."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from fastapi.testclient import TestClient

from jobgraph.api.limits import LOCAL_HOSTS, MAX_BODY_BYTES, BodyLimits
from jobgraph.core.models import CompletedJob, ExecType, JobStatus
from jobgraph.services import listings, page_tokens, status
from jobgraph.services.settings import ApiSettings, load_settings

MAX_MESSAGE = 300


@pytest.fixture
def api(api):
    """The integration conftest's status API, its page-token secret read afresh (each fake stack has its own)."""
    listings._TOKEN_SECRETS.clear()
    yield api
    listings._TOKEN_SECRETS.clear()


def refused(response, code: int) -> dict:
    assert response.status_code == code, response.text
    body = response.json()
    assert len(body["message"]) < MAX_MESSAGE, body["message"]
    return body


def run_with_jobs(api, seed_000_sequence, run_id: str, jobs: int) -> None:
    assert api.post("/runs", json={"run_id": run_id, "sequences": [seed_000_sequence]}).status_code == 202
    for n in range(jobs):
        api.deps.table.record_job(
            CompletedJob(
                job_id=f"{run_id}-j{n}",
                status=JobStatus.COMPLETED,
                processing_time_ms=1.0,
                test_run_id="default",
                run_id=run_id,
                correlation_id=f"{run_id}-s0",
                exec_type=ExecType.FIRST,
            )
        )


def first_token(api, run_id: str) -> str:
    token = api.get(f"/runs/{run_id}/jobs?limit=1").json()["next_token"]
    assert token
    return token


def every_page(api, path: str, key: str, id_field: str) -> list[str]:
    """The ids of a listing, page by page (``limit`` small), following the signed next_token."""
    seen, token = [], None
    while True:
        page = api.get(path, params={"limit": 2, **({"next_token": token} if token else {})}).json()
        seen += [item[id_field] for item in page[key]]
        if (token := page["next_token"]) is None:
            return seen


def test_a_signed_token_pages_through_every_job(api, seed_000_sequence):
    run_with_jobs(api, seed_000_sequence, "p1", 5)
    assert sorted(every_page(api, "/runs/p1/jobs", "jobs", "job_id")) == [f"p1-j{n}" for n in range(5)]


def forged(payload: dict, signature: bytes = b"\0" * 16) -> str:
    encode = lambda data: base64.urlsafe_b64encode(data).decode().rstrip("=")  # noqa: E731
    return f"{encode(json.dumps(payload).encode())}.{encode(signature)}"


@pytest.mark.parametrize(
    "make",
    [
        # the case: valid base64 JSON with the right pk and a start key DynamoDB chokes on
        lambda good: forged({"r": "p2", "s": None, "k": {"pk": {"S": "RUN#p2"}, "sk": {"N": "1"}}}),
        lambda good: forged({"r": "p2", "s": None, "k": {"pk": {"S": "RUN#p2"}}}),
        lambda good: base64.urlsafe_b64encode(b'{"r":"p2","s":null,"k":{"pk":{"S":"RUN#p2"}}}').decode(),
        lambda good: good[:-2] + ("AA" if not good.endswith("AA") else "BB"),  # signature edited
        lambda good: good[:5] + ("A" if good[5] != "A" else "B") + good[6:],  # payload edited, signature kept
        lambda good: good + "." + good,
        lambda good: "ä" * 10,
        lambda good: "garbage",
    ],
    ids=[
        "bad-sort-key",
        "no-sort-key",
        "unsigned",
        "edited-signature",
        "edited-payload",
        "doubled",
        "non-ascii",
        "junk",
    ],
)
def test_forged_tokens_are_400(api, seed_000_sequence, make):
    run_with_jobs(api, seed_000_sequence, "p2", 3)
    body = refused(api.get("/runs/p2/jobs", params={"next_token": make(first_token(api, "p2"))}), 400)
    assert body["errors"][0]["field"] == "query.next_token"


def test_a_token_of_another_run_status_or_deployment_is_400(api, seed_000_sequence):
    run_with_jobs(api, seed_000_sequence, "p3", 3)
    run_with_jobs(api, seed_000_sequence, "p4", 3)
    token = first_token(api, "p3")
    assert "another run" in refused(api.get(f"/runs/p4/jobs?next_token={token}"), 400)["message"]
    assert refused(api.get(f"/runs/p3/jobs?status=FAILED&next_token={token}"), 400)
    other = page_tokens.encode(b"another deployment's secret....", {"r": "p3", "s": None, "k": {}})
    assert "not a token this API handed out" in refused(api.get(f"/runs/p3/jobs?next_token={other}"), 400)["message"]


def test_the_secret_is_made_once_per_table_and_kept(api):
    first = api.deps.table.page_token_secret()
    assert len(first) == 32 and api.deps.table.page_token_secret() == first
    assert "expires_at" not in api.stack.item("CONFIG#page-tokens", "SECRET")


def nothing_queued(api) -> None:
    assert api.stack.drain(api.stack.incoming_url) == []


def test_an_oversized_body_is_413_before_it_is_parsed(api):
    body = b'{"generate": {"count": 1, "seed": 1}, "x": "' + b"a" * MAX_BODY_BYTES + b'"}'
    refused(api.post("/runs", content=body, headers={"content-type": "application/json"}), 413)
    nothing_queued(api)


def test_a_chunked_body_is_cut_off_at_the_limit(api):
    chunks = (b"a" * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
    refused(api.post("/tasks", content=chunks, headers={"Idempotency-Key": "chunked-body-1"}), 413)
    nothing_queued(api)


def test_the_limit_stops_reading_an_80_mb_body():
    # Given a declared 80 MB body, or one streamed without a length: the app never sees it, and reading
    # stops at the first chunk over the limit
    reached, chunks_read, sent = [], [], []

    async def app(scope, receive, send):
        reached.append(True)

    async def receive():
        chunks_read.append(1)
        return {"type": "http.request", "body": b"x" * (1 << 20), "more_body": True}

    async def send(message):
        sent.append(message)

    limits = BodyLimits(app)
    declared = {"type": "http", "method": "POST", "headers": [(b"content-length", str(80 << 20).encode())]}
    asyncio.run(limits(declared, receive, send))
    assert sent[0]["status"] == 413 and chunks_read == [] and reached == []
    sent.clear()
    asyncio.run(limits({"type": "http", "method": "POST", "headers": []}, receive, send))
    assert sent[0]["status"] == 413 and len(chunks_read) == MAX_BODY_BYTES // (1 << 20) + 1 and reached == []


@pytest.mark.parametrize(
    "body",
    ['{"sequences": ' + "[" * 100_000 + "]" * 100_000 + "}", '{"generate": {"count": 1, "seed": ' + "9" * 5000 + "}}"],
    ids=["deep", "5000-digits"],
)
def test_bodies_a_parser_would_fail_on_are_400(api, body):
    response = api.post("/runs", content=body, headers={"content-type": "application/json"})
    assert "refused before parsing" in refused(response, 400)["message"]
    nothing_queued(api)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sequence_id": 2**63}, "body.sequences[0].sequence_id"),
        ({"sequence_id": 2**53}, "body.sequences[0].sequence_id"),
        ({"sequence_id": True}, "body.sequences[0].sequence_id"),
        ({"sequence_id": "7"}, "body.sequences[0].sequence_id"),
    ],
)
def test_sequence_ids_are_strict_and_bounded(api, seed_000_sequence, change, field):
    response = api.post("/runs", json={"sequences": [{**seed_000_sequence, **change}]})
    assert refused(response, 422)["errors"][0]["field"] == field
    nothing_queued(api)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"generate": {"count": 1, "seed": 1}, "scenarios": "1000"}, "body.scenarios"),
        ({"generate": {"count": 1, "seed": 1}, "scenarios": True}, "body.scenarios"),
        ({"generate": {"count": 1, "seed": 1}, "scenarios": 10.0}, "body.scenarios"),
        ({"generate": {"count": "1", "seed": 1}}, "body.generate.count"),
        ({"generate": {"count": 1, "seed": 2**63}}, "body.generate.seed"),
        ({"generate": {"count": 1, "seed": 1}, "seed": False}, "body.seed"),
    ],
)
def test_numbers_are_json_integers(api, payload, field):
    assert refused(api.post("/runs", json=payload), 422)["errors"][0]["field"] == field


def test_task_numbers_are_json_integers(api):
    response = api.post("/tasks", json={"work_duration_ms": "100"}, headers={"Idempotency-Key": "strict-types-1"})
    assert refused(response, 422)["errors"][0]["field"] == "body.work_duration_ms"
    nothing_queued(api)


@pytest.mark.parametrize("time", ["１２:００:００", "12:00:00\n", "x" * 1_000_000])
def test_times_are_ascii_and_long_values_are_not_echoed(api, seed_000_sequence, time):
    seed_000_sequence["routes"][0]["estimated_gate_open_time"] = time
    body = refused(api.post("/runs", json={"sequences": [seed_000_sequence]}), 422)
    assert body["errors"][0]["field"] == "body.sequences[0].routes[0].estimated_gate_open_time"


def test_a_local_server_answers_its_own_host_names_only(fake_stack):
    from jobgraph.api.app import create_app

    deps = status.ApiDeps.from_settings(load_settings(ApiSettings))
    client = TestClient(create_app(lambda: deps, trusted_hosts=LOCAL_HOSTS), raise_server_exceptions=False)
    assert client.get("/runs/nope", headers={"host": "attacker.example"}).status_code == 400
    assert client.post("/tasks", json={}, headers={"host": "rebound.attacker.example:8000"}).status_code == 400
    assert client.get("/runs/nope", headers={"host": "127.0.0.1:8000"}).status_code == 404
    assert client.get("/runs/nope", headers={"host": "localhost"}).status_code == 404


def test_run_listing_tokens_are_signed_too(api, seed_000_sequence):
    for n in range(3):
        run_with_jobs(api, seed_000_sequence, f"l{n}", 2)
    assert sorted(every_page(api, "/runs", "runs", "run_id")) == ["l0", "l1", "l2"]
    first = api.get("/runs?limit=1").json()["next_token"]
    unsigned = first.partition(".")[0]  # the payload alone, as tokens were before they were signed
    for bad in (unsigned, forged({"f": [None, None, None, None], "c": {}}), first_token(api, "l0")):
        refused(api.get("/runs", params={"next_token": bad}), 400)
    # a listing's token is for its own question: another filter refuses it
    refused(api.get("/runs", params={"next_token": first, "status": "RUNNING"}), 400)


def test_a_json_body_sent_as_a_form_names_the_missing_content_type(api):
    # `curl -X POST …/runs -d '{…}'` without -H 'content-type: application/json' sends a form
    body = refused(api.post("/runs", content=b'{"generate": {"count": 1, "seed": 1}}', headers={
        "content-type": "application/x-www-form-urlencoded"}), 422)  # fmt: skip
    assert body["errors"] == [{"field": "body", "message": "send the JSON object with content-type: application/json "
                               "(this one: 'application/x-www-form-urlencoded')"}]  # fmt: skip
    nothing_queued(api)
