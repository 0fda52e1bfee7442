"""An approval's logic (services/approvals.py) on the in-memory trigger store: decided once, announced once,
the opposite decision refused, an expired one refused and shown EXPIRED. No moto (the routes over it are
tests/integration/test_approval_api.py)."""

from __future__ import annotations

import json

import pytest

from jobgraph.adapters.memory import MemoryApprovalStore
from jobgraph.core.errors import ApprovalConflictError, ApprovalExpiredError, ApprovalNotFoundError
from jobgraph.services import approvals
from tests.doubles import Bus

NOW = 1_800_000_000.0


def pending(store: MemoryApprovalStore, run_id: str, expires_in_s: float = 3600) -> None:
    event = json.dumps({"job_name": "nightly", "job_run_id": run_id})
    store.request_approval(run_id, "nightly", event, ["metrics.x = 2 > 1"], NOW + expires_in_s)


def test_an_approval_is_decided_and_announced_once() -> None:
    store, bus = MemoryApprovalStore(), Bus()
    pending(store, "r1")
    view = approvals.get_approval(store, "r1", now=NOW)
    assert (view["status"], view["reasons"], view["announced"]) == ("PENDING_APPROVAL", ["metrics.x = 2 > 1"], False)
    decided = approvals.decide(store, bus, "r1", "APPROVED", "ops", "ok", now=NOW + 1)
    assert (decided["status"], decided["decided_by"], decided["announced"]) == ("APPROVED", "ops", True)
    again = approvals.decide(store, bus, "r1", "APPROVED", "ops", now=NOW + 2)
    assert again["status"] == "APPROVED" and len(bus.published) == 1
    assert bus.published[0] == {"run_id": "r1", "outcome": "APPROVED", "workflow": "nightly", "decided_by": "ops"}
    with pytest.raises(ApprovalConflictError, match="APPROVED by ops"):
        approvals.decide(store, bus, "r1", "REJECTED", "other", now=NOW + 3)
    assert approvals.kept_event(store.get_approval("r1") or {})["job_run_id"] == "r1"


def test_an_expired_approval_cannot_be_decided_and_shows_expired() -> None:
    store, bus = MemoryApprovalStore(), Bus()
    pending(store, "r2", expires_in_s=10)
    assert approvals.get_approval(store, "r2", now=NOW + 11)["status"] == "EXPIRED"
    with pytest.raises(ApprovalExpiredError, match="expired"):
        approvals.decide(store, bus, "r2", "APPROVED", "late", now=NOW + 11)
    assert (store.get_approval("r2") or {})["status"] == "EXPIRED" and bus.published == []


def test_a_rejection_announces_nothing_and_unknown_runs_or_decisions_are_refused() -> None:
    store, bus = MemoryApprovalStore(), Bus()
    pending(store, "r3")
    assert approvals.decide(store, bus, "r3", "REJECTED", "ops", now=NOW)["status"] == "REJECTED"
    assert bus.published == []
    with pytest.raises(ApprovalNotFoundError):
        approvals.get_approval(store, "none")
    with pytest.raises(ApprovalNotFoundError):
        approvals.decide(store, bus, "none", "APPROVED", "ops", now=NOW)
    with pytest.raises(ValueError, match="MAYBE"):
        approvals.decide(store, bus, "r3", "MAYBE", "ops")
    pending(store, "r4")
    with pytest.raises(ApprovalConflictError, match="no run events bus"):
        approvals.decide(store, None, "r4", "APPROVED", "ops", now=NOW)
