"""What issue 17.6 asks of every template beyond what the scanners check: every queue refuses requests that are
not over TLS, every topic is encrypted with a key its alarms may use (the same key in the three scenarios), and
point-in-time recovery is on unless a throwaway stack turns it off (tests/unit/test_template_parameters.py)."""

from __future__ import annotations

import pytest

from jobgraph.sam.template import load_template
from tests.lambda_support import ROOT

SCENARIOS = ["template.yaml", "templates/scenario-2.yaml", "templates/scenario-3.yaml"]
EVERY_TEMPLATE = [
    *SCENARIOS,
    *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "templates/shared").glob("*.yaml"))),
]


def of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def listify(value) -> list:
    return value if isinstance(value, list) else [value]


def tls_guarded(template: dict, policy_type: str, targets_key: str) -> set[str]:
    """Logical ids of the resources a policy of ``policy_type`` guards with a Deny of every action unless TLS."""
    guarded = set()
    for policy in of_type(template, policy_type).values():
        properties = policy["Properties"]
        for statement in listify(properties["PolicyDocument"]["Statement"]):
            if (
                statement["Effect"] == "Deny"
                and statement["Principal"] == "*"
                and listify(statement["Action"]) in (["sqs:*"], ["s3:*"])
                and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            ):
                arns = {r["Fn::GetAtt"][0] for r in listify(statement["Resource"]) if "Fn::GetAtt" in r}
                targets = {t["Ref"] for t in listify(properties[targets_key])}
                guarded |= targets & arns  # the policy is attached to the queue and its Deny names it
    return guarded


@pytest.mark.parametrize("path", EVERY_TEMPLATE)
def test_every_queue_and_bucket_refuses_requests_without_tls(path):
    template = load_template(ROOT / path)
    queues = set(of_type(template, "AWS::SQS::Queue"))
    assert tls_guarded(template, "AWS::SQS::QueuePolicy", "Queues") == queues
    buckets = set(of_type(template, "AWS::S3::Bucket"))
    assert tls_guarded(template, "AWS::S3::BucketPolicy", "Bucket") == buckets


def test_every_queue_is_checked_somewhere():
    """Guards the test above against templates without queues only."""
    counts = {path: len(of_type(load_template(ROOT / path), "AWS::SQS::Queue")) for path in EVERY_TEMPLATE}
    assert counts["template.yaml"] == counts["templates/scenario-2.yaml"] == 4
    assert counts["templates/shared/triggers.yaml"] == 2


@pytest.mark.parametrize("path", EVERY_TEMPLATE)
def test_every_topic_is_encrypted(path):
    for name, topic in of_type(load_template(ROOT / path), "AWS::SNS::Topic").items():
        assert topic["Properties"]["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}, name


def test_the_three_scenarios_encrypt_their_alarm_topic_with_the_same_key():
    """Scenario 1's key and topic (tests/integration/test_sam_template.py checks its policy) copied as they are:
    alias/aws/sns would not let CloudWatch alarms publish."""
    first, *others = (load_template(ROOT / path)["Resources"] for path in SCENARIOS)
    for resources in others:
        assert resources["AlarmTopicKey"] == first["AlarmTopicKey"]
        assert resources["AlarmTopic"] == first["AlarmTopic"]
