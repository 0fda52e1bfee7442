"""The jobs table in memory: items by (pk, sk) behind one lock, in the plain form the DynamoDB stores return.

Numbers are Decimals and number sets sets of Decimals, as boto3's deserializer gives them, so code that
works on the fake's records works on the table's. Every store call takes the lock once, so each call is
atomic, as each conditional request (or transaction) is on DynamoDB.
"""

from __future__ import annotations

import copy
import threading
import time
from decimal import Decimal
from typing import Any

from jobgraph.adapters.table_layout import Key
from jobgraph.core.ports import Record


def number(value: float | int | str) -> Decimal:
    """A number as DynamoDB stores it (its decimal string)."""
    return Decimal(str(value))


def typed_key(item: Record, *attributes: str) -> dict[str, Any]:
    """A page key as DynamoDB's LastEvaluatedKey spells it (what callers hand back as ExclusiveStartKey)."""
    return {name: {"S": str(item[name])} for name in attributes}


def page_of(
    order: list[Record], limit: int, start_key: dict[str, Any] | None, key_names: tuple[str, ...]
) -> tuple[list[Record], dict[str, Any] | None]:
    """At most ``limit`` items of ``order`` after ``start_key``, and the key to go on from (None: last page)."""
    start = 0
    if start_key:
        after = (i + 1 for i, item in enumerate(order) if typed_key(item, *start_key) == start_key)
        start = next(after, len(order))
    page = order[start : start + limit]
    more = start + limit < len(order)
    return page, typed_key(page[-1], *key_names) if more and page else None


class MemoryTable:
    """The items of one jobs table, shared by the memory stores built on it."""

    def __init__(self, name: str = "memory", ttl_days: int = 30) -> None:
        self.name = name
        self.ttl_days = ttl_days
        self.items: dict[Key, Record] = {}
        self.lock = threading.RLock()

    def expires_at(self) -> Decimal | None:
        return number(int(time.time()) + self.ttl_days * 86400) if self.ttl_days else None

    def get(self, key: Key) -> Record | None:
        """A copy of the item (callers never alias stored state), or None."""
        item = self.items.get(key)
        return copy.deepcopy(item) if item is not None else None

    def put(self, key: Key, item: Record) -> Record:
        self.items[key] = {"pk": key[0], "sk": key[1], **item}
        return copy.deepcopy(self.items[key])

    def update(self, key: Key, changes: Record) -> Record:
        """Set ``changes`` on the item (made if absent); the new image."""
        item = self.items.setdefault(key, {"pk": key[0], "sk": key[1]})
        item.update(changes)
        return copy.deepcopy(item)

    def add(self, key: Key, deltas: dict[str, int | float]) -> None:
        """ADD each delta to a number attribute (0 when absent), as an UpdateExpression's ADD."""
        item = self.items.setdefault(key, {"pk": key[0], "sk": key[1]})
        for name, delta in deltas.items():
            item[name] = item.get(name, Decimal(0)) + number(delta)

    def partition(self, pk: str, sk_prefix: str = "") -> list[Record]:
        """The items of one partition whose sort key starts with ``sk_prefix``, by sort key."""
        found = [item for (p, s), item in self.items.items() if p == pk and s.startswith(sk_prefix)]
        return [copy.deepcopy(item) for item in sorted(found, key=lambda item: str(item["sk"]))]


class MemoryAccess:
    """What every memory store shares: the table (its own, unless one is given to share)."""

    def __init__(self, table: MemoryTable | None = None) -> None:
        self.memory = table if table is not None else MemoryTable()

    @property
    def table_name(self) -> str:
        return self.memory.name
