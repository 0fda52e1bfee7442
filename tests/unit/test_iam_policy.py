"""tests/iam_policy.py — every "allowed" verdict of the template tests relies on it — against AWS's
documented policy evaluation logic (IAM User Guide, "Policy evaluation logic" and "IAM JSON policy
elements"), rule by rule:

1. By default every request is implicitly denied; an applicable Allow allows it; an applicable explicit
   Deny overrides any Allow.
2. Action names are case-insensitive; resource ARNs are case-sensitive; ``*`` matches any run of
   characters and ``?`` exactly one, in both (a ``*`` crosses ``:`` and ``/``); nothing else is special.
3. NotAction/NotResource match everything except what they list; with Allow that allows, with Deny that
   denies, everything else.
4. A statement applies only when all of its conditions hold: operators AND, keys within an operator AND,
   values of one key OR. ForAllValues holds when every value in the request matches one of the policy's
   values — and also when the request has no value for the key.
Plus the mapping from API calls to the IAM actions and resource ARNs AWS's Service Authorization
Reference documents for them.
"""

from __future__ import annotations

import pytest

from tests.iam_policy import Call, Permission, Statement, is_allowed, required_permissions, statement_of

TABLE = "arn:aws:dynamodb:eu-west-1:123456789012:table/jobs"
BUCKET = "arn:aws:s3:::results"


def allowed(statements: list[dict], action: str, resource: str, leading_keys: tuple[str, ...] = ()) -> bool:
    return is_allowed([statement_of(s) for s in statements], Permission(action, resource, leading_keys))


def allow(action, resource, **extra) -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action, resource, **extra) -> dict:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


# --- 1. implicit deny, allow, explicit deny wins ------------------------------------------------------------


def test_nothing_is_allowed_without_an_allow():
    assert not allowed([], "s3:GetObject", f"{BUCKET}/k")
    assert not allowed([allow("s3:PutObject", f"{BUCKET}/*")], "s3:GetObject", f"{BUCKET}/k")


def test_an_explicit_deny_overrides_any_allow_in_any_order():
    statements = [allow("s3:*", "*"), deny("s3:DeleteObject", f"{BUCKET}/*")]
    assert allowed(statements, "s3:GetObject", f"{BUCKET}/k")
    assert not allowed(statements, "s3:DeleteObject", f"{BUCKET}/k")
    assert not allowed(list(reversed(statements)), "s3:DeleteObject", f"{BUCKET}/k")


def test_a_deny_that_does_not_match_the_resource_denies_nothing():
    statements = [allow("s3:*", "*"), deny("s3:*", f"{BUCKET}/private/*")]
    assert allowed(statements, "s3:GetObject", f"{BUCKET}/public/k")
    assert not allowed(statements, "s3:GetObject", f"{BUCKET}/private/k")


# --- 2. wildcards and case ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "matches"),
    [
        ("s3:GetObject", "s3:getobject", True),  # action names ignore case
        ("S3:GETOBJECT", "s3:GetObject", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:Get*", "s3:PutObject", False),
        ("s3:*Object", "s3:DeleteObject", True),
        ("s3:?etObject", "s3:GetObject", True),
        ("s3:?etObject", "s3:GGetObject", False),  # ? is exactly one character
        ("*", "dynamodb:Query", True),
        ("dynamodb:*", "dynamodb:Query", True),
        ("dynamodb:*", "s3:GetObject", False),
        ("s3:Get", "s3:GetObject", False),  # no implicit prefix match
        ("sqs:Send[M]essage", "sqs:SendMessage", False),  # brackets are literal, not a character class
    ],
)
def test_action_patterns(pattern, action, matches):
    assert allowed([allow(pattern, "*")], action, "arn:aws:s3:::b") is matches


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        (f"{BUCKET}/*", f"{BUCKET}/a/b/c.json", True),  # * crosses "/"
        (f"{BUCKET}/*", BUCKET, False),  # the bucket is not an object in it
        (f"{BUCKET}*", f"{BUCKET}/k", True),
        ("arn:aws:s3:::RESULTS/*", f"{BUCKET}/k", False),  # ARNs are case-sensitive
        (f"{TABLE}/index/*", f"{TABLE}/index/by-status", True),
        (TABLE, f"{TABLE}/index/by-status", False),  # a table's ARN does not cover its indexes
        ("arn:aws:sqs:*:123456789012:jobgraph-*", "arn:aws:sqs:eu-west-1:123456789012:jobgraph-in.fifo", True),
        ("arn:aws:sqs:eu-west-?:*:q", "arn:aws:sqs:eu-west-1:123456789012:q", True),
        ("arn:aws:sqs:eu-west-?:*:q", "arn:aws:sqs:eu-west-10:123456789012:q", False),
        ("arn:aws:s3:::b.x", "arn:aws:s3:::bax", False),  # "." is literal
        ("arn:aws:s3:::b[12]", "arn:aws:s3:::b1", False),
        ("arn:aws:s3:::b[12]", "arn:aws:s3:::b[12]", True),
    ],
)
def test_resource_patterns(pattern, resource, matches):
    assert allowed([allow("s3:GetObject", pattern)], "s3:GetObject", resource) is matches


