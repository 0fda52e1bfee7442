"""A run's approval: the ApprovalStore port on DynamoDB.

pk APPROVAL#<run_id>, sk APPROVAL: its own partition, so that the status API may decide approvals without any
grant on the trigger claims. PENDING_APPROVAL once (a redelivered run end finds the first request), then
APPROVED | REJECTED once, or EXPIRED (lazily, when someone looks or decides after its expiry).
"""

from __future__ import annotations

from typing import Any

from jobgraph.adapters import table_layout as layout
from jobgraph.adapters.dynamodb.table import TableAccess, plain, typed_key
from jobgraph.core.models import utc_now_iso


def approval_key(run_id: str) -> dict[str, Any]:
    return typed_key(layout.approval_key(run_id))


class DynamoApprovalStore(TableAccess):
    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[dict[str, Any], bool]:
        """PENDING_APPROVAL for the run, once (a redelivered run end finds the first request); (item, created)."""
        now = utc_now_iso()
        item = {
            **approval_key(run_id),
            "run_id": {"S": run_id},
            "workflow": {"S": workflow},
            "status": {"S": "PENDING_APPROVAL"},
            "reasons": {"S": "; ".join(reasons)[:2000]},
            "requested_at": {"S": now},
            "expires_epoch": {"N": f"{expires_epoch:.3f}"},
            "source_event": {"S": event},
            "expires_at": self._expires_at(),
        }
        if not self._put_new(item):
            return self._item(approval_key(run_id)) or {}, False
        return plain(item), True

    def get_approval(self, run_id: str) -> dict[str, Any] | None:
        return self._item(approval_key(run_id))

    def decide_approval(
        self, run_id: str, decision: str, decided_by: str, comment: str, now: float
    ) -> dict[str, Any] | None:
        """PENDING_APPROVAL (not expired) → APPROVED | REJECTED; the new item, or None if that did not hold."""
        return self._update_new(
            approval_key(run_id),
            UpdateExpression=(
                "SET #status = :decision, decided_by = :by, decided_at = :at, #comment = :comment, decided_epoch = :now"
            ),
            ConditionExpression="#status = :pending AND expires_epoch > :now",
            ExpressionAttributeNames={"#status": "status", "#comment": "comment"},
            ExpressionAttributeValues={
                ":decision": {"S": decision},
                ":pending": {"S": "PENDING_APPROVAL"},
                ":by": {"S": decided_by[:256]},
                ":at": {"S": utc_now_iso()},
                ":comment": {"S": comment[:2000]},
                ":now": {"N": f"{now:.3f}"},
            },
        )

    def expire_approval(self, run_id: str, now: float) -> dict[str, Any] | None:
        """PENDING_APPROVAL past its expiry → EXPIRED (lazily, when someone looks or decides)."""
        return self._update_new(
            approval_key(run_id),
            UpdateExpression="SET #status = :expired",
            ConditionExpression="#status = :pending AND expires_epoch <= :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":expired": {"S": "EXPIRED"},
                ":pending": {"S": "PENDING_APPROVAL"},
                ":now": {"N": f"{now:.3f}"},
            },
        )

    def mark_approval_announced(self, run_id: str, event_id: str, attribute: str = "announced_event_id") -> bool:
        """Remember an event published about the approval, once: ``announced_event_id`` (Run Approved) or
        ``pending_event_id`` (Run Pending Approval)."""
        return (
            self._update_new(
                approval_key(run_id),
                UpdateExpression="SET #event = :id",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#event)",
                ExpressionAttributeNames={"#event": attribute},
                ExpressionAttributeValues={":id": {"S": event_id}},
            )
            is not None
        )
