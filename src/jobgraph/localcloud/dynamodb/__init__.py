"""DynamoDB, locally: moto's backend with two patches that change its speed, never its answers.

- transactions.py: a TransactWriteItems backs up the items it names, not whole tables (moto copied each
  table once per item: O(table) per transaction).
- expressions.py: an UpdateExpression is parsed once per distinct string and its syntax checked once per
  string, attribute names and key schema (moto parsed it twice per request and ran every check each time).

``apply()`` applies each only if moto still has the shape it replaces and returns the names of those in
effect (motopatches.apply() calls it; tests/unit/test_motopatches.py checks both against moto's own answers).
"""

from __future__ import annotations


def apply() -> list[str]:
    from jobgraph.localcloud.dynamodb import expressions, transactions

    return transactions.apply() + expressions.apply()
