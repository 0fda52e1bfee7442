"""Scenario 3: the tasks of the Step Functions state machine (statemachine/jobgraph.asl.json).

PrepareRun registers a run exactly as StartRun does (start_run.register_run: validation, run record,
sequences, manifest) and writes the run's plan — each sequence's route jobs and AGGREGATION, built by
core/graph as the Scheduler would build them — for the Distributed Map's ItemReader.

StepTask runs one job through the Processor's code (idempotency.run_claimed: same stage functions, same
S3 keys, same claim and completion on the job record), exactly once per job id: when Step Functions
retries a task whose job had completed (the invocation failed afterwards), the stored completion is
returned, so results stay identical and the job is recorded once. The claimant is the state machine's
task for the job, so a retry after a crash claims again at once. Route state stays in S3 here: the
Map's iterations hand nothing to each other. The MERGE task also completes the run record, as the
Scheduler does in scenario 1 — also when it answers from the record (the first try may have died between
completing the job and the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jobgraph.adapters.events import RunEvents
from jobgraph.core.errors import ObjectNotFoundError
from jobgraph.core.graph import aggregation_job, merge_job, route_job
from jobgraph.core.models import CompletedJob, ExecType, IncomingJob, RunId, Sequence
from jobgraph.core.ports import JobsTablePort, RunStore
from jobgraph.core.results import ResultStore, request_key
from jobgraph.core.run import Implementation, RunSpec
from jobgraph.services.data import data_layer
from jobgraph.services.idempotency import DEFAULT_LEASE_MS, lease_of, run_claimed
from jobgraph.services.observability import logger
from jobgraph.services.run_events import announce_run_end, run_end_events
from jobgraph.services.settings import PrepareRunSettings, StepTaskSettings, load_settings
from jobgraph.services.start_run import RegisteredRun, register_run, rejected

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

IMPLEMENTATION: Implementation = "stepfunctions"
# A job's claimant in scenario 3: the state machine's task for it (one try at a time; a retry re-claims)
CLAIMANT_PREFIX = "stepfunctions:"


# ------------------------------------------------------------------------------------- PrepareRun
@dataclass(frozen=True)
class PrepareRunDeps:
    results: ResultStore
    table: RunStore
    settings: PrepareRunSettings

    @classmethod
    def from_settings(cls, settings: PrepareRunSettings) -> PrepareRunDeps:
        data = data_layer(settings)
        return cls(results=data.results, table=data.table, settings=settings)


def plan_item(spec: RunSpec, sequence: Sequence) -> dict[str, Any]:
    """One Map item: a sequence's route jobs in order, then its AGGREGATION (the same jobs as scenario 1)."""
    return {
        "sequence_id": sequence.sequence_id,
        "routes": [route_job(spec, sequence, r).model_dump(mode="json") for r in range(len(sequence.routes))],
        "aggregation": aggregation_job(spec, sequence.sequence_id, len(sequence.routes)).model_dump(mode="json"),
    }


def load_request(event: dict[str, Any], results: ResultStore) -> dict[str, Any]:
    """The run request: the execution input itself, or the one it points to in the results bucket.

    ``{"run_id": R, "request_key": "_jobgraph/requests/R.json"}`` reads a request stored by the run driver
    (an execution input is limited to 256 KB); the key must be the run's own request key.
    """
    if "request_key" not in event:
        return event
    run_id = event.get("run_id")
    if (
        not isinstance(run_id, str)
        or set(event) != {"run_id", "request_key"}
        or event["request_key"] != request_key(run_id)
    ):
        raise ValueError(f"a stored request is given as {{'run_id': R, 'request_key': '{request_key('R')}'}}")
    try:
        stored = results.get_request(run_id)
    except ObjectNotFoundError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(stored, dict) or stored.get("run_id") != run_id:
        raise ValueError(f"{request_key(run_id)} is not a request of run {run_id}")
    return stored


