"""Job records in memory: the JobStore port's fake (adapters/dynamodb/jobs.py is the real one).

The same rules: a claim is granted for a new job, a failed one (its status stays FAILED, what the counters
count), an expired lease or the same claimant; a completion is never overwritten; an outcome and its run's
counters change together (one call under the table's lock, as one transaction on DynamoDB).
"""

from __future__ import annotations

import time
from typing import Any

from jobgraph.adapters.memory.table import MemoryAccess, number, page_of
from jobgraph.adapters.table_layout import JOB_SK_PREFIX, job_key, progress_key, run_partition
from jobgraph.core.ids import is_task_id
from jobgraph.core.models import CompletedJob, IncomingJob, utc_now_iso
from jobgraph.core.ports import JobClaim, JobOutcome, PageKey, Record
from jobgraph.core.progress import counter_deltas

OPTIONAL = ("sequence_id", "route_index", "output_key", "error_message", "correlation_id", "input_size_bytes")


def _lease_free(item: Record, claimant: str, now_ms: int) -> bool:
    lease = item.get("lease_until_ms")
    return lease is None or lease < now_ms or item.get("claimed_by") == claimant


class MemoryJobStore(MemoryAccess):
    def claim_job(
        self, job: IncomingJob, claimant: str, lease_ms: int, attempt: int = 1, now_ms: int | None = None
    ) -> JobClaim:
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        key = job_key(job.run_id, job.job_id)
        with self.memory.lock:
            item = self.memory.get(key)
            status = item.get("status") if item else None
            if item and (status == "COMPLETED" or not _lease_free(item, claimant, now_ms)):
                return JobClaim(False, status, item)
            self.memory.update(
                key,
                {
                    "status": status if status == "FAILED" else "PROCESSING",
                    "claimed_by": claimant,
                    "lease_until_ms": number(now_ms + max(0, int(lease_ms))),
                    "last_attempt": number(attempt),
                    "exec_type": job.exec_type.value,
                    "created_at": (item or {}).get("created_at", job.submitted_at),
                    "expires_at": self.memory.expires_at(),
                },
            )
            return JobClaim(True, "FAILED" if status == "FAILED" else "PROCESSING")

    def record_job(
        self, completed: CompletedJob, attempt: int = 1, expected_status: str | None = None
    ) -> Record | None:
        """``expected_status`` only saves DynamoDB a read; here the stored status is at hand."""
        status = completed.status.value.upper()
        key = job_key(completed.run_id, completed.job_id)
        with self.memory.lock:
            item = self.memory.get(key) or {}
            if item.get("status") == "COMPLETED":
                return item
            changes: dict[str, Any] = {
                "status": status,
                "exec_type": completed.exec_type.value,
                "updated_at": completed.completed_at,
                "created_at": item.get("created_at", completed.completed_at),
                "processing_time_ms": number(f"{completed.processing_time_ms:.3f}"),
                "last_attempt": number(attempt),
                "expires_at": self.memory.expires_at(),
            }
            if not is_task_id(completed.run_id):  # tasks are not listed per run
                changes.update(gsi1pk=f"JOBS#{completed.run_id}#{status}", gsi1sk=completed.completed_at)
            for name in OPTIONAL:
                value = getattr(completed, name)
                if value is not None:
                    changes[name] = number(value) if isinstance(value, int) else str(value)[:2000]
            self.memory.update(key, changes)
            for released in ("claimed_by", "lease_until_ms"):
                self.memory.items[key].pop(released, None)
            self.memory.add(key, {"reports": 1})
            deltas = counter_deltas(completed.exec_type, item.get("status"), status, completed.processing_time_ms)
            if deltas:
                counters_key = progress_key(completed.run_id, completed.completed_at)
                self.memory.add(counters_key, deltas)
                self.memory.items[counters_key]["expires_at"] = self.memory.expires_at()
            return None

    def record_jobs(self, outcomes: list[JobOutcome]) -> list[Record | None]:
        """One at a time: each is already one step under the table's lock."""
        return [self.record_job(o.completed, o.attempt, o.expected_status) for o in outcomes]

    def get_job(self, run_id: str, job_id: str) -> Record | None:
        return self.memory.get(job_key(run_id, job_id)) or None

    def job_attempts(self, run_id: str, job_id: str) -> int:
        item = self.memory.get(job_key(run_id, job_id)) or {}
        return int(item.get("last_attempt", 0))

    def record_poison(self, message_id: str, error: str, body: str) -> None:
        now = utc_now_iso()
        with self.memory.lock:
            self.memory.put(
                ("POISON", f"MSG#{message_id}"),
                {
                    "status": "FAILED",
                    "error_message": error[:2000],
                    "body": body[:4000],
                    "updated_at": now,
                    "gsi1pk": "JOB#FAILED",
                    "gsi1sk": now,
                    "expires_at": self.memory.expires_at(),
                },
            )

    def jobs_of_run(self, run_id: str) -> list[Record]:
        with self.memory.lock:
            return self.memory.partition(run_partition(run_id), JOB_SK_PREFIX)

    def job_page(
        self, run_id: str, status: str | None, limit: int, start_key: PageKey | None = None
    ) -> tuple[list[Record], PageKey | None]:
        with self.memory.lock:
            if status is None:
                return page_of(
                    self.memory.partition(run_partition(run_id), JOB_SK_PREFIX), limit, start_key, ("pk", "sk")
                )
            index = f"JOBS#{run_id}#{status}"
            found = [dict(item) for item in self.memory.items.values() if item.get("gsi1pk") == index]
        order = sorted(found, key=lambda item: (str(item["gsi1sk"]), str(item["pk"]), str(item["sk"])))
        return page_of(order, limit, start_key, ("pk", "sk", "gsi1pk", "gsi1sk"))
