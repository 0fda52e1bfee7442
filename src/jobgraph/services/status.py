"""Run status, job listings, result links and API tasks: what the status API (seed 002/004) answers with.

Pure logic over the JobsTable, the results bucket and the incoming queue; the FastAPI app (jobgraph.api)
only maps HTTP onto these functions and their errors onto status codes.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache

from jobgraph.adapters.dynamodb import RunNotFoundError
from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core.errors import JobGraphError
from jobgraph.core.graph import RunSpec, synthetic_job
from jobgraph.core.models import ExecType, utc_now_iso
from jobgraph.core.results import merged_key
from jobgraph.services import page_tokens
from jobgraph.services.settings import ApiSettings, load_settings
from jobgraph.services.start_run import StartRunDeps

__all__ = ["ApiDeps", "BadTokenError", "RunNotFoundError", "TaskConflictError", "api_deps"]

STAGES = [t.value for t in ExecType if t is not ExecType.SYNTHETIC]


class BadTokenError(JobGraphError):
    """A pagination token that this API did not hand out for this listing."""


class TaskConflictError(JobGraphError):
    """A client key reused with a different task body."""


@dataclass(frozen=True)
class ApiDeps:
    run: StartRunDeps
    blobs: S3BlobStore
    settings: ApiSettings
    events: RunEvents | None = None  # where an approval is announced (api/approvals.py); None: no bus

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> ApiDeps:
        run = StartRunDeps.from_settings(settings)
        events = RunEvents(settings.event_bus_name) if settings.event_bus_name else None
        return cls(
            run=run, blobs=S3BlobStore(settings.bucket_name, settings.results_prefix), settings=settings, events=events
        )


@cache
def api_deps() -> ApiDeps:
    return ApiDeps.from_settings(load_settings(ApiSettings))


def timing_summary(samples: list[float]) -> dict[str, float]:
    """count, p50/p90/p99 (nearest rank) and max in ms; pure Python: the API ships without numpy."""
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"count": len(ordered), "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": ordered[-1]}


def new_run_id() -> str:
    return f"api-{utc_now_iso()[:19].replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"


# --- GET /runs/{run_id} ---------------------------------------------------------------------------------
def run_status(deps: ApiDeps, run_id: str) -> dict:
    """Run record + progress by stage and status + timings; RunNotFoundError for an unknown run."""
    table = deps.run.table
    run = table.get_run(run_id)
    jobs = table.jobs_of_run(run_id)
    by_status = Counter(str(j.get("status", "UNKNOWN")) for j in jobs)
    by_stage: dict[str, Counter] = defaultdict(Counter)
    times: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        stage = str(job.get("exec_type", "UNKNOWN"))
        by_stage[stage][str(job.get("status", "UNKNOWN"))] += 1
        if job.get("status") == "COMPLETED" and "processing_time_ms" in job:
            times[stage].append(float(job["processing_time_ms"]))
    jobs_total = int(run.get("jobs_total", 0))
    # a job has a record once the Processor reported it (completed or failed); the rest are pending
    pending = max(0, jobs_total - sum(sum(by_stage.get(stage, {}).values()) for stage in STAGES))
    return {
        "run_id": run_id,
        "status": run["status"],
        "test_run_id": run.get("test_run_id"),
        "sequences_total": int(run.get("sequences_total", 0)),
        "sequences_remaining": int(run.get("sequences_remaining", 0)),
        "jobs_total": jobs_total,
        "scenarios": int(run.get("scenarios", 0)),
        "seed": int(run.get("seed", 0)),
        "progress": {
            "jobs_by_status": {**dict(by_status), "PENDING": pending},
            "jobs_by_stage": {stage: dict(by_stage[stage]) for stage in STAGES if stage in by_stage},
        },
        "timings": {
            "started_at": run.get("started_at"),
            "completed_at": run.get("completed_at"),
            "duration_s": float(run["duration_s"]) if "duration_s" in run else None,
            "processing_ms_by_stage": {stage: timing_summary(times[stage]) for stage in STAGES if times.get(stage)},
        },
    }


# --- GET /runs/{run_id}/jobs ----------------------------------------------------------------------------
_TOKEN_SECRETS: dict[str, bytes] = {}  # per table: read once per process (a cold start)


def _token_secret(deps: ApiDeps) -> bytes:
    table = deps.run.table
    if table.table_name not in _TOKEN_SECRETS:
        _TOKEN_SECRETS[table.table_name] = table.page_token_secret()
    return _TOKEN_SECRETS[table.table_name]


def _encode_token(deps: ApiDeps, run_id: str, status: str | None, key: dict) -> str:
    return page_tokens.encode(_token_secret(deps), {"r": run_id, "s": status, "k": key})


def _decode_token(deps: ApiDeps, token: str, run_id: str, status: str | None) -> dict:
    """The start key of a token this API signed for this listing; BadTokenError for anything else."""
    try:
        payload = page_tokens.decode(_token_secret(deps), token)
    except page_tokens.ForgedTokenError:
        raise BadTokenError("next_token: not a token this API handed out") from None
    if payload.get("r") != run_id or payload.get("s") != status or not isinstance(payload.get("k"), dict):
        raise BadTokenError("next_token: handed out for another run or status filter")
    return payload["k"]


JOB_FIELDS = (
    "status",
    "exec_type",
    "sequence_id",
    "route_index",
    "processing_time_ms",
    "updated_at",
    "last_attempt",
    "reports",
    "output_key",
    "error_message",
)


def list_jobs(deps: ApiDeps, run_id: str, status: str | None, limit: int, next_token: str | None) -> dict:
    start = _decode_token(deps, next_token, run_id, status) if next_token else None
    deps.run.table.get_run(run_id)  # 404 for an unknown run, not an empty list
    items, last = deps.run.table.job_page(run_id, status, limit, start)
    jobs = []
    for item in items:
        job = {"job_id": item["sk"].removeprefix("JOB#")}
        for field in JOB_FIELDS:
            if field in item:
                value = item[field]
                job[field] = float(value) if field == "processing_time_ms" else value
        for field in ("sequence_id", "route_index", "last_attempt", "reports"):
            if field in job:
                job[field] = int(job[field])
        jobs.append(job)
    return {
        "run_id": run_id,
        "status": status,
        "jobs": jobs,
        "next_token": _encode_token(deps, run_id, status, last) if last else None,
    }


# --- GET /runs/{run_id}/results -------------------------------------------------------------------------
def result_links(deps: ApiDeps, run_id: str) -> dict:
    run = deps.run.table.get_run(run_id)
    expiry = deps.settings.url_expiry_s
    merged = merged_key(run_id)
    per_sequence = deps.blobs.list(f"{run_id}/percentiles/")
    return {
        "run_id": run_id,
        "status": run["status"],
        "expires_in_s": expiry,
        "merged_percentiles": deps.blobs.presigned_url(merged, expiry) if deps.blobs.exists(merged) else None,
        "sequences": {
            key.rsplit("/", 1)[1].removesuffix(".json"): deps.blobs.presigned_url(key, expiry) for key in per_sequence
        },
    }


# --- POST /tasks (seed 004) -----------------------------------------------------------------------------
def submit_task(
    deps: ApiDeps, client_key: str, work_duration_ms: int, data_size_kb: int, run_id: str, group_id: str | None
) -> tuple[dict, bool]:
    """One SYNTHETIC job onto the incoming FIFO queue, once per client key; returns (task, created).

    The key is claimed with a conditional put before anything is sent; a replay with the same key and
    body returns the first task and re-sends only if the first attempt may have died between claim and
    send (the FIFO deduplication id is the key, so SQS drops that copy within its 5-minute window).
    """
    group = group_id or deps.settings.task_group_id
    body = {"w": work_duration_ms, "d": data_size_kb, "r": run_id, "g": group}
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    task_id = f"task-{uuid.uuid4().hex}"
    earlier = deps.run.table.claim_task(client_key, task_id, fingerprint)
    if earlier is not None:
        if earlier.get("fingerprint") != fingerprint:
            raise TaskConflictError("client key: already used for a different task body")
        task_id = str(earlier["task_id"])
        if earlier.get("status") == "QUEUED":
            return _task(task_id, run_id, group, client_key, "QUEUED"), False
    spec = RunSpec(run_id, deps.settings.test_run_id, 1, 0)
    job = synthetic_job(spec, task_id, group, work_duration_ms, data_size_kb)
    deps.run.incoming.send_job(job, deduplication_id=f"task:{client_key}")
    deps.run.table.mark_task_queued(client_key)
    return _task(task_id, run_id, group, client_key, "QUEUED"), earlier is None


def _task(task_id: str, run_id: str, group: str, client_key: str, status: str) -> dict:
    return {"task_id": task_id, "run_id": run_id, "message_group_id": group, "client_key": client_key, "status": status}
