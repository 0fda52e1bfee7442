"""Runs, jobs, tasks, downloads and estimates: what the status API (seed 002/004) answers with.

Pure logic over the JobsTable, the results bucket and the scenario's runner (the incoming queue in
scenarios 1 and 2, the state machine and StepTask in scenario 3); the FastAPI app (jobgraph.api) only maps
HTTP onto these functions and their errors onto status codes. Every read is O(1) in the size of a run:
its record and counters (core/progress.py), one job record, or one page of an index.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Protocol

from jobgraph.adapters.dynamodb import RUN_STATUSES, JobsTable, RunExistsError, RunNotFoundError, TaskNotFoundError
from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.runners import AsyncFunction, StateMachine
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import JobGraphError
from jobgraph.core.graph import RunSpec, synthetic_job, total_jobs
from jobgraph.core.models import ExecType, IncomingJob, Sequence, is_task_id, new_task_id, run_id_of_job, utc_now_iso
from jobgraph.core.progress import Progress, estimate_seconds
from jobgraph.core.results import ResultStore, merged_key, request_key
from jobgraph.services import page_tokens
from jobgraph.services.settings import ApiSettings, load_settings
from jobgraph.services.start_run import StartedRun, StartRunDeps, launch_run, run_request, run_spec

__all__ = [
    "ApiDeps",
    "BadTokenError",
    "JobNotFoundError",
    "NoSuchFileError",
    "NotReadyError",
    "RunNotFoundError",
    "TaskConflictError",
    "TaskNotFoundError",
    "api_deps",
]

STAGES = [t.value for t in ExecType if t is not ExecType.SYNTHETIC]
# what a job's output file is called in GET /download/{job_id}/{file_type} ("output" names it for any job)
FILE_TYPES = {
    ExecType.FIRST: "delays",
    ExecType.INTERMEDIATE: "delays",
    ExecType.LAST: "delays",
    ExecType.AGGREGATION: "percentiles",
    ExecType.MERGE: "merged_percentiles",
    ExecType.SYNTHETIC: "data",
}
ANY_FILE = "output"
DATE_RANGE_DAYS = 7  # GET /runs without a filter or range: the last week


class BadTokenError(JobGraphError):
    """A pagination token that this API did not hand out for this listing."""


class TaskConflictError(JobGraphError):
    """A client key reused with a different task body."""


class JobNotFoundError(JobGraphError):
    """No record of this job (not started yet, or no such job)."""


class NoSuchFileError(JobGraphError):
    """The job has no file of this type."""


class NotReadyError(JobGraphError):
    """The job has not completed: its file does not exist yet."""


# --- runners: where runs and tasks start --------------------------------------------------------------
class Runner(Protocol):
    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> StartedRun: ...

    def submit(self, job: IncomingJob, deduplication_id: str) -> None: ...

    def jobs_ahead(self) -> int: ...


@dataclass(frozen=True)
class QueueRunner:
    """Scenarios 1 and 2: runs and tasks go onto the incoming FIFO queue (Processor Lambda / ECS workers)."""

    run: StartRunDeps

    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> StartedRun:
        return launch_run(
            spec.run_id, sequences, self.run, scenarios=spec.scenarios, seed=spec.seed, test_run_id=spec.test_run_id
        )

    def submit(self, job: IncomingJob, deduplication_id: str) -> None:
        self.run.incoming.send_job(job, deduplication_id=deduplication_id)

    def jobs_ahead(self) -> int:
        visible, in_flight = self.run.incoming.depth()
        return visible + in_flight


@dataclass(frozen=True)
class StateMachineRunner:
    """Scenario 3: a run is an execution of the state machine (PrepareRun registers it, as the run driver's
    executions do); a task's job is one asynchronous StepTask invocation."""

    results: ResultStore
    table: JobsTable
    machine: StateMachine
    step_task: AsyncFunction

    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> StartedRun:
        # PrepareRun would refuse a used run id too, but only inside the execution, after this answer; and
        # Step Functions answers a repeated StartExecution of a running execution with that execution
        try:
            self.table.get_run(spec.run_id)
        except RunNotFoundError:
            if not self.results.blobs.exists(request_key(spec.run_id)):
                self.results.put_request(spec.run_id, run_request(sequences, spec))
                self.machine.start(spec.run_id, {"run_id": spec.run_id, "request_key": request_key(spec.run_id)})
                return StartedRun(
                    spec.run_id,
                    spec.test_run_id,
                    len(sequences),
                    total_jobs(sequences),
                    None,
                    spec.scenarios,
                    spec.seed,
                )
        raise RunExistsError(f"run {spec.run_id!r} was started before")

    def submit(self, job: IncomingJob, deduplication_id: str) -> None:
        self.step_task.invoke({"job": job.model_dump(mode="json", exclude_none=True)})

    def jobs_ahead(self) -> int:
        return 0  # no queue: the Distributed Map's concurrency bounds what runs at once


