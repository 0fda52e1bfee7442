"""Run and job metadata in one DynamoDB table (single-table design, boto3 imported lazily).

    pk = RUN#<run_id>    sk = RUN               the run: status, sequences countdown, timings
    pk = RUN#<run_id>    sk = PROGRESS          its job counters (core/progress.py): O(1) progress
    pk = RUN#<run_id>    sk = JOB#<job_id>      one job: status, attempts, processing time, error
    pk = TASK#<task_id>  sk = TASK              one API task (POST /tasks): its own namespace, also its job record
    pk = TASKKEY#<key>   sk = KEY               the client key a task was accepted under (idempotency)
    pk = TASKS           sk = PROGRESS#<hour>   the tasks' counters per hour (recent medians for estimates)
    pk = CONFIG#page-tokens sk = SECRET         the status API's pagination-token secret (no TTL)
    GSI by-status:   gsi1pk = RUN#<status> (runs)           | JOBS#<run_id>#<status> (jobs), gsi1sk = time
    GSI by-test-run: gsi2pk = TESTRUN#<test_run_id> (runs), gsi2sk = created_at
    TTL attribute expires_at (RECORD_TTL_DAYS).

The status index is keyed by run *and* status for jobs: a listing of one run's jobs in one status reads
exactly those (no filter over other runs' jobs), and job writes spread over runs × statuses instead of one
partition per status for every run of the table. Runs use it as seed 002's StatusDateIndex (status,
created time), by-test-run as its ClientProjectIndex; a date range is three small queries of the status
index (one per run status), so the table needs one index more than before, not two (CloudFormation creates
one index per stack update).

Each kind of record has its store behind a port (core/ports.py): DynamoRunStore (runs.py), DynamoJobStore
(jobs.py), DynamoTaskStore (tasks.py), DynamoTriggerStore (triggers.py), DynamoApprovalStore (approvals.py), DynamoConfigStore (config.py).
``JobsTable`` is all of them over one table, for the tools that look at every kind (the CLI, run drivers).
adapters/memory/ holds their in-memory fakes; tests/contract/ holds both to the same behaviour. The keys and run
indexes above are made in adapters/table_layout.py, for both.
"""

from __future__ import annotations

from jobgraph.adapters.dynamodb.approvals import DynamoApprovalStore
from jobgraph.adapters.dynamodb.config import DynamoConfigStore
from jobgraph.adapters.dynamodb.jobs import MAX_OUTCOME_TRIES, DynamoJobStore
from jobgraph.adapters.dynamodb.runs import DynamoRunStore
from jobgraph.adapters.dynamodb.table import job_key, progress_key, run_key, task_key
from jobgraph.adapters.dynamodb.tasks import DynamoTaskStore
from jobgraph.adapters.dynamodb.triggers import DynamoTriggerStore
from jobgraph.adapters.table_layout import APPROVAL_SK
from jobgraph.core.ports import JobClaim, TriggerClaim

__all__ = [
    "APPROVAL_SK",
    "MAX_OUTCOME_TRIES",
    "DynamoApprovalStore",
    "DynamoConfigStore",
    "DynamoJobStore",
    "DynamoRunStore",
    "DynamoTaskStore",
    "DynamoTriggerStore",
    "JobClaim",
    "JobsTable",
    "TriggerClaim",
    "job_key",
    "progress_key",
    "run_key",
    "task_key",
]


class JobsTable(
    DynamoRunStore, DynamoJobStore, DynamoTaskStore, DynamoTriggerStore, DynamoApprovalStore, DynamoConfigStore
):
    """Every store of one jobs table on one client (core.ports.JobsTablePort)."""
