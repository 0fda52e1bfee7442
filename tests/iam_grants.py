"""What the IAM tests of several files share: the account and region of the fake stack, its names bound into a
template's policies, and the grants a role needs that no recorded call shows (each with the reason)."""

from __future__ import annotations

from tests.iam_policy import Bindings, bindings_for

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account

MISSING_OBJECT_IS_404 = {
    "s3:ListBucket": "without it S3 answers a missing key with 403, not 404 (NoSuchKey), which the code tells apart",
}
# Actions without resource-level permissions: "*" is their only valid resource (as AWS documents). A state
# machine's execution logging needs CloudWatch Logs' log-delivery ones.
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}  # fmt: skip


def fake_stack_bindings(fake_stack) -> Bindings:
    """The fake stack's (tests/integration/conftest.py) bucket, table and queues as a template's policies name them."""

    def name(url: str) -> str:
        return url.rstrip("/").rsplit("/", 1)[1]

    queues = {"IncomingQueue": name(fake_stack.incoming_url), "OutgoingQueue": name(fake_stack.outgoing_url)}
    return bindings_for(fake_stack.bucket, fake_stack.table, queues, REGION, ACCOUNT)
