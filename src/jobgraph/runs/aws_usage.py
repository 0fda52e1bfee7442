"""Usage counters of a run on a deployed stack, read from what AWS itself reports — not estimated.

- Lambda: every ``REPORT`` line its functions logged during the run (CloudWatch Logs): requests, billed
  duration (which includes INIT for on-demand functions since 2025-08-01), memory; INIT durations kept
  apart for the record. Architecture from the function's configuration.
- DynamoDB: the table's ``ConsumedWriteCapacityUnits``/``ConsumedReadCapacityUnits`` (Sum).
- SQS: per queue ``NumberOfMessagesSent + NumberOfMessagesReceived + NumberOfMessagesDeleted +
  NumberOfEmptyReceives`` (Sum). That counts messages, so it is an upper bound on billed requests when
  batch calls carry several messages; it is labelled as such in the record.
- S3: not measured (request metrics need a metrics configuration on the bucket, which costs extra).
- Fargate (a stack with ECS services): vCPU- and GB-hours of the services' tasks from ECS's task records
  (DescribeTasks startedAt/stoppedAt, cpu, memory) within the run, a minute at least per task.
- Resources of nested stacks (SAM applications) count with their parent's.
CloudWatch metrics arrive a few minutes late: the report reads them at the end of the run, so a
`jobgraph cost` of the record after that can be lower than the truth for the last minutes.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

REPORT_LINE = re.compile(
    r"REPORT RequestId: \S+\s+Duration: (?P<duration>[\d.]+) ms\s+Billed Duration: (?P<billed>\d+) ms\s+"
    r"Memory Size: (?P<memory>\d+) MB\s+Max Memory Used: \d+ MB(?:\s+Init Duration: (?P<init>[\d.]+) ms)?"
)
SQS_MESSAGE_METRICS = (
    "NumberOfMessagesSent",
    "NumberOfMessagesReceived",
    "NumberOfMessagesDeleted",
    "NumberOfEmptyReceives",
)


def lambda_reports(logs, function_name: str, start: datetime, end: datetime) -> dict:
    """Sums over the function's REPORT lines between ``start`` and ``end``."""
    usage = {"requests": 0, "duration_ms": 0, "init_ms": 0, "init_durations_ms": [], "memory_mb": None}
    kwargs = {
        "logGroupName": f"/aws/lambda/{function_name}",
        "filterPattern": '"REPORT RequestId"',
        "startTime": int(start.timestamp() * 1000),
        "endTime": int(end.timestamp() * 1000),
    }
    while True:
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return usage  # never invoked: no log group yet
        for event in page.get("events", []):
            match = REPORT_LINE.search(event["message"])
            if not match:
                continue
            usage["requests"] += 1
            usage["duration_ms"] += int(match["billed"])  # billed duration already holds INIT
            usage["memory_mb"] = int(match["memory"])
            if match["init"]:
                usage["init_durations_ms"].append(float(match["init"]))
        if not page.get("nextToken"):
            return usage
        kwargs["nextToken"] = page["nextToken"]


def metric_sum(cloudwatch, namespace: str, metric: str, dimension: tuple[str, str], start, end) -> float:
    response = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
        StartTime=start,
        EndTime=end,
        Period=60,
        Statistics=["Sum"],
    )
    return sum(point["Sum"] for point in response.get("Datapoints", []))


def stack_usage(
    session, stack_name: str, start: datetime, end: datetime, listed: list[tuple[str, str, str]] | None = None
) -> dict:
    """The usage section of run.json for a run on ``stack_name`` between ``start`` and ``end`` (``listed``: the
    stack's listed_resources, when the caller has read them already)."""
    logs, cloudwatch, lambda_client = session.client("logs"), session.client("cloudwatch"), session.client("lambda")
    if listed is None:
        listed = listed_resources(session.client("cloudformation"), stack_name)
    by_type = resources_by_type(listed)
    fargate = fargate_usage(session.client("ecs"), by_type, start, end) if "AWS::ECS::Service" in by_type else None
    # metrics are per minute: widen the window to whole minutes
    start, end = start.replace(second=0, microsecond=0), end + timedelta(minutes=1)
    functions = {}
    for logical_id, name in by_type.get("AWS::Lambda::Function", []):
        reports = lambda_reports(logs, name, start, end)
        if not reports["requests"]:
            continue
        config = lambda_client.get_function_configuration(FunctionName=name)
        reports["memory_mb"] = reports["memory_mb"] or config["MemorySize"]
        reports["architecture"] = (config.get("Architectures") or ["x86_64"])[0]
        reports["init_ms"] = 0  # already inside the billed durations
        reports["cold_starts"] = len(reports["init_durations_ms"])
        functions[logical_id] = reports
    sqs_messages = 0.0
    for _logical_id, url in by_type.get("AWS::SQS::Queue", []):
        queue = url.rsplit("/", 1)[-1]
        for metric in SQS_MESSAGE_METRICS:
            sqs_messages += metric_sum(cloudwatch, "AWS/SQS", metric, ("QueueName", queue), start, end)
    wru = rru = 0.0
    for _logical_id, table in by_type.get("AWS::DynamoDB::Table", []):
        dimension = ("TableName", table)
        wru += metric_sum(cloudwatch, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", dimension, start, end)
        rru += metric_sum(cloudwatch, "AWS/DynamoDB", "ConsumedReadCapacityUnits", dimension, start, end)
    usage = {
        "lambda": functions,
        "sqs": {"requests_64kb": sqs_messages, "source": "CloudWatch message counts (upper bound on requests)"},
        "dynamodb": {"wru": wru, "rru": rru, "source": "CloudWatch consumed capacity"},
        "s3": {"put": 0, "get": 0, "source": "not measured (needs S3 request metrics)"},
    }
    if fargate is not None:
        usage["fargate"] = fargate
    return usage


def listed_resources(cloudformation, stack_name: str) -> list[tuple[str, str, str]]:
    """(type, logical id, physical id) of a stack's resources in CloudFormation's listing order, its nested
    stacks' (AWS::CloudFormation::Stack, a SAM application) included after it."""
    found: list[tuple[str, str, str]] = []
    pending = [stack_name]
    while pending:
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=pending.pop(0)):
            for r in page["StackResourceSummaries"]:
                physical_id = r.get("PhysicalResourceId")
                if not physical_id:
                    continue  # not created yet (or its creation failed): nothing of it to read
                found.append((r["ResourceType"], r["LogicalResourceId"], physical_id))
                if r["ResourceType"] == "AWS::CloudFormation::Stack":
                    pending.append(physical_id)
    return found