def prepare_run(event: dict[str, Any], deps: PrepareRunDeps) -> dict[str, Any]:
    """{"status": "RUNNING", ..., "bucket", "plan_key", "merge"} or {"status": "REJECTED", "errors", "cause"}."""
    registered: RegisteredRun | dict[str, Any]
    try:
        request = load_request(event, deps.results)
    except ValueError as exc:
        registered = rejected([str(exc)])
    else:
        registered = register_run(request, deps.results, deps.table, deps.settings, IMPLEMENTATION)
    if isinstance(registered, dict):
        # the state machine's RunRejected Fail state shows "cause" (CausePath)
        return {**registered, "cause": "\n".join(registered["errors"])[:30000]}
    # the state machine's Distributed Map reads the plan from S3: its key there is under the bucket's prefix
    prefix = getattr(deps.results.blobs, "prefix", None)
    if not isinstance(prefix, str):
        raise TypeError(f"PrepareRun needs an S3 bucket, not {deps.results.blobs.describe()}")
    spec = registered.spec
    key = deps.results.put_plan(spec.run_id, [plan_item(spec, s) for s in registered.sequences])
    return {
        **registered.started(first_jobs_sent=None).model_dump(),
        "bucket": deps.settings.bucket_name,
        "plan_key": prefix + key,
        "merge": merge_job(spec).model_dump(mode="json"),
    }


@cache
def prepare_run_deps() -> PrepareRunDeps:
    return PrepareRunDeps.from_settings(load_settings(PrepareRunSettings))


# --------------------------------------------------------------------------------------- StepTask
class StepTaskEvent(BaseModel):
    """The task's payload: ``{"job.$": <a job of the plan>, "retry_count.$": "$$.State.RetryCount"}``, or
    ``{"announce_run_end": <run id>}`` from the state machine's AnnounceRunCompleted/AnnounceRunFailed states
    (the run's end on the stack's bus for the downstream triggers; services/run_events.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: IncomingJob | None = None
    retry_count: int = Field(default=0, ge=0)
    announce_run_end: RunId | None = None

    @model_validator(mode="after")
    def _one_task(self) -> StepTaskEvent:
        if (self.job is None) == (self.announce_run_end is None):
            raise ValueError("give exactly one of 'job' and 'announce_run_end'")
        return self


@dataclass(frozen=True)
class StepTaskDeps:
    results: ResultStore
    table: JobsTablePort  # jobs (claims, outcomes) and runs (the MERGE completes its run; the run's end)
    # the run's end goes to this bus for the downstream triggers (None: no bus in this stack)
    events: RunEvents | None = None
    event_context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: StepTaskSettings) -> StepTaskDeps:
        events, event_context = run_end_events(settings)
        data = data_layer(settings)
        return cls(
            results=data.results,
            table=data.table,
            events=events,
            event_context=event_context,
        )


def run_step_job(job: IncomingJob, deps: StepTaskDeps, attempt: int = 1, lease_ms: int | None = None) -> CompletedJob:
    """Claim, run and record one job; the MERGE also completes the run (once: complete_run is conditional)."""
    completed = run_claimed(
        job,
        deps.results,
        deps.table,
        claimant=f"{CLAIMANT_PREFIX}{job.job_id}",
        lease_ms=DEFAULT_LEASE_MS if lease_ms is None else lease_ms,
        attempt=attempt,
    )
    if job.exec_type is ExecType.MERGE and deps.table.complete_run(job.run_id, completed.output_key or ""):
        logger.info("run completed", extra={"run_id": job.run_id})
    return completed


@dataclass(frozen=True)
class StepTaskRuntime:
    settings: StepTaskSettings
    deps: StepTaskDeps

    def handle(self, event: StepTaskEvent, context: LambdaContext | None = None) -> dict[str, Any]:
        if event.announce_run_end is not None:
            return {"run_id": event.announce_run_end, "event_id": self.announce(event.announce_run_end)}
        assert event.job is not None  # StepTaskEvent._one_task: a job when there is no run end to announce
        completed = run_step_job(event.job, self.deps, attempt=event.retry_count + 1, lease_ms=lease_of(context))
        return completed.model_dump(mode="json", exclude_none=True)

    def announce(self, run_id: str) -> str | None:
        """Publish the ended run's end once (None: announced before, or no bus in this stack)."""
        if self.deps.events is None:
            return None
        event_id = announce_run_end(self.deps.table, self.deps.events, run_id, **self.deps.event_context)
        if event_id:
            logger.info("run end announced", extra={"run_id": run_id, "event_id": event_id})
        return event_id


@cache
def step_task_runtime() -> StepTaskRuntime:
    settings = load_settings(StepTaskSettings)
    return StepTaskRuntime(settings, StepTaskDeps.from_settings(settings))