@dataclass(frozen=True)
class ApiDeps:
    table: JobsTable
    blobs: S3BlobStore
    settings: ApiSettings
    runner: Runner
    events: RunEvents | None = None  # where an approval is announced (api/approvals.py); None: no bus

    @classmethod
    def from_settings(cls, settings: ApiSettings, client: Callable[[str], object] | None = None) -> ApiDeps:
        """``client(service)``: the boto3 clients to use (default: each adapter's own, built lazily)."""
        make = client or (lambda _service: None)
        blobs = S3BlobStore(settings.bucket_name, settings.results_prefix, client=make("s3"))
        table = JobsTable(settings.table_name, settings.record_ttl_days, client=make("dynamodb"))
        results = ResultStore(blobs)
        runner: Runner
        if settings.scenario == 3:
            runner = StateMachineRunner(
                results,
                table,
                StateMachine(settings.state_machine_arn, client=make("stepfunctions")),
                AsyncFunction(settings.step_task_function, client=make("lambda")),
            )
        else:
            incoming = FifoQueue(settings.incoming_queue_url, client=make("sqs"))
            runner = QueueRunner(StartRunDeps(results=results, table=table, incoming=incoming, settings=settings))
        events = RunEvents(settings.event_bus_name, client=make("events")) if settings.event_bus_name else None
        return cls(table=table, blobs=blobs, settings=settings, runner=runner, events=events)

    @property
    def parallel(self) -> int:
        return max(1, self.settings.runner_concurrency)


@cache
def api_deps() -> ApiDeps:
    return ApiDeps.from_settings(load_settings(ApiSettings))


def new_run_id() -> str:
    return f"api-{utc_now_iso()[:19].replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"


# --- POST /runs ---------------------------------------------------------------------------------------
def start_run(
    deps: ApiDeps, run_id: str, sequences: list[Sequence], scenarios: int | None, seed: int, test_run_id: str | None
) -> dict:
    spec = run_spec(deps.settings, run_id, scenarios, seed, test_run_id)
    started = deps.runner.start_run(spec, sequences)
    # nothing of it has run yet: no median to estimate from (GET /runs/{run_id} has one once jobs complete)
    return {**asdict(started), "scenario": deps.settings.scenario, "estimated_time_seconds": None}


# --- GET /runs/{run_id} -------------------------------------------------------------------------------
def run_status(deps: ApiDeps, run_id: str) -> dict:
    """Run record + progress by stage and status + timings + estimate, from two items; RunNotFoundError."""
    run, progress = deps.table.run_with_progress(run_id)
    jobs_total = int(run.get("jobs_total", 0))
    # a job counts once it reported an outcome (completed or failed); the rest are pending
    pending = max(0, jobs_total - progress.completed - progress.failed)
    remaining = max(0, jobs_total - progress.completed)
    by_stage = {
        stage.value: {k: v for k, v in (("COMPLETED", counts.completed), ("FAILED", counts.failed)) if v}
        for stage, counts in progress.stages.items()
        if stage.value in STAGES and (counts.completed or counts.failed)
    }
    timings = {
        stage.value: summary
        for stage, counts in progress.stages.items()
        if stage.value in STAGES and (summary := counts.timings())
    }
    sequences_remaining = int(run.get("sequences_remaining", 0))
    running = run["status"] == "RUNNING"
    return {
        "run_id": run_id,
        "status": run["status"],
        "test_run_id": run.get("test_run_id"),
        "created_at": run.get("created_at") or run.get("started_at"),
        "sequences_total": int(run.get("sequences_total", 0)),
        "sequences_remaining": sequences_remaining,
        "jobs_total": jobs_total,
        "scenarios": int(run.get("scenarios", 0)),
        "seed": int(run.get("seed", 0)),
        "progress": {
            "jobs_by_status": {
                **{k: v for k, v in (("COMPLETED", progress.completed), ("FAILED", progress.failed)) if v},
                "PENDING": pending,
            },
            "jobs_by_stage": {stage: by_stage[stage] for stage in STAGES if stage in by_stage},
        },
        "timings": {
            "started_at": run.get("started_at"),
            "completed_at": run.get("completed_at"),
            "duration_s": float(run["duration_s"]) if "duration_s" in run else None,
            "processing_ms_by_stage": {stage: timings[stage] for stage in STAGES if stage in timings},
        },
        # each sequence runs one job at a time: at most that many in parallel, at most the runner's width
        "estimated_time_seconds": estimate_seconds(
            remaining, progress.p50_ms(), min(deps.parallel, max(1, sequences_remaining))
        )
        if running
        else None,
    }


