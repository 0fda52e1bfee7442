"""Ports: what the core needs from storage, independent of where the bytes live."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from jobgraph.core.models import CompletedJob, IncomingJob
from jobgraph.core.progress import Progress


@runtime_checkable
class BlobStore(Protocol):
    """Keyed bytes (an S3 bucket prefix or a folder). Keys use '/' separators and never start with '/'."""

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store ``data`` under ``key``; readers never see a partial object."""

    def get(self, key: str) -> bytes:
        """Return the bytes under ``key``; raise ObjectNotFoundError when absent."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix``, sorted."""

    def describe(self) -> str:
        """Human-readable location (for messages)."""


class RunStaging(Protocol):
    """Where a whole run is written before it counts: a store that becomes ``out_dir/run_id`` only when the
    block ends well (adapters/local_disk.staged_run), so a failed run never looks complete."""

    def __call__(self, out_dir: Path, run_id: str, *, overwrite: bool) -> AbstractContextManager[BlobStore]: ...


# --- the jobs table, one port per kind of record ---------------------------------------------------------
# Records are plain dicts (attribute -> str | int | Decimal | set ...), as the table stores them. Each port has
# a DynamoDB adapter (adapters/dynamodb/) and an in-memory fake (adapters/memory/); tests/contract/ runs one
# suite per port against both, so the fake is held to the adapter's behaviour.
Record = dict[str, Any]
PageKey = dict[str, Any]


@dataclass(frozen=True)
class JobClaim:
    """What claim_job did: ``granted`` (the job's record now holds ``status``: what record_job expects to
    find), or not (``record``: the record that refused it — COMPLETED, or another claimant's lease)."""

    granted: bool
    status: str | None
    record: Record = field(default_factory=dict)


@dataclass(frozen=True)
class JobOutcome:
    """One job's outcome for JobStore.record_jobs: what record_job takes, as one value."""

    completed: CompletedJob
    attempt: int = 1
    expected_status: str | None = None


@dataclass(frozen=True)
class TriggerClaim:
    """What claim_trigger found: fresh | takeover (the caller holds the claim) | fired | in_doubt | busy."""

    outcome: str
    item: Record


