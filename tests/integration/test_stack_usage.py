"""`runs/aws_usage.stack_usage` — the usage behind every `--stack` cost — on what AWS really answers.

Every AWS call is answered by botocore's Stubber with a response shaped like AWS's (pages with
NextToken/nextToken, REPORT lines as Lambda writes them, a function never invoked, CloudWatch datapoints
spread over several minutes); the expected sums are worked out by hand below, and so is the bill.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from jobgraph.bench.cost import run_cost
from jobgraph.bench.prices import price_table
from jobgraph.runs.aws_usage import (
    REPORT_LINE,
    lambda_reports,
    listed_resources,
    metric_sum,
    stack_settings,
    stack_usage,
)

REGION = "eu-west-1"
STACK = "scenario-1-dev"
PROCESSOR = "scenario-1-dev-ProcessorFunction-Q1w2E3r4T5y6"
SCHEDULER = "scenario-1-dev-SchedulerFunction-A1s2D3f4G5h6"
START_RUN = "scenario-1-dev-StartRunFunction-Z1x2C3v4B5n6"
IDLE = "scenario-1-dev-RunEndFunction-P0o9I8u7Y6t5"
INCOMING = f"https://sqs.{REGION}.amazonaws.com/123456789012/jobgraph-dev-incoming.fifo"
OUTGOING = f"https://sqs.{REGION}.amazonaws.com/123456789012/jobgraph-dev-outgoing.fifo"
TABLE = "jobgraph-dev-jobs"

# REPORT lines exactly as Lambda writes them to CloudWatch Logs: tab-separated, a trailing tab, the
# older "Billed Duration: N ms \t" spacing, an "Init Duration" on cold starts (billed since 2025-08-01:
# Billed Duration = ceil(Duration + Init Duration)), an X-Ray line in the same event when tracing is on,
# and a timeout's "Status" field.
COLD = (
    "REPORT RequestId: 6f1e2d3c-aaaa-bbbb-cccc-111122223333\tDuration: 812.31 ms\tBilled Duration: 1450 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 180 MB\tInit Duration: 637.02 ms\t\n"
    "XRAY TraceId: 1-5e34a614-10bdxmplf1fb44f07bc535a1\tSegmentId: 07f5xmpl2d1f6f85\tSampled: true\t\n"
)
WARM = (
    "REPORT RequestId: 0b1c2d3e-aaaa-bbbb-cccc-444455556666\tDuration: 40.10 ms\tBilled Duration: 41 ms \t"
    "Memory Size: 1024 MB\tMax Memory Used: 181 MB\t\n"
)
TIMEOUT = (
    "REPORT RequestId: 9a8b7c6d-aaaa-bbbb-cccc-777788889999\tDuration: 30000.00 ms\tBilled Duration: 30000 ms\t"
    "Memory Size: 1024 MB\tMax Memory Used: 300 MB\tStatus: timeout\n"
)
SCHEDULER_LINES = [
    "REPORT RequestId: 11111111-2222-3333-4444-555555555555\tDuration: 11.52 ms\tBilled Duration: 12 ms\t"
    "Memory Size: 256 MB\tMax Memory Used: 90 MB\t\n",
    "REPORT RequestId: 11111111-2222-3333-4444-666666666666\tDuration: 8.01 ms\tBilled Duration: 9 ms\t"
    "Memory Size: 256 MB\tMax Memory Used: 90 MB\t\n",
]
# the run: 10:15:42.5 → 10:20:03; the readers widen it to whole minutes: 10:15:00 → 10:21:03
STARTED = datetime(2026, 11, 20, 10, 15, 42, 500000, tzinfo=UTC)
ENDED = datetime(2026, 11, 20, 10, 20, 3, tzinfo=UTC)
WINDOW_START_MS = int(datetime(2026, 11, 20, 10, 15, tzinfo=UTC).timestamp() * 1000)
WINDOW_END_MS = int(datetime(2026, 11, 20, 10, 21, 3, tzinfo=UTC).timestamp() * 1000)


def event(message: str, offset_ms: int = 0) -> dict:
    return {"logStreamName": "2026/11/20/[$LATEST]abc", "timestamp": WINDOW_START_MS + offset_ms, "message": message}


class StubSession:
    """What stack_usage needs of a boto3 Session: clients, here each answered by a Stubber."""

    def __init__(self):
        self.clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("cloudformation", "logs", "cloudwatch", "lambda", "ecs")
        }
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}

    def client(self, name: str):
        return self.clients[name]


def resource(logical_id: str, physical_id: str, kind: str) -> dict:
    return {
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": physical_id,
        "ResourceType": kind,
        "LastUpdatedTimestamp": STARTED,
        "ResourceStatus": "CREATE_COMPLETE",
    }


def log_query(function: str, token: str | None = None) -> dict:
    query = {
        "logGroupName": f"/aws/lambda/{function}",
        "filterPattern": '"REPORT RequestId"',
        "startTime": WINDOW_START_MS,
        "endTime": WINDOW_END_MS,
    }
    return {**query, "nextToken": token} if token else query


def metric_query(namespace: str, metric: str, name: str, value: str) -> dict:
    return {
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": [{"Name": name, "Value": value}],
        "StartTime": datetime(2026, 11, 20, 10, 15, tzinfo=UTC),
        "EndTime": datetime(2026, 11, 20, 10, 21, 3, tzinfo=UTC),
        "Period": 60,
        "Statistics": ["Sum"],
    }


def datapoints(*sums: float) -> dict:
    return {
        "Label": "x",
        "Datapoints": [
            {"Timestamp": datetime(2026, 11, 20, 10, 15 + i, tzinfo=UTC), "Sum": s, "Unit": "Count"}
            for i, s in enumerate(sums)
        ],
    }


# per queue, in the order the reader asks: Sent, Received, Deleted, EmptyReceives
SQS_SUMS = {
    "jobgraph-dev-incoming.fifo": [(40.0, 2.0), (41.0, 2.0), (40.0, 2.0), (3.0,)],
    "jobgraph-dev-outgoing.fifo": [(42.0,), (42.0,), (42.0,), ()],
}
WRU_SUMS, RRU_SUMS = (55.0, 61.5, 3.0), (20.0, 20.5)


def stub_the_stack(session: StubSession) -> None:
    cfn, logs, cloudwatch, lam = (session.stubs[n] for n in ("cloudformation", "logs", "cloudwatch", "lambda"))
    # two pages of stack resources
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                resource("ProcessorFunction", PROCESSOR, "AWS::Lambda::Function"),
                resource("StartRunFunction", START_RUN, "AWS::Lambda::Function"),
                resource("IncomingQueue", INCOMING, "AWS::SQS::Queue"),
                resource("ProcessorRole", "scenario-1-dev-ProcessorRole-X", "AWS::IAM::Role"),
            ],
            "NextToken": "page-2",
        },
        {"StackName": STACK},
    )
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                resource("SchedulerFunction", SCHEDULER, "AWS::Lambda::Function"),
                resource("RunEndFunction", IDLE, "AWS::Lambda::Function"),
                resource("OutgoingQueue", OUTGOING, "AWS::SQS::Queue"),
                resource("JobsTable", TABLE, "AWS::DynamoDB::Table"),
            ]
        },
        {"StackName": STACK, "NextToken": "page-2"},
    )
    # Processor: three pages, the middle one empty (FilterLogEvents pages while it searches)
    logs.add_response(
        "filter_log_events",
        {"events": [event(COLD), event(WARM, 5)], "nextToken": "t1"},
        log_query(PROCESSOR),
    )
    logs.add_response("filter_log_events", {"events": [], "nextToken": "t2"}, log_query(PROCESSOR, "t1"))
    logs.add_response("filter_log_events", {"events": [event(WARM, 9), event(TIMEOUT, 12)]}, log_query(PROCESSOR, "t2"))
    lam.add_response(
        "get_function_configuration",
        # resized since the run: the REPORT lines' 1024 MB is what was billed
        {"FunctionName": PROCESSOR, "MemorySize": 2048, "Architectures": ["arm64"]},
        {"FunctionName": PROCESSOR},
    )
    # StartRun was never invoked: no log group at all
    logs.add_client_error(
        "filter_log_events",
        service_error_code="ResourceNotFoundException",
        service_message="The specified log group does not exist.",
        expected_params=log_query(START_RUN),
    )
    logs.add_response(
        "filter_log_events",
        {"events": [event(line, i) for i, line in enumerate(SCHEDULER_LINES)]},
        log_query(SCHEDULER),
    )
    lam.add_response(
        "get_function_configuration",
        {"FunctionName": SCHEDULER, "MemorySize": 256},  # no Architectures: an x86_64 function
        {"FunctionName": SCHEDULER},
    )
    # RunEnd has a log group but logged nothing in the window: not a function of this run, no config read
    logs.add_response("filter_log_events", {"events": []}, log_query(IDLE))
    for queue, sums in SQS_SUMS.items():
        for metric, values in zip(
            ("NumberOfMessagesSent", "NumberOfMessagesReceived", "NumberOfMessagesDeleted", "NumberOfEmptyReceives"),
            sums,
            strict=True,
        ):
            cloudwatch.add_response(
                "get_metric_statistics", datapoints(*values), metric_query("AWS/SQS", metric, "QueueName", queue)
            )
    cloudwatch.add_response(
        "get_metric_statistics",
        datapoints(*WRU_SUMS),
        metric_query("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", TABLE),
    )
    cloudwatch.add_response(
        "get_metric_statistics",
        datapoints(*RRU_SUMS),
        metric_query("AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", TABLE),
    )
    for stub in session.stubs.values():
        stub.activate()


def test_stack_usage_sums_what_aws_reports():
    session = StubSession()
    stub_the_stack(session)
    usage = stack_usage(session, STACK, STARTED, ENDED)
    for stub in session.stubs.values():
        stub.assert_no_pending_responses()  # every page was read, every metric asked for

    assert set(usage["lambda"]) == {"ProcessorFunction", "SchedulerFunction"}
    # 4 REPORT lines; billed 1450 (INIT inside) + 41 + 41 + 30000 ms; INIT kept apart only for the record
    assert usage["lambda"]["ProcessorFunction"] == {
        "requests": 4,
        "duration_ms": 31532,
        "init_ms": 0,  # already inside the billed durations: never billed twice
        "init_durations_ms": [637.02],
        "cold_starts": 1,
        "memory_mb": 1024,
        "architecture": "arm64",
    }
    assert usage["lambda"]["SchedulerFunction"] == {
        "requests": 2,
        "duration_ms": 21,
        "init_ms": 0,
        "init_durations_ms": [],
        "cold_starts": 0,
        "memory_mb": 256,
        "architecture": "x86_64",
    }
    # SQS: incoming 42 + 43 + 42 + 3, outgoing 42 · 3 = 130 + 126 — messages, labelled as an upper bound
    assert usage["sqs"] == {"requests_64kb": 256.0, "source": "CloudWatch message counts (upper bound on requests)"}
    assert usage["dynamodb"] == {"wru": 119.5, "rru": 40.5, "source": "CloudWatch consumed capacity"}
    assert usage["s3"] == {"put": 0, "get": 0, "source": "not measured (needs S3 request metrics)"}

    # and the bill for it, by hand from the 2026-11-01 eu-west-1 prices (AWS's public pricing pages):
    #   Lambda requests: 6 × $0.20 per million                           = $0.0000012
    #   Processor: 31.532 s × 1 GB = 31.532 GB-s × $0.0000133334 (arm64)  = $0.00042043...
    #   Scheduler: 0.021 s × 0.25 GB = 0.00525 GB-s × $0.0000166667 (x86) = $0.0000000875
    #   SQS FIFO: 256 requests × $0.50 per million                       = $0.000128
    #   DynamoDB: 119.5 WRU × $0.7068 per million + 40.5 RRU × $0.1413 per million
    cost = run_cost(usage, price_table(REGION, "2026-11-01"), route_jobs=100)
    expected = (
        6 * 0.20e-6
        + 31.532 * 0.0000133334
        + 0.00525 * 0.0000166667
        + 256 * 0.50e-6
        + 119.5 * 0.7068e-6
        + 40.5 * 0.1413e-6
    )
    assert cost["usd"] == pytest.approx(expected, rel=1e-12)
    assert cost["by_service_usd"]["Lambda"] == pytest.approx(
        6 * 0.20e-6 + 31.532 * 0.0000133334 + 0.00525 * 0.0000166667
    )
    assert cost["per_1000_route_jobs_usd"] == pytest.approx(expected * 10, rel=1e-12)


def test_a_stack_without_functions_queues_or_tables_used_nothing():
    session = StubSession()
    session.stubs["cloudformation"].add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [resource("Role", "r", "AWS::IAM::Role")]},
        {"StackName": STACK},
    )
    for stub in session.stubs.values():
        stub.activate()
    usage = stack_usage(session, STACK, STARTED, ENDED)
    assert "fargate" not in usage
    assert (usage["lambda"], usage["sqs"]["requests_64kb"], usage["dynamodb"]["wru"], usage["dynamodb"]["rru"]) == (
        {},
        0,
        0,
        0,
    )


def test_the_fargate_hours_of_a_stack_with_an_ecs_service():
    """Scenario 2's workers: one task (2 vCPU, 4 GB, arm64) running from before the run to after it is billed
    for the run's 260.5 s (10:15:42.5 → 10:20:03): 2 × 260.5 / 3600 vCPU-h and 4 × 260.5 / 3600 GB-h."""
    cluster, service = (
        "scenario-2-dev-Cluster-a1B2",
        f"arn:aws:ecs:{REGION}:123456789012:service/scenario-2-dev-Cluster-a1B2/workers",
    )
    task_arn = f"arn:aws:ecs:{REGION}:123456789012:task/{cluster}/0123456789abcdef"
    definition = f"arn:aws:ecs:{REGION}:123456789012:task-definition/scenario-2-dev-worker:7"
    session = StubSession()
    ecs = session.stubs["ecs"]
    ecs.add_response("list_tasks", {"taskArns": [task_arn]}, {"cluster": cluster, "desiredStatus": "RUNNING"})
    ecs.add_response("list_tasks", {"taskArns": []}, {"cluster": cluster, "desiredStatus": "STOPPED"})
    task = {
        "taskArn": task_arn, "group": "service:workers", "cpu": "2048", "memory": "4096", "lastStatus": "RUNNING",
        "startedAt": datetime(2026, 11, 20, 10, 0, tzinfo=UTC), "taskDefinitionArn": definition,
    }  # fmt: skip
    ecs.add_response("describe_tasks", {"tasks": [task], "failures": []}, {"cluster": cluster, "tasks": [task_arn]})
    ecs.add_response(
        "describe_task_definition",
        {"taskDefinition": {"taskDefinitionArn": definition, "runtimePlatform": {"cpuArchitecture": "ARM64"}}},
        {"taskDefinition": definition},
    )
    for stub in session.stubs.values():
        stub.activate()
    listed = [("AWS::ECS::Cluster", "Cluster", cluster), ("AWS::ECS::Service", "WorkerService", service)]
    usage = stack_usage(session, STACK, STARTED, ENDED, listed=listed)
    ecs.assert_no_pending_responses()
    fargate = usage["fargate"]
    assert (fargate["architecture"], fargate["tasks"]) == ("arm64", 1)
    assert fargate["vcpu_hours"] == pytest.approx(2 * 260.5 / 3600, rel=1e-12)
    assert fargate["gb_hours"] == pytest.approx(4 * 260.5 / 3600, rel=1e-12)


