"""TaskStore: a client key names one task; the task's record once queued."""

from __future__ import annotations

import pytest

from jobgraph.core.errors import TaskNotFoundError
from jobgraph.core.ports import TaskStore

TASK = "task-" + "b" * 32


def test_a_client_key_is_claimed_once_and_answers_with_the_first_task(table: TaskStore) -> None:
    assert table.claim_task("key-1", TASK, "fingerprint-1") is None
    earlier = table.claim_task("key-1", "task-" + "c" * 32, "fingerprint-2")
    assert earlier is not None and (earlier["task_id"], earlier["fingerprint"]) == (TASK, "fingerprint-1")


def test_a_queued_task_is_readable_and_queuing_again_keeps_its_first_status(table: TaskStore) -> None:
    with pytest.raises(TaskNotFoundError, match=TASK):
        table.get_task(TASK)
    table.record_task_queued(TASK, "key-1", "api-tasks", {"size_kb": 8, "work_ms": 5})
    task = table.get_task(TASK)
    assert (task["status"], task["exec_type"], task["message_group_id"]) == ("QUEUED", "SYNTHETIC", "api-tasks")
    assert (task["size_kb"], task["work_ms"]) == (8, 5) and task["queued_at"] == task["created_at"]
    table.record_task_queued(TASK, "key-1", "other-group", {"size_kb": 8, "work_ms": 5})
    again = table.get_task(TASK)
    assert again["created_at"] == task["created_at"] and again["message_group_id"] == "other-group"
