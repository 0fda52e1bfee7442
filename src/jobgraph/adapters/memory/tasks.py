"""API tasks in memory: the TaskStore port's fake (adapters/dynamodb/tasks.py is the real one)."""

from __future__ import annotations

from jobgraph.adapters.memory.table import MemoryAccess, number
from jobgraph.adapters.table_layout import client_key_key, counters, task_key, tasks_progress_key
from jobgraph.core.errors import TaskNotFoundError
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import Record
from jobgraph.core.progress import Progress


class MemoryTaskStore(MemoryAccess):
    def claim_task(self, client_key: str, task_id: str, fingerprint: str) -> Record | None:
        key = client_key_key(client_key)
        with self.memory.lock:
            earlier = self.memory.get(key)
            if earlier is not None:
                return earlier
            item = {"task_id": task_id, "fingerprint": fingerprint, "created_at": utc_now_iso()}
            self.memory.put(key, {**item, "expires_at": self.memory.expires_at()})
            return None

    def record_task_queued(self, task_id: str, client_key: str, correlation_id: str, details: dict[str, int]) -> None:
        now = utc_now_iso()
        with self.memory.lock:
            item = self.memory.get(task_key(task_id)) or {}
            self.memory.update(
                task_key(task_id),
                {
                    "status": item.get("status", "QUEUED"),
                    "exec_type": item.get("exec_type", "SYNTHETIC"),
                    "created_at": item.get("created_at", now),
                    "updated_at": item.get("updated_at", now),
                    "queued_at": now,
                    "client_key": client_key,
                    "message_group_id": correlation_id,  # the attribute keeps its name: records already stored
                    "expires_at": self.memory.expires_at(),
                    **{name: number(value) for name, value in details.items()},
                },
            )

    def get_task(self, task_id: str) -> Record:
        item = self.memory.get(task_key(task_id))
        if not item:
            raise TaskNotFoundError(f"task {task_id!r} not found")
        return item

    def task_progress(self, hours: list[str]) -> Progress:
        progress = Progress()
        for hour in hours:
            item = self.memory.get(tasks_progress_key(hour))
            if item is not None:
                progress = progress.merged(Progress.from_counters(counters(item)))
        return progress
