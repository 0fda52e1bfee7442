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

A job's terminal status change and its run's counters are written in one transaction (``record_job``),
conditioned on the job's previous status, so the counters count each job's latest status exactly once
under duplicates, retries and concurrent reports.

The countdown to MERGE is exactly-once under duplicates and concurrency: a sequence is counted by one
conditional update that adds it to the run's set of counted sequences (condition: not in it yet), and the
MERGE is claimed by one conditional update (remaining = 0 and no claim yet) that records which
AGGREGATION completion claimed it, so a redelivery of that same completion can re-send the MERGE
(FIFO-deduplicated) after a crash.

A job runs under a claim on its own record and completes exactly once (``claim_job``, ``record_job``): one
conditional update claims it (new, failed before, or its previous claimant's lease ran out — or the same
claimant again, after a crash), one transaction records its outcome with the run's counters, never over a
completion. A refused claim returns the record that refused it (ReturnValuesOnConditionCheckFailure), so a
duplicate learns the stored completion without another read; a granted one tells record_job the status it
left, so the outcome is written without reading it first. Two requests per job, where Powertools'
idempotency record beside the job record took three.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from jobgraph.core.errors import JobGraphError
from jobgraph.core.models import CompletedJob, IncomingJob, RunStatus, is_task_id, utc_now_iso
from jobgraph.core.progress import Progress, counter_deltas


class RunExistsError(JobGraphError):
    """A run with this run_id was started before."""


class RunNotFoundError(JobGraphError):
    pass


class TaskNotFoundError(JobGraphError):
    """No task with this id (or it expired)."""


RUN_STATUSES = tuple(status.value for status in RunStatus)
MAX_OUTCOME_TRIES = 5  # a job record changed between reading and writing it this often: give up loudly
APPROVAL_SK = "APPROVAL"


@dataclass(frozen=True)
class JobClaim:
    """What claim_job did: ``granted`` (the job's record now holds ``status``: what record_job expects to
    find), or not (``record``: the record that refused it — COMPLETED, or another claimant's lease)."""

    granted: bool
    status: str | None
    record: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TriggerClaim:
    """What claim_trigger found: fresh | takeover (the caller holds the claim) | fired | in_doubt | busy."""

    outcome: str
    item: dict


@cache
def default_dynamodb_client():
    import boto3

    return boto3.client("dynamodb")


def _conditional_failed(exc) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _condition_failed_first(exc) -> bool:
    """A cancelled transaction whose first item (the job record) failed its condition."""
    reasons = exc.response.get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


def _transaction_conflict(exc) -> bool:
    """A cancelled transaction that met another transaction on one of its items."""
    return any(r.get("Code") == "TransactionConflict" for r in exc.response.get("CancellationReasons") or [])


def _plain(item: dict) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def run_key(run_id: str) -> dict:
    return {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}


def job_key(run_id: str, job_id: str) -> dict:
    """A job's record; a task's job (run id = task id, core.models.is_task_id) is its task record."""
    if is_task_id(run_id):
        return task_key(run_id)
    return {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": f"JOB#{job_id}"}}


def task_key(task_id: str) -> dict:
    return {"pk": {"S": f"TASK#{task_id}"}, "sk": {"S": "TASK"}}


def progress_key(run_id: str, at: str) -> dict:
    """Where a job's change is counted: its run's counters, or the tasks' counters of the hour ``at``."""
    if is_task_id(run_id):
        return {"pk": {"S": "TASKS"}, "sk": {"S": f"PROGRESS#{at[:13]}"}}
    return {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "PROGRESS"}}


def _counters(item: dict) -> dict:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")}


