"""Run lifecycle events on the stack's EventBridge bus: source "jobgraph", detail-type "Run Completed",
"Run Failed", "Run Pending Approval" or "Run Approved" (services.triggers, services.approvals)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jobgraph.adapters.clients import LazyClient
from jobgraph.core.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

SOURCE = "jobgraph"
DETAIL_TYPES = {
    "COMPLETED": "Run Completed",
    "FAILED": "Run Failed",
    "APPROVED": "Run Approved",
    # a run held for approval: for whoever must decide (the run-end rule does not queue it for the triggers)
    "PENDING_APPROVAL": "Run Pending Approval",
}


class RunEvents:
    client: LazyClient[EventBridgeClient] = LazyClient("events")

    def __init__(self, bus_name: str, client: EventBridgeClient | None = None):
        self.bus_name = bus_name
        self._client = client

    def publish(self, detail: dict[str, Any]) -> str:
        response = self.client.put_events(
            Entries=[
                {
                    "EventBusName": self.bus_name,
                    "Source": SOURCE,
                    "DetailType": DETAIL_TYPES[detail["outcome"]],
                    "Detail": json.dumps(detail),
                }
            ]
        )
        if response.get("FailedEntryCount"):
            raise StoreError(f"PutEvents to {self.bus_name} failed: {response['Entries'][0]}")
        return response["Entries"][0]["EventId"]
