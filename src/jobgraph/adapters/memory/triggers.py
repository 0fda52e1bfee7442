"""Trigger claims in memory: the TriggerStore port's fake (adapters/dynamodb/triggers.py is the real one)."""

from __future__ import annotations

from jobgraph.adapters.memory.table import MemoryAccess, number
from jobgraph.adapters.table_layout import trigger_key, trigger_partition
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import Record, TriggerClaim


class MemoryTriggerStore(MemoryAccess):
    def claim_trigger(self, run_id: str, sk: str, owner: str, now: float, stale_s: float, **about: str) -> TriggerClaim:
        key = trigger_key(run_id, sk)
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
            item = self.memory.get(trigger_key(run_id, sk))
            if item is None or item.get("status") != "CLAIMED" or item.get("owner") != owner:
                return False
            changes = {k: str(v)[:2000] for k, v in values.items()}
            self.memory.update(trigger_key(run_id, sk), {"status": status, "finished_at": utc_now_iso(), **changes})
            return True

    def trigger_fired(self, run_id: str, sk: str, owner: str, receipt: str) -> bool:
        return self._finish(run_id, sk, owner, "FIRED", receipt=receipt)

    def release_trigger(self, run_id: str, sk: str, owner: str, error: str) -> bool:
        return self._finish(run_id, sk, owner, "RELEASED", last_error=error)

    def trigger_in_doubt(self, run_id: str, sk: str, owner: str, reason: str) -> bool:
        return self._finish(run_id, sk, owner, "IN_DOUBT", last_error=reason)

    def triggers_of_run(self, run_id: str) -> list[Record]:
        with self.memory.lock:
            return self.memory.partition(trigger_partition(run_id))
