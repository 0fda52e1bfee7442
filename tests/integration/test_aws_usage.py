"""Usage of a run on a deployed stack, from Lambda REPORT lines and CloudWatch metrics (on moto)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
from moto import mock_aws

from jobgraph.runs.aws_usage import REPORT_LINE, lambda_reports, metric_sum

COLD = (
    "REPORT RequestId: 6f1e2d3c-aaaa-bbbb-cccc-111122223333\tDuration: 812.31 ms\tBilled Duration: 1450 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 180 MB\tInit Duration: 637.02 ms"
)
WARM = (
    "REPORT RequestId: 6f1e2d3c-aaaa-bbbb-cccc-444455556666\tDuration: 40.10 ms\tBilled Duration: 41 ms\t"
    "Memory Size: 512 MB\tMax Memory Used: 181 MB"
)


def test_report_lines_parse_with_and_without_init():
    cold, warm = REPORT_LINE.search(COLD), REPORT_LINE.search(WARM)
    assert (cold["billed"], cold["memory"], cold["init"]) == ("1450", "512", "637.02")
    assert (warm["billed"], warm["init"]) == ("41", None)


@mock_aws
def test_lambda_usage_from_the_functions_log_and_metric_sums():
    now = datetime.now(UTC)
    logs = boto3.client("logs", region_name="eu-west-1")
    logs.create_log_group(logGroupName="/aws/lambda/fn")
    logs.create_log_stream(logGroupName="/aws/lambda/fn", logStreamName="s")
    stamp = int(now.timestamp() * 1000)
    events = [COLD, "START RequestId: x", WARM, WARM]
    logs.put_log_events(
        logGroupName="/aws/lambda/fn",
        logStreamName="s",
        logEvents=[{"timestamp": stamp + i, "message": m} for i, m in enumerate(events)],
    )
    usage = lambda_reports(logs, "fn", now - timedelta(minutes=1), now + timedelta(minutes=1))
    assert usage["requests"] == 3 and usage["duration_ms"] == 1450 + 41 + 41 and usage["memory_mb"] == 512
    assert usage["init_durations_ms"] == [637.02]
    assert lambda_reports(logs, "never-invoked", now, now)["requests"] == 0

    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1")
    for value in (3.0, 4.5):
        cloudwatch.put_metric_data(
            Namespace="AWS/DynamoDB",
            MetricData=[
                {"MetricName": "ConsumedWriteCapacityUnits", "Value": value, "Timestamp": now,
                 "Dimensions": [{"Name": "TableName", "Value": "jobs"}]}
            ],
        )  # fmt: skip
    total = metric_sum(
        cloudwatch, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", ("TableName", "jobs"),
        now - timedelta(minutes=2), now + timedelta(minutes=2),
    )  # fmt: skip
    assert total == 7.5
