"""StartRun: validate a run request, store its sequences, write the run record, seed every FIRST job."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.bounds import Scenarios, Seed
from jobgraph.core.errors import InvalidSequenceError, RunExistsError
from jobgraph.core.graph import route_job, run_manifest, total_jobs
from jobgraph.core.ids import RESERVED_RUN_ID, is_task_id
from jobgraph.core.loader import check_unique, format_validation_error, parse_sequence
from jobgraph.core.models import RunId, Sequence
from jobgraph.core.ports import RunStore
from jobgraph.core.results import ResultStore
from jobgraph.core.run import Implementation, RunSpec, RunStarted
from jobgraph.services.data import data_layer
from jobgraph.services.observability import logger
from jobgraph.services.settings import RunSettings, StartRunSettings, load_settings


class StartRunRequest(BaseModel):
    """Payload of `sam remote invoke StartRunFunction --event-file events/start-run.json`."""

    model_config = ConfigDict(extra="forbid")

    run_id: RunId
    sequences: list[dict[str, Any]] = Field(min_length=1)
    scenarios: Scenarios | None = None
    seed: Seed = 42
    test_run_id: str | None = Field(default=None, max_length=256)

    def spec(self, settings: RunSettings) -> RunSpec:
        """The run's settings: the request's, the stack's defaults where it leaves them out."""
        return run_spec(settings, self.run_id, self.scenarios, self.seed, self.test_run_id)


@dataclass(frozen=True)
class StartRunDeps:
    results: ResultStore
    table: RunStore
    incoming: FifoQueue
    settings: RunSettings  # StartRunSettings, or the status API's ApiSettings

    @classmethod
    def from_settings(cls, settings: StartRunSettings) -> StartRunDeps:
        data = data_layer(settings)
        return cls(
            results=data.results,
            table=data.table,
            incoming=data.queue("incoming"),
            settings=settings,
        )


def run_request(sequences: list[Sequence], spec: RunSpec) -> dict[str, object]:
    """A StartRunRequest document (events/start-run.json has the same shape): StartRun's event, PrepareRun's
    stored request: the spec's fields and the sequences."""
    return {**spec.fields(), "sequences": [sequence.model_dump(mode="json") for sequence in sequences]}


def rejected(errors: list[str]) -> dict[str, Any]:
    return {"status": "REJECTED", "errors": errors}


def unique_ids(sequences: list[Sequence]) -> list[Sequence]:
    """Sequences validated one by one already (the status API's body model): InvalidSequenceError if two share
    an id, as ``parse_sequences`` reports it."""
    problems = check_unique([(f"sequences[{index}]", sequence) for index, sequence in enumerate(sequences)])
    if problems:
        raise InvalidSequenceError("request", problems)
    return sequences


def parse_sequences(documents: list[dict[str, Any]]) -> list[Sequence]:
    """Every document validated (GUIDE §2) and sequence ids unique; InvalidSequenceError lists every problem."""
    parsed: list[tuple[str, Sequence]] = []
    problems: list[str] = []
    for index, document in enumerate(documents):
        try:
            parsed.append((f"sequences[{index}]", parse_sequence(document, f"sequences[{index}]")))
        except InvalidSequenceError as exc:
            problems.extend(f"{exc.source}: {p}" for p in exc.problems)
    problems.extend(check_unique(parsed))
    if problems:
        raise InvalidSequenceError("request", problems)
    return [s for _, s in parsed]


def parse_request(event: dict[str, Any]) -> tuple[StartRunRequest, list[Sequence]]:
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

    def started(self, first_jobs_sent: int | None) -> RunStarted:
        logger.info(
            "run started",
            extra={"run_id": self.spec.run_id, "sequences": len(self.sequences), "jobs_total": self.jobs_total},
        )
        return RunStarted.of(self.spec, len(self.sequences), self.jobs_total, first_jobs_sent)


def run_spec(settings: RunSettings, run_id: str, scenarios: int | None, seed: int, test_run_id: str | None) -> RunSpec:
    """A run's spec with the stack's defaults (TEST_RUN_ID, DEFAULT_SCENARIOS) where the caller gives none."""
    return RunSpec(
        run_id=run_id,
        test_run_id=test_run_id or settings.test_run_id,
        scenarios=scenarios or settings.default_scenarios,
        seed=seed,
    )


def register(
    spec: RunSpec, sequences: list[Sequence], results: ResultStore, table: RunStore, implementation: Implementation
) -> RegisteredRun:
    """Run record, stored sequences and manifest. The run record is the uniqueness gate: a repeated run_id
    raises RunExistsError before anything is written or sent, so a run never half-starts twice."""
    jobs = total_jobs(sequences)
    table.create_run(spec.run_id, spec.test_run_id, len(sequences), jobs, spec.scenarios, spec.seed)
    results.put_sequences(spec.run_id, sequences)
    results.put_manifest(run_manifest(spec, sequences, implementation))
    return RegisteredRun(spec, sequences, jobs)


def register_run(
    event: dict[str, Any], results: ResultStore, table: RunStore, settings: RunSettings, implementation: Implementation
) -> RegisteredRun | dict[str, Any]:
    """Validate a run request and register it (``register``).

    Shared by StartRun (scenario 1) and PrepareRun (scenario 3). Returns the registered run, or
    ``rejected(errors)`` for an invalid request or a run id used before; nothing is written then.
    """
    try:
        request, sequences = parse_request(event)
    except InvalidSequenceError as exc:
        logger.warning("run rejected", extra={"errors": exc.problems[:20]})
        return rejected(exc.problems)
    try:
        return register(request.spec(settings), sequences, results, table, implementation)
    except RunExistsError as exc:
        return rejected([str(exc)])


def launch_run(spec: RunSpec, sequences: list[Sequence], deps: StartRunDeps) -> RunStarted:
    """Start a run of validated sequences: registered (``register``: RunExistsError for a used run id), then
    every FIRST job sent. The status API's POST /runs; the StartRun Lambda goes through ``start_run``."""
    return send_first_jobs(register(spec, sequences, deps.results, deps.table, implementation="lambda"), deps)


def send_first_jobs(registered: RegisteredRun, deps: StartRunDeps) -> RunStarted:
    """Every sequence's FIRST job onto the incoming queue: the run has started."""
    return registered.started(deps.incoming.send_jobs(route_job(registered.spec, s, 0) for s in registered.sequences))


def start_run(event: dict[str, Any], deps: StartRunDeps) -> dict[str, object]:
    """RunStarted's fields or {"status": "REJECTED", "errors": [...]}; never half-starts."""
    registered = register_run(event, deps.results, deps.table, deps.settings, implementation="lambda")
    if isinstance(registered, dict):
        return registered
    return send_first_jobs(registered, deps).model_dump()


@cache
def start_run_deps() -> StartRunDeps:
    return StartRunDeps.from_settings(load_settings(StartRunSettings))
