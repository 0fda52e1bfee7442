"""`jobgraph load`: the specification's synthetic load runner (seed 000/001's perf runner).

N independent SYNTHETIC jobs (``--work-duration-ms``, ``--data-size-kb``) are sent to the stack's incoming
queue, 10 per SendMessageBatch call, by ``--concurrency`` concurrent senders, and followed until every
job's record says COMPLETED. The Processor (scenario 1; the container worker in scenario 2) runs them with
the same idempotent stage code as graph jobs; the Scheduler has nothing to schedule after them. Runs on any
target, and gives a RunOutcome like a graph run, so the run record, cost and comparison work the same.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jobgraph.adapters.local_disk import fresh_run_dir
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.graph import synthetic_jobs
from jobgraph.core.run import RunSpec
from jobgraph.runs.graph import QueueStackRun
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome


@dataclass(frozen=True)
class SyntheticLoad:
    """``messages`` SYNTHETIC jobs of ``work_duration_ms`` and ``data_size_kb`` each (scenario 1 or 2)."""

    messages: int
    work_duration_ms: int
    data_size_kb: int
    concurrency: int = 4  # concurrent senders
    groups: int = 100  # FIFO message groups the jobs are spread over
    scenario: int = 1
    queue_fed = True

    def on(self, target, spec: RunSpec) -> LoadRun:
        return LoadRun(self, target, spec)


class LoadRun(QueueStackRun):
    def __init__(self, load: SyntheticLoad, target, spec: RunSpec):
        super().__init__(target, spec, load.messages)
        self.load = load
        self.send_seconds = 0.0

    def start(self) -> None:
        """Send every job, 10 per call, from ``concurrency`` threads.

        The sends go through the target's billed client: they are part of what the load costs (on AWS
        the sender pays for them too); the run's own queue readers are the harness's."""
        load = self.load
        queue = FifoQueue(self.outputs["IncomingQueueUrl"], client=self.target.client("sqs", billed=True))
        jobs = synthetic_jobs(self.spec, load.messages, load.work_duration_ms, load.data_size_kb, load.groups)
        share = math.ceil(len(jobs) / load.concurrency / 10) * 10  # whole batches per sender
        slices = [jobs[i : i + share] for i in range(0, len(jobs), share)]
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=load.concurrency) as senders:
            sent = sum(senders.map(queue.send_jobs, slices))
        if sent != load.messages:
            raise RunFailed(f"sent {sent} of {load.messages} messages")
        self.send_seconds = time.monotonic() - started

    def poll(self, progress: Callable[[], Progress]) -> tuple[dict | None, Progress]:
        """Ended when every job is recorded COMPLETED (a load has no run record: {} stands for it)."""
        current = progress()
        return ({} if current.done >= self.load.messages else None), current

    def stalled(self, current: Progress, stall_s: float) -> str | None:
        if self.in_flight():
            return None
        return (
            f"load {self.run_id} stalled at {current.done}/{self.load.messages} jobs with empty queues; "
            f"dead-letter queues: {self.dlq_depths()}"
        )

    def timed_out(self, current: Progress, timeout_s: float) -> str:
        return f"load {self.run_id}: {current.done}/{self.load.messages} jobs after {timeout_s:.0f} s"

    def outcome(self, record: dict, wall_seconds: float) -> RunOutcome:
        load, output = self.load, self.target.output
        run_dir = fresh_run_dir(output.folder, self.run_id, output.overwrite)  # its record only: no results
        return RunOutcome(
            run_id=self.run_id,
            stack_name=self.target.stack_name,
            mode=self.target.mode,
            out_dir=run_dir,
            sequences=0,
            jobs=load.messages,
            wall_seconds=wall_seconds,
            merged={},
            run_record=record,
            scenario=load.scenario,
            **self.observations(),
            extra={
                "load": {
                    "messages": load.messages,
                    "work_duration_ms": load.work_duration_ms,
                    "data_size_kb": load.data_size_kb,
                    "concurrency": load.concurrency,
                    "groups": load.groups,
                    "send_seconds": self.send_seconds,
                    "jobs_per_second": load.messages / wall_seconds if wall_seconds else None,
                }
            },
        )
