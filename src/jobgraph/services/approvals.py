"""Seed 003's approval flow: a run whose workflow gates it waits in PENDING_APPROVAL until someone decides.

The trigger function requests the approval (services.triggers); a person decides through the status API
(``POST /runs/{run_id}/approval``) or ``jobgraph triggers approve``, both calling ``decide``. An approval
is published as "Run Approved" on the stack's bus, which the run-end rule also queues for the trigger
function: it fires the workflow's ``on_approval`` triggers with the source event kept at request time.
Past ``expires_after_hours`` the approval is EXPIRED and can no longer be decided (checked when someone
looks or decides; nothing fires on expiry).

At least once, like the run end: the decision is a conditional update, then the event is published and
the approval marked announced; deciding the same way again re-publishes only if that mark is missing.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from jobgraph.core.errors import ApprovalConflictError, ApprovalExpiredError, ApprovalNotFoundError
from jobgraph.core.ports import ApprovalStore, EventPublisher

DECISIONS = ("APPROVED", "REJECTED")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def approval_view(item: dict[str, Any], now: float) -> dict[str, Any]:
    """An approval as the API and the CLI show it; a pending one past its expiry shows EXPIRED."""
    status = str(item["status"])
    expires = float(item["expires_epoch"])
    if status == "PENDING_APPROVAL" and expires <= now:
        status = "EXPIRED"
    return {
        "run_id": str(item["run_id"]),
        "workflow": str(item["workflow"]),
        "status": status,
        "reasons": [r for r in str(item.get("reasons", "")).split("; ") if r],
        "requested_at": str(item["requested_at"]),
        "expires_at": _iso(expires),
        "decided_by": item.get("decided_by"),
        "decided_at": item.get("decided_at"),
        "comment": item.get("comment") or None,
        "announced": "announced_event_id" in item,
    }


def get_approval(table: ApprovalStore, run_id: str, now: float | None = None) -> dict[str, Any]:
    item = table.get_approval(run_id)
    if item is None:
        raise ApprovalNotFoundError(f"run {run_id!r} has no approval (its workflow did not ask for one)")
    return approval_view(item, time.time() if now is None else now)


def decide(
    table: ApprovalStore,
    events: EventPublisher | None,
    run_id: str,
    decision: str,
    decided_by: str,
    comment: str = "",
    now: float | None = None,
) -> dict[str, Any]:
    """Approve or reject a pending approval; the same decision again is a no-op (and re-announces if needed)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    if decision == "APPROVED" and events is None:  # before deciding: an approval nobody hears of fires nothing
        raise ApprovalConflictError("this stack has no run events bus to announce an approval on")
    now = time.time() if now is None else now
    item = table.decide_approval(run_id, decision, decided_by, comment, now)
    if item is None:
        current = table.get_approval(run_id)
        if current is None:
            raise ApprovalNotFoundError(f"run {run_id!r} has no approval (its workflow did not ask for one)")
        status = str(current["status"])
        if status in ("PENDING_APPROVAL", "EXPIRED"):
            table.expire_approval(run_id, now)
            raise ApprovalExpiredError(
                f"run {run_id!r}: the approval expired at {_iso(float(current['expires_epoch']))}; "
                "its on_approval triggers will not fire"
            )
        if status != decision:
            raise ApprovalConflictError(
                f"run {run_id!r} was {status} by {current.get('decided_by')} at {current.get('decided_at')}"
            )
        item = current
    if item["status"] == "APPROVED" and "announced_event_id" not in item and events is not None:
        event_id = events.publish(
            {"run_id": run_id, "outcome": "APPROVED", "workflow": item["workflow"], "decided_by": item["decided_by"]}
        )
        table.mark_approval_announced(run_id, event_id)
        item = {**item, "announced_event_id": event_id}
    return approval_view(item, now)


def kept_event(item: dict[str, Any]) -> dict[str, Any]:
    """The source event stored with the approval request (what on_approval triggers get, plus the decision)."""
    event: dict[str, Any] = json.loads(str(item["source_event"]))
    return event