class JobsTable:
    def __init__(self, table_name: str, ttl_days: int = 30, client=None):
        self.table_name = table_name
        self.ttl_days = ttl_days
        self._client = client

    @property
    def client(self):
        if self._client is None:
            self._client = default_dynamodb_client()
        return self._client

    def _update_if(self, run_id: str, **update) -> bool:
        """One conditional UpdateItem of the run item; False when its condition does not hold."""
        from botocore.exceptions import ClientError

        try:
            self.client.update_item(TableName=self.table_name, Key=run_key(run_id), **update)
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def _expires_at(self) -> dict:
        return {"N": str(int(time.time()) + self.ttl_days * 86400)} if self.ttl_days else {"NULL": True}

    # --- runs -----------------------------------------------------------------------------------
    def create_run(
        self, run_id: str, test_run_id: str, sequences: int, jobs_total: int, scenarios: int, seed: int
    ) -> None:
        from botocore.exceptions import ClientError

        now = utc_now_iso()
        item = {
            **run_key(run_id),
            "run_id": {"S": run_id},
            "status": {"S": RunStatus.RUNNING.value},
            "test_run_id": {"S": test_run_id},
            "sequences_total": {"N": str(sequences)},
            "sequences_remaining": {"N": str(sequences)},
            "jobs_total": {"N": str(jobs_total)},
            "scenarios": {"N": str(scenarios)},
            "seed": {"N": str(seed)},
            "started_at": {"S": now},
            "created_at": {"S": now},
            "started_epoch_ms": {"N": str(int(time.time() * 1000))},
            "gsi1pk": {"S": f"RUN#{RunStatus.RUNNING.value}"},
            "gsi1sk": {"S": now},
            "gsi2pk": {"S": f"TESTRUN#{test_run_id}"},
            "gsi2sk": {"S": now},
            "expires_at": self._expires_at(),
        }
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _conditional_failed(exc):
                raise RunExistsError(f"run {run_id!r} already exists in table {self.table_name}") from None
            raise

    def get_run(self, run_id: str) -> dict:
        response = self.client.get_item(TableName=self.table_name, Key=run_key(run_id), ConsistentRead=True)
        if "Item" not in response:
            raise RunNotFoundError(f"run {run_id!r} not found in table {self.table_name}")
        return _plain(response["Item"])

    def count_down_sequence(self, run_id: str, sequence_id: int) -> bool:
        """Count one finished sequence; False if it was counted before (duplicate delivery).

        One conditional update of the run item: the sequence joins the run's set of counted sequences and
        the countdown drops by one, only if the set does not hold it yet. Atomic, so duplicates and
        concurrent schedulers count each sequence exactly once, with a single write (a transaction with
        a marker item would cost four write units). The set bounds a run to what fits in one 400 KB item,
        far above StartRun's 6 MB payload limit (~4000 sequences).
        """
        counted = self._update_if(
            run_id,
            UpdateExpression="ADD counted_sequences :sequence, sequences_remaining :minus_one",
            ConditionExpression=(
                "attribute_exists(pk) AND sequences_remaining > :zero AND NOT contains(counted_sequences, :id)"
            ),
            ExpressionAttributeValues={
                ":sequence": {"NS": [str(sequence_id)]},
                ":id": {"N": str(sequence_id)},
                ":minus_one": {"N": "-1"},
                ":zero": {"N": "0"},
            },
        )
        if not counted:
            run = self.client.get_item(TableName=self.table_name, Key=run_key(run_id), ConsistentRead=True)
            if "Item" not in run:
                raise RunNotFoundError(f"run {run_id!r}: cannot count sequence {sequence_id}")
        return counted

    def claim_merge(self, run_id: str, claimant_job_id: str) -> bool:
        """True for exactly one claimant once every sequence is counted (and again for that claimant)."""
        return self._update_if(
            run_id,
            UpdateExpression="SET merge_claimed_by = :me, merge_claimed_at = :now",
            ConditionExpression=(
                "sequences_remaining = :zero AND (attribute_not_exists(merge_claimed_by) OR merge_claimed_by = :me)"
            ),
            ExpressionAttributeValues={
                ":me": {"S": claimant_job_id},
                ":now": {"S": utc_now_iso()},
                ":zero": {"N": "0"},
            },
        )

    def complete_run(self, run_id: str, merged_key: str) -> bool:
        """RUNNING → COMPLETED with timings; False if it was completed before."""
        run = self.get_run(run_id)
        now = datetime.now(UTC)
        duration_s = (time.time() * 1000 - float(run["started_epoch_ms"])) / 1000
        return self._update_if(
            run_id,
            UpdateExpression=(
                # gsi1sk stays the creation time: the status index lists runs by status and creation
                "SET #status = :done, completed_at = :now, duration_s = :duration, merged_key = :key, gsi1pk = :gsi"
            ),
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":done": {"S": RunStatus.COMPLETED.value},
                ":running": {"S": RunStatus.RUNNING.value},
                ":now": {"S": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
                ":duration": {"N": f"{duration_s:.3f}"},
                ":key": {"S": merged_key},
                ":gsi": {"S": f"RUN#{RunStatus.COMPLETED.value}"},
            },
        )

    def runs_by_status(self, status: RunStatus, limit: int = 50) -> list[dict]:
        items, _ = self.run_page("status", status.value, limit)
        return items

    def run_page(
        self,
        index: str,
        value: str,
        limit: int,
        start_key: dict | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[list[dict], dict | None]:
        """Runs newest first from one partition of an index: ``index`` "status" (``value`` a run status) or
        "test_run" (a test_run_id), created between ``since`` and ``until`` (ISO times, inclusive) if given."""
        attribute, name, prefix = {
            "status": ("gsi1", "by-status", "RUN#"),
            "test_run": ("gsi2", "by-test-run", "TESTRUN#"),
        }[index]
        condition = f"{attribute}pk = :pk"
        values = {":pk": {"S": f"{prefix}{value}"}}
        if since or until:
            condition += f" AND {attribute}sk BETWEEN :since AND :until"
            # "~" sorts after every character of an ISO time: an open end includes all of that day
            values[":since"], values[":until"] = {"S": since or "0"}, {"S": until or "~"}
        kwargs = {"ExclusiveStartKey": start_key} if start_key else {}
        response = self.client.query(
            TableName=self.table_name,
            IndexName=name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
            **kwargs,
        )
        return [_plain(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def run_with_progress(self, run_id: str) -> tuple[dict, Progress]:
        """The run record and its counters in one query (the two items of its partition that sort from
        PROGRESS on: PROGRESS, RUN; the JOB# items sort before). RunNotFoundError for an unknown run."""
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk >= :progress",
            ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":progress": {"S": "PROGRESS"}},
            ConsistentRead=True,
        )
        items = {item["sk"]["S"]: _plain(item) for item in response.get("Items", [])}
        if "RUN" not in items:
            raise RunNotFoundError(f"run {run_id!r} not found in table {self.table_name}")
        return items["RUN"], Progress.from_counters(_counters(items.get("PROGRESS", {})))

    def task_progress(self, hours: list[str]) -> Progress:
        """The tasks' counters of these hours (ISO prefixes "YYYY-MM-DDTHH"), added up."""
        keys = [{"pk": {"S": "TASKS"}, "sk": {"S": f"PROGRESS#{hour}"}} for hour in hours]
        response = self.client.batch_get_item(RequestItems={self.table_name: {"Keys": keys}})
        progress = Progress()
        for item in response.get("Responses", {}).get(self.table_name, []):
            progress = progress.merged(Progress.from_counters(_counters(_plain(item))))
        return progress

    # --- jobs -----------------------------------------------------------------------------------
    def claim_job(
        self, job: IncomingJob, claimant: str, lease_ms: int, attempt: int = 1, now_ms: int | None = None
    ) -> JobClaim:
        """Claim ``job`` for ``claimant`` for ``lease_ms`` (JobClaim: granted, or the record that refused it).

        One conditional update of the job record. It succeeds for a new job, a job whose last run failed
        (the failure released the claim), a job whose claimant's lease has run out (it died mid-job), or
        the same claimant again (its message redelivered after a crash). It is refused for a COMPLETED
        job — the returned record holds the stored completion — and while another claimant's lease runs.
        The claim marks the job PROCESSING, except a FAILED one: its status stays what the run's counters
        count (record_job moves it from FAILED to its next outcome), so its retry's claim is a second
        update, conditioned on that FAILED (retries only: the first refused the FAILED record).
        """
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        # a short expression also keeps the local cloud's moto, which parses it on every request, quick
        values = {
            ":completed": {"S": "COMPLETED"},
            ":failed": {"S": "FAILED"},
            ":me": {"S": claimant},
            ":lease": {"N": str(now_ms + max(0, int(lease_ms)))},
            ":now_ms": {"N": str(now_ms)},
            ":attempt": {"N": str(attempt)},
            ":exec": {"S": job.exec_type.value},
            ":submitted": {"S": job.submitted_at},
            ":ttl": self._expires_at(),
        }
        lease_free = "(attribute_not_exists(lease_until_ms) OR lease_until_ms < :now_ms OR claimed_by = :me)"
        sets = (
            "claimed_by = :me, lease_until_ms = :lease, last_attempt = :attempt, exec_type = :exec,"
            " created_at = if_not_exists(created_at, :submitted), expires_at = :ttl"
        )
        refused = self._claim(
            job,
            f"SET #status = :processing, {sets}",
            f"attribute_not_exists(sk) OR (NOT #status IN (:completed, :failed) AND {lease_free})",
            {**values, ":processing": {"S": "PROCESSING"}},
        )
        if refused is None:
            return JobClaim(True, "PROCESSING")
        if refused.get("status") != "FAILED":
            return JobClaim(False, refused.get("status"), refused)
        del values[":completed"]
        refused = self._claim(job, f"SET {sets}", f"#status = :failed AND {lease_free}", values)
        if refused is None:
            return JobClaim(True, "FAILED")
        return JobClaim(False, refused.get("status"), refused)

    def _claim(self, job: IncomingJob, update: str, condition: str, values: dict) -> dict | None:
        from botocore.exceptions import ClientError

        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=job_key(job.run_id, job.job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return _plain(exc.response.get("Item") or {})
            raise
        return None

    def record_job(self, completed: CompletedJob, attempt: int = 1, expected_status: str | None = None) -> dict | None:
        """Record a job's outcome and release its claim: None when written, else the COMPLETED record that
        refused it.

        Never over a COMPLETED record, so a job completes exactly once even if two runners ran it. The
        change is written together with its run's counters (core/progress.py) in one transaction,
        conditioned on the job's previous status: duplicates, retries and concurrent reports count each
        job's latest status once. A change the counters do not see (a failure after a failure) is one
        plain conditional update. ``reports`` counts the outcomes written, ``last_attempt`` the latest.
        The previous status is read first, unless the caller knows what it should be (``expected_status``:
        its claim's JobClaim.status) — one request fewer per job; if it was wrong, the condition refuses
        the write and the status is read.
        """
        from botocore.exceptions import ClientError

        status = completed.status.value.upper()
        key = job_key(completed.run_id, completed.job_id)
        names = {"#status": "status"}
        values = {
            ":status": {"S": status},
            ":exec": {"S": completed.exec_type.value},
            ":at": {"S": completed.completed_at},
            ":ms": {"N": f"{completed.processing_time_ms:.3f}"},
            ":attempt": {"N": str(attempt)},
            ":ttl": self._expires_at(),
            ":one": {"N": "1"},
        }
        sets = [
            "#status = :status",
            "exec_type = :exec",
            "updated_at = :at",
            # when the record was made: the claim's (or the task's submission) time if it made it
            "created_at = if_not_exists(created_at, :at)",
            "processing_time_ms = :ms",
            "last_attempt = :attempt",
            "expires_at = :ttl",
        ]
        if not is_task_id(completed.run_id):  # tasks are not listed per run
            values[":gsi"] = {"S": f"JOBS#{completed.run_id}#{status}"}
            sets += ["gsi1pk = :gsi", "gsi1sk = :at"]
        optional = ("sequence_id", "route_index", "output_key", "error_message", "correlation_id", "input_size_bytes")
        for name in optional:
            value = getattr(completed, name)
            if value is not None:
                values[f":{name}"] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)[:2000]}
                sets.append(f"{name} = :{name}")
        update = {
            "TableName": self.table_name,
            "Key": key,
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE claimed_by, lease_until_ms ADD reports :one",
            "ExpressionAttributeNames": names,
        }
        for tries in range(MAX_OUTCOME_TRIES):
            if expected_status is not None:
                old_status, expected_status = expected_status, None
            else:
                old = self.client.get_item(
                    TableName=self.table_name, Key=key, ConsistentRead=True, ProjectionExpression="#status",
                    ExpressionAttributeNames=names,
                ).get("Item")  # fmt: skip
                old_status = old["status"]["S"] if old and "status" in old else None
            if old_status == "COMPLETED":
                return self._job_item(key)
            expected = {":old": {"S": old_status}} if old_status else {}
            condition = "#status = :old" if old_status else "attribute_not_exists(#status)"
            deltas = counter_deltas(completed.exec_type, old_status, status, completed.processing_time_ms)
            try:
                if not deltas:
                    self.client.update_item(
                        **update, ConditionExpression=condition, ExpressionAttributeValues={**values, **expected}
                    )
                    return None
                self.client.transact_write_items(
                    TransactItems=[
                        {"Update": {**update, "ConditionExpression": condition,
                                    "ExpressionAttributeValues": {**values, **expected}}},
                        {"Update": self._counter_update(progress_key(completed.run_id, completed.completed_at), deltas)},
                    ]
                )  # fmt: skip
                return None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                    raise
                if code == "TransactionCanceledException" and not _condition_failed_first(exc):
                    if not _transaction_conflict(exc):
                        raise
                    # DynamoDB cancels a transaction that meets another on an item (here: the run's counters,
                    # written by every job of the run) instead of waiting: try again a little later
                    time.sleep(random.uniform(0.01, 0.05) * 2**tries)
        raise JobGraphError(
            f"job {completed.job_id}: its record kept changing while its outcome was written ({MAX_OUTCOME_TRIES} tries)"
        )

    def _counter_update(self, key: dict, deltas: dict[str, int | float]) -> dict:
        """One ADD of every delta to a counters item (created by the first ADD)."""
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values = {f":c{i}": {"N": str(delta)} for i, delta in enumerate(deltas.values())}
        return {
            "TableName": self.table_name,
            "Key": key,
            "UpdateExpression": "SET expires_at = :ttl ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas))),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {**values, ":ttl": self._expires_at()},
        }

    def _job_item(self, key: dict) -> dict:
        return _plain(self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item") or {})

    def get_job(self, run_id: str, job_id: str) -> dict | None:
        """A job's record (a task's: its task record), or None if it has none."""
        return self._job_item(job_key(run_id, job_id)) or None

    def record_poison(self, message_id: str, error: str, body: str) -> None:
        """A message that is not a job at all: kept for inspection (it also ends in the DLQ)."""
        now = utc_now_iso()
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "pk": {"S": "POISON"},
                "sk": {"S": f"MSG#{message_id}"},
                "status": {"S": "FAILED"},
                "error_message": {"S": error[:2000]},
                "body": {"S": body[:4000]},
                "updated_at": {"S": now},
                "gsi1pk": {"S": "JOB#FAILED"},
                "gsi1sk": {"S": now},
                "expires_at": self._expires_at(),
            },
        )

    def jobs_of_run(self, run_id: str) -> list[dict]:
        items, kwargs = [], {}
        while True:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
                ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":job": {"S": "JOB#"}},
                **kwargs,
            )
            items.extend(_plain(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs = {"ExclusiveStartKey": response["LastEvaluatedKey"]}

    def count_jobs(self, run_id: str, status: str = "COMPLETED") -> int:
        """Jobs of a run whose latest status is ``status`` (COMPLETED or FAILED), from its counters: one read."""
        if status not in ("COMPLETED", "FAILED"):
            raise ValueError(f"only COMPLETED and FAILED jobs are counted, not {status!r}")
        response = self.client.get_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "PROGRESS"}},
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get(f"n{status[0]}", {}).get("N", "0"))

    def job_page(
        self, run_id: str, status: str | None, limit: int, start_key: dict | None = None
    ) -> tuple[list[dict], dict | None]:
        """One page of a run's job records, optionally only those whose latest status is ``status``.

        With a status it is one query of the status index's partition of exactly that run and status.
        Returns (items, the key to continue from or None at the end)."""
        kwargs = {"ExclusiveStartKey": start_key} if start_key else {}
        if status is None:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
                ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":job": {"S": "JOB#"}},
                Limit=limit,
                **kwargs,
            )
        else:
            response = self.client.query(
                TableName=self.table_name,
                IndexName="by-status",
                KeyConditionExpression="gsi1pk = :key",
                ExpressionAttributeValues={":key": {"S": f"JOBS#{run_id}#{status}"}},
                Limit=limit,
                **kwargs,
            )
        return [_plain(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey")

    # --- API tasks (POST /tasks, seed 004): their own namespace --------------------------------------
    def claim_task(self, client_key: str, task_id: str, fingerprint: str) -> dict | None:
        """Remember that ``client_key`` names task ``task_id``; None when new, else the claim made before."""
        from botocore.exceptions import ClientError

        key = {"pk": {"S": f"TASKKEY#{client_key}"}, "sk": {"S": "KEY"}}
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    **key,
                    "task_id": {"S": task_id},
                    "fingerprint": {"S": fingerprint},
                    "created_at": {"S": utc_now_iso()},
                    "expires_at": self._expires_at(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return _plain(self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)["Item"])
        return None

    def record_task_queued(self, task_id: str, client_key: str, message_group_id: str, details: dict) -> None:
        """The task's record once its job is on the queue: QUEUED, unless its job already moved it on."""
        now = utc_now_iso()
        values = {
            ":queued": {"S": "QUEUED"},
            ":now": {"S": now},
            ":key": {"S": client_key},
            ":group": {"S": message_group_id},
            ":synthetic": {"S": "SYNTHETIC"},
            ":ttl": self._expires_at(),
        }
        sets = [
            "#status = if_not_exists(#status, :queued)",
            "exec_type = if_not_exists(exec_type, :synthetic)",
            "created_at = if_not_exists(created_at, :now)",
            "updated_at = if_not_exists(updated_at, :now)",
            "queued_at = :now",
            "client_key = :key",
            "message_group_id = :group",
            "expires_at = :ttl",
        ]
        for name, value in details.items():
            values[f":{name}"] = {"N": str(value)}
            sets.append(f"{name} = :{name}")
        self.client.update_item(
            TableName=self.table_name,
            Key=task_key(task_id),
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )

    def get_task(self, task_id: str) -> dict:
        """A task's record; TaskNotFoundError for an unknown (or expired) task."""
        item = self._job_item(task_key(task_id))
        if not item:
            raise TaskNotFoundError(f"task {task_id!r} not found")
        return item

    def mark_run_announced(self, run_id: str, event_id: str) -> bool:
        """Remember that the run's end was published (once; False if it was before)."""
        return self._update_if(
            run_id,
            UpdateExpression="SET announced_event_id = :id, announced_at = :now",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(announced_event_id)",
            ExpressionAttributeValues={":id": {"S": event_id}, ":now": {"S": utc_now_iso()}},
        )

    # --- downstream triggers: claims and approvals (TRIGGER#<run_id>) --------------------------------------
    # One item per (run, trigger list, trigger): sk FIRED#<kind>#<trigger id>. Its status is CLAIMED while an
    # invocation fires it, then FIRED, RELEASED (the target refused: a retry claims it afresh) or IN_DOUBT
    # (a crashed attempt may have reached a target that cannot drop a repeat: not fired again). ``owner``
    # fences every transition, so an invocation whose claim was taken over cannot overwrite the new holder's.
    # A run's approval: pk APPROVAL#<run_id>, sk APPROVAL (its own partition, so that the status API may
    # decide approvals without any grant on the trigger claims).
    def _trigger_key(self, run_id: str, sk: str) -> dict:
        if sk == APPROVAL_SK:
            return {"pk": {"S": f"APPROVAL#{run_id}"}, "sk": {"S": sk}}
        return {"pk": {"S": f"TRIGGER#{run_id}"}, "sk": {"S": sk}}

    def _trigger_item(self, run_id: str, sk: str) -> dict | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=self._trigger_key(run_id, sk), ConsistentRead=True
        )
        return _plain(response["Item"]) if "Item" in response else None

    def _trigger_update(self, run_id: str, sk: str, **update) -> dict | None:
        """One conditional UpdateItem of a trigger item; its new image, or None when the condition failed."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.update_item(
                TableName=self.table_name, Key=self._trigger_key(run_id, sk), ReturnValues="ALL_NEW", **update
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                return None
            raise
        return _plain(response["Attributes"])

    def claim_trigger(self, run_id: str, sk: str, owner: str, now: float, stale_s: float, **about: str) -> TriggerClaim:
        """Claim one trigger of a run for ``owner``.

        - no item, or RELEASED: claimed afresh ("fresh");
        - FIRED / IN_DOUBT: nothing to do ("fired" / "in_doubt");
        - CLAIMED less than ``stale_s`` ago: another invocation is at it, or died so recently that the
          caller must come back later ("busy": the message is retried);
        - CLAIMED longer ago: its holder is dead (``stale_s`` > the function's timeout), so the claim is taken
          over by a compare-and-swap on (owner, claimed_epoch): one taker wins ("takeover"). What the taker may
          do depends on the target (services.triggers): the dead holder may have fired before it died.
        """
        names = {"#status": "status"}
        fresh = self._trigger_update(
            run_id,
            sk,
            UpdateExpression=(
                "SET #status = :claimed, #owner = :owner, claimed_epoch = :now, first_claimed_epoch = :now, "
                "run_id = :run, expires_at = :ttl" + "".join(f", #{k} = :{k}" for k in about) + " ADD attempts :one"
            ),
            ConditionExpression="attribute_not_exists(pk) OR #status = :released",
            # aliased: several of these names (trigger, token, owner...) are DynamoDB reserved words
            ExpressionAttributeNames={**names, "#owner": "owner", **{f"#{k}": k for k in about}},
            ExpressionAttributeValues={
                ":claimed": {"S": "CLAIMED"},
                ":released": {"S": "RELEASED"},
                ":owner": {"S": owner},
                ":now": {"N": f"{now:.3f}"},
                ":run": {"S": run_id},
                ":ttl": self._expires_at(),
                ":one": {"N": "1"},
                **{f":{k}": {"S": str(v)} for k, v in about.items()},
            },
        )
        if fresh is not None:
            return TriggerClaim("fresh", fresh)
        item = self._trigger_item(run_id, sk) or {}
        status = item.get("status")
        if status == "FIRED":
            return TriggerClaim("fired", item)
        if status == "IN_DOUBT":
            return TriggerClaim("in_doubt", item)
        if status != "CLAIMED" or float(item["claimed_epoch"]) > now - stale_s:
            return TriggerClaim("busy", item)
        taken = self._trigger_update(
            run_id,
            sk,
            UpdateExpression="SET #owner = :owner, claimed_epoch = :now, taken_over_from = :old ADD attempts :one",
            ConditionExpression="#status = :claimed AND #owner = :old AND claimed_epoch = :old_epoch",
            ExpressionAttributeNames={**names, "#owner": "owner"},
            ExpressionAttributeValues={
                ":claimed": {"S": "CLAIMED"},
                ":owner": {"S": owner},
                ":now": {"N": f"{now:.3f}"},
                ":old": {"S": str(item["owner"])},
                ":old_epoch": {"N": f"{float(item['claimed_epoch']):.3f}"},
                ":one": {"N": "1"},
            },
        )
        return TriggerClaim("takeover", taken) if taken is not None else TriggerClaim("busy", item)

    def _finish_trigger(self, run_id: str, sk: str, owner: str, status: str, **values: str) -> bool:
        """CLAIMED (by ``owner``) → ``status`` with ``values``; False if the claim is no longer ours."""
        sets = ", ".join(f"#{k} = :{k}" for k in values)
        return (
            self._trigger_update(
                run_id,
                sk,
                UpdateExpression="SET #status = :status, finished_at = :at" + (f", {sets}" if sets else ""),
                ConditionExpression="#status = :claimed AND #owner = :owner",
                ExpressionAttributeNames={"#status": "status", "#owner": "owner", **{f"#{k}": k for k in values}},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":claimed": {"S": "CLAIMED"},
                    ":owner": {"S": owner},
                    ":at": {"S": utc_now_iso()},
                    **{f":{k}": {"S": str(v)[:2000]} for k, v in values.items()},
                },
            )
            is not None
        )

    def trigger_fired(self, run_id: str, sk: str, owner: str, receipt: str) -> bool:
        return self._finish_trigger(run_id, sk, owner, "FIRED", receipt=receipt)

    def release_trigger(self, run_id: str, sk: str, owner: str, error: str) -> bool:
        """The target refused: a retry of the message claims the trigger afresh."""
        return self._finish_trigger(run_id, sk, owner, "RELEASED", last_error=error)

    def trigger_in_doubt(self, run_id: str, sk: str, owner: str, reason: str) -> bool:
        return self._finish_trigger(run_id, sk, owner, "IN_DOUBT", last_error=reason)

    def triggers_of_run(self, run_id: str) -> list[dict]:
        """The run's trigger claims, for reports and `jobgraph triggers show`."""
        items, kwargs = [], {}
        while True:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"TRIGGER#{run_id}"}},
                ConsistentRead=True,
                **kwargs,
            )
            items.extend(_plain(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs = {"ExclusiveStartKey": response["LastEvaluatedKey"]}

    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[dict, bool]:
        """PENDING_APPROVAL for the run, once (a redelivered run end finds the first request); (item, created)."""
        from botocore.exceptions import ClientError

        now = utc_now_iso()
        item = {
            **self._trigger_key(run_id, APPROVAL_SK),
            "run_id": {"S": run_id},
            "workflow": {"S": workflow},
            "status": {"S": "PENDING_APPROVAL"},
            "reasons": {"S": "; ".join(reasons)[:2000]},
            "requested_at": {"S": now},
            "expires_epoch": {"N": f"{expires_epoch:.3f}"},
            "source_event": {"S": event},
            "expires_at": self._expires_at(),
        }
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if _conditional_failed(exc):
                return self._trigger_item(run_id, APPROVAL_SK) or {}, False
            raise
        return _plain(item), True

    def get_approval(self, run_id: str) -> dict | None:
        return self._trigger_item(run_id, APPROVAL_SK)

    def decide_approval(self, run_id: str, decision: str, decided_by: str, comment: str, now: float) -> dict | None:
        """PENDING_APPROVAL (not expired) → APPROVED | REJECTED; the new item, or None if that did not hold."""
        return self._trigger_update(
            run_id,
            APPROVAL_SK,
            UpdateExpression=(
                "SET #status = :decision, decided_by = :by, decided_at = :at, #comment = :comment, decided_epoch = :now"
            ),
            ConditionExpression="#status = :pending AND expires_epoch > :now",
            ExpressionAttributeNames={"#status": "status", "#comment": "comment"},
            ExpressionAttributeValues={
                ":decision": {"S": decision},
                ":pending": {"S": "PENDING_APPROVAL"},
                ":by": {"S": decided_by[:256]},
                ":at": {"S": utc_now_iso()},
                ":comment": {"S": comment[:2000]},
                ":now": {"N": f"{now:.3f}"},
            },
        )

    def expire_approval(self, run_id: str, now: float) -> dict | None:
        """PENDING_APPROVAL past its expiry → EXPIRED (lazily, when someone looks or decides)."""
        return self._trigger_update(
            run_id,
            APPROVAL_SK,
            UpdateExpression="SET #status = :expired",
            ConditionExpression="#status = :pending AND expires_epoch <= :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":expired": {"S": "EXPIRED"},
                ":pending": {"S": "PENDING_APPROVAL"},
                ":now": {"N": f"{now:.3f}"},
            },
        )

    def mark_approval_announced(self, run_id: str, event_id: str, attribute: str = "announced_event_id") -> bool:
        """Remember an event published about the approval, once: ``announced_event_id`` (Run Approved) or
        ``pending_event_id`` (Run Pending Approval)."""
        return (
            self._trigger_update(
                run_id,
                APPROVAL_SK,
                UpdateExpression="SET #event = :id",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#event)",
                ExpressionAttributeNames={"#event": attribute},
                ExpressionAttributeValues={":id": {"S": event_id}},
            )
            is not None
        )

    def fail_run(self, run_id: str, error: str) -> bool:
        """RUNNING → FAILED (a job used up its attempts); False if the run had ended before, or if ``run_id`` is
        an API task's (it has no run: its own record says FAILED)."""
        if is_task_id(run_id):
            return False
        run = self.get_run(run_id)
        now = utc_now_iso()
        duration_s = (time.time() * 1000 - float(run["started_epoch_ms"])) / 1000
        return self._update_if(
            run_id,
            UpdateExpression=(
                "SET #status = :failed, completed_at = :now, duration_s = :duration, #error = :error, gsi1pk = :gsi"
            ),
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":failed": {"S": RunStatus.FAILED.value},
                ":running": {"S": RunStatus.RUNNING.value},
                ":now": {"S": now},
                ":duration": {"N": f"{duration_s:.3f}"},
                ":error": {"S": error[:2000]},
                ":gsi": {"S": f"RUN#{RunStatus.FAILED.value}"},
            },
        )

    def job_attempts(self, run_id: str, job_id: str) -> int:
        """The attempt of the job's latest report (0 if it has no record)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key=job_key(run_id, job_id),
            ProjectionExpression="last_attempt",
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get("last_attempt", {}).get("N", "0"))

    # --- the status API's pagination-token secret (services/page_tokens.py) -----------------------
    def page_token_secret(self) -> bytes:
        """32 random bytes per deployment (table), made once by whichever API call first needs them."""
        import os

        from botocore.exceptions import ClientError

        key = {"pk": {"S": "CONFIG#page-tokens"}, "sk": {"S": "SECRET"}}
        for _ in range(2):
            item = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True).get("Item")
            if item:
                return bytes(item["secret"]["B"])
            try:
                # no expires_at: the table's TTL never removes it, so tokens stay valid while the table lives
                self.client.put_item(
                    TableName=self.table_name,
                    Item={**key, "secret": {"B": os.urandom(32)}, "created_at": {"S": utc_now_iso()}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except ClientError as exc:
                if not _conditional_failed(exc):
                    raise
        raise JobGraphError(f"{self.table_name}: the page-token secret could not be read or made")