def test_a_statement_with_several_actions_and_resources_matches_any_of_them():
    statement = allow(["sqs:SendMessage", "sqs:ReceiveMessage"], ["arn:aws:sqs:*:*:a", "arn:aws:sqs:*:*:b"])
    assert allowed([statement], "sqs:ReceiveMessage", "arn:aws:sqs:eu-west-1:1:b")
    assert not allowed([statement], "sqs:DeleteMessage", "arn:aws:sqs:eu-west-1:1:b")
    assert not allowed([statement], "sqs:SendMessage", "arn:aws:sqs:eu-west-1:1:c")


# --- 3. NotAction / NotResource -----------------------------------------------------------------------------


def test_allow_with_not_action_allows_everything_else():
    statements = [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]
    assert allowed(statements, "s3:GetObject", f"{BUCKET}/k")
    assert not allowed(statements, "iam:CreateUser", "arn:aws:iam::1:user/x")
    assert not allowed(statements, "IAM:PassRole", "arn:aws:iam::1:role/x")  # NotAction ignores case too


def test_deny_with_not_action_denies_everything_else():
    statements = [allow("*", "*"), {"Effect": "Deny", "NotAction": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}]
    assert allowed(statements, "s3:GetObject", f"{BUCKET}/k")
    assert not allowed(statements, "s3:PutObject", f"{BUCKET}/k")


def test_not_resource_with_allow_and_with_deny():
    allow_others = [{"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET}/secret/*"}]
    assert allowed(allow_others, "s3:GetObject", f"{BUCKET}/k")
    assert not allowed(allow_others, "s3:GetObject", f"{BUCKET}/secret/k")
    deny_others = [allow("s3:*", "*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]}]
    assert allowed(deny_others, "s3:GetObject", f"{BUCKET}/k")
    assert not allowed(deny_others, "s3:GetObject", "arn:aws:s3:::other/k")


def test_a_statement_needs_exactly_one_of_action_and_not_action_and_a_known_effect():
    with pytest.raises(AssertionError, match="exactly one of Action and NotAction"):
        Statement("Allow", actions=("s3:*",), resources=("*",), not_actions=("iam:*",))
    with pytest.raises(AssertionError, match="exactly one of Resource and NotResource"):
        Statement("Allow", actions=("s3:*",))
    with pytest.raises(AssertionError, match="Effect must be Allow or Deny"):
        Statement("allow", actions=("s3:*",), resources=("*",))


# --- 4. conditions --------------------------------------------------------------------------------------------

OWN_RUNS = {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["RUN#a", "RUN#b"]}}


def test_for_all_values_string_equals_on_leading_keys():
    statements = [allow("dynamodb:*", TABLE, Condition=OWN_RUNS)]
    assert allowed(statements, "dynamodb:GetItem", TABLE, ("RUN#a",))
    assert allowed(statements, "dynamodb:BatchGetItem", TABLE, ("RUN#a", "RUN#b"))
    assert not allowed(statements, "dynamodb:GetItem", TABLE, ("RUN#c",))
    assert not allowed(statements, "dynamodb:BatchGetItem", TABLE, ("RUN#a", "RUN#c"))  # every value must match
    assert not allowed(statements, "dynamodb:GetItem", TABLE, ("run#a",))  # StringEquals is case-sensitive


def test_for_all_values_holds_when_the_request_has_no_value_for_the_key():
    """AWS: ForAllValues returns true when the key is absent from the request — why a Scan (no partition
    key) gets through a LeadingKeys condition, and why such policies must not list dynamodb:Scan."""
    assert allowed([allow("dynamodb:Scan", TABLE, Condition=OWN_RUNS)], "dynamodb:Scan", TABLE, ())
    # the same rule makes a Deny with ForAllValues apply to a request without the key
    statements = [allow("dynamodb:*", TABLE), deny("dynamodb:Scan", TABLE, Condition=OWN_RUNS)]
    assert not allowed(statements, "dynamodb:Scan", TABLE, ())


def test_for_all_values_string_like_uses_iam_wildcards():
    like = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["TRIGGER#*", "RUN#?"]}}
    statements = [allow("dynamodb:PutItem", TABLE, Condition=like)]
    assert allowed(statements, "dynamodb:PutItem", TABLE, ("TRIGGER#run-1",))
    assert allowed(statements, "dynamodb:PutItem", TABLE, ("RUN#x",))
    assert not allowed(statements, "dynamodb:PutItem", TABLE, ("RUN#xy",))
    assert not allowed(statements, "dynamodb:PutItem", TABLE, ("trigger#run-1",))
    single = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": "TASK#*"}}  # one value may be a plain string
    assert allowed([allow("dynamodb:PutItem", TABLE, Condition=single)], "dynamodb:PutItem", TABLE, ("TASK#k",))


