"""Runs and their counters in memory: the RunStore port's fake (adapters/dynamodb/runs.py is the real one)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from jobgraph.adapters.memory.table import MemoryAccess, number, page_of
from jobgraph.adapters.table_layout import RUN_INDEXES, counters, run_key, run_progress_key
from jobgraph.core.errors import RunExistsError, RunNotFoundError
from jobgraph.core.ids import is_task_id
from jobgraph.core.models import RunStatus, utc_now_iso
from jobgraph.core.ports import PageKey, Record
from jobgraph.core.progress import Progress


class MemoryRunStore(MemoryAccess):
    def create_run(
        self, run_id: str, test_run_id: str, sequences: int, jobs_total: int, scenarios: int, seed: int
    ) -> None:
        now = utc_now_iso()
        running = RunStatus.RUNNING.value
        with self.memory.lock:
            if self.memory.get(run_key(run_id)) is not None:
                raise RunExistsError(f"run {run_id!r} already exists in table {self.table_name}")
            self.memory.put(
                run_key(run_id),
                {
                    "run_id": run_id,
                    "status": running,
                    "test_run_id": test_run_id,
                    "sequences_total": number(sequences),
                    "sequences_remaining": number(sequences),
                    "jobs_total": number(jobs_total),
                    "scenarios": number(scenarios),
                    "seed": number(seed),
                    "started_at": now,
                    "created_at": now,
                    "started_epoch_ms": number(int(time.time() * 1000)),
                    "gsi1pk": f"RUN#{running}",
                    "gsi1sk": now,
                    "gsi2pk": f"TESTRUN#{test_run_id}",
                    "gsi2sk": now,
                    "expires_at": self.memory.expires_at(),
                },
            )

    def get_run(self, run_id: str) -> Record:
        run = self.memory.get(run_key(run_id))
        if run is None:
            raise RunNotFoundError(f"run {run_id!r} not found in table {self.table_name}")
        return run

    def count_down_sequence(self, run_id: str, sequence_id: int) -> bool:
        with self.memory.lock:
            run = self.memory.items.get(run_key(run_id))
            if run is None:
                raise RunNotFoundError(f"run {run_id!r}: cannot count sequence {sequence_id}")
            counted: set[Decimal] = run.get("counted_sequences", set())
            if run["sequences_remaining"] <= 0 or number(sequence_id) in counted:
                return False
            run["counted_sequences"] = counted | {number(sequence_id)}
            run["sequences_remaining"] -= 1
            return True

    def claim_merge(self, run_id: str, claimant_job_id: str) -> bool:
        with self.memory.lock:
            run = self.memory.items.get(run_key(run_id))
            if run is None or run.get("sequences_remaining") != 0:
                return False
            if run.get("merge_claimed_by", claimant_job_id) != claimant_job_id:
                return False
            run.update(merge_claimed_by=claimant_job_id, merge_claimed_at=utc_now_iso())
            return True

    def _end(self, run_id: str, status: RunStatus, **changes: Any) -> bool:
        """RUNNING -> ``status`` with the run's duration; False if it ended before."""
        with self.memory.lock:
            run = self.get_run(run_id)
            if run["status"] != RunStatus.RUNNING.value:
                return False
            duration_s = (time.time() * 1000 - float(run["started_epoch_ms"])) / 1000
            self.memory.update(
                run_key(run_id),
                {
                    "status": status.value,
                    "completed_at": utc_now_iso(),
                    "duration_s": number(f"{duration_s:.3f}"),
                    "gsi1pk": f"RUN#{status.value}",
                    **changes,
                },
            )
            return True

    def complete_run(self, run_id: str, merged_key: str) -> bool:
        return self._end(run_id, RunStatus.COMPLETED, merged_key=merged_key)

    def fail_run(self, run_id: str, error: str) -> bool:
        if is_task_id(run_id):
            return False
        return self._end(run_id, RunStatus.FAILED, error=error[:2000])

    def mark_run_announced(self, run_id: str, event_id: str) -> bool:
        with self.memory.lock:
            run = self.memory.items.get(run_key(run_id))
            if run is None or "announced_event_id" in run:
                return False
            run.update(announced_event_id=event_id, announced_at=utc_now_iso())
            return True

    def runs_by_status(self, status: RunStatus, limit: int = 50) -> list[Record]:
        items, _ = self.run_page("status", status.value, limit)
        return items

    def run_page(
        self,
        index: str,
        value: str,
        limit: int,
        start_key: PageKey | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> tuple[list[Record], PageKey | None]:
        attribute, _, prefix = RUN_INDEXES[index]
        low, high = since or "0", until or "~"
        with self.memory.lock:
            found = [
                item
                for item in self.memory.items.values()
                if item.get(f"{attribute}pk") == f"{prefix}{value}" and low <= str(item[f"{attribute}sk"]) <= high
            ]
        order = sorted(found, key=lambda item: (str(item[f"{attribute}sk"]), str(item["pk"])), reverse=True)
        return page_of(order, limit, start_key, ("pk", "sk", f"{attribute}pk", f"{attribute}sk"))

    def run_with_progress(self, run_id: str) -> tuple[Record, Progress]:
        with self.memory.lock:
            run = self.get_run(run_id)
            progress = self.memory.get(run_progress_key(run_id)) or {}
        return run, Progress.from_counters(counters(progress))

    def count_jobs(self, run_id: str, status: str = "COMPLETED") -> int:
        if status not in ("COMPLETED", "FAILED"):
            raise ValueError(f"only COMPLETED and FAILED jobs are counted, not {status!r}")
        progress = self.memory.get(run_progress_key(run_id)) or {}
        return int(progress.get(f"n{status[0]}", 0))