# --- GET /runs ----------------------------------------------------------------------------------------
_TOKEN_SECRETS: dict[str, bytes] = {}  # per table: read once per process (a cold start)


def _token_secret(deps: ApiDeps) -> bytes:
    table = deps.table
    if table.table_name not in _TOKEN_SECRETS:
        _TOKEN_SECRETS[table.table_name] = table.page_token_secret()
    return _TOKEN_SECRETS[table.table_name]


def _encode_token(deps: ApiDeps, payload: dict) -> str:
    """A token signed with this deployment's secret (services/page_tokens.py)."""
    return page_tokens.encode(_token_secret(deps), payload)


def _decode_token(deps: ApiDeps, token: str, expected: dict) -> dict:
    """The token's payload if this API signed it for the listing ``expected`` describes, else BadTokenError:
    a forged or edited token is refused before its start key reaches DynamoDB."""
    try:
        payload = page_tokens.decode(_token_secret(deps), token)
    except page_tokens.ForgedTokenError:
        raise BadTokenError("next_token: not a token this API handed out") from None
    if any(payload.get(k) != v for k, v in expected.items()):
        raise BadTokenError("next_token: not a token this listing handed out (or it was for another run/filter)")
    return payload


def _key_of(value) -> dict | None:
    """A token's DynamoDB key: a map of attribute name to {"S": ...} (nothing else this API hands out)."""
    if value is None:
        return None
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(v, dict) and set(v) == {"S"} and isinstance(v["S"], str) for v in value.values())
    ):
        raise BadTokenError("next_token: not a token this listing handed out (or it was for another run/filter)")
    return value


INDEX_KEY = ("pk", "sk", "gsi1pk", "gsi1sk")  # where a query of the status index continues from
RUN_FIELDS = ("status", "test_run_id", "created_at", "started_at", "completed_at", "duration_s", "sequences_total",
              "jobs_total", "scenarios", "error")  # fmt: skip


def _run_summary(item: dict) -> dict:
    summary = {"run_id": item["run_id"], **{field: item[field] for field in RUN_FIELDS if field in item}}
    summary.setdefault("created_at", item.get("started_at"))
    for field in ("sequences_total", "jobs_total", "scenarios"):
        if field in summary:
            summary[field] = int(summary[field])
    if "duration_s" in summary:
        summary["duration_s"] = float(summary["duration_s"])
    return summary


