"""StartRun: validate a run request, store its sequences, write the run record, seed every FIRST job."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobgraph.adapters.dynamodb import JobsTable, RunExistsError
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.graph import RunSpec, route_job, total_jobs
from jobgraph.core.loader import check_unique, format_validation_error, parse_sequence
from jobgraph.core.models import MAX_SCENARIOS, RunId, RunManifest, Sequence
from jobgraph.core.results import ResultStore
from jobgraph.services.observability import logger
from jobgraph.services.settings import StartRunSettings, load_settings


class StartRunRequest(BaseModel):
    """Payload of `sam remote invoke StartRunFunction --event-file events/start-run.json`."""

    model_config = ConfigDict(extra="forbid")

    run_id: RunId
    sequences: list[dict] = Field(min_length=1)
    scenarios: int | None = Field(default=None, ge=1, le=MAX_SCENARIOS)
    seed: int = Field(default=42, ge=0, lt=2**63)
    test_run_id: str | None = None


@dataclass(frozen=True)
class StartRunDeps:
    results: ResultStore
    table: JobsTable
    incoming: FifoQueue
    settings: StartRunSettings

    @classmethod
    def from_settings(cls, settings: StartRunSettings) -> StartRunDeps:
        return cls(
            results=ResultStore(S3BlobStore(settings.bucket_name, settings.results_prefix)),
            table=JobsTable(settings.table_name, settings.record_ttl_days),
            incoming=FifoQueue(settings.incoming_queue_url),
            settings=settings,
        )


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
    return request, parse_sequences(request.sequences)


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    test_run_id: str
    sequences: int
    jobs_total: int
    first_jobs_sent: int
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
    """Start a run of validated sequences: run record, stored sequences + manifest, every FIRST job sent.

    Shared by the StartRun Lambda and the status API (POST /runs). The run record is the uniqueness gate:
    a repeated run_id raises RunExistsError before anything is written or sent, so a run never half-starts
    twice.
    """
    spec = RunSpec(
        run_id=run_id,
        test_run_id=test_run_id or deps.settings.test_run_id,
        scenarios=scenarios or deps.settings.default_scenarios,
        seed=seed,
    )
    jobs = total_jobs(sequences)
    deps.table.create_run(spec.run_id, spec.test_run_id, len(sequences), jobs, spec.scenarios, spec.seed)
    for sequence in sequences:
        deps.results.put_sequence(spec.run_id, sequence)
    deps.results.put_manifest(
        RunManifest(
            run_id=spec.run_id,
            test_run_id=spec.test_run_id,
            scenarios=spec.scenarios,
            seed=spec.seed,
            sequence_ids=[s.sequence_id for s in sequences],
            total_route_jobs=sum(len(s.routes) for s in sequences),
            implementation="lambda",
        )
    )
    sent = deps.incoming.send_jobs(route_job(spec, s, 0) for s in sequences)
    logger.info("run started", extra={"run_id": spec.run_id, "sequences": len(sequences), "jobs_total": jobs})
    return StartedRun(spec.run_id, spec.test_run_id, len(sequences), jobs, sent, spec.scenarios, spec.seed)


def start_run(event: dict, deps: StartRunDeps) -> dict:
    """Returns {"status": "RUNNING", ...} or {"status": "REJECTED", "errors": [...]}; never half-starts."""
    try:
        request, sequences = parse_request(event)
    except InvalidSequenceError as exc:
        logger.warning("run rejected", extra={"errors": exc.problems[:20]})
        return rejected(exc.problems)
    try:
        started = launch_run(
            request.run_id,
            sequences,
            deps,
            scenarios=request.scenarios,
            seed=request.seed,
            test_run_id=request.test_run_id,
        )
    except RunExistsError as exc:
        return rejected([str(exc)])
    return {"status": "RUNNING", **asdict(started)}


@cache
def start_run_deps() -> StartRunDeps:
    return StartRunDeps.from_settings(load_settings(StartRunSettings))
