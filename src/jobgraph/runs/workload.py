"""What every workload does on its stack, whatever the kind: the readers of the jobs table, the results bucket
and the alarms, the export of the results, and the job timings.

A Workload (graph.QueueGraph, statemachine.StateMachineGraph, load.SyntheticLoad) says what runs; ``on(target,
spec)`` binds it to an attached target as a StackRun, which ``execute`` starts, polls until it has ended and
asks for its outcome.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.local_disk import staged_run
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core.models import Sequence
from jobgraph.core.results import merged_key
from jobgraph.core.run import RunSpec
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.outputs import StackOutputs

# counting the job records is a query over the whole run: at most this often where nothing cheaper tells
PROGRESS_INTERVAL_S = 2.0


class Workload(Protocol):
    scenario: int  # runs/scenarios.py: which implementation's stack it runs on
    queue_fed: bool  # jobs enter through the stack's incoming queue (a local target can poison it)

    def on(self, target, spec: RunSpec) -> StackRun: ...


class StackRun:
    """One workload on an attached target's stack. Subclasses start it, poll it and gather its outcome."""

    def __init__(self, target, spec: RunSpec, jobs: int, outputs: StackOutputs):
        self.target, self.spec, self.jobs, self.outputs = target, spec, jobs, outputs
        self.table = JobsTable(outputs["JobsTableName"], client=target.client("dynamodb"))
        self.results = S3BlobStore(outputs["ResultsBucketName"], client=target.client("s3"))
        self._counted = (float("-inf"), Progress(done=0, total=jobs))

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def start(self) -> None:
        raise NotImplementedError

    def poll(self, progress: Callable[[], Progress]) -> tuple[dict | None, Progress]:
        """(the run record once the run has ended well, else None; the progress now); RunFailed if it failed."""
        raise NotImplementedError

    def outcome(self, record: dict, wall_seconds: float) -> RunOutcome:
        raise NotImplementedError

    def timed_out(self, current: Progress, timeout_s: float) -> str:
        return f"run {self.run_id} not COMPLETED after {timeout_s:.0f} s ({current.done}/{current.total} jobs)"

    def stalled(self, current: Progress, stall_s: float) -> str | None:
        """Why the run cannot finish any more after ``stall_s`` s without a finished job; None: it still can."""
        return None

    def settle(self, timeout_s: float, check: Callable[[], None]) -> None:
        """Let what is still in flight after the end land before the report (nothing, unless overridden)."""

    def progress(self) -> Progress:
        """Jobs recorded COMPLETED, counted at most every PROGRESS_INTERVAL_S."""
        if time.monotonic() - self._counted[0] >= PROGRESS_INTERVAL_S:
            self._counted = (time.monotonic(), Progress(done=self.table.count_jobs(self.run_id), total=self.jobs))
        return self._counted[1]

    def alarm_states(self) -> dict[str, str]:
        return alarm_states(self.target.client("cloudwatch"), self.target.stack_name)

    def unfinished_jobs(self) -> list[dict]:
        """The run's jobs whose latest report is not COMPLETED: id, stage, status, attempts and error."""
        return [
            {
                "job_id": r["sk"].removeprefix("JOB#"),
                "exec_type": r.get("exec_type"),
                "status": r.get("status"),
                "attempts": int(r.get("last_attempt", 1)),
                "error": str(r.get("error_message", ""))[:500],
            }
            for r in self.table.jobs_of_run(self.run_id)
            if r.get("status") != "COMPLETED"
        ]

    def failure(self, reason: str, limit: int = 100) -> dict:
        """What a failed run's stack still knows, for its record (the local cloud's vanishes after the run)."""
        unfinished = self.unfinished_jobs()
        return {
            "reason": reason,
            "jobs": self.jobs,
            "jobs_completed": self.table.count_jobs(self.run_id),
            "unfinished_total": len(unfinished),
            "unfinished_jobs": unfinished[:limit],
        }

    def job_timings(self) -> tuple[dict[str, list[float]], dict[str, int]]:
        """Per-stage processing times (ms) and attempts per job, from the job records."""
        stage_ms: dict[str, list[float]] = defaultdict(list)
        attempts: dict[str, int] = {}
        for record in self.table.jobs_of_run(self.run_id):
            job_id = record["sk"].removeprefix("JOB#")
            attempts[job_id] = int(record.get("last_attempt", 1))
            if record.get("status") == "COMPLETED":
                stage_ms[record["exec_type"]].append(float(record["processing_time_ms"]))
        return stage_ms, attempts

    def export(self) -> Path:
        """Copy <run_id>/ from the results bucket to ``<out>/<run_id>`` (GUIDE §5 layout), all or nothing."""
        output, run_id = self.target.output, self.run_id
        keys = self.results.list(f"{run_id}/")
        if merged_key(run_id) not in keys:
            raise RunFailed(f"{self.results.describe()}{merged_key(run_id)} is missing: the run has no result")
        with staged_run(output.folder, run_id, overwrite=output.overwrite) as local, ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda key: local.put(key, self.results.get(key)), keys))
        return output.folder / run_id

    def merged(self) -> dict:
        return json.loads(self.results.get(merged_key(self.run_id)))

    def console_link(self, output_key: str) -> str:
        """The stack's console page from its outputs, where the target has a console to link to."""
        return self.outputs.get(output_key, "") if self.target.links_to_console else ""


def alarm_states(cloudwatch, stack_name: str) -> dict[str, str]:
    """State of every alarm of the stack (alarm names start with the stack name)."""
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack_name}-").get("MetricAlarms", [])
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def start_run_payload(sequences: list[Sequence], spec: RunSpec) -> dict:
    """The StartRun event (events/start-run.json has the same shape), made where the request is defined."""
    from jobgraph.services.start_run import run_request  # Powertools' logger: only when a run starts

    return run_request(sequences, spec)
