"""API tasks (POST /tasks, seed 004): the TaskStore port on DynamoDB, in the tasks' own namespace.

pk = TASK#<task_id>  sk = TASK              one API task: also its job record
pk = TASKKEY#<key>   sk = KEY               the client key a task was accepted under (idempotency)
pk = TASKS           sk = PROGRESS#<hour>   the tasks' counters per hour (recent medians for estimates)
"""

from __future__ import annotations

from typing import Any

from jobgraph.adapters.dynamodb.table import TableAccess, plain, task_key, typed_key
from jobgraph.adapters.table_layout import client_key_key, counters, tasks_progress_key
from jobgraph.core.errors import TaskNotFoundError
from jobgraph.core.models import utc_now_iso
from jobgraph.core.progress import Progress


class DynamoTaskStore(TableAccess):
    def claim_task(self, client_key: str, task_id: str, fingerprint: str) -> dict[str, Any] | None:
        """Remember that ``client_key`` names task ``task_id``; None when new, else the claim made before."""
        key = typed_key(client_key_key(client_key))
        item = {
            **key,
            "task_id": {"S": task_id},
            "fingerprint": {"S": fingerprint},
            "created_at": {"S": utc_now_iso()},
            "expires_at": self._expires_at(),
        }
        if self._put_new(item):
            return None
        return plain(self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)["Item"])

    def record_task_queued(self, task_id: str, client_key: str, correlation_id: str, details: dict[str, Any]) -> None:
        """The task's record once its job is on the queue: QUEUED, unless its job already moved it on."""
        now = utc_now_iso()
        values = {
            ":queued": {"S": "QUEUED"},
            ":now": {"S": now},
            ":key": {"S": client_key},
            ":group": {"S": correlation_id},
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

    def get_task(self, task_id: str) -> dict[str, Any]:
        """A task's record; TaskNotFoundError for an unknown (or expired) task."""
        item = self._item(task_key(task_id))
        if not item:
            raise TaskNotFoundError(f"task {task_id!r} not found")
        return item

    def task_progress(self, hours: list[str]) -> Progress:
        """The tasks' counters of these hours (ISO prefixes "YYYY-MM-DDTHH"), added up."""
        keys = [typed_key(tasks_progress_key(hour)) for hour in hours]
        response = self.client.batch_get_item(RequestItems={self.table_name: {"Keys": keys}})
        progress = Progress()
        for item in response.get("Responses", {}).get(self.table_name, []):
            progress = progress.merged(Progress.from_counters(counters(plain(item))))
        return progress
