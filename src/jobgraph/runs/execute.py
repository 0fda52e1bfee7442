"""The one run path: ``execute(workload, target, spec)`` — whatever runs (runs/workload.py), wherever
(runs/aws.py, runs/local.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from jobgraph.core.run import RunSpec
from jobgraph.runs.outcome import RunFailed, RunOutcome
from jobgraph.runs.progress import progress_bar
from jobgraph.runs.workload import StackRun, Workload


def execute(workload: Workload, target, spec: RunSpec, then: Callable[[RunOutcome], None] | None = None) -> RunOutcome:
    """Start ``workload`` on ``target``'s stack, follow it to its end, export its results and gather the report's
    figures; ``then`` (the report) sees the outcome while the target is still up (`run --serve` keeps it up)."""
    target.refuse(workload)
    target.output.check(spec.run_id)  # once, before anything is deployed or started
    with target.attach(spec.run_id):
        run = workload.on(target, spec)
        started = time.monotonic()
        run.start()
        target.after_start(spec.run_id)
        record = follow(run, target)
        wall_seconds = time.monotonic() - started
        run.settle(target.settle_s, target.check)
        target.before_report()
        outcome = run.outcome(record, wall_seconds)
        target.finish(outcome, spec)
        if then is not None:
            then(outcome)
        target.hold()
    return outcome


def follow(run: StackRun, target) -> dict:
    """Until the run has ended (its record); RunFailed when it failed, timed out, or stalled: ``stall_s`` without
    a finished job while nothing is left that could finish one."""
    patience = target.patience
    progress = target.progress(run)
    started = last_change = time.monotonic()
    last_done = -1
    with progress_bar(run.jobs, target.output.progress_bar) as bar:
        while True:
            target.check()
            record, current = run.poll(progress)
            bar.n = min(current.done, run.jobs)
            bar.set_postfix(current.postfix(), refresh=False)
            bar.refresh()
            if record is not None:
                return record
            now = time.monotonic()
            if current.done != last_done:
                last_done, last_change = current.done, now
            elif now - last_change > patience.stall_s and (stalled := run.stalled(current, patience.stall_s)):
                raise RunFailed(stalled)
            if now - started > patience.timeout_s:
                raise RunFailed(run.timed_out(current, patience.timeout_s))
            time.sleep(target.interval_s)
