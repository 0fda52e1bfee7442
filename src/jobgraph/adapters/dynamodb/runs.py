"""Runs (pk RUN#<run_id>, sk RUN) and their counters (sk PROGRESS): the RunStore port on DynamoDB.

The countdown to MERGE is exactly-once under duplicates and concurrency: a sequence is counted by one
conditional update that adds it to the run's set of counted sequences (condition: not in it yet), and the
MERGE is claimed by one conditional update (remaining = 0 and no claim yet) that records which
AGGREGATION completion claimed it, so a redelivery of that same completion can re-send the MERGE
(FIFO-deduplicated) after a crash.
"""

from __future__ import annotations

import time
from typing import Any

from jobgraph.adapters.dynamodb.table import TableAccess, plain, run_key, typed_key
from jobgraph.adapters.table_layout import RUN_INDEXES, counters, run_progress_key
from jobgraph.core.errors import RunExistsError, RunNotFoundError
from jobgraph.core.ids import is_task_id
from jobgraph.core.models import RunStatus, utc_now_iso
from jobgraph.core.progress import Progress


class DynamoRunStore(TableAccess):
    def create_run(
        self, run_id: str, test_run_id: str, sequences: int, jobs_total: int, scenarios: int, seed: int
    ) -> None:
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
        if not self._put_new(item):
            raise RunExistsError(f"run {run_id!r} already exists in table {self.table_name}")

    def get_run(self, run_id: str) -> dict[str, Any]:
        run = self._item(run_key(run_id))
        if run is None:
            raise RunNotFoundError(f"run {run_id!r} not found in table {self.table_name}")
        return run

    def count_down_sequence(self, run_id: str, sequence_id: int) -> bool:
        """Count one finished sequence; False if it was counted before (duplicate delivery).

        One conditional update of the run item: the sequence joins the run's set of counted sequences and
        the countdown drops by one, only if the set does not hold it yet. Atomic, so duplicates and
        concurrent schedulers count each sequence exactly once, with a single write (a transaction with
        a marker item would cost four write units). The set bounds a run to what fits in one 400 KB item,
        far above StartRun's 6 MB payload limit (~4000 sequences).
        """
        counted = self._update_if(
            run_key(run_id),
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
        if not counted and self._item(run_key(run_id)) is None:
            raise RunNotFoundError(f"run {run_id!r}: cannot count sequence {sequence_id}")
        return counted

    def claim_merge(self, run_id: str, claimant_job_id: str) -> bool:
        """True for exactly one claimant once every sequence is counted (and again for that claimant)."""
        return self._update_if(
            run_key(run_id),
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

    def _end(self, run_id: str, status: RunStatus, attribute: str, value: str) -> bool:
        """RUNNING -> ``status`` with the run's duration and ``attribute`` (merged_key, error) set to ``value``;
        False if the run ended before."""
        run = self.get_run(run_id)
        duration_s = (time.time() * 1000 - float(run["started_epoch_ms"])) / 1000
        return self._update_if(
            run_key(run_id),
            # gsi1sk stays the creation time: the status index lists runs by status and creation
            UpdateExpression=(
                "SET #status = :end, completed_at = :now, duration_s = :duration, #attribute = :value, gsi1pk = :gsi"
            ),
            ConditionExpression="#status = :running",
            ExpressionAttributeNames={"#status": "status", "#attribute": attribute},
            ExpressionAttributeValues={
                ":end": {"S": status.value},
                ":running": {"S": RunStatus.RUNNING.value},
                ":now": {"S": utc_now_iso()},
                ":duration": {"N": f"{duration_s:.3f}"},
                ":value": {"S": value},
                ":gsi": {"S": f"RUN#{status.value}"},
            },
        )

    def complete_run(self, run_id: str, merged_key: str) -> bool:
        """RUNNING → COMPLETED with timings; False if it was completed before."""
        return self._end(run_id, RunStatus.COMPLETED, "merged_key", merged_key)

    def fail_run(self, run_id: str, error: str) -> bool:
        """RUNNING → FAILED (a job used up its attempts); False if the run had ended before, or if ``run_id`` is
        an API task's (it has no run: its own record says FAILED)."""
        if is_task_id(run_id):
            return False
        return self._end(run_id, RunStatus.FAILED, "error", error[:2000])

    def mark_run_announced(self, run_id: str, event_id: str) -> bool:
        """Remember that the run's end was published (once; False if it was before)."""
        return self._update_if(
            run_key(run_id),
            UpdateExpression="SET announced_event_id = :id, announced_at = :now",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(announced_event_id)",
            ExpressionAttributeValues={":id": {"S": event_id}, ":now": {"S": utc_now_iso()}},
        )

    def runs_by_status(self, status: RunStatus, limit: int = 50) -> list[dict[str, Any]]:
        items, _ = self.run_page("status", status.value, limit)
        return items

    def run_page(
        self,
        index: str,
        value: str,
        limit: int,
        start_key: dict[str, Any] | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Runs newest first from one partition of an index: ``index`` "status" (``value`` a run status) or
        "test_run" (a test_run_id), created between ``since`` and ``until`` (ISO times, inclusive) if given."""
        attribute, name, prefix = RUN_INDEXES[index]
        condition = f"{attribute}pk = :pk"
        values = {":pk": {"S": f"{prefix}{value}"}}
        if since or until:
            condition += f" AND {attribute}sk BETWEEN :since AND :until"
            # "~" sorts after every character of an ISO time: an open end includes all of that day
            values[":since"], values[":until"] = {"S": since or "0"}, {"S": until or "~"}
        kwargs: dict[str, Any] = {"ExclusiveStartKey": start_key} if start_key else {}
        response = self.client.query(
            TableName=self.table_name,
            IndexName=name,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ScanIndexForward=False,
            Limit=limit,
            **kwargs,
        )
        return [plain(item) for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    def run_with_progress(self, run_id: str) -> tuple[dict[str, Any], Progress]:
        """The run record and its counters in one query (the two items of its partition that sort from
        PROGRESS on: PROGRESS, RUN; the JOB# items sort before). RunNotFoundError for an unknown run."""
        progress = typed_key(run_progress_key(run_id))
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk AND sk >= :progress",
            ExpressionAttributeValues={":pk": progress["pk"], ":progress": progress["sk"]},
            ConsistentRead=True,
        )
        items = {item["sk"]["S"]: plain(item) for item in response.get("Items", [])}
        if "RUN" not in items:
            raise RunNotFoundError(f"run {run_id!r} not found in table {self.table_name}")
        return items["RUN"], Progress.from_counters(counters(items.get("PROGRESS", {})))

    def count_jobs(self, run_id: str, status: str = "COMPLETED") -> int:
        """Jobs of a run whose latest status is ``status`` (COMPLETED or FAILED), from its counters: one read."""
        if status not in ("COMPLETED", "FAILED"):
            raise ValueError(f"only COMPLETED and FAILED jobs are counted, not {status!r}")
        response = self.client.get_item(
            TableName=self.table_name,
            Key=typed_key(run_progress_key(run_id)),
            ConsistentRead=True,
        )
        return int(response.get("Item", {}).get(f"n{status[0]}", {}).get("N", "0"))
