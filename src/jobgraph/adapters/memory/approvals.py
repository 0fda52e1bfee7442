"""A run's approval in memory: the ApprovalStore port's fake (adapters/dynamodb/approvals.py is the real one)."""

from __future__ import annotations

from typing import Any

from jobgraph.adapters.memory.table import MemoryAccess, number
from jobgraph.adapters.table_layout import approval_key
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import Record


class MemoryApprovalStore(MemoryAccess):
    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[Record, bool]:
        key = approval_key(run_id)
        with self.memory.lock:
            earlier = self.memory.get(key)
            if earlier is not None:
                return earlier, False
            item = {
                "run_id": run_id,
                "workflow": workflow,
                "status": "PENDING_APPROVAL",
                "reasons": "; ".join(reasons)[:2000],
                "requested_at": utc_now_iso(),
                "expires_epoch": number(f"{expires_epoch:.3f}"),
                "source_event": event,
                "expires_at": self.memory.expires_at(),
            }
            return self.memory.put(key, item), True

    def get_approval(self, run_id: str) -> Record | None:
        return self.memory.get(approval_key(run_id))

    def _pending(self, run_id: str, now: float, expired: bool, changes: dict[str, Any]) -> Record | None:
        """PENDING_APPROVAL whose expiry is (``expired``) or is not yet past ``now`` -> ``changes``."""
        key = approval_key(run_id)
        with self.memory.lock:
            item = self.memory.get(key)
            if item is None or item.get("status") != "PENDING_APPROVAL":
                return None
            if (item["expires_epoch"] <= number(f"{now:.3f}")) != expired:
                return None
            return self.memory.update(key, changes)

    def decide_approval(self, run_id: str, decision: str, decided_by: str, comment: str, now: float) -> Record | None:
        decided = {
            "status": decision,
            "decided_by": decided_by[:256],
            "decided_at": utc_now_iso(),
            "comment": comment[:2000],
            "decided_epoch": number(f"{now:.3f}"),
        }
        return self._pending(run_id, now, False, decided)

    def expire_approval(self, run_id: str, now: float) -> Record | None:
        return self._pending(run_id, now, True, {"status": "EXPIRED"})

    def mark_approval_announced(self, run_id: str, event_id: str, attribute: str = "announced_event_id") -> bool:
        key = approval_key(run_id)
        with self.memory.lock:
            item = self.memory.get(key)
            if item is None or attribute in item:
                return False
            self.memory.update(key, {attribute: event_id})
            return True
