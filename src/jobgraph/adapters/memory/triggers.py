"""Trigger claims and approvals in memory: the TriggerStore port's fake (adapters/dynamodb/triggers.py)."""

from __future__ import annotations

from typing import Any

from jobgraph.adapters.memory.table import Key, MemoryAccess, number
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import Record, TriggerClaim

APPROVAL_SK = "APPROVAL"


def _key(run_id: str, sk: str) -> Key:
    return (f"APPROVAL#{run_id}", sk) if sk == APPROVAL_SK else (f"TRIGGER#{run_id}", sk)


class MemoryTriggerStore(MemoryAccess):
    def claim_trigger(self, run_id: str, sk: str, owner: str, now: float, stale_s: float, **about: str) -> TriggerClaim:
        key = _key(run_id, sk)
        with self.memory.lock:
            item = self.memory.get(key)
            if item is None or item.get("status") == "RELEASED":
                claimed = {"status": "CLAIMED", "owner": owner, "claimed_epoch": number(f"{now:.3f}")}
                self.memory.update(
                    key,
                    {
                        **claimed,
                        "first_claimed_epoch": claimed["claimed_epoch"],
                        "run_id": run_id,
                        "expires_at": self.memory.expires_at(),
                        **{k: str(v) for k, v in about.items()},
                    },
                )
                self.memory.add(key, {"attempts": 1})
                return TriggerClaim("fresh", self.memory.get(key) or {})
            status = item.get("status")
            if status == "FIRED":
                return TriggerClaim("fired", item)
            if status == "IN_DOUBT":
                return TriggerClaim("in_doubt", item)
            if status != "CLAIMED" or float(item["claimed_epoch"]) > now - stale_s:
                return TriggerClaim("busy", item)
            taken = {"owner": owner, "claimed_epoch": number(f"{now:.3f}"), "taken_over_from": str(item["owner"])}
            self.memory.update(key, taken)
            self.memory.add(key, {"attempts": 1})
            return TriggerClaim("takeover", self.memory.get(key) or {})

    def _finish(self, run_id: str, sk: str, owner: str, status: str, **values: str) -> bool:
        """CLAIMED (by ``owner``) -> ``status`` with ``values``; False if the claim is no longer ours."""
        with self.memory.lock:
            item = self.memory.get(_key(run_id, sk))
            if item is None or item.get("status") != "CLAIMED" or item.get("owner") != owner:
                return False
            changes = {k: str(v)[:2000] for k, v in values.items()}
            self.memory.update(_key(run_id, sk), {"status": status, "finished_at": utc_now_iso(), **changes})
            return True

    def trigger_fired(self, run_id: str, sk: str, owner: str, receipt: str) -> bool:
        return self._finish(run_id, sk, owner, "FIRED", receipt=receipt)

    def release_trigger(self, run_id: str, sk: str, owner: str, error: str) -> bool:
        return self._finish(run_id, sk, owner, "RELEASED", last_error=error)

    def trigger_in_doubt(self, run_id: str, sk: str, owner: str, reason: str) -> bool:
        return self._finish(run_id, sk, owner, "IN_DOUBT", last_error=reason)

    def triggers_of_run(self, run_id: str) -> list[Record]:
        with self.memory.lock:
            return self.memory.partition(f"TRIGGER#{run_id}")

    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[Record, bool]:
        key = _key(run_id, APPROVAL_SK)
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
        return self.memory.get(_key(run_id, APPROVAL_SK))

    def _pending(self, run_id: str, now: float, expired: bool, changes: dict[str, Any]) -> Record | None:
        """PENDING_APPROVAL whose expiry is (``expired``) or is not yet past ``now`` -> ``changes``."""
        key = _key(run_id, APPROVAL_SK)
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
        key = _key(run_id, APPROVAL_SK)
        with self.memory.lock:
            item = self.memory.get(key)
            if item is None or attribute in item:
                return False
            self.memory.update(key, {attribute: event_id})
            return True