def test_a_nested_stacks_resources_are_listed_after_its_parents():
    """A SAM application is a nested stack (AWS::CloudFormation::Stack, its physical id the nested stack's ARN):
    its resources count as the stack's, listed after the parent's. A resource still being created has no physical
    id yet (ListStackResources leaves it out): nothing of it to read, it is not listed."""
    nested = f"arn:aws:cloudformation:{REGION}:123456789012:stack/{STACK}-Status-1A2B/0a1b2c3d"
    session = StubSession()
    cfn = session.stubs["cloudformation"]
    creating = {
        "LogicalResourceId": "Pending", "ResourceType": "AWS::CloudFormation::Stack",
        "LastUpdatedTimestamp": STARTED, "ResourceStatus": "CREATE_IN_PROGRESS",
    }  # fmt: skip
    cfn.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [
            resource("ProcessorFunction", PROCESSOR, "AWS::Lambda::Function"),
            resource("Status", nested, "AWS::CloudFormation::Stack"),
            creating,
            resource("JobsTable", TABLE, "AWS::DynamoDB::Table"),
        ]},
        {"StackName": STACK},
    )  # fmt: skip
    cfn.add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [resource("StatusFunction", "status-fn", "AWS::Lambda::Function")]},
        {"StackName": nested},
    )
    cfn.activate()
    assert listed_resources(session.client("cloudformation"), STACK) == [
        ("AWS::Lambda::Function", "ProcessorFunction", PROCESSOR),
        ("AWS::CloudFormation::Stack", "Status", nested),
        ("AWS::DynamoDB::Table", "JobsTable", TABLE),
        ("AWS::Lambda::Function", "StatusFunction", "status-fn"),
    ]
    cfn.assert_no_pending_responses()


