"""What every store of the jobs table shares: the table, its client (made lazily), keys, and how DynamoDB's
answers are read (typed attribute values to plain values, a failed condition told from other errors)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from jobgraph.adapters import table_layout as layout
from jobgraph.adapters.clients import LazyClient
from jobgraph.core.ports import Record

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Item = dict[str, Any]  # an item in DynamoDB's typed form: {"pk": {"S": "RUN#r"}, ...}


def conditional_failed(exc: Any) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def condition_failed_first(exc: Any) -> bool:
    """A cancelled transaction whose first item (the job record) failed its condition."""
    reasons = exc.response.get("CancellationReasons") or []
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"


def transaction_conflict(exc: Any) -> bool:
    """A cancelled transaction that met another transaction on one of its items."""
    return any(r.get("Code") == "TransactionConflict" for r in exc.response.get("CancellationReasons") or [])


def plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserializer = TypeDeserializer()
    return {k: deserializer.deserialize(v) for k, v in item.items()}


def typed_key(key: layout.Key) -> dict[str, Any]:
    """A key of the table's layout in DynamoDB's typed form."""
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def run_key(run_id: str) -> dict[str, Any]:
    return typed_key(layout.run_key(run_id))


def job_key(run_id: str, job_id: str) -> dict[str, Any]:
    return typed_key(layout.job_key(run_id, job_id))


def task_key(task_id: str) -> dict[str, Any]:
    return typed_key(layout.task_key(task_id))


def progress_key(run_id: str, at: str) -> dict[str, Any]:
    return typed_key(layout.progress_key(run_id, at))


class TableAccess:
    """One jobs table: its name, records' time to live, and a boto3 client (the default one, made lazily)."""

    client: LazyClient[DynamoDBClient] = LazyClient("dynamodb")

    def __init__(self, table_name: str, ttl_days: int = 30, client: DynamoDBClient | None = None):
        self.table_name = table_name
        self.ttl_days = ttl_days
        self._client = client

    def _expires_at(self) -> dict[str, Any]:
        return {"N": str(int(time.time()) + self.ttl_days * 86400)} if self.ttl_days else {"NULL": True}

    def _item(self, key: dict[str, Any]) -> Record | None:
        """The item under ``key`` (a consistent read), or None."""
        response = self.client.get_item(TableName=self.table_name, Key=key, ConsistentRead=True)
        return plain(response["Item"]) if "Item" in response else None

    def _put_new(self, item: Item) -> bool:
        """One PutItem of an item whose key is not taken yet; False (nothing written) when it is."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_item(TableName=self.table_name, Item=item, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if conditional_failed(exc):
                return False
            raise
        return True

    def _update(self, key: dict[str, Any], **update: Any) -> dict[str, Any] | None:
        """One conditional UpdateItem: DynamoDB's answer, or None when the condition failed."""
        from botocore.exceptions import ClientError

        try:
            return dict(self.client.update_item(TableName=self.table_name, Key=key, **update))
        except ClientError as exc:
            if conditional_failed(exc):
                return None
            raise

    def _update_if(self, key: dict[str, Any], **update: Any) -> bool:
        """One conditional UpdateItem; False when its condition does not hold."""
        return self._update(key, **update) is not None

    def _update_new(self, key: dict[str, Any], **update: Any) -> Record | None:
        """One conditional UpdateItem; the item's new image, or None when the condition failed."""
        response = self._update(key, ReturnValues="ALL_NEW", **update)
        return None if response is None else plain(response["Attributes"])

    def _query_all(self, **query: Any) -> list[Record]:
        """Every item one query finds, page after page."""
        items: list[Record] = []
        while True:
            response = self.client.query(TableName=self.table_name, **query)
            items.extend(plain(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            query["ExclusiveStartKey"] = response["LastEvaluatedKey"]
