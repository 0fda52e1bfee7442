"""Request and response bodies of the status API; FastAPI turns them into docs/openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from jobgraph.core.models import (
    MAX_SYNTHETIC_DATA_KB,
    MAX_SYNTHETIC_WORK_MS,
    TEST_RUN_ID_PATTERN,
    RunId,
    Scenarios,
    Seed,
    Sequence,
    json_int,
)

# API Gateway gives an integration 29 s: a run started through the API must be stored and seeded well
# within that (each sequence is one S3 PUT). Bigger runs: the StartRun function or `jobgraph run --stack`.
MAX_API_SEQUENCES = 500
MAX_GENERATED = 100

JobStatusName = Literal["COMPLETED", "FAILED"]
ClientKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{8,128}$")]
GroupId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,128}$")]


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
    test_run_id: Annotated[str, StringConstraints(pattern=TEST_RUN_ID_PATTERN)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.sequences is None) == (self.generate is None):
            raise ValueError("give exactly one of 'sequences' and 'generate'")
        return self


class RunStarted(BaseModel):
    run_id: str
    status: Literal["RUNNING"] = "RUNNING"
    test_run_id: str
    sequences: int
    jobs_total: int
    first_jobs_sent: int
    scenarios: int
    seed: int
    status_url: str


class Progress(BaseModel):
    jobs_by_status: dict[str, int] = Field(description="latest status of every job record, plus PENDING")
    jobs_by_stage: dict[str, dict[str, int]]


class StageTimings(BaseModel):
    count: int
    p50: float
    p90: float
    p99: float
    max: float


class Timings(BaseModel):
    started_at: str | None
    completed_at: str | None
    duration_s: float | None
    processing_ms_by_stage: dict[str, StageTimings]


class RunStatusBody(BaseModel):
    run_id: str
    status: str
    test_run_id: str | None
    sequences_total: int
    sequences_remaining: int
    jobs_total: int
    scenarios: int
    seed: int
    progress: Progress
    timings: Timings


class JobRecord(BaseModel):
    job_id: str
    status: str | None = None
    exec_type: str | None = None
    sequence_id: int | None = None
    route_index: int | None = None
    processing_time_ms: float | None = None
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


class TaskRequest(_Body):
    """One SYNTHETIC job for the Processor (seed 004's task), queued on the incoming FIFO queue."""

    work_duration_ms: json_int(ge=0, le=MAX_SYNTHETIC_WORK_MS) = 100
    data_size_kb: json_int(ge=0, le=MAX_SYNTHETIC_DATA_KB) = 10
    run_id: RunId = Field(default="api-tasks", description="the run the task's job record is filed under")
    message_group_id: GroupId | None = Field(default=None, description="FIFO group (default: TASK_GROUP_ID)")
    client_key: ClientKey | None = Field(default=None, description="idempotency key (or the Idempotency-Key header)")


class TaskAccepted(BaseModel):
    task_id: str
    run_id: str
    message_group_id: str
    client_key: str
    status: Literal["QUEUED"]


class FieldError(BaseModel):
    field: str = Field(
        description="where: body.sequences[0].routes[1].origin_iata, query.limit, header.Idempotency-Key"
    )
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code: validation_error, not_found, conflict, bad_request")
    message: str
    errors: list[FieldError] = []
