"""Request and response bodies of the status API; FastAPI turns them into docs/openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from jobgraph.core.bounds import Scenarios, Seed, json_int
from jobgraph.core.ids import RESERVED_RUN_ID, RUN_ID_PATTERN, TASK_ID_PATTERN, TEST_RUN_ID_PATTERN, is_task_id
from jobgraph.core.models import MAX_SYNTHETIC_DATA_KB, MAX_SYNTHETIC_WORK_MS, RunId, Sequence
from jobgraph.core.run import RunStarted

# API Gateway gives an integration 29 s: a run started through the API must be stored and seeded well
# within that (each sequence is one S3 PUT). Bigger runs: the StartRun function or `jobgraph run --stack`.
MAX_API_SEQUENCES = 500
MAX_GENERATED = 100

JobStatusName = Literal["COMPLETED", "FAILED"]
RunStatusName = Literal["RUNNING", "COMPLETED", "FAILED"]
TaskStatusName = Literal["QUEUED", "PROCESSING", "COMPLETED", "FAILED"]
FileType = Literal["delays", "percentiles", "merged_percentiles", "data", "output"]
TaskId = Annotated[str, StringConstraints(pattern=TASK_ID_PATTERN)]
JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
TestRunId = Annotated[str, StringConstraints(pattern=TEST_RUN_ID_PATTERN)]
# an ISO date or UTC time, as the records store them: 2026-12-02 or 2026-12-02T05:40[:00[.000]][Z]
IsoTime = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z?)?$")]
ClientKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{8,128}$")]
GroupId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
RunIdPath = Annotated[str, Path(pattern=RUN_ID_PATTERN, description="run id")]  # /runs/{run_id}...


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerateSpec(_Body):
    count: json_int(ge=1, le=MAX_GENERATED) = Field(description="sequences to generate (ids 0..count-1)")
    seed: Seed = Field(description="generator seed (same seed, same sequences)")


class RunRequest(_Body):
    """Start a run from sequences (GUIDE §2) or from a generator spec; exactly one of the two."""

    run_id: RunId | None = Field(default=None, description="default: a new unique id")
    sequences: list[Sequence] | None = Field(default=None, min_length=1, max_length=MAX_API_SEQUENCES)
    generate: GenerateSpec | None = None
    scenarios: Scenarios | None = Field(default=None, description="default: DEFAULT_SCENARIOS")
    seed: Seed = 42
    test_run_id: TestRunId | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.sequences is None) == (self.generate is None):
            raise ValueError("give exactly one of 'sequences' and 'generate'")
        if self.run_id is not None and is_task_id(self.run_id):
            raise ValueError(RESERVED_RUN_ID)
        return self


class RunStartedBody(RunStarted):
    """A run that started, and where to follow it."""

    # the fields of core.run.RunStarted (StartRun's answer too), then the API's own
    scenario: int = Field(description="the stack's scenario: 1 Lambda, 2 ECS workers, 3 Step Functions")
    status_url: str
    estimated_time_seconds: int | None = Field(description="null until some of its jobs completed")


class Progress(BaseModel):
    jobs_by_status: dict[str, int] = Field(description="latest status of every job record, plus PENDING")
    jobs_by_stage: dict[str, dict[str, int]]


class StageTimings(BaseModel):
    """Completed jobs' processing times (ms): the mean exact, percentiles from a histogram (within ±9 %)."""

    count: int
    mean: float
    p50: float
    p90: float
    p99: float


class Timings(BaseModel):
    started_at: str | None
    completed_at: str | None
    duration_s: float | None
    processing_ms_by_stage: dict[str, StageTimings]


class RunStatusBody(BaseModel):
    run_id: str
    status: str
    test_run_id: str | None
    created_at: str | None
    sequences_total: int
    sequences_remaining: int
    jobs_total: int
    scenarios: int
    seed: int
    progress: Progress
    timings: Timings
    estimated_time_seconds: int | None = Field(
        description="while RUNNING: jobs left x the median job time / jobs in parallel; null once ended or before a median"
    )


class RunSummary(BaseModel):
    run_id: str
    status: str
    test_run_id: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    duration_s: float | None = None
    sequences_total: int | None = None
    jobs_total: int | None = None
    scenarios: int | None = None
    error: str | None = None


class RunPage(BaseModel):
    runs: list[RunSummary] = Field(description="newest first")
    next_token: str | None = Field(description="pass as next_token for the next page; null on the last page")


class JobRecord(BaseModel):
    job_id: str
    run_id: str
    status: str | None = None
    exec_type: str | None = None
    sequence_id: int | None = None
    route_index: int | None = None
    processing_time_ms: float | None = None
    created_at: str | None = None
    updated_at: str | None = None
    last_attempt: int | None = None
    reports: int | None = None
    output_key: str | None = None
    error_message: str | None = None


class JobPage(BaseModel):
    run_id: str
    status: str | None
    jobs: list[JobRecord]
    next_token: str | None = Field(description="pass as next_token for the next page; null on the last page")


class ResultLinks(BaseModel):
    run_id: str
    status: str
    expires_in_s: int
    merged_percentiles: str | None = Field(description="presigned GET URL; null until the run's MERGE wrote it")
    sequences: dict[str, str] = Field(description="sequence_id -> presigned GET URL of percentiles/<id>.json")


class JobStatusBody(JobRecord):
    """Any job's latest record (seed 002's GET /status/{job_id}): a run's job or a task's."""

    task: bool = Field(description="a task of POST /tasks (its run_id is its task id)")
    files: dict[str, str] = Field(description="once COMPLETED: file type -> presigned GET URL (also /download/...)")
    expires_in_s: int


class TaskRequest(_Body):
    """One SYNTHETIC job (seed 004's task) on the stack's runner: its own namespace, never part of a run."""

    work_duration_ms: json_int(ge=0, le=MAX_SYNTHETIC_WORK_MS) = 100
    data_size_kb: json_int(ge=0, le=MAX_SYNTHETIC_DATA_KB) = 10
    # SQS's MessageGroupId: named so on the wire (seed 004), the correlation id in the code
    correlation_id: GroupId | None = Field(
        default=None, alias="message_group_id", description="FIFO group (default: TASK_GROUP_ID)"
    )
    client_key: ClientKey | None = Field(default=None, description="idempotency key (or the Idempotency-Key header)")


class TaskStatus(BaseModel):
    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    task_id: str
    status: TaskStatusName
    created_at: str | None
    updated_at: str | None
    attempts: int = Field(description="the attempt of its latest run (0 before it ran)")
    correlation_id: str | None = Field(alias="message_group_id")
    client_key: str | None
    work_duration_ms: int | None
    data_size_kb: int | None
    processing_time_ms: float | None
    output_key: str | None
    error_message: str | None
    download_url: str | None = Field(description="presigned GET URL of its output once COMPLETED")
    estimated_time_seconds: int | None = Field(
        description="while QUEUED/PROCESSING: queue ahead and recent tasks' median job time; else null"
    )
    status_url: str | None = None


class FieldError(BaseModel):
    field: str = Field(
        description="where: body.sequences[0].routes[1].origin_iata, query.limit, header.Idempotency-Key"
    )
    message: str


class ErrorBody(BaseModel):
    error: str = Field(
        description="machine-readable code: validation_error, not_found, conflict, not_ready, bad_request"
    )
    message: str
    errors: list[FieldError] = []
