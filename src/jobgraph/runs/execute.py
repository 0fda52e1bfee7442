"""The one run path: ``execute(workload, target, spec)`` — whatever runs (runs/workload.py), wherever
(runs/aws.py, runs/local.py)."""

from __future__ import annotations

import json
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from jobgraph.adapters.local_disk import RUN_RECORD, staged_run, write_error_log
from jobgraph.core.bounds import read_json
from jobgraph.core.errors import ONE_LINE_LIMIT, JobGraphError, one_line
from jobgraph.core.models import utc_now_iso
from jobgraph.core.run import RunSpec
from jobgraph.runs.outcome import FAILED_RUN_SCHEMA, RunFailed, RunOutcome
from jobgraph.runs.progress import progress_bar
from jobgraph.runs.workload import StackRun, Workload

FAILED_SUFFIX = ".failed"  # <out>/<run_id>.failed: a failed run's record beside an earlier run it must not replace


def execute(workload: Workload, target, spec: RunSpec, then: Callable[[RunOutcome], None] | None = None) -> RunOutcome:
    """Start ``workload`` on ``target``'s stack, follow it to its end, export its results and gather the report's
    figures; ``then`` (the report) sees the outcome while the target is still up (`run --serve` keeps it up)."""
    target.refuse(workload)
    target.output.check(spec.run_id)  # once, before anything is deployed or started
    with target.attach(spec.run_id):
        run = workload.on(target, spec)
        started = time.monotonic()
        try:
            run.start()
            target.after_start(spec.run_id)
            record = follow(run, target)
        except RunFailed as exc:
            raise record_failure(run, target, exc) from None
        wall_seconds = time.monotonic() - started
        run.settle(target.settle_s, target.check)
        target.before_report()
        outcome = run.outcome(record, wall_seconds)
        target.finish(outcome, spec)
        forget_failure(target.output.folder, spec.run_id)
        if then is not None:
            then(outcome)
        target.hold()
    return outcome


def record_failure(run: StackRun, target, failed: RunFailed) -> RunFailed:
    """Keep why the run failed in ``<out>/<run_id>/run.json`` while its stack is still up (the local cloud's job
    records and queues vanish with it): the reason, the jobs not completed with their errors, the DLQs. Returns
    the failure to raise: one line naming the failure, the first job not completed and why, and the record.

    A failure never replaces a run that did not fail (an earlier run of the id, kept under --overwrite until this
    one succeeds): its record then goes beside it, in ``<out>/<run_id>.failed/``; an earlier failure record is
    replaced.

    A record that cannot be written does not replace the failure (it is what the user must see): the line says
    so and points at the error log holding why, with its traceback."""
    reason = str(failed)
    try:
        document = {
            "schema": FAILED_RUN_SCHEMA,
            "run_id": run.run_id,
            "status": "FAILED",
            "mode": target.mode,
            "stack_name": target.stack_name,
            "failed_at": utc_now_iso(),
            **run.failure(reason),
        }
        if getattr(target, "log_dir", None) is not None:
            document["function_logs"] = str(target.log_dir)
        folder = failure_folder(target.output.folder, run.run_id)  # free, or holding no more than a failure record
        with staged_run(target.output.folder, folder.name, overwrite=True) as store:
            store.put(f"{folder.name}/{RUN_RECORD}", json.dumps(document, indent=2, default=str).encode())
    except Exception as exc:  # any: never lose the run's own failure to a failure to describe it
        return unrecorded_failure(run.run_id, target.output.folder, reason, exc)
    jobs = document["unfinished_jobs"]
    named = f"; {document['unfinished_total']} job(s) not completed, e.g. {jobs[0]['job_id']}" if jobs else ""
    because = f" ({jobs[0]['error'][:60]})" if jobs and jobs[0]["error"] else ""
    kept = f" (the earlier run in {folder.with_name(run.run_id)} is kept)" if folder.name != run.run_id else ""
    tail = f"{named}{because}; details: {folder / RUN_RECORD}{kept}"
    return _one_line_failure(reason, tail)


def failure_folder(out: Path, run_id: str) -> Path:
    """Where a failed run's record goes: ``<out>/<run_id>``, or ``<out>/<run_id>.failed`` when the first holds
    a run that did not fail; a folder is taken only if it is free or holds a failure record. JobGraphError if
    neither is (the record is not written; the run's failure line says why)."""
    for folder in (out / run_id, out / f"{run_id}{FAILED_SUFFIX}"):
        if not (folder.exists() or folder.is_symlink()) or _holds_failure_record(folder):
            return folder
    raise JobGraphError(f"runs that did not fail in both {out / run_id} and {out / f'{run_id}{FAILED_SUFFIX}'}")


def forget_failure(out: Path, run_id: str) -> None:
    """Once a run of ``run_id`` succeeded, the record of an earlier failed one kept beside the run it did not
    replace (``<out>/<run_id>.failed``) is stale: removed, if it is one (a folder holding anything else stays)."""
    folder = out / f"{run_id}{FAILED_SUFFIX}"
    if _holds_failure_record(folder):
        shutil.rmtree(folder, ignore_errors=True)


def _holds_failure_record(folder: Path) -> bool:
    if folder.is_symlink() or not folder.is_dir():
        return False
    try:
        record = read_json(folder / RUN_RECORD)
    except (OSError, ValueError):
        return False  # no record, or not one jobgraph wrote: not a failure to replace
    return isinstance(record, dict) and record.get("schema") == FAILED_RUN_SCHEMA


def unrecorded_failure(run_id: str, out: Path, reason: str, exc: Exception) -> RunFailed:
    """The run's failure, saying that its record could not be written and where the traceback of why is."""
    detail = "".join(traceback.format_exception(exc))
    log = write_error_log(out, f"run {run_id} failed: {reason}\nwriting its failure record failed:\n\n{detail}")
    tail = f"; writing its failure record failed ({one_line(f'{type(exc).__name__}: {exc}', 100)}); " + (
        f"details in {log}" if log else "the traceback could not be written either"
    )
    return _one_line_failure(reason, tail)


def _one_line_failure(reason: str, tail: str) -> RunFailed:
    """The reason's first line, cut so that ``tail`` (where the rest is) still fits on the line."""
    return RunFailed((one_line(reason, max(60, ONE_LINE_LIMIT - len(tail))) or "the run failed") + tail)


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
            # an ended run has done every job, whatever the last (possibly older) count says
            bar.n = run.jobs if record is not None else min(current.done, run.jobs)
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