def list_runs(
    deps: ApiDeps,
    status: str | None,
    test_run_id: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    next_token: str | None,
) -> dict:
    """Runs newest first, by status (the status index), by test run (by-test-run), or all in a date range
    (the status index's three run partitions, merged), paginated."""
    filters = {"f": [status, test_run_id, since, until]}  # as asked: a token is valid for the same question
    state = _decode_token(deps, next_token, filters) if next_token else None
    if since is None and until is None and status is None and test_run_id is None:
        # the last week, as of the first page (the token carries it: later pages list the same runs)
        default_since = (datetime.now(UTC) - timedelta(days=DATE_RANGE_DAYS)).isoformat(timespec="seconds")[:19]
        since = state.get("since") if state else default_since
        if not isinstance(since, str):
            raise BadTokenError("next_token: not a token this listing handed out (or it was for another run/filter)")
        filters["since"] = since
    until_bound = (until or "") + "~" if until and len(until) == 10 else until  # a date: all of that day
    if test_run_id is not None or status is not None:
        index, value = ("test_run", test_run_id) if test_run_id is not None else ("status", status)
        start = _key_of(state.get("k")) if state else None
        items, last = [], start
        while len(items) < limit:  # a status filter on the test-run index may thin a page
            page, last = deps.table.run_page(index, value, limit - len(items), last, since, until_bound)
            items += [i for i in page if status is None or i.get("status") == status]
            if last is None:
                break
        return {
            "runs": [_run_summary(i) for i in items],
            "next_token": _encode_token(deps, {**filters, "k": last}) if last else None,
        }
    # every status: each partition's next page from its own cursor, merged newest first
    cursors = state["c"] if state else dict.fromkeys(RUN_STATUSES)
    if not isinstance(cursors, dict) or set(cursors) != set(RUN_STATUSES):
        raise BadTokenError("next_token: not a token this listing handed out (or it was for another run/filter)")
    pages = {}
    for name, cursor in cursors.items():
        if cursor != "done":
            pages[name] = deps.table.run_page("status", name, limit, _key_of(cursor), since, until_bound)
    merged = sorted(
        ((item, name) for name, (page, _last) in pages.items() for item in page),
        key=lambda pair: (pair[0].get("gsi1sk", ""), pair[0]["run_id"]),
        reverse=True,
    )[:limit]
    for name, (page, last) in pages.items():
        taken = [item for item, status_name in merged if status_name == name]
        if taken:
            whole_page = len(taken) == len(page)
            cursors[name] = "done" if whole_page and last is None else {k: {"S": taken[-1][k]} for k in INDEX_KEY}
        elif not page:
            cursors[name] = "done"
    more = any(cursor != "done" for cursor in cursors.values())
    return {
        "runs": [_run_summary(item) for item, _name in merged],
        "next_token": _encode_token(deps, {**filters, "c": cursors}) if more else None,
    }


# --- GET /runs/{run_id}/jobs --------------------------------------------------------------------------
JOB_FIELDS = (
    "status",
    "exec_type",
    "sequence_id",
    "route_index",
    "processing_time_ms",
    "created_at",
    "updated_at",
    "last_attempt",
    "reports",
    "output_key",
    "error_message",
)


def _job(job_id: str, run_id: str, item: dict) -> dict:
    job = {"job_id": job_id, "run_id": run_id}
    for field in JOB_FIELDS:
        if field in item:
            job[field] = item[field]
    if "processing_time_ms" in job:
        job["processing_time_ms"] = float(job["processing_time_ms"])
    for field in ("sequence_id", "route_index", "last_attempt", "reports"):
        if field in job:
            job[field] = int(job[field])
    return job


def list_jobs(deps: ApiDeps, run_id: str, status: str | None, limit: int, next_token: str | None) -> dict:
    listing = {"r": run_id, "s": status}
    start = _key_of(_decode_token(deps, next_token, listing).get("k")) if next_token else None
    if start is not None and start.get("pk") != {"S": f"RUN#{run_id}"}:
        raise BadTokenError("next_token: not a token this listing handed out (or it was for another run/filter)")
    deps.table.get_run(run_id)  # 404 for an unknown run, not an empty list
    items, last = deps.table.job_page(run_id, status, limit, start)
    return {
        "run_id": run_id,
        "status": status,
        "jobs": [_job(item["sk"].removeprefix("JOB#"), run_id, item) for item in items],
        "next_token": _encode_token(deps, {**listing, "k": last}) if last else None,
    }


# --- GET /runs/{run_id}/results -----------------------------------------------------------------------
def result_links(deps: ApiDeps, run_id: str) -> dict:
    run = deps.table.get_run(run_id)
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


# --- GET /status/{job_id}, GET /download/{job_id}/{file_type} ------------------------------------------
def _job_record(deps: ApiDeps, job_id: str) -> tuple[str, dict]:
    """(run id, record) of any job: a run's (its run id is in its job id) or a task's. JobNotFoundError."""
    run_id = job_id if is_task_id(job_id) else run_id_of_job(job_id)
    record = deps.table.get_job(run_id, job_id) if run_id else None
    if not record or "exec_type" not in record:
        raise JobNotFoundError(f"job {job_id!r} has no record: it has not started yet, or there is no such job")
    return run_id, record


def _files(deps: ApiDeps, record: dict) -> dict[str, str]:
    """The job's files (type -> presigned GET URL) once it completed."""
    if record.get("status") != "COMPLETED" or not record.get("output_key"):
        return {}
    url = deps.blobs.presigned_url(record["output_key"], deps.settings.url_expiry_s)
    return {FILE_TYPES[ExecType(record["exec_type"])]: url}


