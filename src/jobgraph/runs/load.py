"""`jobgraph load`: the specification's synthetic load runner (seed 000/001's perf runner).

N independent SYNTHETIC jobs (``--work-duration-ms``, ``--data-size-kb``) are sent to the stack's incoming
queue, 10 per SendMessageBatch call, by ``--concurrency`` concurrent senders, and followed until every
job's record says COMPLETED. The Processor (scenario 1; the container worker in scenario 2) runs them with
the same idempotent stage code as graph jobs; the Scheduler has nothing to schedule after them. Works on
the embedded local cloud and on a deployed stack (``--stack``), and returns a RunOutcome like a graph run,
so the run record, cost and comparison work the same.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from jobgraph.adapters.local_disk import check_destination
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.graph import RunSpec, synthetic_jobs
from jobgraph.runs.driver import GraphRun, Progress, RunFailed, RunOutcome
from jobgraph.runs.progress import progress_bar


@dataclass(frozen=True)
class LoadSpec:
    run: RunSpec
    messages: int
    work_duration_ms: int
    data_size_kb: int
    concurrency: int = 4  # concurrent senders
    groups: int = 100  # FIFO message groups the jobs are spread over


def send_load(run: GraphRun, load: LoadSpec, sender: FifoQueue | None = None) -> float:
    """Send every job, 10 per call, from ``concurrency`` threads; returns the seconds it took.

    ``sender``: the incoming queue through a client whose calls count as the workload's (the local
    cloud's meter); the run's own queue client is the harness's."""
    queue = sender or run.queues["incoming"]
    jobs = synthetic_jobs(load.run, load.messages, load.work_duration_ms, load.data_size_kb, load.groups)
    share = math.ceil(len(jobs) / load.concurrency / 10) * 10  # whole batches per sender
    slices = [jobs[i : i + share] for i in range(0, len(jobs), share)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=load.concurrency) as senders:
        sent = sum(senders.map(queue.send_jobs, slices))
    if sent != load.messages:
        raise RunFailed(f"sent {sent} of {load.messages} messages")
    return time.monotonic() - started


def follow(
    run: GraphRun,
    load: LoadSpec,
    progress: Callable[[], Progress],
    *,
    timeout_s: float,
    stall_s: float,
    interval_s: float,
    check: Callable[[], None],
    show_progress: bool,
) -> None:
    """Until every job is recorded COMPLETED; RunFailed on timeout or on a stall with empty queues."""
    started = last_change = time.monotonic()
    last_done = -1
    with progress_bar(load.messages, show_progress) as bar:
        while True:
            check()
            current = progress()
            bar.n = min(current.done, load.messages)
            bar.refresh()
            if current.done >= load.messages:
                return
            now = time.monotonic()
            if current.done != last_done:
                last_done, last_change = current.done, now
            elif now - last_change > stall_s and run.in_flight() == 0:
                raise RunFailed(
                    f"load {load.run.run_id} stalled at {current.done}/{load.messages} jobs with empty queues; "
                    f"dead-letter queues: {run.dlq_depths()}"
                )
            if now - started > timeout_s:
                raise RunFailed(f"load {load.run.run_id}: {current.done}/{load.messages} jobs after {timeout_s:.0f} s")
            time.sleep(interval_s)


def execute_load(
    run: GraphRun,
    load: LoadSpec,
    out_dir: Path,
    *,
    mode: str,
    progress: Callable[[], Progress],
    overwrite: bool,
    show_progress: bool,
    timeout_s: float,
    stall_s: float,
    interval_s: float,
    check: Callable[[], None] = lambda: None,
    scenario: int = 1,
    sender: FifoQueue | None = None,
) -> RunOutcome:
    check_destination(out_dir, load.run.run_id, overwrite)
    started = time.monotonic()
    send_s = send_load(run, load, sender)
    follow(
        run, load, progress, timeout_s=timeout_s, stall_s=stall_s, interval_s=interval_s, check=check,
        show_progress=show_progress,
    )  # fmt: skip
    wall = time.monotonic() - started
    run_dir = out_dir / load.run.run_id  # the load's record only: no results to export
    if run_dir.exists() and overwrite:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunOutcome(
        run_id=load.run.run_id,
        stack_name=run.outputs.stack_name,
        mode=mode,
        out_dir=run_dir,
        sequences=0,
        jobs=load.messages,
        wall_seconds=wall,
        merged={},
        run_record={},
        scenario=scenario,
        **run.observations(load.run.run_id),
        extra={
            "load": {
                "messages": load.messages,
                "work_duration_ms": load.work_duration_ms,
                "data_size_kb": load.data_size_kb,
                "concurrency": load.concurrency,
                "groups": load.groups,
                "send_seconds": send_s,
                "jobs_per_second": load.messages / wall if wall else None,
            }
        },
    )
