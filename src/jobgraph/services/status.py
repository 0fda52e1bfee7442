"""The status API's dependencies and runners, a run's status, a job's status and files: what the status API
(seed 002/004) answers with; its listings are in services/listings.py, its tasks in services/tasks.py.

Pure logic over the JobsTable, the results bucket and the scenario's runner (the incoming queue in
scenarios 1 and 2, the state machine and StepTask in scenario 3); the FastAPI app (jobgraph.api) only maps
HTTP onto these functions and their errors onto status codes. Every read is O(1) in the size of a run:
its record and counters (core/progress.py), one job record, or one page of an index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from jobgraph.adapters.clients import ClientFactory
from jobgraph.adapters.events import RunEvents
from jobgraph.adapters.runners import AsyncFunction, StateMachine
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core.errors import (
    JobNotFoundError,
    NoSuchFileError,
    NotReadyError,
    RunExistsError,
    RunNotFoundError,
)
from jobgraph.core.graph import total_jobs
from jobgraph.core.ids import is_task_id, run_id_of_job
from jobgraph.core.models import ExecType, IncomingJob, Sequence, utc_now_iso
from jobgraph.core.ports import JobsTablePort
from jobgraph.core.progress import estimate_seconds
from jobgraph.core.results import (
    ResultStore,
    merged_key,
    percentiles_prefix,
    request_key,
    sequence_of_percentiles_key,
)
from jobgraph.core.run import RunSpec, RunStarted
from jobgraph.services.data import data_layer
from jobgraph.services.settings import ApiSettings, load_settings
from jobgraph.services.start_run import StartRunDeps, launch_run, run_request

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


# --- runners: where runs and tasks start --------------------------------------------------------------
class Runner(Protocol):
    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> RunStarted: ...

    def submit(self, job: IncomingJob, deduplication_id: str) -> None: ...

    def jobs_ahead(self) -> int: ...


@dataclass(frozen=True)
class QueueRunner:
    """Scenarios 1 and 2: runs and tasks go onto the incoming FIFO queue (Processor Lambda / ECS workers)."""

    run: StartRunDeps

    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> RunStarted:
        return launch_run(spec, sequences, self.run)

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
    table: JobsTablePort
    machine: StateMachine
    step_task: AsyncFunction

    def start_run(self, spec: RunSpec, sequences: list[Sequence]) -> RunStarted:
        # PrepareRun would refuse a used run id too, but only inside the execution, after this answer; and
        # Step Functions answers a repeated StartExecution of a running execution with that execution
        try:
            self.table.get_run(spec.run_id)
        except RunNotFoundError:
            if not self.results.blobs.exists(request_key(spec.run_id)):
                self.results.put_request(spec.run_id, run_request(sequences, spec))
                self.machine.start(spec.run_id, {"run_id": spec.run_id, "request_key": request_key(spec.run_id)})
                return RunStarted.of(spec, len(sequences), total_jobs(sequences), first_jobs_sent=None)
        raise RunExistsError(f"run {spec.run_id!r} was started before")

    def submit(self, job: IncomingJob, deduplication_id: str) -> None:
        self.step_task.invoke({"job": job.model_dump(mode="json", exclude_none=True)})

    def jobs_ahead(self) -> int:
        return 0  # no queue: the Distributed Map's concurrency bounds what runs at once


@dataclass(frozen=True)
class ApiDeps:
    table: JobsTablePort
    blobs: S3BlobStore
    settings: ApiSettings
    runner: Runner
    events: RunEvents | None = None  # where an approval is announced (api/approvals.py); None: no bus

    @classmethod
    def from_settings(cls, settings: ApiSettings, client: ClientFactory | None = None) -> ApiDeps:
        """``client(service)``: the boto3 clients to use (default: each adapter's own, built lazily)."""
        data = data_layer(settings, client)
        blobs, table, results = data.blobs, data.table, data.results
        if not isinstance(blobs, S3BlobStore):  # the API hands out presigned URLs
            raise TypeError(f"the status API needs an S3 bucket, not {blobs.describe()}")
        runner: Runner
        if settings.scenario == 3:
            runner = StateMachineRunner(
                results,
                table,
                StateMachine(settings.state_machine_arn, client=client("stepfunctions") if client else None),
                AsyncFunction(settings.step_task_function, client=client("lambda") if client else None),
            )
        else:
            incoming = data.queue("incoming")
            runner = QueueRunner(StartRunDeps(results=results, table=table, incoming=incoming, settings=settings))
        events = (
            RunEvents(settings.event_bus_name, client=client("events") if client else None)
            if settings.event_bus_name
            else None
        )
        return cls(table=table, blobs=blobs, settings=settings, runner=runner, events=events)

    @property
    def parallel(self) -> int:
        return max(1, self.settings.runner_concurrency)


@cache
def api_deps() -> ApiDeps:
    return ApiDeps.from_settings(load_settings(ApiSettings))


def new_run_id() -> str:
    return f"api-{utc_now_iso()[:19].replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:8]}"


# --- GET /runs/{run_id} -------------------------------------------------------------------------------
def run_status(deps: ApiDeps, run_id: str) -> dict[str, Any]:
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


# --- GET /runs/{run_id}/jobs, GET /status/{job_id}: a job record as the API shows it ----------------
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


def job_view(job_id: str, run_id: str, item: dict[str, Any]) -> dict[str, Any]:
    job: dict[str, Any] = {"job_id": job_id, "run_id": run_id}
    for field in JOB_FIELDS:
        if field in item:
            job[field] = item[field]
    if "processing_time_ms" in job:
        job["processing_time_ms"] = float(job["processing_time_ms"])
    for field in ("sequence_id", "route_index", "last_attempt", "reports"):
        if field in job:
            job[field] = int(job[field])
    return job


# --- GET /runs/{run_id}/results -----------------------------------------------------------------------
def result_links(deps: ApiDeps, run_id: str) -> dict[str, Any]:
    run = deps.table.get_run(run_id)
    expiry = deps.settings.url_expiry_s
    merged = merged_key(run_id)
    per_sequence = deps.blobs.list(percentiles_prefix(run_id))
    return {
        "run_id": run_id,
        "status": run["status"],
        "expires_in_s": expiry,
        "merged_percentiles": deps.blobs.presigned_url(merged, expiry) if deps.blobs.exists(merged) else None,
        "sequences": {sequence_of_percentiles_key(key): deps.blobs.presigned_url(key, expiry) for key in per_sequence},
    }


# --- GET /status/{job_id}, GET /download/{job_id}/{file_type} ------------------------------------------
def _job_record(deps: ApiDeps, job_id: str) -> tuple[str, dict[str, Any]]:
    """(run id, record) of any job: a run's (its run id is in its job id) or a task's. JobNotFoundError."""
    run_id = job_id if is_task_id(job_id) else run_id_of_job(job_id)
    record = deps.table.get_job(run_id, job_id) if run_id else None
    if run_id is None or not record or "exec_type" not in record:
        raise JobNotFoundError(f"job {job_id!r} has no record: it has not started yet, or there is no such job")
    return run_id, record


def job_files(deps: ApiDeps, record: dict[str, Any]) -> dict[str, str]:
    """The job's files (type -> presigned GET URL) once it completed."""
    if record.get("status") != "COMPLETED" or not record.get("output_key"):
        return {}
    url = deps.blobs.presigned_url(record["output_key"], deps.settings.url_expiry_s)
    return {FILE_TYPES[ExecType(record["exec_type"])]: url}


def job_status(deps: ApiDeps, job_id: str) -> dict[str, Any]:
    run_id, record = _job_record(deps, job_id)
    return {
        **job_view(job_id, run_id, record),
        "task": is_task_id(job_id),
        "files": job_files(deps, record),
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
