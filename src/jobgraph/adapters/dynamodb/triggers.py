"""Downstream triggers' claims: the TriggerStore port on DynamoDB.

One item per (run, trigger list, trigger): pk TRIGGER#<run_id>, sk FIRED#<kind>#<trigger id>. Its status is
CLAIMED while an invocation fires it, then FIRED, RELEASED (the target refused: a retry claims it afresh) or
IN_DOUBT (a crashed attempt may have reached a target that cannot drop a repeat: not fired again). ``owner``
fences every transition, so an invocation whose claim was taken over cannot overwrite the new holder's.
"""

from __future__ import annotations

from typing import Any

from jobgraph.adapters import table_layout as layout
from jobgraph.adapters.dynamodb.table import TableAccess, typed_key
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import TriggerClaim


def trigger_key(run_id: str, sk: str) -> dict[str, Any]:
    return typed_key(layout.trigger_key(run_id, sk))


class DynamoTriggerStore(TableAccess):
    def claim_trigger(self, run_id: str, sk: str, owner: str, now: float, stale_s: float, **about: str) -> TriggerClaim:
        """Claim one trigger of a run for ``owner``.

        - no item, or RELEASED: claimed afresh ("fresh");
        - FIRED / IN_DOUBT: nothing to do ("fired" / "in_doubt");
        - CLAIMED less than ``stale_s`` ago: another invocation is at it, or died so recently that the
          caller must come back later ("busy": the message is retried);
        - CLAIMED longer ago: its holder is dead (``stale_s`` > the function's timeout), so the claim is taken
          over by a compare-and-swap on (owner, claimed_epoch): one taker wins ("takeover"). What the taker may
          do depends on the target (services.triggers): the dead holder may have fired before it died.
        """
        names = {"#status": "status"}
        fresh = self._update_new(
            trigger_key(run_id, sk),
            UpdateExpression=(
                "SET #status = :claimed, #owner = :owner, claimed_epoch = :now, first_claimed_epoch = :now, "
                "run_id = :run, expires_at = :ttl" + "".join(f", #{k} = :{k}" for k in about) + " ADD attempts :one"
            ),
            ConditionExpression="attribute_not_exists(pk) OR #status = :released",
            # aliased: several of these names (trigger, token, owner...) are DynamoDB reserved words
            ExpressionAttributeNames={**names, "#owner": "owner", **{f"#{k}": k for k in about}},
            ExpressionAttributeValues={
                ":claimed": {"S": "CLAIMED"},
                ":released": {"S": "RELEASED"},
                ":owner": {"S": owner},
                ":now": {"N": f"{now:.3f}"},
                ":run": {"S": run_id},
                ":ttl": self._expires_at(),
                ":one": {"N": "1"},
                **{f":{k}": {"S": str(v)} for k, v in about.items()},
            },
        )
        if fresh is not None:
            return TriggerClaim("fresh", fresh)
        item = self._item(trigger_key(run_id, sk)) or {}
        status = item.get("status")
        if status == "FIRED":
            return TriggerClaim("fired", item)
        if status == "IN_DOUBT":
            return TriggerClaim("in_doubt", item)
        if status != "CLAIMED" or float(item["claimed_epoch"]) > now - stale_s:
            return TriggerClaim("busy", item)
        taken = self._update_new(
            trigger_key(run_id, sk),
            UpdateExpression="SET #owner = :owner, claimed_epoch = :now, taken_over_from = :old ADD attempts :one",
            ConditionExpression="#status = :claimed AND #owner = :old AND claimed_epoch = :old_epoch",
            ExpressionAttributeNames={**names, "#owner": "owner"},
            ExpressionAttributeValues={
                ":claimed": {"S": "CLAIMED"},
                ":owner": {"S": owner},
                ":now": {"N": f"{now:.3f}"},
                ":old": {"S": str(item["owner"])},
                ":old_epoch": {"N": f"{float(item['claimed_epoch']):.3f}"},
                ":one": {"N": "1"},
            },
        )
        return TriggerClaim("takeover", taken) if taken is not None else TriggerClaim("busy", item)

    def _finish_trigger(self, run_id: str, sk: str, owner: str, status: str, **values: str) -> bool:
        """CLAIMED (by ``owner``) → ``status`` with ``values``; False if the claim is no longer ours."""
        sets = ", ".join(f"#{k} = :{k}" for k in values)
        return (
            self._update_new(
                trigger_key(run_id, sk),
                UpdateExpression="SET #status = :status, finished_at = :at" + (f", {sets}" if sets else ""),
                ConditionExpression="#status = :claimed AND #owner = :owner",
                ExpressionAttributeNames={"#status": "status", "#owner": "owner", **{f"#{k}": k for k in values}},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":claimed": {"S": "CLAIMED"},
                    ":owner": {"S": owner},
                    ":at": {"S": utc_now_iso()},
                    **{f":{k}": {"S": str(v)[:2000]} for k, v in values.items()},
                },
            )
            is not None
        )

    def trigger_fired(self, run_id: str, sk: str, owner: str, receipt: str) -> bool:
        return self._finish_trigger(run_id, sk, owner, "FIRED", receipt=receipt)

    def release_trigger(self, run_id: str, sk: str, owner: str, error: str) -> bool:
        """The target refused: a retry of the message claims the trigger afresh."""
        return self._finish_trigger(run_id, sk, owner, "RELEASED", last_error=error)

    def trigger_in_doubt(self, run_id: str, sk: str, owner: str, reason: str) -> bool:
        return self._finish_trigger(run_id, sk, owner, "IN_DOUBT", last_error=reason)

    def triggers_of_run(self, run_id: str) -> list[dict[str, Any]]:
        """The run's trigger claims, for reports and `jobgraph triggers show`."""
        return self._query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": layout.trigger_partition(run_id)}},
            ConsistentRead=True,
        )