def test_a_deny_whose_condition_fails_does_not_apply():
    statements = [allow("dynamodb:*", TABLE), deny("dynamodb:DeleteItem", TABLE, Condition=OWN_RUNS)]
    assert not allowed(statements, "dynamodb:DeleteItem", TABLE, ("RUN#a",))  # condition holds: denied
    assert allowed(statements, "dynamodb:DeleteItem", TABLE, ("RUN#z",))  # condition fails: the Allow stands


def test_every_operator_of_a_statement_must_hold():
    both = {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["RUN#a", "TASK#a"]},
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RUN#*"]},
    }
    statements = [allow("dynamodb:GetItem", TABLE, Condition=both)]
    assert allowed(statements, "dynamodb:GetItem", TABLE, ("RUN#a",))
    assert not allowed(statements, "dynamodb:GetItem", TABLE, ("TASK#a",))  # passes the first, fails the second


def test_an_unmodelled_condition_is_refused_rather_than_guessed():
    with pytest.raises(AssertionError, match="StringEquals aws:SourceVpc is not modelled"):
        statement_of(allow("s3:*", "*", Condition={"StringEquals": {"aws:SourceVpc": "vpc-1"}}))
    with pytest.raises(AssertionError, match="ForAnyValue:StringEquals dynamodb:LeadingKeys is not modelled"):
        statement_of(allow("dynamodb:*", TABLE, Condition={"ForAnyValue:StringEquals": {"dynamodb:LeadingKeys": "x"}}))


# --- API calls → IAM actions and resources (AWS's Service Authorization Reference) ------------------------------


def permissions(service, operation, **params):
    return [
        (p.action, p.resource, p.leading_keys)
        for p in required_permissions(Call(service, operation, params), "eu-west-1", "123456789012")
    ]


def test_s3_calls():
    assert permissions("s3", "HeadObject", Bucket="results", Key="a/b") == [("s3:GetObject", f"{BUCKET}/a/b", ())]
    assert permissions("s3", "ListObjectsV2", Bucket="results", Prefix="a/") == [("s3:ListBucket", BUCKET, ())]
    assert permissions("s3", "HeadBucket", Bucket="results") == [("s3:ListBucket", BUCKET, ())]
    assert permissions("s3", "PutObject", Bucket="results", Key="k") == [("s3:PutObject", f"{BUCKET}/k", ())]


def test_sqs_batch_calls_are_authorised_as_their_single_actions():
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/in.fifo"
    arn = "arn:aws:sqs:eu-west-1:123456789012:in.fifo"
    assert permissions("sqs", "SendMessageBatch", QueueUrl=url) == [("sqs:SendMessage", arn, ())]
    assert permissions("sqs", "DeleteMessageBatch", QueueUrl=url) == [("sqs:DeleteMessage", arn, ())]
    assert permissions("sqs", "ChangeMessageVisibilityBatch", QueueUrl=url) == [
        ("sqs:ChangeMessageVisibility", arn, ())
    ]
    assert permissions("sqs", "ReceiveMessage", QueueUrl=url) == [("sqs:ReceiveMessage", arn, ())]


def test_dynamodb_calls_name_the_table_or_index_and_the_partition_key():
    key = {"pk": {"S": "RUN#r"}, "sk": {"S": "RUN"}}
    assert permissions("dynamodb", "UpdateItem", TableName="jobs", Key=key) == [
        ("dynamodb:UpdateItem", TABLE, ("RUN#r",))
    ]
    assert permissions("dynamodb", "PutItem", TableName="jobs", Item={**key, "x": {"N": "1"}}) == [
        ("dynamodb:PutItem", TABLE, ("RUN#r",))
    ]
    assert permissions("dynamodb", "Query", TableName="jobs", IndexName="by-status") == [
        ("dynamodb:Query", f"{TABLE}/index/by-status", ())
    ]
    # a transaction is authorised item by item, with the single-item actions
    transact = permissions(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[
            {"Put": {"TableName": "jobs", "Item": {"pk": {"S": "A"}}}},
            {"ConditionCheck": {"TableName": "jobs", "Key": {"pk": {"S": "B"}}}},
        ],
    )
    assert transact == [("dynamodb:PutItem", TABLE, ("A",)), ("dynamodb:ConditionCheckItem", TABLE, ("B",))]


def test_eventbridge_put_events_names_each_entrys_bus():
    assert permissions("events", "PutEvents", Entries=[{"EventBusName": "runs"}, {}]) == [
        ("events:PutEvents", "arn:aws:events:eu-west-1:123456789012:event-bus/runs", ()),
        ("events:PutEvents", "arn:aws:events:eu-west-1:123456789012:event-bus/default", ()),
    ]


def test_an_unmapped_call_is_refused():
    with pytest.raises(AssertionError, match="no IAM mapping for kms:Decrypt"):
        permissions("kms", "Decrypt")