def test_a_metric_without_datapoints_sums_to_zero():
    """GetMetricStatistics for a metric with no data in the window: no Datapoints, nothing used."""
    session = StubSession()
    query = metric_query("AWS/SQS", "NumberOfMessagesSent", "QueueName", "idle.fifo")
    session.stubs["cloudwatch"].add_response("get_metric_statistics", {"Label": "NumberOfMessagesSent"}, query)
    session.stubs["cloudwatch"].activate()
    window = (query["StartTime"], query["EndTime"])
    assert (
        metric_sum(session.client("cloudwatch"), "AWS/SQS", "NumberOfMessagesSent", ("QueueName", "idle.fifo"), *window)
        == 0
    )


def test_the_capacity_of_every_table_adds_up():
    session = StubSession()
    session.stubs["cloudformation"].add_response(
        "list_stack_resources",
        {"StackResourceSummaries": [resource("JobsTable", "jobs", "AWS::DynamoDB::Table"),
                                    resource("TriggerTable", "triggers", "AWS::DynamoDB::Table")]},
        {"StackName": STACK},
    )  # fmt: skip
    cloudwatch = session.stubs["cloudwatch"]
    for table, (write, read) in {"jobs": (10.0, 4.0), "triggers": (2.5, 1.0)}.items():
        for metric, value in (("ConsumedWriteCapacityUnits", write), ("ConsumedReadCapacityUnits", read)):
            cloudwatch.add_response(
                "get_metric_statistics", datapoints(value), metric_query("AWS/DynamoDB", metric, "TableName", table)
            )
    for stub in session.stubs.values():
        stub.activate()
    usage = stack_usage(session, STACK, STARTED, ENDED)
    assert (usage["dynamodb"]["wru"], usage["dynamodb"]["rru"]) == (12.5, 5.0)


