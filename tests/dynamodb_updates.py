"""Updates and transactions through moto's DynamoDB, every answer and the items at the end, as JSON.

``python -m tests.dynamodb_updates moto`` runs them on moto as it is, ``… patched`` after the local cloud's
patches (motopatches.apply()): tests/unit/test_motopatches.py compares the two. Each expression is used
several times, with different attribute names, tables and items, so an answer remembered from one use and
wrongly given to another shows as a difference; each syntax rule moto enforces is broken at least twice.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TABLES = {
    "pairs": [("pk", "HASH"), ("sk", "RANGE")],
    "single": [("id", "HASH")],
}


def key(table: str, name: str) -> dict:
    return {"pk": {"S": "p"}, "sk": {"S": name}} if table == "pairs" else {"id": {"S": name}}


def update(table: str, item: str, expression: str, values: dict | None = None, names: dict | None = None, **extra):
    request: dict[str, Any] = {"TableName": table, "Key": key(table, item), "UpdateExpression": expression, **extra}
    if values:
        request["ExpressionAttributeValues"] = values
    if names:
        request["ExpressionAttributeNames"] = names
    return request


N = {"N": "1"}
S = {"S": "x"}
OUTCOME = "SET #status = :s, a = :a, created = if_not_exists(created, :a), n2 = :one REMOVE gone ADD n :one"
OUTCOME_VALUES = {":s": {"S": "DONE"}, ":a": S, ":one": N}
TWO = "SET #x = :a, #y = :one"
KEYED = "SET #k = :a"
APPEND = "SET l = list_append(if_not_exists(l, :empty), :items)"
APPEND_VALUES = {":empty": {"L": []}, ":items": {"L": [S, N]}}

UPDATES: list[tuple[str, dict]] = [
    ("new item", update("pairs", "1", OUTCOME, OUTCOME_VALUES, {"#status": "status"}, ReturnValues="ALL_NEW")),
    ("existing item", update("pairs", "1", OUTCOME, OUTCOME_VALUES, {"#status": "status"}, ReturnValues="ALL_NEW")),
    ("other table", update("single", "1", OUTCOME, OUTCOME_VALUES, {"#status": "status"}, ReturnValues="ALL_OLD")),
    ("two SET clauses", update("pairs", "1", "SET a = :a SET n2 = :one", {":a": S, ":one": N})),
    ("two SET clauses again", update("pairs", "1", "SET a = :a SET n2 = :one", {":a": S, ":one": N})),
    ("two REMOVE clauses", update("pairs", "1", "REMOVE a REMOVE n2")),
    ("same path twice", update("pairs", "1", "SET a = :a, a = :one", {":a": S, ":one": N})),
    ("same path twice again", update("pairs", "2", "SET a = :a, a = :one", {":a": S, ":one": N})),
    ("paths overlap", update("pairs", "1", "SET m = :a, m.leaf = :one", {":a": S, ":one": N})),
    ("names apart", update("pairs", "1", TWO, {":a": S, ":one": N}, {"#x": "p", "#y": "q"})),
    ("names on one attribute", update("pairs", "1", TWO, {":a": S, ":one": N}, {"#x": "p", "#y": "p"})),
    ("names apart again", update("pairs", "1", TWO, {":a": S, ":one": N}, {"#x": "p", "#y": "q"})),
    ("names on one attribute again", update("pairs", "1", TWO, {":a": S, ":one": N}, {"#x": "q", "#y": "q"})),
    ("a range key", update("pairs", "1", KEYED, {":a": S}, {"#k": "sk"})),
    ("not a key", update("pairs", "1", KEYED, {":a": S}, {"#k": "other"})),
    ("a range key again", update("pairs", "1", KEYED, {":a": S}, {"#k": "sk"})),
    ("no key on this table", update("single", "1", KEYED, {":a": S}, {"#k": "sk"})),
    ("a range key after it passed elsewhere", update("pairs", "2", KEYED, {":a": S}, {"#k": "sk"})),
    ("the hash key here", update("single", "1", KEYED, {":a": S}, {"#k": "id"})),
    ("the hash key there", update("pairs", "1", KEYED, {":a": S}, {"#k": "pk"})),
    ("list_append on nothing", update("pairs", "3", APPEND, APPEND_VALUES, ReturnValues="UPDATED_NEW")),
    ("list_append on a list", update("pairs", "3", APPEND, APPEND_VALUES, ReturnValues="UPDATED_NEW")),
    ("a path in no map", update("pairs", "3", "SET m.leaf = :a", {":a": S})),
    ("the map made", update("pairs", "3", "SET m = :m", {":m": {"M": {"x": S}}})),
    ("a path in the map", update("pairs", "3", "SET m.leaf = :a", {":a": S}, ReturnValues="ALL_NEW")),
    ("arithmetic", update("pairs", "3", "SET c = if_not_exists(c, :zero) + :one", {":zero": {"N": "0"}, ":one": N})),
    ("arithmetic again", update("pairs", "3", "SET c = if_not_exists(c, :zero) + :one", {":zero": {"N": "0"}, ":one": N})),
    ("arithmetic on a string", update("pairs", "3", "SET a = a + :one", {":one": N})),
    ("a value missing", update("pairs", "3", "SET a = :nowhere", {":a": S})),
    ("a name unused", update("pairs", "3", "SET a = :a", {":a": S}, {"#unused": "u"})),
    ("a set added to", update("pairs", "3", "ADD ss :ss", {":ss": {"SS": ["a", "b"]}})),
    ("a set taken from", update("pairs", "3", "DELETE ss :ss", {":ss": {"SS": ["a"]}}, ReturnValues="ALL_NEW")),
    ("ADD twice", update("pairs", "3", "ADD n :one, n :one", {":one": N})),
    ("a condition that holds", update("pairs", "3", "SET a = :a", {":a": S, ":c": {"N": "2"}},
                                      ConditionExpression="c = :c")),
    ("a condition that fails", update("pairs", "3", "SET a = :a", {":a": S, ":c": {"N": "9"}},
                                      ConditionExpression="c = :c", ReturnValuesOnConditionCheckFailure="ALL_OLD")),
    ("an empty expression", update("pairs", "3", "   ")),
    ("not an expression", update("pairs", "3", "SET = :a", {":a": S})),
]  # fmt: skip

TRANSACTIONS: list[tuple[str, list[dict]]] = [
    ("two outcomes", [{"Update": update("pairs", "t1", OUTCOME, OUTCOME_VALUES, {"#status": "status"})},
                      {"Update": update("pairs", "t2", OUTCOME, OUTCOME_VALUES, {"#status": "status"})}]),
    ("one condition fails", [
        {"Update": update("pairs", "t1", OUTCOME, OUTCOME_VALUES, {"#status": "status"})},
        {"Update": update("pairs", "t3", OUTCOME, {**OUTCOME_VALUES, ":old": {"S": "NEW"}}, {"#status": "status"},
                          ConditionExpression="#status = :old")}]),
    ("a bad expression inside", [
        {"Update": update("pairs", "t1", OUTCOME, OUTCOME_VALUES, {"#status": "status"})},
        {"Update": update("pairs", "t4", "SET a = :a SET n2 = :one", {":a": S, ":one": N})}]),
    ("a key updated inside", [{"Update": update("single", "t5", KEYED, {":a": S}, {"#k": "id"})}]),
    ("counters", [{"Update": update("pairs", "t1", OUTCOME, OUTCOME_VALUES, {"#status": "status"})},
                  {"Update": update("single", "c", "SET t = :one ADD #c0 :one, #c1 :one", {":one": N},
                                    {"#c0": "done", "#c1": "ms"})}]),
]  # fmt: skip


def answers() -> dict:
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    if sys.argv[1:] == ["patched"]:
        from jobgraph.localcloud import motopatches

        motopatches.apply()
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="eu-west-1")
    out: dict[str, Any] = {"updates": [], "transactions": []}
    with mock_aws():
        db = boto3.client("dynamodb")
        for name, schema in TABLES.items():
            db.create_table(
                TableName=name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": a, "KeyType": t} for a, t in schema],
                AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a, _ in schema],
            )  # fmt: skip

        def call(method, **request) -> list:
            try:
                answer = method(**request)
                return ["ok", answer.get("Attributes")]
            except ClientError as exc:
                error = exc.response.get("Error", {})
                return ["refused", error.get("Code"), error.get("Message"), exc.response.get("Item")]

        for label, request in UPDATES:
            out["updates"].append([label, call(db.update_item, **request)])
        for label, items in TRANSACTIONS:
            out["transactions"].append([label, call(db.transact_write_items, TransactItems=items)])
        out["items"] = {
            name: sorted((db.scan(TableName=name)["Items"]), key=lambda item: json.dumps(item, sort_keys=True))
            for name in TABLES
        }
    return out


if __name__ == "__main__":
    print(json.dumps(answers(), sort_keys=True))
