"""A run as a whole: its settings (RunSpec), what it was asked to do (RunManifest), its start (RunStarted).

``RunSpec`` is the one model of a run's settings from the command line or the API to the last job: it is
made once (``RunSpec(...)`` from the caller's arguments, ``StartRunRequest.spec`` where a stack fills in
its defaults) and only serialised at the boundaries — flat in the StartRun event and in every job and
completion message (GUIDE §6), read back with ``RunSpec.of(message)``.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass

from jobgraph.core.bounds import Positive, Scenarios, Seed, SequenceId
from jobgraph.core.models import CompletedJob, IncomingJob, RunId, utc_now_iso

TestRunId = Annotated[str, Field(min_length=1, max_length=256)]  # as the messages bound it


class RunFields(TypedDict):
    """A RunSpec flat, as messages and the StartRun event carry it."""

    run_id: str
    test_run_id: str
    scenarios: int
    seed: int


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class RunSpec:
    """What names a run and fixes its numbers: run id, cost tag (test run), scenarios per sequence, seed."""

    run_id: RunId
    test_run_id: TestRunId
    scenarios: Scenarios
    seed: Seed

    @classmethod
    def synthetic(cls, run_id: str, test_run_id: str) -> RunSpec:
        """The spec of a perf-runner load or an API task: SYNTHETIC jobs have no scenarios and no randomness."""
        return cls(run_id, test_run_id, 1, 0)

    @classmethod
    def of(cls, message: IncomingJob | CompletedJob) -> RunSpec:
        """The spec a job or completion message carries (flat, GUIDE §6)."""
        if message.scenarios is None or message.seed is None:
            raise ValueError(f"{message.job_id}: message lacks scenarios/seed")
        return cls(message.run_id, message.test_run_id, message.scenarios, message.seed)

    def fields(self) -> RunFields:
        """The spec as the flat fields of a message or of the StartRun event."""
        return RunFields(run_id=self.run_id, test_run_id=self.test_run_id, scenarios=self.scenarios, seed=self.seed)


# which implementation wrote a run's results (RunManifest.implementation)
Implementation = Literal["solver", "lambda", "local", "stepfunctions"]


class RunManifest(BaseModel):
    """What a run is: stored once when it starts, read by MERGE and by result exports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: RunId
    test_run_id: str = "default"
    scenarios: Scenarios
    seed: Seed
    sequence_ids: list[SequenceId] = Field(min_length=1)
    total_route_jobs: Positive
    created_at: str = Field(default_factory=utc_now_iso)
    implementation: Implementation = "solver"


class RunStarted(BaseModel):
    """A run that started: what StartRun and PrepareRun answer, what the status API's POST /runs returns
    (api/schemas.RunStartedBody adds its links) and what the run drivers check."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: Literal["RUNNING"] = "RUNNING"
    run_id: str
    test_run_id: str
    sequences: int
    jobs_total: int
    first_jobs_sent: int | None = Field(description="null in scenario 3: the state machine starts them")
    scenarios: int
    seed: int

    @classmethod
    def of(cls, spec: RunSpec, sequences: int, jobs_total: int, first_jobs_sent: int | None) -> RunStarted:
        return cls(sequences=sequences, jobs_total=jobs_total, first_jobs_sent=first_jobs_sent, **spec.fields())
