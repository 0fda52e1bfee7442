"""DynamoDB transactions that back up their items, not their tables.

moto backs a TransactWriteItems up by deep-copying each table it writes, once per item, to roll back a
cancelled one — O(table) per transaction, under the serial server's lock (18 ms for 300 job records, 160 ms
for 3,000, twice per job once every outcome is a transaction with the run's counters): a run would slow down
with its table, which DynamoDB does not. ``_transaction_item_backup`` backs up only the items the transaction
names and puts them back if moto raises; the tables are not copied. Same results:
tests/unit/test_motopatches.py cancels transactions half-applied.
"""

from __future__ import annotations

import threading

NAME = "DynamoDB transactions back up their items, not their tables"


def apply() -> list[str]:
    from moto.dynamodb import models as dynamodb_models

    backend = dynamodb_models.DynamoDBBackend
    if callable(getattr(backend, "transact_write_items", None)) and hasattr(dynamodb_models, "copy"):
        backend.transact_write_items = _transaction_item_backup(backend.transact_write_items)
        return [NAME]
    return []


_TRANSACTION_LOCK = threading.Lock()


def _transaction_item_backup(original):
    import copy

    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    class TablesUncopied:
        """What moto's module sees as ``copy`` during a transaction: a table is its own backup."""

        @staticmethod
        def deepcopy(value, memo=None):
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    def named_items(backend, transact_items) -> list[tuple]:
        items = []
        for entry in transact_items:
            for op in entry.values():
                table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
                if table is None:
                    continue
                key = op.get("Key") or op.get("Item") or {}
                hash_value = DynamoType(key[table.hash_key_attr])
                range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
                items.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
        return items

    def restore(table, hash_value, range_value, item) -> None:
        if item is None:
            table.delete_item(hash_value, range_value)
        elif range_value is not None:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item

    def transact_write_items(self, transact_items):
        try:
            backup = named_items(self, transact_items)
        except Exception:  # a malformed request: moto's own code says what is wrong with it
            return original(self, transact_items)
        with _TRANSACTION_LOCK:
            dynamodb_models.copy = TablesUncopied
            try:
                return original(self, transact_items)
            except Exception:
                for saved in reversed(backup):
                    restore(*saved)
                raise
            finally:
                dynamodb_models.copy = copy

    return transact_write_items
