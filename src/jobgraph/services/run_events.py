"""Announcing a run's end on the stack's EventBridge bus — the event the downstream triggers act on.

At least once: the Scheduler publishes after the run record says COMPLETED and then marks the record
announced; a redelivered MERGE completion publishes again only if that mark is missing (the publisher
died in between). The trigger function fires each trigger once per run whatever arrives twice.
"""

from __future__ import annotations

from typing import Any

from jobgraph.adapters.events import RunEvents
from jobgraph.core.ids import is_task_id
from jobgraph.core.ports import EventPublisher, RunStore
from jobgraph.core.results import merged_key
from jobgraph.services.settings import RunEndSettings


def run_end_events(settings: RunEndSettings) -> tuple[RunEvents | None, dict[str, Any]]:
    """The bus a function announces run ends on (None: this stack has none) and the context of its events."""
    events = RunEvents(settings.event_bus_name) if settings.event_bus_name else None
    context = {
        "scenario": settings.scenario,
        "stack": settings.stack_name,
        "bucket": settings.bucket_name,
        "prefix": settings.results_prefix,
    }
    return events, context


def run_detail(run: dict[str, Any], *, scenario: int, stack: str, bucket: str, prefix: str) -> dict[str, Any]:
    root = f"s3://{bucket}/{prefix.strip('/') + '/' if prefix.strip('/') else ''}"
    run_id = str(run["run_id"])
    outcome = str(run["status"])
    return {
        "run_id": run_id,
        "outcome": outcome,
        "test_run_id": run.get("test_run_id"),
        "scenario": scenario,
        "stack": stack,
        "sequences_total": int(run.get("sequences_total", 0)),
        "jobs_total": int(run.get("jobs_total", 0)),
        "scenarios": int(run.get("scenarios", 0)),
        "seed": int(run.get("seed", 0)),
        "started_at": run.get("started_at"),
        "completed_at": run.get("completed_at"),
        "duration_s": float(run["duration_s"]) if "duration_s" in run else None,
        "results_uri": f"{root}{run_id}/",
        "merged_percentiles_uri": f"{root}{merged_key(run_id)}" if outcome == "COMPLETED" else None,
        "error": run.get("error"),
    }


def announce_run_end(
    table: RunStore, events: EventPublisher, run_id: str, run: dict[str, Any] | None = None, **context: Any
) -> str | None:
    """Publish the run's end unless it was announced before; returns the event id or None (also for an API
    task's run id: a task is no run, nothing downstream waits for it). ``run``: its record, if the caller
    has just read it after ending the run (else it is read here)."""
    if is_task_id(run_id):
        return None
    run = run if run is not None else table.get_run(run_id)
    if "announced_event_id" in run or run.get("status") not in ("COMPLETED", "FAILED"):
        return None
    event_id = events.publish(run_detail(run, **context))
    table.mark_run_announced(run_id, event_id)
    return event_id
