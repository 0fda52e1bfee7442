"""Identifiers (GUIDE §1): the one place that makes run, job, correlation and task ids, and reads them back.

Deterministic, so every implementation names a run's jobs alike; pure string work, no pydantic (the CLI's
option checks and the API's path patterns import the patterns without the message models).
"""

from __future__ import annotations

import re
import uuid

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# the PerfTestRun cost-allocation tag value (the templates' TestRunId AllowedPattern)
TEST_RUN_ID_PATTERN = r"^[A-Za-z0-9_.:/=+@-]{1,128}$"


def correlation_id(run_id: str, sequence_id: int | None = None, *, lane: int | None = None) -> str:
    """A job's correlation id: its FIFO message group (SQS's ``MessageGroupId``, named so only where a message
    is sent or read). One per (run, sequence), so an aircraft's routes run in order while aircraft run in
    parallel; the run's MERGE its own (it waits for every sequence, not for one); a synthetic load's jobs
    one per ``lane``, the load's message groups (core.graph.synthetic_jobs)."""
    if sequence_id is not None:
        return f"{run_id}-s{sequence_id}"
    return merge_job_id(run_id) if lane is None else f"{run_id}-g{lane}"


# a sequence's job ids extend its correlation id (the MERGE's message group is its job id, above)
def route_job_id(run_id: str, sequence_id: int, route_index: int) -> str:
    return f"{correlation_id(run_id, sequence_id)}-r{route_index}"


def aggregation_job_id(run_id: str, sequence_id: int) -> str:
    return f"{correlation_id(run_id, sequence_id)}-agg"


def merge_job_id(run_id: str) -> str:
    return f"{run_id}-merge"


def synthetic_job_id(run_id: str, index: int) -> str:
    return f"{run_id}-syn-{index:07d}"


# the endings the job id makers above put after a run id: a job id's ending fixes where its run id ends,
# so each job id names its run
_JOB_ID = re.compile(r"^(?P<run>.+?)-(?:s\d+-(?:r\d+|agg)|merge|syn-\d{7})$")
_ROUTE_JOB_ENDING = re.compile(r"-s(?P<sequence>\d+)-r(?P<route>\d+)$")


def run_id_of_job(job_id: str) -> str | None:
    """The run a job id belongs to (None: not a job id these makers make)."""
    match = _JOB_ID.match(job_id)
    return match.group("run") if match and re.match(RUN_ID_PATTERN, match.group("run")) else None


def route_of_job(job_id: str) -> tuple[int, int] | None:
    """(sequence id, route index) of a route job's id (route_job_id), None for any other job."""
    match = _ROUTE_JOB_ENDING.search(job_id)
    return (int(match["sequence"]), int(match["route"])) if match else None


# API tasks (POST /tasks) are their own namespace: a task's job runs under a run id that is its task id,
# which no run may take (services/start_run.py refuses it), so a task can never join or address a run.
TASK_ID_PREFIX = "task-"
TASK_ID_PATTERN = r"^task-[0-9a-f]{32}$"
RESERVED_RUN_ID = f"run_id: ids starting with {TASK_ID_PREFIX!r} are the status API's task ids, not run ids"


def new_task_id() -> str:
    return f"{TASK_ID_PREFIX}{uuid.uuid4().hex}"


def is_task_id(run_id: str) -> bool:
    return run_id.startswith(TASK_ID_PREFIX)
