"""run.json: one run as a first-class record — what ran, how long it took, what it used and cost.

Written by every `jobgraph run` to ``OUT/<run_id>/run.json`` (beside the result layout; it is a record of
the run, not a result, so result comparisons leave it out). ``jobgraph cost`` and ``jobgraph compare``
read it back. The shape is versioned by ``schema``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from jobgraph.adapters.local_disk import RUN_RECORD
from jobgraph.bench.cost import run_cost
from jobgraph.core.bounds import quote, read_json
from jobgraph.core.errors import JobGraphError
from jobgraph.core.ids import route_of_job
from jobgraph.core.models import ExecType
from jobgraph.runs.outcome import FAILED_RUN_SCHEMA

SCHEMA = "jobgraph.run/1"
RECORD_NAME = RUN_RECORD
# the record's stage keys are the job types' names (core.models.ExecType), in the graph's order
STAGES = tuple(stage.value for stage in ExecType)
ROUTE_STAGES = tuple(stage.value for stage in ExecType if stage.is_route)
# the jobs that do the work, for the cost headline: route jobs of a graph, or a load's synthetic jobs
WORK_STAGES = (*ROUTE_STAGES, ExecType.SYNTHETIC.value)
FUNCTION_COUNTS = ("invocations", "cold_starts", "errors", "worker_deaths")
SERVICE_COUNTS = ("tasks", "batches", "received", "retried", "restarts")


class RunRecordError(JobGraphError):
    """A run folder has no readable run.json."""


def distribution(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    p50, p90, p95, p99 = np.percentile(values, [50, 90, 95, 99])
    return {
        "count": len(values),
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(np.mean(values)),
        "max": float(max(values)),
    }


def _rounded(values) -> list[float]:
    return [round(float(v), 1) for v in values]


def routes_per_sequence(job_ids) -> list[int]:
    """Routes of each sequence of a graph run (its shape, for `jobgraph project`), from its route jobs' ids."""
    counts = Counter(route[0] for job_id in job_ids if (route := route_of_job(job_id)))
    return [counts[sequence] for sequence in sorted(counts)]


def _figures(figures: dict, counts: tuple[str, ...], timings: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    """A function's or service's figures as recorded: ``counts`` (and those of ``optional`` it has) as they are,
    each of ``timings`` as its distribution."""
    return {
        **{key: figures[key] for key in counts},
        **{key: figures[key] for key in optional if key in figures},
        **{key: distribution(figures[key]) for key in timings},
    }


def build(outcome, table: dict) -> dict:
    """The record of a finished run (a runs.driver.RunOutcome) priced with ``table`` (bench/prices.py)."""
    from jobgraph.runs.scenarios import scenario

    route_jobs = sum(len(outcome.stage_ms.get(stage, [])) for stage in WORK_STAGES)
    functions = outcome.extra.get("functions", {})
    services = outcome.extra.get("services", {})
    requests = outcome.api_requests.get("total_requests")
    return {
        "schema": SCHEMA,
        "run_id": outcome.run_id,
        "kind": "load" if "load" in outcome.extra else "graph",
        "load": outcome.extra.get("load"),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # the run's own label and time window: `jobgraph cost --billed` looks its tag up over these days
        "test_run_id": outcome.run_record.get("test_run_id"),
        "window": {key: outcome.run_record.get(key) for key in ("started_at", "completed_at")},
        "scenario": outcome.scenario,
        "scenario_name": scenario(outcome.scenario).name,
        "mode": outcome.mode,
        "stack": outcome.stack_name,
        "settings": outcome.settings,
        "sequences": outcome.sequences,
        "jobs": outcome.jobs,
        "route_jobs": route_jobs,
        "wall_seconds": outcome.wall_seconds,
        "seconds_per_job": outcome.wall_seconds / outcome.jobs if outcome.jobs else None,
        "stage_ms": {stage: distribution(outcome.stage_ms.get(stage, [])) for stage in STAGES},
        "functions": {
            # optional: how the function ran: workers (concurrency), event source batch size, messages received
            name: _figures(
                f, FUNCTION_COUNTS, ("queue_wait_ms", "invocation_ms"), ("workers", "batch_size", "received")
            )
            for name, f in functions.items()
        },
        # scenario 2's ECS services: tasks, batches and their times (the polling workers' own figures)
        "services": {name: _figures(s, SERVICE_COUNTS, ("queue_wait_ms", "batch_ms")) for name, s in services.items()},
        "graph": {"routes_per_sequence": routes_per_sequence(outcome.attempts)},
        "init_ms": {
            name: distribution(u.get("init_durations_ms", [])) for name, u in outcome.usage.get("lambda", {}).items()
        },
        "retried_jobs": sum(1 for n in outcome.attempts.values() if n > 1),
        "max_attempts": max(outcome.attempts.values(), default=0),
        "dlq": outcome.dlq,
        "usage": outcome.usage,
        "api_requests": {
            **outcome.api_requests,
            "per_job": requests / outcome.jobs if requests is not None and outcome.jobs else None,
        },
        # None when the run's usage was not measured (AWS mode reads no billing counters yet)
        "cost": run_cost(outcome.usage, table, route_jobs) if outcome.usage else None,
        "merged": {
            k: outcome.merged[k]
            for k in ("final_arrival_delay_min", "curfew_breach_probability")
            if k in outcome.merged
        },
        # raw per-job figures, for distributions in `jobgraph compare`; per invocation and per batch, and every
        # message's queue wait, for the service times of `jobgraph project`
        "samples": {
            "stage_ms": {stage: [round(v, 3) for v in outcome.stage_ms.get(stage, [])] for stage in STAGES},
            "invocation_ms": {name: _rounded(f["invocation_ms"]) for name, f in functions.items()},
            # per batch of an event source, the time it held its slot (local runs; poller.PollerStats.slot_ms)
            "slot_ms": {name: _rounded(f["slot_ms"]) for name, f in functions.items() if f.get("slot_ms")},
            "queue_wait_ms": {name: _rounded(f["queue_wait_ms"]) for name, f in functions.items()},
            "batch_ms": {name: _rounded(s["batch_ms"]) for name, s in services.items()},
        },
    }


def write(run_dir: Path, record: dict) -> Path:
    path = run_dir / RECORD_NAME
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read(run_dir: Path) -> dict:
    """The record of ``run_dir`` (a run folder, or its run.json itself)."""
    path = run_dir if run_dir.name == RECORD_NAME else run_dir / RECORD_NAME
    try:
        record = read_json(path)
    except FileNotFoundError:
        raise RunRecordError(f"{path}: no run record (is {run_dir} a folder written by `jobgraph run`?)") from None
    except (OSError, ValueError) as exc:
        raise RunRecordError(f"{path}: not a readable JSON run record ({exc})") from None
    found = record.get("schema") if isinstance(record, dict) else None
    if found == FAILED_RUN_SCHEMA:
        raise RunRecordError(f"{path}: run {record.get('run_id')} FAILED, nothing to report: {record.get('reason')}")
    if found != SCHEMA:
        raise RunRecordError(f"{path}: schema {quote(found)}, expected {SCHEMA!r}")
    return record
