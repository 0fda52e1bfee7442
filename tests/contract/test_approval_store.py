"""ApprovalStore: a run's approval requested once, decided once or expired, each announcement remembered once."""

from __future__ import annotations

from jobgraph.core.ports import ApprovalStore


def test_an_approval_is_requested_once_decided_once_or_expires(table: ApprovalStore) -> None:
    assert table.get_approval("r") is None
    item, created = table.request_approval("r", "wf", "Run Completed", ["p95 too high", "cost"], expires_epoch=1000.0)
    assert created and item["status"] == "PENDING_APPROVAL" and item["reasons"] == "p95 too high; cost"
    again, created = table.request_approval("r", "wf", "Run Completed", ["other"], expires_epoch=5000.0)
    assert not created and again["reasons"] == "p95 too high; cost"
    assert table.mark_approval_announced("r", "ev-p", "pending_event_id") is True
    assert table.mark_approval_announced("r", "ev-q", "pending_event_id") is False
    decided = table.decide_approval("r", "APPROVED", "ops@example.com", "fine", now=500.0)
    assert decided is not None and (decided["status"], decided["decided_by"]) == ("APPROVED", "ops@example.com")
    assert table.decide_approval("r", "REJECTED", "someone", "", now=501.0) is None
    assert table.expire_approval("r", now=2000.0) is None  # decided: nothing to expire
    assert table.get_approval("r")["pending_event_id"] == "ev-p"  # type: ignore[index]
    table.request_approval("late", "wf", "Run Completed", [], expires_epoch=1000.0)
    assert table.decide_approval("late", "APPROVED", "ops", "", now=1000.0) is None  # expired at 1000
    assert table.expire_approval("late", now=999.0) is None
    assert table.expire_approval("late", now=1000.0)["status"] == "EXPIRED"  # type: ignore[index]
    assert table.mark_approval_announced("none", "ev") is False
