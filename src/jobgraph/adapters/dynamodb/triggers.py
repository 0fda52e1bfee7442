"""Downstream triggers' claims and a run's approval: the TriggerStore port on DynamoDB.

One item per (run, trigger list, trigger): pk TRIGGER#<run_id>, sk FIRED#<kind>#<trigger id>. Its status is
CLAIMED while an invocation fires it, then FIRED, RELEASED (the target refused: a retry claims it afresh) or
IN_DOUBT (a crashed attempt may have reached a target that cannot drop a repeat: not fired again). ``owner``
fences every transition, so an invocation whose claim was taken over cannot overwrite the new holder's.
A run's approval: pk APPROVAL#<run_id>, sk APPROVAL (its own partition, so that the status API may decide
approvals without any grant on the trigger claims).
"""

from __future__ import annotations

from typing import Any

from jobgraph.adapters.dynamodb.table import TableAccess, conditional_failed, plain
from jobgraph.core.models import utc_now_iso
from jobgraph.core.ports import Record, TriggerClaim

APPROVAL_SK = "APPROVAL"


class DynamoTriggerStore(TableAccess):
    def _trigger_key(self, run_id: str, sk: str) -> dict[str, Any]:
        if sk == APPROVAL_SK:
            return {"pk": {"S": f"APPROVAL#{run_id}"}, "sk": {"S": sk}}
        return {"pk": {"S": f"TRIGGER#{run_id}"}, "sk": {"S": sk}}

    def _trigger_item(self, run_id: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=self._trigger_key(run_id, sk), ConsistentRead=True
        )
        return plain(response["Item"]) if "Item" in response else None

    def _trigger_update(self, run_id: str, sk: str, **update: Any) -> dict[str, Any] | None:
        """One conditional UpdateItem of a trigger item; its new image, or None when the condition failed."""
        from botocore.exceptions import ClientError

        try:
            response = self.client.update_item(
                TableName=self.table_name, Key=self._trigger_key(run_id, sk), ReturnValues="ALL_NEW", **update
            )
        except ClientError as exc:
            if conditional_failed(exc):
                return None
            raise
        return plain(response["Attributes"])

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
        fresh = self._trigger_update(
            run_id,
            sk,
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
        item = self._trigger_item(run_id, sk) or {}
        status = item.get("status")
        if status == "FIRED":
            return TriggerClaim("fired", item)
        if status == "IN_DOUBT":
            return TriggerClaim("in_doubt", item)
        if status != "CLAIMED" or float(item["claimed_epoch"]) > now - stale_s:
            return TriggerClaim("busy", item)
        taken = self._trigger_update(
            run_id,
            sk,
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
            self._trigger_update(
                run_id,
                sk,
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
        items: list[Record] = []
        kwargs: dict[str, Any] = {}
        while True:
            response = self.client.query(
                TableName=self.table_name,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"TRIGGER#{run_id}"}},
                ConsistentRead=True,
                **kwargs,
            )
            items.extend(plain(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs = {"ExclusiveStartKey": response["LastEvaluatedKey"]}

    def request_approval(
        self, run_id: str, workflow: str, event: str, reasons: list[str], expires_epoch: float
    ) -> tuple[dict[str, Any], bool]:
        """PENDING_APPROVAL for the run, once (a redelivered run end finds the first request); (item, created)."""
        from botocore.exceptions import ClientError

        now = utc_now_iso()
        item = {
            **self._trigger_key(run_id, APPROVAL_SK),
            "run_id": {"S": run_id},
            "workflow": {"S": workflow},
            "status": {"S": "PENDING_APPROVAL"},
            "reasons": {"S": "; ".join(reasons)[:2000]},
            "requested_at": {"S": now},
            "expires_epoch": {"N": f"{expires_epoch:.3f}"},
            "source_event": {"S": event},
            "expires_at": self._expires_at(),
        }
        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if conditional_failed(exc):
                return self._trigger_item(run_id, APPROVAL_SK) or {}, False
            raise
        return plain(item), True

    def get_approval(self, run_id: str) -> dict[str, Any] | None:
        return self._trigger_item(run_id, APPROVAL_SK)

    def decide_approval(
        self, run_id: str, decision: str, decided_by: str, comment: str, now: float
    ) -> dict[str, Any] | None:
        """PENDING_APPROVAL (not expired) → APPROVED | REJECTED; the new item, or None if that did not hold."""
        return self._trigger_update(
            run_id,
            APPROVAL_SK,
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
        return self._trigger_update(
            run_id,
            APPROVAL_SK,
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
            self._trigger_update(
                run_id,
                APPROVAL_SK,
                UpdateExpression="SET #event = :id",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#event)",
                ExpressionAttributeNames={"#event": attribute},
                ExpressionAttributeValues={":id": {"S": event_id}},
            )
            is not None
        )