def resources_by_type(listed: list[tuple[str, str, str]]) -> dict[str, list[tuple[str, str]]]:
    """(logical id, physical id) of listed_resources by type."""
    by_type: dict[str, list[tuple[str, str]]] = {}
    for kind, logical_id, physical_id in listed:
        by_type.setdefault(kind, []).append((logical_id, physical_id))
    return by_type


def fargate_usage(ecs, by_type: dict[str, list[tuple[str, str]]], start: datetime, end: datetime) -> dict:
    """vCPU- and GB-hours of the stack's ECS service tasks within [start, end], from ECS's own task records
    (ListTasks/DescribeTasks: startedAt, stoppedAt, cpu, memory; ECS keeps stopped tasks for an hour at least).
    Each task is billed from its start (or the run's) to its stop (or the run's end), a minute at least, at its
    own task definition's architecture (a deploy during the run may switch it)."""
    groups = {f"service:{arn.rsplit('/', 1)[-1]}" for _logical_id, arn in by_type.get("AWS::ECS::Service", [])}
    vcpu_hours = gb_hours = 0.0
    tasks, by_definition = 0, {}
    for _logical_id, cluster in by_type.get("AWS::ECS::Cluster", []):
        arns = [
            arn
            for status in ("RUNNING", "STOPPED")
            for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster, desiredStatus=status)
            for arn in page["taskArns"]
        ]
        for chunk in range(0, len(arns), 100):
            for task in ecs.describe_tasks(cluster=cluster, tasks=arns[chunk : chunk + 100])["tasks"]:
                started = task.get("startedAt") or task.get("createdAt")
                if task.get("group") not in groups or started is None:
                    continue
                seconds = (min(task.get("stoppedAt") or end, end) - max(started, start)).total_seconds()
                if seconds <= 0:
                    continue  # stopped before the run, or started after it
                hours = max(60.0, seconds) / 3600
                definition = by_definition.setdefault(task["taskDefinitionArn"], {"vcpu_hours": 0.0, "gb_hours": 0.0})
                definition["vcpu_hours"] += hours * int(task.get("cpu") or 256) / 1024
                definition["gb_hours"] += hours * int(task.get("memory") or 512) / 1024
                tasks += 1
    by_architecture: dict[str, dict[str, float]] = {}
    for arn, hours in sorted(by_definition.items()):
        platform = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"].get("runtimePlatform") or {}
        architecture = "arm64" if platform.get("cpuArchitecture") == "ARM64" else "x86_64"
        total = by_architecture.setdefault(architecture, {"vcpu_hours": 0.0, "gb_hours": 0.0})
        total["vcpu_hours"] += hours["vcpu_hours"]
        total["gb_hours"] += hours["gb_hours"]
        vcpu_hours += hours["vcpu_hours"]
        gb_hours += hours["gb_hours"]
    return {
        "vcpu_hours": vcpu_hours,
        "gb_hours": gb_hours,
        "architecture": "+".join(sorted(by_architecture)) or "x86_64",
        "by_architecture": by_architecture,
        "tasks": tasks,
        "source": "ECS DescribeTasks: each service task's time within the run (1 minute minimum)",
    }


def stack_settings(session, stack_name: str, listed: list[tuple[str, str, str]] | None = None) -> dict:
    """Per function memory/architecture/timeout and per event source batch size/concurrency, as deployed
    (``listed`` as for stack_usage)."""
    lambda_client = session.client("lambda")
    functions, mappings = {}, {}
    if listed is None:
        listed = listed_resources(session.client("cloudformation"), stack_name)
    for kind, logical_id, physical_id in listed:
        if kind == "AWS::Lambda::Function":
            config = lambda_client.get_function_configuration(FunctionName=physical_id)
            functions[logical_id] = {
                "memory_mb": config["MemorySize"],
                "architecture": (config.get("Architectures") or ["x86_64"])[0],
                "timeout_s": config["Timeout"],
            }
        elif kind == "AWS::Lambda::EventSourceMapping":
            esm = lambda_client.get_event_source_mapping(UUID=physical_id)
            mappings[logical_id] = {
                "batch_size": esm.get("BatchSize"),
                "workers": esm.get("ScalingConfig", {}).get("MaximumConcurrency"),
            }
    return {"functions": functions, "mappings": mappings}
