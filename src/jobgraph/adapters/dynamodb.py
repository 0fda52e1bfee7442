"""Run and job metadata in one DynamoDB table (single-table design, boto3 imported lazily).

    pk = RUN#<run_id>   sk = RUN              the run: status, counters, timings
    pk = RUN#<run_id>   sk = JOB#<job_id>     one job: status, attempts, processing time, error
    GSI by-status: gsi1pk = RUN#<status> | JOB#<status>, gsi1sk = ISO time  (list runs/jobs by status)
    pk = CONFIG#page-tokens   sk = SECRET  the status API's pagination-token secret (no TTL)
    TTL attribute expires_at (RECORD_TTL_DAYS).

The countdown to MERGE is exactly-once under duplicates and concurrency: a sequence is counted by one
conditional update that adds it to the run's set of counted sequences (condition: not in it yet), and the
MERGE is claimed by one conditional update (remaining = 0 and no claim yet) that records which
AGGREGATION completion claimed it, so a redelivery of that same completion can re-send the MERGE
(FIFO-deduplicated) after a crash.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from jobgraph.core.errors import JobGraphError
from jobgraph.core.models import CompletedJob, RunStatus, utc_now_iso


class RunExistsError(JobGraphError):
    """A run with this run_id was started before."""


class RunNotFoundError(JobGraphError):
    pass


APPROVAL_SK = "APPROVAL"


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


def _plain(item: dict) -> dict:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def run_key(run_id: str) -> dict:
    return {"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}}


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
            "started_epoch_ms": {"N": str(int(time.time() * 1000))},
            "gsi1pk": {"S": f"RUN#{RunStatus.RUNNING.value}"},
            "gsi1sk": {"S": now},
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
                "SET #status = :done, completed_at = :now, duration_s = :duration, merged_key = :key, "
                "gsi1pk = :gsi, gsi1sk = :now"
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
        response = self.client.query(
            TableName=self.table_name,
            IndexName="by-status",
            KeyConditionExpression="gsi1pk = :status",
            ExpressionAttributeValues={":status": {"S": f"RUN#{status.value}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [_plain(item) for item in response.get("Items", [])]

    # --- jobs -----------------------------------------------------------------------------------
    def record_job(self, completed: CompletedJob, attempt: int = 1) -> None:
        """Upsert a job's latest status; attempts counts every report (retries included)."""
        status = completed.status.value.upper()
        names = {"#status": "status"}
        values = {
            ":status": {"S": status},
            ":exec": {"S": completed.exec_type.value},
            ":at": {"S": completed.completed_at},
            ":ms": {"N": f"{completed.processing_time_ms:.3f}"},
            ":attempt": {"N": str(attempt)},
            ":gsi": {"S": f"JOB#{status}"},
            ":ttl": self._expires_at(),
            ":one": {"N": "1"},
        }
        sets = [
            "#status = :status",
            "exec_type = :exec",
            "updated_at = :at",
            "processing_time_ms = :ms",
            "last_attempt = :attempt",
            "gsi1pk = :gsi",
            "gsi1sk = :at",
            "expires_at = :ttl",
        ]
        for field in ("sequence_id", "route_index", "output_key", "error_message", "correlation_id"):
            value = getattr(completed, field)
            if value is not None:
                values[f":{field}"] = {"N": str(value)} if isinstance(value, int) else {"S": str(value)[:2000]}
                sets.append(f"{field} = :{field}")
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"RUN#{completed.run_id}"}, "sk": {"S": f"JOB#{completed.job_id}"}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD reports :one",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

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
        """Jobs of a run whose latest status is ``status`` (a COUNT query; progress of a run on AWS)."""
        total, kwargs = 0, {}
        while True:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
                FilterExpression="#status = :status",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":pk": {"S": f"RUN#{run_id}"},
                    ":job": {"S": "JOB#"},
                    ":status": {"S": status},
                },
                Select="COUNT",
                **kwargs,
            )
            total += response.get("Count", 0)
            if "LastEvaluatedKey" not in response:
                return total
            kwargs = {"ExclusiveStartKey": response["LastEvaluatedKey"]}

    def job_page(
        self, run_id: str, status: str | None, limit: int, start_key: dict | None = None, max_pages: int = 20
    ) -> tuple[list[dict], dict | None]:
        """One page of a run's job records, optionally only those whose latest status is ``status``.

        With a status the query goes through the by-status GSI (gsi1pk = JOB#<STATUS>) filtered to the
        run; DynamoDB applies ``Limit`` before the filter, so up to ``max_pages`` queries are made to fill
        the page. Returns (items, the key to continue from or None at the end).
        """
        items: list[dict] = []
        key = start_key
        for _ in range(max_pages):
            kwargs = {"ExclusiveStartKey": key} if key else {}
            if status is None:
                response = self.client.query(
                    TableName=self.table_name,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :job)",
                    ExpressionAttributeValues={":pk": {"S": f"RUN#{run_id}"}, ":job": {"S": "JOB#"}},
                    Limit=limit - len(items),
                    **kwargs,
                )
            else:
                response = self.client.query(
                    TableName=self.table_name,
                    IndexName="by-status",
                    KeyConditionExpression="gsi1pk = :status",
                    FilterExpression="pk = :pk",
                    ExpressionAttributeValues={":status": {"S": f"JOB#{status}"}, ":pk": {"S": f"RUN#{run_id}"}},
                    Limit=limit - len(items),
                    **kwargs,
                )
            items.extend(_plain(i) for i in response.get("Items", []))
            key = response.get("LastEvaluatedKey")
            if key is None or len(items) >= limit:
                break
        return items, key

    # --- API tasks (POST /tasks, seed 004) ---------------------------------------------------------
    def claim_task(self, client_key: str, task_id: str, fingerprint: str) -> dict | None:
        """Record a task under its client key; None when new, else the task recorded before under that key."""
        from botocore.exceptions import ClientError

        now = utc_now_iso()
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    "pk": {"S": f"TASK#{client_key}"},
                    "sk": {"S": "TASK"},
                    "task_id": {"S": task_id},
                    "fingerprint": {"S": fingerprint},
                    "status": {"S": "ACCEPTED"},
                    "created_at": {"S": now},
                    "expires_at": self._expires_at(),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            response = self.client.get_item(
                TableName=self.table_name,
                Key={"pk": {"S": f"TASK#{client_key}"}, "sk": {"S": "TASK"}},
                ConsistentRead=True,
            )
            return _plain(response["Item"])
        return None

    def mark_task_queued(self, client_key: str) -> None:
        self.client.update_item(
            TableName=self.table_name,
            Key={"pk": {"S": f"TASK#{client_key}"}, "sk": {"S": "TASK"}},
            UpdateExpression="SET #status = :queued, queued_at = :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":queued": {"S": "QUEUED"}, ":now": {"S": utc_now_iso()}},
        )

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
        """RUNNING → FAILED (a job used up its attempts); False if the run had ended before."""
        run = self.get_run(run_id)
        now = utc_now_iso()
        duration_s = (time.time() * 1000 - float(run["started_epoch_ms"])) / 1000
        return self._update_if(
            run_id,
            UpdateExpression=(
                "SET #status = :failed, completed_at = :now, duration_s = :duration, #error = :error, "
                "gsi1pk = :gsi, gsi1sk = :now"
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
            Key={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": f"JOB#{job_id}"}},
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
