"""POST /tasks and GET /tasks/{task_id} (seed 004): one SYNTHETIC job on the stack's runner per client key."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jobgraph.core.errors import TaskConflictError, TaskNotFoundError
from jobgraph.core.graph import synthetic_job
from jobgraph.core.ids import new_task_id
from jobgraph.core.models import ExecType
from jobgraph.core.progress import Progress, estimate_seconds
from jobgraph.core.run import RunSpec
from jobgraph.services.status import ApiDeps, job_files


def submit_task(
    deps: ApiDeps, client_key: str, work_duration_ms: int, data_size_kb: int, correlation_id: str | None
) -> tuple[dict[str, Any], bool]:
    """One SYNTHETIC job on the scenario's runner, once per client key; returns (task, created).

    A task is its own namespace (no run can be named like it, no task can name a run). The key is claimed
    with a conditional put before anything is sent; a replay with the same key and body returns the first
    task and re-sends only if the first attempt may have died between claim and send (the queue's FIFO
    deduplication id is the key, so SQS drops that copy within its 5-minute window; StepTask runs a job once).
    """
    correlation_id = correlation_id or deps.settings.task_correlation_id
    body = {"w": work_duration_ms, "d": data_size_kb, "g": correlation_id}
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    task_id = new_task_id()
    earlier = deps.table.claim_task(client_key, task_id, fingerprint)
    if earlier is not None:
        if earlier.get("fingerprint") != fingerprint:
            raise TaskConflictError("client key: already used for a different task body")
        task_id = str(earlier["task_id"])
    record: dict[str, Any] | None = None
    try:
        record = deps.table.get_task(task_id)
    except TaskNotFoundError:  # not queued yet (new, or the first attempt died before recording it)
        spec = RunSpec.synthetic(task_id, deps.settings.test_run_id)
        job = synthetic_job(spec, task_id, correlation_id, work_duration_ms, data_size_kb)
        deps.runner.submit(job, f"task:{client_key}")
        details = {"work_duration_ms": work_duration_ms, "data_size_kb": data_size_kb}
        deps.table.record_task_queued(task_id, client_key, correlation_id, details)
    return task_status(deps, task_id, record), earlier is None


def _recent_hours(now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    return [(now - timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in (0, 1)]


def task_status(deps: ApiDeps, task_id: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A task's record as the API shows it (``record``: read just before, else read here); TaskNotFoundError
    for an unknown task."""
    record = record if record is not None else deps.table.get_task(task_id)
    status = str(record.get("status", "QUEUED"))
    estimate = None
    if status in ("QUEUED", "PROCESSING"):
        recent: Progress = deps.table.task_progress(_recent_hours())
        # the recent tasks' median; with no history yet, the work this task asked for
        p50 = recent.p50_ms((ExecType.SYNTHETIC,)) or float(record.get("work_duration_ms", 0)) or None
        ahead = deps.runner.jobs_ahead() if status == "QUEUED" else 0
        estimate = estimate_seconds(1, p50, deps.parallel, ahead)
    files = job_files(deps, record)
    return {
        "task_id": task_id,
        "status": status,
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "attempts": int(record.get("last_attempt", 0)),
        "correlation_id": record.get("message_group_id"),
        "client_key": record.get("client_key"),
        "work_duration_ms": _int_or_none(record.get("work_duration_ms")),
        "data_size_kb": _int_or_none(record.get("data_size_kb")),
        "processing_time_ms": float(record["processing_time_ms"]) if "processing_time_ms" in record else None,
        "output_key": record.get("output_key"),
        "error_message": record.get("error_message"),
        "download_url": files.get("data"),
        "estimated_time_seconds": estimate,
    }


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
