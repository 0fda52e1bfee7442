"""StartRun: validate a run request, store its sequences, write the run record, seed every FIRST job."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobgraph.adapters.dynamodb import JobsTable, RunExistsError
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.graph import RunSpec, route_job, run_manifest, total_jobs
from jobgraph.core.loader import check_unique, format_validation_error, parse_sequence
from jobgraph.core.models import TASK_ID_PREFIX, RunId, Scenarios, Seed, Sequence, is_task_id
from jobgraph.core.results import ResultStore
from jobgraph.services.observability import logger
from jobgraph.services.settings import RunSettings, StartRunSettings, load_settings

RESERVED_RUN_ID = f"run_id: ids starting with {TASK_ID_PREFIX!r} are the status API's task ids, not run ids"


class StartRunRequest(BaseModel):
    """Payload of `sam remote invoke StartRunFunction --event-file events/start-run.json`."""

    model_config = ConfigDict(extra="forbid")

    run_id: RunId
    sequences: list[dict] = Field(min_length=1)
    scenarios: Scenarios | None = None
    seed: Seed = 42
    test_run_id: str | None = None


@dataclass(frozen=True)
class StartRunDeps:
    results: ResultStore
    table: JobsTable
    incoming: FifoQueue
    settings: RunSettings  # StartRunSettings, or the status API's ApiSettings

    @classmethod
    def from_settings(cls, settings: StartRunSettings) -> StartRunDeps:
        return cls(
            results=ResultStore(S3BlobStore(settings.bucket_name, settings.results_prefix)),
            table=JobsTable(settings.table_name, settings.record_ttl_days),
            incoming=FifoQueue(settings.incoming_queue_url),
            settings=settings,
        )


def run_request(sequences: list[Sequence], spec: RunSpec) -> dict:
    """A StartRunRequest document (events/start-run.json has the same shape): StartRun's event, PrepareRun's
    stored request."""
    return {
        "run_id": spec.run_id,
        "test_run_id": spec.test_run_id,
        "scenarios": spec.scenarios,
        "seed": spec.seed,
        "sequences": [sequence.model_dump(mode="json") for sequence in sequences],
    }


def rejected(errors: list[str]) -> dict:
    return {"status": "REJECTED", "errors": errors}


def parse_sequences(documents: list[dict]) -> list[Sequence]:
    """Every document validated (GUIDE §2) and sequence ids unique; InvalidSequenceError lists every problem."""
    parsed, problems = [], []
    for index, document in enumerate(documents):
        try:
            parsed.append((f"sequences[{index}]", parse_sequence(document, f"sequences[{index}]")))
        except InvalidSequenceError as exc:
            problems.extend(f"{exc.source}: {p}" for p in exc.problems)
    problems.extend(check_unique(parsed))
    if problems:
        raise InvalidSequenceError("request", problems)
    return [s for _, s in parsed]


def parse_request(event: dict) -> tuple[StartRunRequest, list[Sequence]]:
    try:
        request = StartRunRequest.model_validate(event)
    except ValidationError as exc:
        raise InvalidSequenceError("request", format_validation_error(exc)) from None
    if is_task_id(request.run_id):
        raise InvalidSequenceError("request", [RESERVED_RUN_ID])
    return request, parse_sequences(request.sequences)


@dataclass(frozen=True)
class RegisteredRun:
    spec: RunSpec
    sequences: list[Sequence]
    jobs_total: int


def run_spec(settings: RunSettings, run_id: str, scenarios: int | None, seed: int, test_run_id: str | None) -> RunSpec:
    return RunSpec(
        run_id=run_id,
        test_run_id=test_run_id or settings.test_run_id,
        scenarios=scenarios or settings.default_scenarios,
        seed=seed,
    )


def register(
    spec: RunSpec, sequences: list[Sequence], results: ResultStore, table: JobsTable, implementation: str
) -> RegisteredRun:
    """Run record, stored sequences and manifest. The run record is the uniqueness gate: a repeated run_id
    raises RunExistsError before anything is written or sent, so a run never half-starts twice."""
    jobs = total_jobs(sequences)
    table.create_run(spec.run_id, spec.test_run_id, len(sequences), jobs, spec.scenarios, spec.seed)
    for sequence in sequences:
        results.put_sequence(spec.run_id, sequence)
    results.put_manifest(run_manifest(spec, sequences, implementation))
    return RegisteredRun(spec, sequences, jobs)


def register_run(
    event: dict, results: ResultStore, table: JobsTable, settings: RunSettings, implementation: str
) -> RegisteredRun | dict:
    """Validate a run request and register it (``register``).

    Shared by StartRun (scenario 1) and PrepareRun (scenario 3). Returns the registered run, or
    ``rejected(errors)`` for an invalid request or a run id used before; nothing is written then.
    """
    try:
        request, sequences = parse_request(event)
    except InvalidSequenceError as exc:
        logger.warning("run rejected", extra={"errors": exc.problems[:20]})
        return rejected(exc.problems)
    spec = run_spec(settings, request.run_id, request.scenarios, request.seed, request.test_run_id)
    try:
        return register(spec, sequences, results, table, implementation)
    except RunExistsError as exc:
        return rejected([str(exc)])


def run_started(registered: RegisteredRun, **extra) -> dict:
    spec = registered.spec
    logger.info(
        "run started",
        extra={"run_id": spec.run_id, "sequences": len(registered.sequences), "jobs_total": registered.jobs_total},
    )
    return {
        "status": "RUNNING",
        "run_id": spec.run_id,
        "test_run_id": spec.test_run_id,
        "sequences": len(registered.sequences),
        "jobs_total": registered.jobs_total,
        **extra,
        "scenarios": spec.scenarios,
        "seed": spec.seed,
    }


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    test_run_id: str
    sequences: int
    jobs_total: int
    first_jobs_sent: int | None  # None: a state machine execution starts them (scenario 3)
    scenarios: int
    seed: int


def launch_run(
    run_id: str,
    sequences: list[Sequence],
    deps: StartRunDeps,
    *,
    scenarios: int | None = None,
    seed: int = 42,
    test_run_id: str | None = None,
) -> StartedRun:
    """Start a run of validated sequences: registered (``register``: RunExistsError for a used run id), then
    every FIRST job sent. The status API's POST /runs; the StartRun Lambda goes through ``start_run``."""
    spec = run_spec(deps.settings, run_id, scenarios, seed, test_run_id)
    register(spec, sequences, deps.results, deps.table, implementation="lambda")
    sent = deps.incoming.send_jobs(route_job(spec, s, 0) for s in sequences)
    logger.info("run started", extra={"run_id": spec.run_id, "sequences": len(sequences)})
    return StartedRun(
        spec.run_id, spec.test_run_id, len(sequences), total_jobs(sequences), sent, spec.scenarios, spec.seed
    )


def start_run(event: dict, deps: StartRunDeps) -> dict:
    """Returns {"status": "RUNNING", ...} or {"status": "REJECTED", "errors": [...]}; never half-starts."""
    registered = register_run(event, deps.results, deps.table, deps.settings, implementation="lambda")
    if isinstance(registered, dict):
        return registered
    sent = deps.incoming.send_jobs(route_job(registered.spec, s, 0) for s in registered.sequences)
    return run_started(registered, first_jobs_sent=sent)


@cache
def start_run_deps() -> StartRunDeps:
    return StartRunDeps.from_settings(load_settings(StartRunSettings))
