"""A small IAM evaluator for the tests: which actions a boto3 call needs, and whether a role's policies allow them.

Deliberately narrow: identity policies only (inline statements of the role plus the few AWS managed policies
SAM attaches), `Action`/`NotAction`/`Resource`/`NotResource` with IAM's `*`/`?` wildcards, explicit Deny wins,
and the one condition key the templates use (`dynamodb:LeadingKeys`, ForAllValues:StringEquals/StringLike).
Anything else it meets raises, so it cannot silently say "allowed". Its rules are checked against AWS's
documented policy evaluation logic in tests/unit/test_iam_policy.py. (No maintained library evaluates a
request against policies offline: moto's evaluator treats a failed condition as a Deny and matches actions
case-sensitively; policyuniverse, parliament and policy_sentry parse, lint or write policies.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlparse

from tests.cfn_eval import Stack

PARTITION = "aws"

# The AWS managed policies SAM attaches to function roles (actions as AWS publishes them; Resource "*").
MANAGED_POLICY_ACTIONS = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:GetSamplingStatisticSummaries",
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ],
}

# API operation → IAM action where the names differ (the rest are "<service>:<Operation>").
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
}
SQS_ACTIONS = {
    "SendMessageBatch": "sqs:SendMessage",
    "DeleteMessageBatch": "sqs:DeleteMessage",
    "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}
# A DynamoDB transaction is authorised per item, with the single-item actions.
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Get": "dynamodb:GetItem",
}


@dataclass(frozen=True)
class Call:
    service: str  # botocore service name: s3, dynamodb, sqs
    operation: str  # API operation name, e.g. PutObject
    params: dict = field(hash=False, compare=False)


@dataclass(frozen=True)
class Permission:
    action: str
    resource: str
    leading_keys: tuple[str, ...] = ()  # dynamodb:LeadingKeys of an item-level call


def _table_arn(region: str, account: str, table: str, index: str | None = None) -> str:
    arn = f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _leading_keys(key: dict | None) -> tuple[str, ...]:
    if not key or "pk" not in key:
        return ()
    return tuple(str(v) for v in key["pk"].values())


def required_permissions(call: Call, region: str, account: str) -> list[Permission]:
    """The IAM action(s) and resource(s) one API call is authorised against."""
    p = call.params
    if call.service == "s3":
        action = S3_ACTIONS.get(call.operation, f"s3:{call.operation}")
        bucket_arn = f"arn:{PARTITION}:s3:::{p['Bucket']}"
        return [Permission(action, f"{bucket_arn}/{p['Key']}" if "Key" in p else bucket_arn)]
    if call.service == "sqs":
        path = urlparse(p["QueueUrl"]).path.strip("/").split("/")
        queue_account, queue_name = path[-2], path[-1]
        action = SQS_ACTIONS.get(call.operation, f"sqs:{call.operation}")
        return [Permission(action, f"arn:{PARTITION}:sqs:{region}:{queue_account}:{queue_name}")]
    if call.service == "dynamodb":
        if call.operation in ("TransactWriteItems", "TransactGetItems"):
            out = []
            for item in p["TransactItems"]:
                ((kind, body),) = item.items()
                key = body.get("Key") or body.get("Item")
                out.append(
                    Permission(
                        TRANSACT_ITEM_ACTIONS[kind],
                        _table_arn(region, account, body["TableName"]),
                        _leading_keys(key),
                    )
                )
            return out
        if call.operation in ("BatchWriteItem", "BatchGetItem"):
            return [
                Permission(f"dynamodb:{call.operation}", _table_arn(region, account, table))
                for table in p["RequestItems"]
            ]
        key = p.get("Key") or p.get("Item")
        resource = _table_arn(region, account, p["TableName"], p.get("IndexName"))
        return [Permission(f"dynamodb:{call.operation}", resource, _leading_keys(key))]
    if call.service == "events" and call.operation == "PutEvents":
        return [
            Permission(
                "events:PutEvents",
                bus if (bus := entry.get("EventBusName", "default")).startswith("arn:")
                else f"arn:{PARTITION}:events:{region}:{account}:event-bus/{bus}",
            )
            for entry in p["Entries"]
        ]  # fmt: skip
    if call.service == "stepfunctions" and call.operation == "StartExecution":
        return [Permission("states:StartExecution", p["stateMachineArn"])]
    if call.service == "lambda" and call.operation == "Invoke":
        name = p["FunctionName"]
        arn = name if name.startswith("arn:") else f"arn:{PARTITION}:lambda:{region}:{account}:function:{name}"
        return [Permission("lambda:InvokeFunction", arn)]
    raise AssertionError(f"no IAM mapping for {call.service}:{call.operation}; extend tests/iam_policy.py")


# ------------------------------------------------------------------------------ policy documents
@dataclass
class Bindings:
    """Physical values for the intrinsics policy resources use (Ref / GetAtt / pseudo parameters), for `Stack`."""

    refs: dict[str, str]
    attributes: dict[str, str]  # "Logical.Attribute" → value


def bindings_for(
    bucket: str, table: str, queues: dict[str, str], region: str, account: str, event_bus: str = "runs"
) -> Bindings:
    """Bindings for this template's resources: the bucket, the table, queues (logical id → queue name), the bus."""
    attributes = {
        "ResultsBucket.Arn": f"arn:{PARTITION}:s3:::{bucket}",
        "JobsTable.Arn": _table_arn(region, account, table),
        "RunEventsBus.Arn": f"arn:{PARTITION}:events:{region}:{account}:event-bus/{event_bus}",
        "RunEventsBus.Name": event_bus,
    }
    for logical_id, name in queues.items():
        attributes[f"{logical_id}.QueueName"] = name
        attributes[f"{logical_id}.Arn"] = f"arn:{PARTITION}:sqs:{region}:{account}:{name}"
    refs = {
        "ResultsBucket": bucket,
        "JobsTable": table,
        "AWS::Partition": PARTITION,
        "AWS::Region": region,
        "AWS::AccountId": account,
    }
    return Bindings(refs=refs, attributes=attributes)