def test_a_report_line_and_its_fields():
    cold, warm, timeout = (REPORT_LINE.search(line) for line in (COLD, WARM, TIMEOUT))
    assert (cold["duration"], cold["billed"], cold["memory"], cold["init"]) == ("812.31", "1450", "1024", "637.02")
    assert (warm["billed"], warm["init"]) == ("41", None)
    assert (timeout["billed"], timeout["init"]) == ("30000", None)
    # START/END lines and a function's own output naming a REPORT are not billing lines
    for line in ("START RequestId: 0b1c Version: $LATEST", "END RequestId: 0b1c", "REPORT written to s3://b/k"):
        assert REPORT_LINE.search(line) is None


def test_lambda_reports_reads_every_page_and_skips_lines_that_are_not_reports():
    logs = boto3.client("logs", region_name=REGION)
    start, end = datetime(2026, 11, 20, 10, 15, tzinfo=UTC), datetime(2026, 11, 20, 10, 21, 3, tzinfo=UTC)
    with Stubber(logs) as stub:
        stub.add_response(
            "filter_log_events",
            {"events": [event("REPORT RequestId: garbled"), event(WARM)], "nextToken": "a"},
            log_query("fn"),
        )
        stub.add_response("filter_log_events", {"events": [event(COLD)], "nextToken": "b"}, log_query("fn", "a"))
        # a page of a search still running may hold no events at all (the key left out): read on
        stub.add_response("filter_log_events", {"nextToken": "c"}, log_query("fn", "b"))
        stub.add_response("filter_log_events", {"events": [event(WARM)]}, log_query("fn", "c"))
        usage = lambda_reports(logs, "fn", start, end)
        stub.assert_no_pending_responses()
    assert usage == {
        "requests": 3,
        "duration_ms": 41 + 1450 + 41,
        "init_ms": 0,
        "init_durations_ms": [637.02],
        "memory_mb": 1024,
    }


