"""The jobs table's keys and run indexes (the layout in adapters/dynamodb/__init__.py) as plain strings.

One place for the DynamoDB stores and their in-memory twins (adapters/memory/), so a fake cannot key a
record where the table does not: the DynamoDB stores spell these keys in DynamoDB's typed form.
"""

from __future__ import annotations

from jobgraph.core.ids import is_task_id
from jobgraph.core.ports import Record

Key = tuple[str, str]  # (pk, sk)
# a run listing's index: attribute prefix (gsi1pk, gsi1sk…), DynamoDB index name, partition value prefix
RUN_INDEXES = {"status": ("gsi1", "by-status", "RUN#"), "test_run": ("gsi2", "by-test-run", "TESTRUN#")}


def run_partition(run_id: str) -> str:
    """A run's partition: its record, its counters and its jobs' records (sort keys JOB#<job_id>)."""
    return f"RUN#{run_id}"


JOB_SK_PREFIX = "JOB#"


def run_key(run_id: str) -> Key:
    return (run_partition(run_id), "RUN")


def run_progress_key(run_id: str) -> Key:
    return (run_partition(run_id), "PROGRESS")


def tasks_progress_key(hour: str) -> Key:
    """The tasks' counters of one hour (``YYYY-MM-DDTHH``)."""
    return ("TASKS", f"PROGRESS#{hour}")


def task_key(task_id: str) -> Key:
    return (f"TASK#{task_id}", "TASK")


def job_key(run_id: str, job_id: str) -> Key:
    """A job's record; a task's job (run id = task id, core.ids.is_task_id) is its task record."""
    return task_key(run_id) if is_task_id(run_id) else (run_partition(run_id), f"{JOB_SK_PREFIX}{job_id}")


def progress_key(run_id: str, at: str) -> Key:
    """Where a job's change is counted: its run's counters, or the tasks' counters of the hour ``at``."""
    return tasks_progress_key(at[:13]) if is_task_id(run_id) else run_progress_key(run_id)


def client_key_key(client_key: str) -> Key:
    """The client key a task was accepted under (POST /tasks idempotency)."""
    return (f"TASKKEY#{client_key}", "KEY")


def trigger_partition(run_id: str) -> str:
    """The partition of a run's trigger claims (one item per trigger)."""
    return f"TRIGGER#{run_id}"


def trigger_key(run_id: str, sk: str) -> Key:
    return (trigger_partition(run_id), sk)


APPROVAL_SK = "APPROVAL"


def approval_key(run_id: str) -> Key:
    return (f"APPROVAL#{run_id}", APPROVAL_SK)


PAGE_TOKEN_KEY: Key = ("CONFIG#page-tokens", "SECRET")  # the status API's pagination-token secret


def counters(item: Record) -> Record:
    """A counters item's counters (its attributes but the key and the time to live)."""
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}