def iam_glob(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcard match: ``*`` any run of characters (``/`` and ``:`` included), ``?`` exactly one;
    everything else literal (unlike fnmatch, ``[`` … ``]`` is no character class)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


# The condition operators this evaluator models, each on the one key the templates use.
SUPPORTED_CONDITIONS = {
    ("ForAllValues:StringEquals", "dynamodb:LeadingKeys"),
    ("ForAllValues:StringLike", "dynamodb:LeadingKeys"),
}


@dataclass(frozen=True)
class Statement:
    """One identity-policy statement. Exactly one of actions/not_actions and of resources/not_resources
    is given (AWS's grammar); a statement applies to a request when its action part, its resource part and
    every condition match (conditions AND across operators and keys, OR across a key's values)."""

    effect: str
    actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    condition: dict = field(hash=False, compare=False, default_factory=dict)
    not_actions: tuple[str, ...] | None = None
    not_resources: tuple[str, ...] | None = None
    managed: bool = field(default=False, compare=False)  # from an AWS managed policy SAM attaches

    def __post_init__(self):
        if self.effect not in ("Allow", "Deny"):
            raise AssertionError(f"Effect must be Allow or Deny, got {self.effect!r}")
        if (self.not_actions is None) == (not self.actions):
            raise AssertionError("a statement has exactly one of Action and NotAction")
        if (self.not_resources is None) == (not self.resources):
            raise AssertionError("a statement has exactly one of Resource and NotResource")
        for operator, clauses in self.condition.items():
            for key in clauses:
                if (operator, key) not in SUPPORTED_CONDITIONS:
                    raise AssertionError(f"condition {operator} {key} is not modelled by tests/iam_policy.py")

    def matches(self, permission: Permission) -> bool:
        # action names are case-insensitive in IAM, resource ARNs are not
        if self.not_actions is not None:
            if any(iam_glob(p, permission.action, case_sensitive=False) for p in self.not_actions):
                return False
        elif not any(iam_glob(p, permission.action, case_sensitive=False) for p in self.actions):
            return False
        if self.not_resources is not None:
            if any(iam_glob(p, permission.resource) for p in self.not_resources):
                return False
        elif not any(iam_glob(p, permission.resource) for p in self.resources):
            return False
        return self._condition_holds(permission)

    def _condition_holds(self, permission: Permission) -> bool:
        for operator, clauses in self.condition.items():
            for _key, expected in clauses.items():  # the key is dynamodb:LeadingKeys (__post_init__)
                expected = [expected] if isinstance(expected, str) else list(expected)
                case_sensitive_equal = operator == "ForAllValues:StringEquals"
                # ForAllValues: every value in the request matches one of the condition's values — true when
                # the request has no value for the key at all (AWS's documented rule; why a Scan, which names
                # no partition key, passes a LeadingKeys condition)
                for value in permission.leading_keys:
                    if case_sensitive_equal:
                        ok = value in expected
                    else:
                        ok = any(iam_glob(pattern, value) for pattern in expected)
                    if not ok:
                        return False
        return True


def _listify(value) -> list:
    return value if isinstance(value, list) else [value]


def statement_of(raw: dict, resources: tuple[str, ...] | None = None) -> Statement:
    """A Statement from a policy document's statement (``resources``: its Resource/NotResource, resolved)."""
    if resources is None:
        resources = tuple(_listify(raw.get("Resource", raw.get("NotResource"))))
    negated_action, negated_resource = "NotAction" in raw, "NotResource" in raw
    actions = tuple(_listify(raw["NotAction" if negated_action else "Action"]))
    return Statement(
        raw["Effect"],
        actions=() if negated_action else actions,
        resources=() if negated_resource else resources,
        condition=raw.get("Condition", {}),
        not_actions=actions if negated_action else None,
        not_resources=resources if negated_resource else None,
    )


def tree_role_statements(tree, function_logical_id: str, bindings: Bindings, overrides: dict | None = None):
    """role_statements of a function in ``tree`` (sam.template.transform_tree) or one of its nested templates,
    whose parameters are what the parents pass (the shared pieces' functions)."""
    root = Stack.from_tree(tree, overrides, bindings.refs, bindings.attributes)
    for _trail, stack in root.walk():
        if function_logical_id in stack.template["Resources"]:
            return role_statements(stack.template, function_logical_id, bindings, stack.overrides, stack.children)
    raise AssertionError(f"no {function_logical_id} in {tree.path} or its nested templates")


def role_statements(
    template: dict,
    function_logical_id: str,
    bindings: Bindings,
    overrides: dict | None = None,
    children: dict | None = None,
) -> list[Statement]:
    """Every identity-policy statement of a transformed function's execution role (``overrides``: parameter
    values; ``children``: nested templates whose outputs the policies use)."""
    stack = Stack(template, overrides or {}, bindings.refs, bindings.attributes, children or {})
    role_ref = template["Resources"][function_logical_id]["Properties"]["Role"]
    role_id = role_ref["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    statements = []
    for arn in role.get("ManagedPolicyArns", []):
        if arn not in MANAGED_POLICY_ACTIONS:
            raise AssertionError(f"{role_id}: managed policy {arn} is not modelled in tests/iam_policy.py")
        statements.append(Statement("Allow", tuple(MANAGED_POLICY_ACTIONS[arn]), ("*",), managed=True))
    for policy in role.get("Policies", []):
        # resolved first: a statement may be an Fn::If (TriggerFunction: one per configured target type)
        for raw in stack.resolve(_listify(policy["PolicyDocument"]["Statement"])):
            # a CommaDelimitedList parameter resolves to a list
            resources = [
                r
                for value in stack.resolve(_listify(raw.get("Resource", raw.get("NotResource"))))
                for r in (value if isinstance(value, list) else [value])
            ]
            if unbound := [r for r in resources if not isinstance(r, str) or "<" in r]:  # a placeholder: no binding
                raise AssertionError(f"{role_id}: cannot resolve policy resources {unbound}")
            statements.append(statement_of(raw, tuple(resources)))
    return statements


def is_allowed(statements: list[Statement], permission: Permission) -> bool:
    """AWS's evaluation for identity policies: an explicit Deny wins, else any Allow, else the implicit deny."""
    if any(s.effect == "Deny" and s.matches(permission) for s in statements):
        return False
    return any(s.effect == "Allow" and s.matches(permission) for s in statements)


def granted_actions(statements: list[Statement]) -> set[str]:
    """The actions the role's own statements allow (AWS managed policies left out: SAM attaches those for
    logs and traces). A wildcard or a NotAction is returned as written, so it can never pass as "used"."""
    granted = set()
    for s in statements:
        if s.effect == "Allow" and not s.managed:
            granted |= {f"NotAction {a}" for a in s.not_actions} if s.not_actions is not None else set(s.actions)
    return granted


def unused_grants(statements: list[Statement], used: set[str], needed_unrecorded: dict[str, str]) -> list[str]:
    """Allowed actions that neither a recorded call used nor ``needed_unrecorded`` (action → why it is needed
    although no call of the code makes it, e.g. the SQS event source polling with the function's role) names."""
    return sorted(
        action
        for action in granted_actions(statements)
        if not any(action.lower() == u.lower() for u in (*used, *needed_unrecorded))
    )