def job_status(deps: ApiDeps, job_id: str) -> dict:
    run_id, record = _job_record(deps, job_id)
    return {
        **_job(job_id, run_id, record),
        "task": is_task_id(job_id),
        "files": _files(deps, record),
        "expires_in_s": deps.settings.url_expiry_s,
    }


def download_url(deps: ApiDeps, job_id: str, file_type: str) -> str:
    """The presigned URL of the job's file ``file_type`` (or ``output``): JobNotFoundError, NoSuchFileError or
    NotReadyError (the job has not completed) when there is none."""
    _run_id, record = _job_record(deps, job_id)
    produced = FILE_TYPES[ExecType(record["exec_type"])]
    if file_type not in (produced, ANY_FILE):
        raise NoSuchFileError(f"job {job_id!r} ({record['exec_type']}) has no {file_type!r} file, only {produced!r}")
    if record.get("status") != "COMPLETED" or not record.get("output_key"):
        raise NotReadyError(f"job {job_id!r} is {record.get('status')}: its {produced} file exists once it COMPLETED")
    return deps.blobs.presigned_url(record["output_key"], deps.settings.url_expiry_s)


# --- POST /tasks, GET /tasks/{task_id} (seed 004) -----------------------------------------------------
def submit_task(
    deps: ApiDeps, client_key: str, work_duration_ms: int, data_size_kb: int, group_id: str | None
) -> tuple[dict, bool]:
    """One SYNTHETIC job on the scenario's runner, once per client key; returns (task, created).

    A task is its own namespace (no run can be named like it, no task can name a run). The key is claimed
    with a conditional put before anything is sent; a replay with the same key and body returns the first
    task and re-sends only if the first attempt may have died between claim and send (the queue's FIFO
    deduplication id is the key, so SQS drops that copy within its 5-minute window; StepTask runs a job once).
    """
    group = group_id or deps.settings.task_group_id
    body = {"w": work_duration_ms, "d": data_size_kb, "g": group}
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    task_id = new_task_id()
    earlier = deps.table.claim_task(client_key, task_id, fingerprint)
    if earlier is not None:
        if earlier.get("fingerprint") != fingerprint:
            raise TaskConflictError("client key: already used for a different task body")
        task_id = str(earlier["task_id"])
    try:
        deps.table.get_task(task_id)
    except TaskNotFoundError:  # not queued yet (new, or the first attempt died before recording it)
        spec = RunSpec(task_id, deps.settings.test_run_id, 1, 0)
        deps.runner.submit(synthetic_job(spec, task_id, group, work_duration_ms, data_size_kb), f"task:{client_key}")
        details = {"work_duration_ms": work_duration_ms, "data_size_kb": data_size_kb}
        deps.table.record_task_queued(task_id, client_key, group, details)
    return task_status(deps, task_id), earlier is None


def _recent_hours(now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    return [(now - timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in (0, 1)]


def task_status(deps: ApiDeps, task_id: str) -> dict:
    """A task's record as the API shows it; TaskNotFoundError for an unknown task."""
    record = deps.table.get_task(task_id)
    status = str(record.get("status", "QUEUED"))
    estimate = None
    if status in ("QUEUED", "PROCESSING"):
        recent: Progress = deps.table.task_progress(_recent_hours())
        # the recent tasks' median; with no history yet, the work this task asked for
        p50 = recent.p50_ms((ExecType.SYNTHETIC,)) or float(record.get("work_duration_ms", 0)) or None
        ahead = deps.runner.jobs_ahead() if status == "QUEUED" else 0
        estimate = estimate_seconds(1, p50, deps.parallel, ahead)
    files = _files(deps, record)
    return {
        "task_id": task_id,
        "status": status,
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
        "attempts": int(record.get("last_attempt", 0)),
        "message_group_id": record.get("message_group_id"),
        "client_key": record.get("client_key"),
        "work_duration_ms": _int_or_none(record.get("work_duration_ms")),
        "data_size_kb": _int_or_none(record.get("data_size_kb")),
        "processing_time_ms": float(record["processing_time_ms"]) if "processing_time_ms" in record else None,
        "output_key": record.get("output_key"),
        "error_message": record.get("error_message"),
        "download_url": files.get("data"),
        "estimated_time_seconds": estimate,
    }


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)
