"""The source event of seed 003: what a downstream trigger knows about the run that ended, and the
``${path}`` templates a trigger fills from it (core/triggers.py: the config that says which triggers fire)."""

from __future__ import annotations

import json
import re
from typing import Any

# --- the source event: what a trigger knows about the run that ended -----------------------------------
PERCENTILES = ("p50", "p75", "p90", "p95", "p99", "mean", "max")
RUN_METRICS = ("sequences_total", "jobs_total", "scenarios", "seed", "duration_s")
MERGED_METRICS = ("curfew_breach_probability", "final_arrival_delay_min", "total_departure_delay_min")
TOP_LEVEL = (
    "event_type",
    "job_name",
    "job_run_id",
    "status",
    "run_id",
    "test_run_id",
    "scenario",
    "stack",
    "started_at",
    "completed_at",
    "start_date",
    "end_date",
    "duration_s",
    "error",
    "artifacts",
    "metrics",
    "approval",
)
ARTIFACTS = ("output_path", "results_uri", "merged_percentiles_uri")
APPROVAL_FIELDS = ("decision", "decided_by", "decided_at", "comment", "requested_at", "reasons")
# numeric paths an approval gate may test
GATE_PATHS = (
    "duration_s",
    *(f"metrics.{m}" for m in RUN_METRICS),
    "metrics.curfew_breach_probability",
    *(f"metrics.{m}.{p}" for m in MERGED_METRICS[1:] for p in PERCENTILES),
)
EVENT_PATHS = frozenset(
    (
        *TOP_LEVEL,
        *(f"artifacts.{a}" for a in ARTIFACTS),
        *(f"approval.{a}" for a in APPROVAL_FIELDS),
        *GATE_PATHS,
        *(f"metrics.{m}" for m in MERGED_METRICS),
    )
)
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
# what a run's end turns into, and which trigger list it fires
STATUS = {"COMPLETED": "SUCCESS", "FAILED": "FAILED"}
EVENT_TYPE = {"COMPLETED": "run_completed", "FAILED": "run_failed", "APPROVED": "run_approved"}


def source_event(detail: dict[str, Any], merged: dict[str, Any] | None = None) -> dict[str, Any]:
    """The seed's job event for a run's end (``detail``: services.run_events.run_detail), with the merged
    percentiles' headline figures as metrics when the run completed."""
    outcome = str(detail["outcome"])
    results_uri = detail.get("results_uri")
    metrics: dict[str, Any] = {key: detail.get(key) for key in RUN_METRICS}
    for key in MERGED_METRICS:
        if merged and key in merged:
            metrics[key] = merged[key]
    event = {
        "event_type": EVENT_TYPE.get(outcome, outcome),
        "job_name": detail.get("test_run_id") or "default",
        "job_run_id": detail["run_id"],
        "status": STATUS.get(outcome, outcome),
        "run_id": detail["run_id"],
        "test_run_id": detail.get("test_run_id"),
        "scenario": detail.get("scenario"),
        "stack": detail.get("stack"),
        "started_at": detail.get("started_at"),
        "completed_at": detail.get("completed_at"),
        "start_date": detail.get("started_at"),
        "end_date": detail.get("completed_at"),
        "duration_s": detail.get("duration_s"),
        "error": detail.get("error"),
        "artifacts": {
            "output_path": results_uri,
            "results_uri": results_uri,
            "merged_percentiles_uri": detail.get("merged_percentiles_uri"),
        },
        "metrics": metrics,
    }
    return event


def approved_event(event: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    """The source event of a run that waited for approval, once approved: what on_approval triggers get."""
    return {
        **event,
        "event_type": EVENT_TYPE["APPROVED"],
        "status": "APPROVED",
        "approval": {key: approval.get(key) for key in APPROVAL_FIELDS},
    }


def lookup(event: dict[str, Any], path: str) -> Any:
    """``a.b.c`` in the source event; None where a step is missing."""
    value: Any = event
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def placeholders(value: Any) -> list[str]:
    if isinstance(value, str):
        return PLACEHOLDER.findall(value)
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in placeholders(k) + placeholders(v)]
    if isinstance(value, list):
        return [p for item in value for p in placeholders(item)]
    return []


def render(template: Any, event: dict[str, Any]) -> Any:
    """``template`` with every ``${path}`` filled from the event; "${path}" alone keeps the value's type."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:
            return lookup(event, whole.group(1))
        return PLACEHOLDER.sub(lambda m: text(lookup(event, m.group(1))), template)
    if isinstance(template, dict):
        return {render(k, event): render(v, event) for k, v in template.items()}
    if isinstance(template, list):
        return [render(item, event) for item in template]
    return template


def text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def check_paths(paths: list[str], where: str) -> None:
    unknown = sorted(set(paths) - EVENT_PATHS)
    if unknown:
        raise ValueError(f"{where}: unknown source event field(s) {unknown}; known: {', '.join(sorted(EVENT_PATHS))}")
