"""What the local cloud reads and writes as AWS does: S3 template URLs, Lambda's platform lines, EMF, metrics."""

from __future__ import annotations

import json

import pytest

from jobgraph.localcloud.cloudformation.templates import TemplateLocationError, parse_s3_url
from jobgraph.localcloud.lambda_runtime import lambdalogs
from jobgraph.localcloud.observability.cloudwatch import MetricBuffer, ServiceMetrics, emf_metrics
from jobgraph.runs.aws_usage import REPORT_LINE


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4566/artifacts/stack/abc.template",  # what `sam deploy` sends to a local endpoint
        "http://localhost:4566/artifacts/stack/abc.template",
        "https://s3.amazonaws.com/artifacts/stack/abc.template",
        "https://s3.eu-west-1.amazonaws.com/artifacts/stack/abc.template",
        "https://s3-eu-west-1.amazonaws.com/artifacts/stack/abc.template",
        "https://s3.dualstack.eu-west-1.amazonaws.com/artifacts/stack/abc.template",
        "https://artifacts.s3.amazonaws.com/stack/abc.template",
        "https://artifacts.s3.eu-west-1.amazonaws.com/stack/abc.template",
        "https://artifacts.s3-eu-west-1.amazonaws.com/stack/abc.template",
        "http://artifacts.localhost:4566/stack/abc.template",
        "s3://artifacts/stack/abc.template",
    ],
)
def test_every_s3_url_form_names_the_same_object(url):
    assert parse_s3_url(url) == ("artifacts", "stack/abc.template", None)


def test_a_version_and_escaped_characters_are_kept():
    url = "https://my.bucket.s3.eu-west-1.amazonaws.com/a%20b/c.yaml?versionId=v1"
    assert parse_s3_url(url) == ("my.bucket", "a b/c.yaml", "v1")


@pytest.mark.parametrize("url", ["ftp://x/y", "https://s3.amazonaws.com/only-a-bucket", "not a url"])
def test_what_is_not_an_s3_object_url_is_refused_with_the_url(url):
    with pytest.raises(TemplateLocationError, match="TemplateURL"):
        parse_s3_url(url)


def test_report_lines_are_what_aws_writes_and_aws_usage_reads():
    cold = lambdalogs.report_line("r-1", 12.34, 256, 81, init_ms=345.6)
    warm = lambdalogs.report_line("r-2", 0.4, 256, 90)
    assert cold == (
        "REPORT RequestId: r-1\tDuration: 12.34 ms\tBilled Duration: 358 ms\tMemory Size: 256 MB\t"
        "Max Memory Used: 81 MB\tInit Duration: 345.60 ms\t"
    )
    parsed = REPORT_LINE.search(cold)
    assert (parsed["billed"], parsed["memory"], parsed["init"]) == ("358", "256", "345.60")  # INIT billed since 2025-08
    assert REPORT_LINE.search(warm)["billed"] == "1" and REPORT_LINE.search(warm)["init"] is None
    timed_out = lambdalogs.report_line("r-3", 3000.0, 128, 50, status="timeout")
    assert timed_out.endswith("Status: timeout\t") and REPORT_LINE.search(timed_out)
    assert lambdalogs.start_line("r-1") == "START RequestId: r-1 Version: $LATEST"
    assert lambdalogs.end_line("r-1") == "END RequestId: r-1"
    assert lambdalogs.stream_name().count("/") == 3 and "[$LATEST]" in lambdalogs.stream_name()


def test_an_emf_line_becomes_its_metrics_with_their_dimensions():
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "PerfTesting",
                        "Dimensions": [["service", "TestRunId"]],
                        "Metrics": [{"Name": "JobsCompleted", "Unit": "Count"}, {"Name": "ProcessingTimeMs"}],
                    }
                ],
            },
            "service": "processor",
            "TestRunId": "x",
            "JobsCompleted": [1, 1],
            "ProcessingTimeMs": 12.5,
        }
    )
    dims = (("service", "processor"), ("TestRunId", "x"))
    assert emf_metrics(line) == [
        ("PerfTesting", "JobsCompleted", dims, 1.0, "Count"),
        ("PerfTesting", "JobsCompleted", dims, 1.0, "Count"),
        ("PerfTesting", "ProcessingTimeMs", dims, 12.5, "None"),
    ]
    assert emf_metrics('{"message": "not emf"}') == [] and emf_metrics("plain text") == []


def test_sqs_and_dynamodb_requests_become_their_per_resource_metrics():
    buffer = MetricBuffer()
    observe = ServiceMetrics(buffer).observe
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs.fifo"
    observe("sqs", "SendMessageBatch", json.dumps({"QueueUrl": url}).encode(), b'{"Successful": [{}, {}, {}]}')
    observe("sqs", "ReceiveMessage", json.dumps({"QueueUrl": url}).encode(), b'{"Messages": [{}, {}]}')
    observe("sqs", "ReceiveMessage", json.dumps({"QueueUrl": url}).encode(), b"{}")
    observe("sqs", "DeleteMessage", json.dumps({"QueueUrl": url}).encode(), b"{}")
    transact = {"TransactItems": [{"Put": {"TableName": "jobs"}}, {"Update": {"TableName": "runs"}}]}
    observe("dynamodb", "TransactWriteItems", json.dumps(transact).encode(), b"{}")
    observe("dynamodb", "GetItem", json.dumps({"TableName": "jobs"}).encode(), b"x" * 5000)
    sums = {
        (entry["MetricName"], entry["Dimensions"][0]["Value"]): entry["StatisticValues"]["Sum"]
        for entries in buffer.take().values()
        for entry in entries
    }
    assert sums == {
        ("NumberOfMessagesSent", "jobs.fifo"): 3,
        ("NumberOfMessagesReceived", "jobs.fifo"): 2,
        ("NumberOfEmptyReceives", "jobs.fifo"): 1,
        ("NumberOfMessagesDeleted", "jobs.fifo"): 1,
        ("ConsumedWriteCapacityUnits", "jobs"): 2,  # 2 items x 2 (transaction), shared by the two tables
        ("ConsumedWriteCapacityUnits", "runs"): 2,
        ("ConsumedReadCapacityUnits", "jobs"): 2,  # 5000 bytes read: 2 units of 4 KB
    }
    assert buffer.take() == {}


def test_the_original_template_names_local_s3_objects_as_aws_does():
    from jobgraph.localcloud.cloudformation.templates import canonical_s3_urls

    packaged = "Location: http://127.0.0.1:45975/jobgraph-local-sam-artifacts/app/abc.template\nUrl: http://localhost/x"
    shown = canonical_s3_urls(packaged, "eu-west-1")
    assert "Location: https://s3.eu-west-1.amazonaws.com/jobgraph-local-sam-artifacts/app/abc.template" in shown
    assert parse_s3_url(shown.split()[1]) == ("jobgraph-local-sam-artifacts", "app/abc.template", None)
    assert shown.endswith("Url: http://localhost/x")  # not an S3 object URL: left alone