def test_a_throttled_log_read_is_not_taken_for_no_usage():
    """Only a missing log group means "never invoked"; any other error must surface, not read as $0."""
    logs = boto3.client("logs", region_name=REGION)
    with Stubber(logs) as stub:
        stub.add_client_error("filter_log_events", service_error_code="ThrottlingException")
        with pytest.raises(logs.exceptions.ClientError, match="ThrottlingException"):
            lambda_reports(logs, "fn", STARTED, ENDED)


def test_stack_settings_reads_each_functions_configuration_and_each_mappings_batch_and_workers():
    session = StubSession()
    cfn, lam = session.stubs["cloudformation"], session.stubs["lambda"]
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                resource("ProcessorFunction", PROCESSOR, "AWS::Lambda::Function"),
                resource("ProcessorMapping", "5f3e-uuid-processor", "AWS::Lambda::EventSourceMapping"),
            ],
            "NextToken": "p2",
        },
        {"StackName": STACK},
    )
    cfn.add_response(
        "list_stack_resources",
        {
            "StackResourceSummaries": [
                resource("SchedulerFunction", SCHEDULER, "AWS::Lambda::Function"),
                resource("SchedulerMapping", "7a1b-uuid-scheduler", "AWS::Lambda::EventSourceMapping"),
                resource("IncomingQueue", INCOMING, "AWS::SQS::Queue"),
            ]
        },
        {"StackName": STACK, "NextToken": "p2"},
    )
    lam.add_response(
        "get_function_configuration",
        {"FunctionName": PROCESSOR, "MemorySize": 1024, "Architectures": ["arm64"], "Timeout": 60},
        {"FunctionName": PROCESSOR},
    )
    lam.add_response(
        "get_event_source_mapping",
        {"UUID": "5f3e-uuid-processor", "BatchSize": 10, "ScalingConfig": {"MaximumConcurrency": 20}},
        {"UUID": "5f3e-uuid-processor"},
    )
    lam.add_response(
        "get_function_configuration",
        {"FunctionName": SCHEDULER, "MemorySize": 256, "Timeout": 30},
        {"FunctionName": SCHEDULER},
    )
    lam.add_response(
        "get_event_source_mapping", {"UUID": "7a1b-uuid-scheduler", "BatchSize": 5}, {"UUID": "7a1b-uuid-scheduler"}
    )
    for stub in session.stubs.values():
        stub.activate()
    settings = stack_settings(session, STACK)
    for stub in session.stubs.values():
        stub.assert_no_pending_responses()
    assert settings == {
        "functions": {
            "ProcessorFunction": {"memory_mb": 1024, "architecture": "arm64", "timeout_s": 60},
            "SchedulerFunction": {"memory_mb": 256, "architecture": "x86_64", "timeout_s": 30},
        },
        "mappings": {
            "ProcessorMapping": {"batch_size": 10, "workers": 20},
            "SchedulerMapping": {"batch_size": 5, "workers": None},  # no ScalingConfig: unlimited
        },
    }