class RunStore(Protocol):
    """Runs (pk RUN#<id>, sk RUN) and their counters: the countdown to MERGE, the run's end."""

    def create_run(
        self, run_id: str, test_run_id: str, sequences: int, jobs_total: int, scenarios: int, seed: int
    ) -> None:
        """RUNNING; RunExistsError if the run id was used before."""

    def get_run(self, run_id: str) -> Record:
        """The run's record; RunNotFoundError for an unknown run."""

    def count_down_sequence(self, run_id: str, sequence_id: int) -> bool:
        """Count one finished sequence once; False for a duplicate; RunNotFoundError for an unknown run."""

    def claim_merge(self, run_id: str, claimant_job_id: str) -> bool:
        """True for exactly one claimant once every sequence is counted (and again for that claimant)."""

    def complete_run(self, run_id: str, merged_key: str) -> bool:
        """RUNNING -> COMPLETED; False if the run ended before."""

    def fail_run(self, run_id: str, error: str) -> bool:
        """RUNNING -> FAILED; False if the run ended before (or ``run_id`` is a task's)."""

    def mark_run_announced(self, run_id: str, event_id: str) -> bool:
        """Remember the run's end was published, once (False if it was before)."""

    def run_page(
        self,
        index: str,
        value: str,
        limit: int,
        start_key: PageKey | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[list[Record], PageKey | None]:
        """Runs newest first by "status" or "test_run", created between ``since`` and ``until``."""

    def run_with_progress(self, run_id: str) -> tuple[Record, Progress]:
        """The run and its job counters; RunNotFoundError for an unknown run."""

    def count_jobs(self, run_id: str, status: str = "COMPLETED") -> int:
        """Jobs of a run whose latest status is ``status`` (COMPLETED or FAILED), from its counters."""


class JobStore(Protocol):
    """Job records (pk RUN#<run>, sk JOB#<job>; a task's job is its task record): claims and outcomes."""

    def claim_job(
        self, job: IncomingJob, claimant: str, lease_ms: int, attempt: int = 1, now_ms: int | None = None
    ) -> JobClaim: ...

    def record_job(
        self, completed: CompletedJob, attempt: int = 1, expected_status: str | None = None
    ) -> Record | None:
        """Write the outcome with its run's counters (one transaction); None, or the COMPLETED record
        that refused it."""

    def record_jobs(self, outcomes: list[JobOutcome]) -> list[Record | None]:
        """record_job for each outcome, answers in their order; their counters may be written together
        (a batch's jobs: one counters item per run, not one per job)."""

    def get_job(self, run_id: str, job_id: str) -> Record | None: ...

    def job_attempts(self, run_id: str, job_id: str) -> int: ...

    def jobs_of_run(self, run_id: str) -> list[Record]: ...

    def job_page(
        self, run_id: str, status: str | None, limit: int, start_key: PageKey | None = None
    ) -> tuple[list[Record], PageKey | None]: ...

    def record_poison(self, message_id: str, error: str, body: str) -> None: ...


class TaskStore(Protocol):
    """API tasks (pk TASK#<id>), the client keys they were accepted under, their hourly counters."""

    def claim_task(self, client_key: str, task_id: str, fingerprint: str) -> Record | None:
        """None when ``client_key`` is new, else the claim made before."""

    def record_task_queued(
        self, task_id: str, client_key: str, correlation_id: str, details: dict[str, int]
    ) -> None: ...

    def get_task(self, task_id: str) -> Record:
        """The task's record; TaskNotFoundError for an unknown task."""

    def task_progress(self, hours: list[str]) -> Progress: ...


class TriggerStore(Protocol):
    """Downstream triggers' claims (pk TRIGGER#<run>): fresh, busy, taken over, finished by their owner only."""

    def claim_trigger(
        self, run_id: str, sk: str, owner: str, now: float, stale_s: float, **about: str
    ) -> TriggerClaim: ...

    def trigger_fired(self, run_id: str, sk: str, owner: str, receipt: str) -> bool: ...

    def release_trigger(self, run_id: str, sk: str, owner: str, error: str) -> bool: ...

    def trigger_in_doubt(self, run_id: str, sk: str, owner: str, reason: str) -> bool: ...

    def triggers_of_run(self, run_id: str) -> list[Record]: ...


class ApprovalStore(Protocol):
    """A run's approval (pk APPROVAL#<run>: its own partition, so the status API may decide approvals without
    any grant on the trigger claims): requested once, decided once or expired, each announcement once."""

    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[Record, bool]: ...

    def get_approval(self, run_id: str) -> Record | None: ...

    def decide_approval(
        self, run_id: str, decision: str, decided_by: str, comment: str, now: float
    ) -> Record | None: ...

    def expire_approval(self, run_id: str, now: float) -> Record | None: ...

    def mark_approval_announced(self, run_id: str, event_id: str, attribute: str = "announced_event_id") -> bool: ...


class ConfigStore(Protocol):
    """The deployment's own settings kept in its table (pk CONFIG#<name>)."""

    @property
    def table_name(self) -> str:
        """The table's name: what a per-table cache of these settings is keyed by."""
        ...

    def page_token_secret(self) -> bytes:
        """The status API's pagination-token secret: made once per table, the same bytes ever after."""


class JobsTablePort(RunStore, JobStore, TaskStore, TriggerStore, ApprovalStore, ConfigStore, Protocol):
    """The whole table: what tools that look at every kind (the CLI, run drivers) hold."""


class EventPublisher(Protocol):
    """The stack's run events bus (adapters/events.RunEvents): one event per call, its id back."""

    def publish(self, detail: dict[str, Any]) -> str: ...
