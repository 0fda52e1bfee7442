"""Data contracts of GUIDE §2 and §6 as pydantic v2 models.

Pure: no I/O beyond the packaged airport table. Validation errors name the field, so loaders can turn
them into one-line messages ("file: sequence 3: routes[1].estimated_takeoff_time: ...").
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from jobgraph.core.airports import is_known_iata
from jobgraph.core.bounds import MAX_SCENARIOS, Count, Positive, Scenarios, Seed, SequenceId, json_int
from jobgraph.core.ids import RUN_ID_PATTERN
from jobgraph.core.timeutil import parse_hms

MIN_TURNAROUND_MIN = 45.0  # GUIDE §4
MAX_SYNTHETIC_WORK_MS = 900_000  # a Lambda's longest timeout
MAX_SYNTHETIC_DATA_KB = 10_240
if TYPE_CHECKING:  # to mypy they are ints (as in core/bounds)
    WorkMs = int
    DataKb = int
else:
    WorkMs = json_int(ge=0, le=MAX_SYNTHETIC_WORK_MS)
    DataKb = json_int(ge=0, le=MAX_SYNTHETIC_DATA_KB)

RunId = Annotated[str, StringConstraints(pattern=RUN_ID_PATTERN)]


def _relative_key(key: str) -> str:
    if key.startswith("/") or ".." in key.split("/"):
        raise ValueError("must be a key relative to the bucket: no leading '/', no '..' segment")
    return key


# A key in the results bucket (relative to RESULTS_PREFIX): printable ASCII, no leading "/", no ".." segment.
InputKey = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[!-~]+$"), AfterValidator(_relative_key)
]
IataCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{3}$")]


class ExecType(StrEnum):
    FIRST = "FIRST"
    INTERMEDIATE = "INTERMEDIATE"
    LAST = "LAST"
    AGGREGATION = "AGGREGATION"
    MERGE = "MERGE"
    # the perf runner's job (seed 000/001 `--work-duration-ms/--data-size-kb`): no graph, no follow-up
    SYNTHETIC = "SYNTHETIC"

    @property
    def is_route(self) -> bool:
        return self in (ExecType.FIRST, ExecType.INTERMEDIATE, ExecType.LAST)


class JobStatus(StrEnum):
    """Status of one job in a completion message (seed 001 wording)."""

    COMPLETED = "completed"
    FAILED = "failed"


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Strict):
    origin_iata: IataCode
    destination_iata: IataCode
    estimated_gate_open_time: str
    estimated_takeoff_time: str
    estimated_arrival_time: str

    @field_validator("estimated_gate_open_time", "estimated_takeoff_time", "estimated_arrival_time")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        parse_hms(value)  # raises ValueError with the offending value
        return value

    @model_validator(mode="after")
    def _times_increase(self) -> Self:
        if self.origin_iata == self.destination_iata:
            raise ValueError(f"origin_iata and destination_iata are both {self.origin_iata}")
        if not self.gate_open_min <= self.takeoff_min:
            raise ValueError(
                f"estimated_takeoff_time {self.estimated_takeoff_time} is before "
                f"estimated_gate_open_time {self.estimated_gate_open_time}"
            )
        if not self.takeoff_min < self.arrival_min:
            raise ValueError(
                f"estimated_arrival_time {self.estimated_arrival_time} is not after "
                f"estimated_takeoff_time {self.estimated_takeoff_time}"
            )
        return self

    @cached_property
    def gate_open_min(self) -> float:
        return parse_hms(self.estimated_gate_open_time)

    @cached_property
    def takeoff_min(self) -> float:
        return parse_hms(self.estimated_takeoff_time)

    @cached_property
    def arrival_min(self) -> float:
        return parse_hms(self.estimated_arrival_time)

    @cached_property
    def block_min(self) -> float:
        return self.arrival_min - self.takeoff_min


class Sequence(_Strict):
    """One aircraft's operating day (seed 000 format)."""

    sequence_id: SequenceId
    home_airport_iata: IataCode
    routes: list[Route] = Field(min_length=1)

    @field_validator("home_airport_iata")
    @classmethod
    def _known_home(cls, value: str) -> str:
        if not is_known_iata(value):
            raise ValueError(f"unknown IATA airport code {value!r}")
        return value

    @model_validator(mode="after")
    def _routes_chain(self) -> Self:
        problems: list[str] = []
        for i, route in enumerate(self.routes):
            for field in ("origin_iata", "destination_iata"):
                code = getattr(route, field)
                if not is_known_iata(code):
                    problems.append(f"routes[{i}].{field}: unknown IATA airport code {code!r}")
        for i, (prev, nxt) in enumerate(zip(self.routes, self.routes[1:], strict=False), start=1):
            if prev.destination_iata != nxt.origin_iata:
                problems.append(
                    f"routes[{i}].origin_iata: {nxt.origin_iata} does not continue from "
                    f"routes[{i - 1}].destination_iata {prev.destination_iata}"
                )
            if nxt.gate_open_min < prev.arrival_min:
                problems.append(
                    f"routes[{i}].estimated_gate_open_time: {nxt.estimated_gate_open_time} is before "
                    f"routes[{i - 1}].estimated_arrival_time {prev.estimated_arrival_time}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def exec_type(self, route_index: int) -> ExecType:
        return exec_type_for(route_index, len(self.routes))


def exec_type_for(route_index: int, total_routes: int) -> ExecType:
    """FIRST for route 0 (also of a one-route sequence), LAST for the final one, INTERMEDIATE between."""
    if not 0 <= route_index < total_routes:
        raise ValueError(f"route_index {route_index} outside 0..{total_routes - 1}")
    if route_index == 0:
        return ExecType.FIRST
    return ExecType.LAST if route_index == total_routes - 1 else ExecType.INTERMEDIATE


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- messages (GUIDE §6) --------------------------------------------------------------------------

# base64 of S little-endian float64: 4 characters per 3 bytes
_B64 = r"^[A-Za-z0-9+/]*={0,2}$"
MAX_CARRIED_ARRAY_CHARS = 4 * -(-8 * MAX_SCENARIOS // 3)


# The largest route state carried in the messages instead of an S3 object (bytes, base64 as sent).
# Per route, an S3 state costs one PUT and one GET ($0.005 + $0.0004 per 1,000, eu-west-1 and us-east-1,
# 2026-11-01); a carried state rides in four SQS payloads (completion sent, received by the Scheduler's
# event source; next job sent, received by the Processor's), each 64 KB chunk billed as one FIFO request
# ($0.50 per million). Break-even: 4 x B / 64 KiB x $0.50e-6 = $5.4e-6, B = 2.7 x 64 KiB ~ 172 KiB, about
# S = 8,000 scenarios (21.3 bytes per scenario). Below it the message is cheaper (and saves two S3 round
# trips of the function's billed time); above it, S3. SQS's 1 MiB message limit is far above the line.
# tests/unit/test_carried_state.py recomputes the line from the price tables.
CARRY_STATE_MAX_BYTES = 172 * 1024


def carried_state_bytes(scenarios: int) -> int:
    """The size of a route state carried in a message: two base64 float64 arrays (plus ~100 B of keys)."""
    return 2 * 4 * -(-8 * scenarios // 3) + 100


def carries_state(scenarios: int, max_bytes: int) -> bool:
    """Does a route state of ``scenarios`` travel in the messages (else it is an S3 object)?"""
    return carried_state_bytes(scenarios) <= max_bytes


class CarriedState(_Strict):
    """A route's state travelling in the messages instead of an S3 object (route r's completion → the
    Scheduler → route r+1's job, or the AGGREGATION after the last route).

    GUIDE §4's hand-over from route r: the arrival delay of every scenario and the running sum of its
    departure delays, as little-endian float64 in base64 (exact: the next route computes the same
    numbers as from the S3 object), plus the route's scheduled arrival (the curfew needs it).
    """

    route_index: Count
    scheduled_arrival_min: float
    arrival_delay: str = Field(max_length=MAX_CARRIED_ARRAY_CHARS, pattern=_B64)
    total_departure_delay: str = Field(max_length=MAX_CARRIED_ARRAY_CHARS, pattern=_B64)


class IncomingJob(BaseModel):
    """Body of an incoming-queue message: one job for the Processor."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str = Field(min_length=1, max_length=200)
    run_id: RunId
    test_run_id: str = Field(min_length=1, max_length=256)
    correlation_id: str = Field(min_length=1, max_length=128)
    sequence_id: SequenceId | None = None
    exec_type: ExecType
    route_index: Count | None = None
    total_routes: Positive | None = None
    route: Route | None = None
    scenarios: Scenarios
    seed: Seed
    submitted_at: str = Field(default_factory=utc_now_iso)
    # SYNTHETIC jobs only: how long the job works and how much output it writes, and an object of the
    # results bucket it reads first (seed 001's "S3 key with job details")
    work_duration_ms: WorkMs | None = None
    data_size_kb: DataKb | None = None
    input_key: InputKey | None = None
    # the previous route's state (INTERMEDIATE, LAST, AGGREGATION), when it travels in the messages;
    # absent: it is read from S3 (scenario 3, or a state too large for a message: stages.carries_state)
    state: CarriedState | None = None

    @model_validator(mode="after")
    def _shape_matches_exec_type(self) -> Self:
        if self.exec_type.is_route:
            missing = [f for f in ("sequence_id", "route_index", "total_routes", "route") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"{self.exec_type} job lacks {', '.join(missing)}")
            assert self.route_index is not None and self.total_routes is not None  # checked just above
            expected = exec_type_for(self.route_index, self.total_routes)
            if expected != self.exec_type:
                raise ValueError(
                    f"exec_type {self.exec_type} does not match route_index {self.route_index} "
                    f"of {self.total_routes} routes (expected {expected})"
                )
        elif self.exec_type is ExecType.AGGREGATION:
            missing = [f for f in ("sequence_id", "total_routes") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"AGGREGATION job lacks {', '.join(missing)}")
        elif self.exec_type is ExecType.SYNTHETIC:
            missing = [f for f in ("work_duration_ms", "data_size_kb") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"SYNTHETIC job lacks {', '.join(missing)}")
        return self


PRODUCER_RUN_ID = "producer"  # the run a producer's seed-001 messages are recorded under
PRODUCER_DEFAULT_WORK_MS = 100  # seed 001's example message
PRODUCER_DEFAULT_DATA_KB = 10


class ProducerJob(_Strict):
    """Seed 001's incoming message, as a producer sends it: ``{job_id, work_duration_ms, data_size_kb,
    input_key}``, only ``job_id`` required. It runs as a SYNTHETIC job (``as_job``): run ``producer``, the
    message's FIFO group as correlation id, the Processor's TEST_RUN_ID, the perf runner's defaults
    (100 ms, 10 KiB, seed 001's example) for missing figures. Unknown fields make it malformed (a
    jobgraph job with an error must not pass as a producer's message)."""

    job_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    work_duration_ms: int = Field(default=PRODUCER_DEFAULT_WORK_MS, ge=0, le=MAX_SYNTHETIC_WORK_MS)
    data_size_kb: int = Field(default=PRODUCER_DEFAULT_DATA_KB, ge=0, le=MAX_SYNTHETIC_DATA_KB)
    input_key: InputKey | None = None

    def as_job(self, correlation_id: str, test_run_id: str) -> IncomingJob:
        return IncomingJob(
            job_id=self.job_id,
            run_id=PRODUCER_RUN_ID,
            test_run_id=test_run_id,
            correlation_id=correlation_id,
            exec_type=ExecType.SYNTHETIC,
            scenarios=1,
            seed=0,
            work_duration_ms=self.work_duration_ms,
            data_size_kb=self.data_size_kb,
            input_key=self.input_key,
        )


class CompletedJob(BaseModel):
    """Body of an outgoing-queue message: the Processor's report on one job."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: str
    status: JobStatus
    output_key: str | None = None
    processing_time_ms: float = Field(ge=0)
    completed_at: str = Field(default_factory=utc_now_iso)
    test_run_id: str
    run_id: RunId
    correlation_id: str
    sequence_id: SequenceId | None = None
    exec_type: ExecType
    route_index: Count | None = None
    total_routes: Count | None = None
    scenarios: Scenarios | None = None
    seed: Seed | None = None
    error_message: str | None = None
    # a route's state, handed by the Scheduler to the job that needs it next (IncomingJob.state)
    state: CarriedState | None = None
    # SYNTHETIC jobs with an input_key: the size of the object read
    input_size_bytes: Count | None = None


def message_label(body: str) -> str | None:
    """The job id of a well-formed job (a producer's too) or completion ("<job_id> (<status>)"), else None."""
    from pydantic import ValidationError

    for model in (IncomingJob, ProducerJob, CompletedJob):
        try:
            message = model.model_validate_json(body)
        except ValidationError:
            continue
        return f"{message.job_id} ({message.status.value})" if isinstance(message, CompletedJob) else message.job_id
    return None
