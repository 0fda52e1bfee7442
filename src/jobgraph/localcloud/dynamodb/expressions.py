"""DynamoDB update expressions parsed once and their syntax checked once.

Profiling the local cloud under a service latency profile (issue 16) showed its one serial server spending
most of a run's time in moto's UpdateItem and TransactWriteItems (~10 ms and ~100 ms of CPU for a job's
claim and a batch's outcomes), and every other request queueing behind them. For each update moto

1. parses the UpdateExpression twice (the request handler, then the backend);
2. deep-copies the parsed tree once per check pass (twice for an item the update creates);
3. runs ten passes over the tree. Three look only at the expression's syntax, the attribute names and the
   table's key schema: at most one SET/ADD/REMOVE clause (a pass quadratic in the number of actions),
   no overlapping paths, no key attribute updated. They are half the checking time of a job's outcome;
4. recomputes, for every node of every pass, the node types the pass handles.

The patches, each the same answer for the same input:

1. ``UpdateExpressionParser.make`` keeps the trees of the last PARSED_EXPRESSIONS expression strings. moto
   never changes a parsed tree: the request handler only reads it, and the checks work on a copy.
2. That copy is made by pickling the tree (the copy protocol deepcopy follows; ~3x faster for these plain
   object trees), falling back to deepcopy for anything that does not pickle. Only trees are copied so; a
   value (DynamoType, with its own ``__deepcopy__``) is deep-copied as before.
3. The three syntax passes run once per parsed tree, attribute names and key schema: once one has passed,
   it is skipped for the same again. A pass that raises is never remembered, so a bad expression is refused
   every time, with moto's own error. The passes that read the item or the values run every time.
4. Each pass's node types are computed once per pass.

tests/unit/test_motopatches.py runs a list of updates and transactions — valid ones, and ones moto refuses
for each syntax rule — through moto with and without these patches and compares every answer and item.
"""

from __future__ import annotations

import copy
import functools
import pickle
from typing import Any

PARSED_EXPRESSIONS = 512  # distinct update expression strings whose parsed trees are kept
PASSED_CHECKS = 4096  # (tree, check, names, key schema) remembered as passed, then forgotten all at once
SYNTAX_CHECKS = ("ActionCountValidator", "OverlappingPathsValidator", "UpdateHashRangeKeyValidator")

NAMES = (
    "DynamoDB update expressions parsed once per expression",
    "DynamoDB update expression trees copied by pickling",
    "DynamoDB update expression syntax checked once per expression",
    "DynamoDB expression passes list their node types once",
)

# id(tree) and the check's inputs -> the tree: a key is trusted only while the tree it names is the one kept
_passed: dict[tuple, Any] = {}


def apply() -> list[str]:
    from moto.dynamodb.parsing import ast_nodes, expressions, validators

    applied = []
    parser = expressions.UpdateExpressionParser
    make = parser.__dict__.get("make")
    if isinstance(make, classmethod):
        parser.make = classmethod(functools.lru_cache(maxsize=PARSED_EXPRESSIONS)(make.__func__))
        applied.append(NAMES[0])
    if callable(getattr(validators, "deepcopy", None)):
        validators.deepcopy = _tree_copier(ast_nodes.Node)
        applied.append(NAMES[1])
    validator = validators.Validator
    checks = tuple(getattr(validators, name, None) for name in SYNTAX_CHECKS)
    if callable(validator.__dict__.get("__init__")) and all(isinstance(check, type) for check in checks):
        validator.__init__ = _syntax_checked_once(validator.__init__, checks)
        applied.append(NAMES[2])
    traverser = ast_nodes.DepthFirstTraverser
    if callable(traverser.__dict__.get("nodes_to_be_processed")):
        traverser.nodes_to_be_processed = _types_once(traverser.__dict__["nodes_to_be_processed"])
        applied.append(NAMES[3])
    return applied


def _tree_copier(node_class: type):
    def deepcopy(value, memo=None):
        if memo is None and isinstance(value, node_class):
            try:
                return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
            except Exception:  # something in the tree does not pickle: copied the slow way
                pass
        return copy.deepcopy(value, memo)

    return deepcopy


def _syntax_checked_once(init, checks: tuple[type, ...]):
    """The Validator's __init__, then each syntax pass over a tree it has passed before made a no-op."""

    def __init__(self, expression, *args, **kwargs):
        init(self, expression, *args, **kwargs)
        try:
            names = tuple(sorted((self.expression_attribute_names or {}).items()))
            key_schema = tuple(getattr(getattr(self, "table", None), "table_key_attrs", None) or ())
            hash((names, key_schema))
        except TypeError:  # names moto will refuse: every check runs, as moto's own would
            return
        for check in self.processors:
            if isinstance(check, checks):
                key = (id(expression), type(check), names, key_schema)
                if _passed.get(key) is expression:
                    check.traverse = _unchanged
                else:
                    check.traverse = _remembered(check.traverse, key, expression)

    return __init__


def _unchanged(node):
    return node


def _remembered(traverse, key: tuple, expression):
    def remembering(node):
        checked = traverse(node)  # raises for a bad expression: then nothing is remembered
        if len(_passed) >= PASSED_CHECKS:
            _passed.clear()
        _passed[key] = expression  # also keeps the tree alive, so its id names no other tree meanwhile
        return checked

    return remembering


def _types_once(nodes_to_be_processed):
    def types(self):
        found = self.__dict__.get("_node_types")
        if found is None:
            found = self.__dict__["_node_types"] = nodes_to_be_processed(self)
        return found

    return types
