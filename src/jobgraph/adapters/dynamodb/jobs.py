"""Job records (pk RUN#<run_id>, sk JOB#<job_id>; a task's job is its task record): the JobStore port.

A job runs under a claim on its own record and completes exactly once (``claim_job``, ``record_job``): one
conditional update claims it (new, failed before, or its previous claimant's lease ran out — or the same
claimant again, after a crash), one transaction records its outcome with the run's counters, never over a
completion. A refused claim returns the record that refused it (ReturnValuesOnConditionCheckFailure), so a
duplicate learns the stored completion without another read; a granted one tells record_job the status it
left, so the outcome is written without reading it first. Two requests per job, where Powertools'
idempotency record beside the job record took three.

A job's terminal status change and its run's counters are written in one transaction (``record_job``),
conditioned on the job's previous status, so the counters count each job's latest status exactly once
under duplicates, retries and concurrent reports. A batch's outcomes go in one transaction together
(``record_jobs``): every job record under its own condition, and the counters item of each run once, with
the batch's increments summed — a transactional write costs two write units per item, so ten jobs cost
2 × 11 units instead of 2 × 20, and the run's hot counters item takes one write per batch, not per job.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING, Any

from jobgraph.adapters import table_layout as layout
from jobgraph.adapters.dynamodb.table import (
    TableAccess,
    condition_failed_first,
    conditional_failed,
    job_key,
    plain,
    progress_key,
    transaction_conflict,
    typed_key,
)
from jobgraph.core.errors import JobGraphError
from jobgraph.core.ids import is_task_id
from jobgraph.core.models import CompletedJob, IncomingJob, utc_now_iso
from jobgraph.core.ports import JobClaim, JobOutcome
from jobgraph.core.progress import counter_deltas

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import UpdateTypeDef

MAX_OUTCOME_TRIES = 5  # a job record changed between reading and writing it this often: give up loudly
# outcomes written in one transaction (record_jobs): each is an item, and so may be its counters item;
# DynamoDB takes up to 100 items per transaction
MAX_OUTCOMES_TOGETHER = 25


class DynamoJobStore(TableAccess):
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

    def _claim(self, job: IncomingJob, update: str, condition: str, values: dict[str, Any]) -> dict[str, Any] | None:
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
            if conditional_failed(exc):
                item = exc.response.get("Item")
                return plain(item if isinstance(item, dict) else {})
            raise
        return None

    def record_job(
        self, completed: CompletedJob, attempt: int = 1, expected_status: str | None = None
    ) -> dict[str, Any] | None:
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
        update, values = self._outcome_update(completed, attempt)
        old_status: str | None
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
                return self._item(key) or {}
            expected = {":old": {"S": old_status}} if old_status else {}
            condition = "#status = :old" if old_status else "attribute_not_exists(#status)"
            deltas = counter_deltas(completed.exec_type, old_status, status, completed.processing_time_ms)
            conditioned: UpdateTypeDef = {
                **update,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {**values, **expected},
            }
            try:
                if not deltas:
                    self.client.update_item(**conditioned)
                    return None
                counted = self._counter_update(progress_key(completed.run_id, completed.completed_at), deltas)
                self.client.transact_write_items(TransactItems=[{"Update": conditioned}, {"Update": counted}])
                return None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                    raise
                if code == "TransactionCanceledException" and not condition_failed_first(exc):
                    if not transaction_conflict(exc):
                        raise
                    # DynamoDB cancels a transaction that meets another on an item (here: the run's counters,
                    # written by every job of the run) instead of waiting: try again a little later
                    time.sleep(random.uniform(0.01, 0.05) * 2**tries)
        raise JobGraphError(
            f"job {completed.job_id}: its record kept changing while its outcome was written ({MAX_OUTCOME_TRIES} tries)"
        )

    def record_jobs(self, outcomes: list[JobOutcome]) -> list[dict[str, Any] | None]:
        """record_job for each outcome (answers in their order), their counters folded: one transaction
        holds every job record's update, each under the condition of the status its claim left, and one
        update per counters item with the increments of all its jobs summed.

        Exactly as safe as one at a time: if any condition fails (a claimant whose lease ran out completed
        the job meanwhile) DynamoDB writes nothing, and each outcome is then recorded alone (record_job
        reads what changed and answers with the completion that stands). Outcomes whose previous status is
        unknown, or that change no counter, are recorded alone from the start."""
        answers: list[dict[str, Any] | None] = [None] * len(outcomes)
        together: list[tuple[int, dict[str, int | float]]] = []  # (index, the counters it moves)
        alone: list[int] = []
        seen: set[tuple[str, str]] = set()
        for index, outcome in enumerate(outcomes):
            completed = outcome.completed
            key = (completed.run_id, completed.job_id)
            status = completed.status.value.upper()
            deltas = counter_deltas(completed.exec_type, outcome.expected_status, status, completed.processing_time_ms)
            # one operation per item in a transaction: a second outcome of the same job goes alone, after
            if outcome.expected_status is None or not deltas or key in seen:
                alone.append(index)
            else:
                together.append((index, deltas))
                seen.add(key)
        for start in range(0, len(together), MAX_OUTCOMES_TOGETHER):
            chunk = together[start : start + MAX_OUTCOMES_TOGETHER]
            if len(chunk) == 1 or not self._record_together([(outcomes[i], deltas) for i, deltas in chunk]):
                alone.extend(i for i, _ in chunk)
        for index in sorted(alone):
            outcome = outcomes[index]
            answers[index] = self.record_job(outcome.completed, outcome.attempt, outcome.expected_status)
        return answers

    def _record_together(self, outcomes: list[tuple[JobOutcome, dict[str, int | float]]]) -> bool:
        """One transaction of the outcomes (each with the counter deltas it moves) and their summed counters;
        False if a job's condition failed (or the counters kept meeting other transactions): then nothing
        was written."""
        from botocore.exceptions import ClientError

        items: list[dict[str, Any]] = []
        counters: dict[layout.Key, dict[str, int | float]] = {}
        for outcome, deltas in outcomes:
            completed = outcome.completed
            update, values = self._outcome_update(completed, outcome.attempt)
            conditioned: UpdateTypeDef = {
                **update,
                "ConditionExpression": "#status = :old",
                "ExpressionAttributeValues": {**values, ":old": {"S": str(outcome.expected_status)}},
            }
            items.append({"Update": conditioned})
            summed = counters.setdefault(layout.progress_key(completed.run_id, completed.completed_at), {})
            for name, delta in deltas.items():
                summed[name] = summed.get(name, 0) + delta
        for key, summed in counters.items():
            kept = {name: round(delta, 3) if isinstance(delta, float) else delta for name, delta in summed.items()}
            kept = {name: delta for name, delta in kept.items() if delta}
            if kept:
                items.append({"Update": self._counter_update(typed_key(key), kept)})
        for tries in range(MAX_OUTCOME_TRIES):
            try:
                self.client.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
                return True
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                    return False
                if not transaction_conflict(exc):
                    raise
                time.sleep(random.uniform(0.01, 0.05) * 2**tries)
        return False

    def _outcome_update(self, completed: CompletedJob, attempt: int) -> tuple[UpdateTypeDef, dict[str, Any]]:
        """The job record's UpdateItem for its outcome (all but its condition) and its expression values."""
        status = completed.status.value.upper()
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
        update: UpdateTypeDef = {
            "TableName": self.table_name,
            "Key": job_key(completed.run_id, completed.job_id),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE claimed_by, lease_until_ms ADD reports :one",
            "ExpressionAttributeNames": {"#status": "status"},
        }
        return update, values

    def _counter_update(self, key: dict[str, Any], deltas: dict[str, int | float]) -> UpdateTypeDef:
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

    def get_job(self, run_id: str, job_id: str) -> dict[str, Any] | None:
        """A job's record (a task's: its task record), or None if it has none."""
        return self._item(job_key(run_id, job_id))

    def job_attempts(self, run_id: str, job_id: str) -> int:
        """The attempt of the job's latest report (0 if it has no record)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key=job_key(run_id, job_id),
            ProjectionExpression="last_attempt",
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get("last_attempt", {}).get("N", "0"))

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

    def jobs_of_run(self, run_id: str) -> list[dict[str, Any]]:
        return self._query_all(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
            ExpressionAttributeValues={":pk": {"S": layout.run_partition(run_id)}, ":job": {"S": layout.JOB_SK_PREFIX}},
        )

    def job_page(
        self, run_id: str, status: str | None, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a run's job records, optionally only those whose latest status is ``status``.

        With a status it is one query of the status index's partition of exactly that run and status.
        Returns (items, the key to continue from or None at the end)."""
        kwargs: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        if status is None:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
                ExpressionAttributeValues={
                    ":pk": {"S": layout.run_partition(run_id)},
                    ":job": {"S": layout.JOB_SK_PREFIX},
                },
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
        return [plain(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey")
