"""The trigger function's logic (services/triggers.py) on the in-memory table: each trigger fires once per run,
a refusal releases it for the retry, an approval is requested and announced once and its on_approval triggers
fire once it is approved. The targets are a recording double (what each AWS target receives is
tests/integration/test_triggers.py's, on moto)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobgraph.adapters.memory import MemoryJobsTable
from jobgraph.adapters.targets import TargetRefusedError
from jobgraph.adapters.trigger_config import LoadedConfig, parse_document
from jobgraph.services import approvals
from jobgraph.services.triggers import RunEvent, TriggerDeps, TriggerFailedError, handle_event
from tests.doubles import Bus

NOW = 1_800_000_000.0
DETAIL = {"run_id": "r1", "outcome": "COMPLETED", "test_run_id": "nightly", "scenario": 1, "stack": "s",
          "sequences_total": 2, "jobs_total": 9, "scenarios": 100, "seed": 1, "started_at": "2026-12-01T01:00:00Z",
          "completed_at": "2026-12-01T01:10:00Z", "duration_s": 600.0, "results_uri": "s3://b/r1/",
          "merged_percentiles_uri": "s3://b/r1/merged_percentiles.json", "error": None}  # fmt: skip
DOCUMENT = {
    "workflows": {
        "nightly": {
            "approval": {"when": [{"field": "metrics.curfew_breach_probability", "above": 0.2}]},
            "on_success": [
                {"type": "sqs", "name": "load", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q1"}
            ],
            "on_approval": [
                {"type": "sqs", "name": "approved", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q2"}
            ],
            "on_failure": [
                {"type": "sqs", "name": "page", "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/q3"}
            ],
        }
    }
}


class Configs:
    def current(self) -> LoadedConfig:
        return LoadedConfig(parse_document(json.dumps(DOCUMENT), "test"), "test")


class Targets:
    """Records each fire; refuses the next ``refuse`` calls as a target that did not take the request."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str]] = []
        self.refuse = 0

    def fire(self, trigger: Any, event: dict[str, Any], token: str, config: Any) -> str:
        if self.refuse:
            self.refuse -= 1
            raise TargetRefusedError("queue full")
        self.fired.append((trigger.trigger_id, token))
        return f"receipt-{len(self.fired)}"

    def find(self, trigger: Any, token: str) -> str | None:
        return None


def deps_with(merged: dict[str, Any] | None) -> tuple[TriggerDeps, Targets, Bus]:
    targets, bus = Targets(), Bus()
    deps = TriggerDeps(Configs(), MemoryJobsTable(), targets, lambda _run: merged, clock=lambda: NOW, events=bus)  # type: ignore[arg-type]
    return deps, targets, bus


def run_end(outcome: str = "COMPLETED", detail_type: str = "Run Completed") -> RunEvent:
    detail = {**DETAIL, "outcome": outcome}
    return RunEvent.model_validate({"source": "jobgraph", "detail-type": detail_type, "detail": detail})


def test_a_run_end_fires_each_trigger_once_however_often_it_is_delivered() -> None:
    deps, targets, _bus = deps_with({"curfew_breach_probability": 0.01})
    (first,) = handle_event(run_end(), deps)
    assert (first["trigger"], first["result"], first["receipt"]) == ("load", "fired", "receipt-1")
    (again,) = handle_event(run_end(), deps)
    assert again["result"] == "already fired" and again["receipt"] == "receipt-1"
    assert [trigger for trigger, _token in targets.fired] == ["load"]
    (claim,) = deps.table.triggers_of_run("r1")
    assert claim["status"] == "FIRED" and claim["attempts"] == 1


def test_a_refused_trigger_is_released_and_fired_by_the_retry() -> None:
    deps, targets, _bus = deps_with({"curfew_breach_probability": 0.01})
    targets.refuse = 1
    with pytest.raises(TriggerFailedError, match="queue full"):
        handle_event(run_end(), deps)
    assert deps.table.triggers_of_run("r1")[0]["status"] == "RELEASED"
    (retried,) = handle_event(run_end(), deps)
    assert retried["result"] == "fired" and len(targets.fired) == 1


def test_a_failed_run_fires_its_failure_triggers() -> None:
    deps, targets, _bus = deps_with(None)
    (paged,) = handle_event(run_end("FAILED", "Run Failed"), deps)
    assert paged["trigger"] == "page" and [t for t, _ in targets.fired] == ["page"]


def test_an_approval_is_requested_once_and_its_triggers_fire_once_approved() -> None:
    deps, targets, bus = deps_with({"curfew_breach_probability": 0.5})
    (waiting,) = handle_event(run_end(), deps)
    assert waiting["result"] == "PENDING_APPROVAL" and targets.fired == []
    handle_event(run_end(), deps)  # a redelivered run end: no second request, no second announcement
    assert [e["outcome"] for e in bus.published] == ["PENDING_APPROVAL"]
    approvals.decide(deps.table, bus, "r1", "APPROVED", "ops", now=NOW + 60)
    approved = RunEvent.model_validate(
        {"source": "jobgraph", "detail-type": "Run Approved", "detail": {"run_id": "r1"}}
    )
    (fired,) = handle_event(approved, deps)
    assert (fired["trigger"], fired["kind"], fired["result"]) == ("approved", "approval", "fired")
    assert handle_event(approved, deps)[0]["result"] == "already fired"
    assert [t for t, _ in targets.fired] == ["approved"]
