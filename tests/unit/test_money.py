"""Every pricing branch against figures worked out by hand from AWS's published price tables.

The prices, as the 2026-11-01 table took them from AWS's public pricing pages (eu-west-1, on demand):
  Lambda   $0.20 per million requests; $0.0000166667 per GB-s on x86_64, $0.0000133334 on arm64;
           INIT billed like invocation time (since 2025-08-01); each invocation rounded up to 1 ms
  SQS FIFO $0.50 per million requests, each 64 KB chunk of a payload one request
  DynamoDB on demand $0.7068 per million WRU, $0.1413 per million RRU (us-east-1: $0.625 / $0.125)
  S3       $0.005 per 1,000 PUT/LIST, $0.0004 per 1,000 GET
  Step Functions Standard $0.025 per 1,000 state transitions
  Fargate Linux  x86_64 $0.04048 per vCPU-h, $0.004445 per GB-h; arm64 $0.03238, $0.00356
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from jobgraph.bench.cost import line_items, run_cost
from jobgraph.bench.prices import DEFAULT_REGION, DEFAULT_VERSION, PRICE_TABLES, price_table
from jobgraph.localcloud.lambda_runtime import lambdalogs
from jobgraph.localcloud.observability.meter import RequestMeter
from jobgraph.runs.aws_usage import fargate_usage, lambda_reports
from jobgraph.runs.local_runtime import local_transitions

EU = price_table("eu-west-1", "2026-11-01")


def usd(usage: dict) -> float:
    return run_cost(usage, EU, route_jobs=1)["usd"]


def test_the_default_table_holds_the_published_prices():
    assert (DEFAULT_VERSION, DEFAULT_REGION) == ("2026-11-01", "eu-west-1")
    eu, us = PRICE_TABLES["2026-11-01"]["eu-west-1"], PRICE_TABLES["2026-11-01"]["us-east-1"]
    assert eu["lambda_gb_second"] == {"x86_64": 0.0000166667, "arm64": 0.0000133334}
    assert eu["lambda_request"] == pytest.approx(0.20e-6, rel=1e-15)
    assert eu["sqs_fifo_request"] == pytest.approx(0.50e-6, rel=1e-15)
    assert eu["s3_put_request"] == pytest.approx(0.005e-3, rel=1e-15)
    assert eu["s3_get_request"] == pytest.approx(0.0004e-3, rel=1e-15)
    assert eu["stepfunctions_transition"] == pytest.approx(0.025e-3, rel=1e-15)
    assert eu["fargate_vcpu_hour"] == {"x86_64": 0.04048, "arm64": 0.03238}
    assert eu["fargate_gb_hour"] == {"x86_64": 0.004445, "arm64": 0.00356}
    assert eu["dynamodb_write_request_unit"] == pytest.approx(0.7068e-6, rel=1e-15)
    assert eu["dynamodb_read_request_unit"] == pytest.approx(0.1413e-6, rel=1e-15)
    assert us["dynamodb_write_request_unit"] == pytest.approx(0.625e-6, rel=1e-15)
    assert us["dynamodb_read_request_unit"] == pytest.approx(0.125e-6, rel=1e-15)


# --- Lambda ---------------------------------------------------------------------------------------------


def test_arm64_invocations_and_init_are_both_priced_at_the_arm64_rate():
    # 10 requests, 1,000 ms of invocations and 8,000 ms of INIT at 1,024 MB on arm64:
    # 10 × $0.20/M + (1 + 8) GB-s × $0.0000133334 = $0.000002 + $0.0001200006 = $0.0001220006
    fn = {"requests": 10, "duration_ms": 1000, "init_ms": 8000, "memory_mb": 1024, "architecture": "arm64"}
    assert usd({"lambda": {"Fn": fn}}) == pytest.approx(0.0001220006, rel=1e-12)
    items = {i.item: i for i in line_items({"lambda": {"Fn": fn}}, EU["prices"])}
    init = items["Fn INIT (1024 MB, arm64)"]
    assert (init.quantity, init.unit, init.unit_price) == (8.0, "GB-s", 0.0000133334)
    assert items["Fn duration (1024 MB, arm64)"].unit_price == 0.0000133334
    # the same on x86_64: 9 GB-s × $0.0000166667 + $0.000002 = $0.0001520003
    assert usd({"lambda": {"Fn": {**fn, "architecture": "x86_64"}}}) == pytest.approx(0.0001520003, rel=1e-12)


def test_lambda_gb_seconds_use_mebibytes_per_gibibyte():
    # 128 MB for 1,000 ms = 0.125 GB-s (Lambda counts 1,024 MB to the GB)
    fn = {"requests": 0, "duration_ms": 1000, "memory_mb": 128, "architecture": "x86_64"}
    assert usd({"lambda": {"Fn": fn}}) == pytest.approx(0.125 * 0.0000166667, rel=1e-12)


def test_a_function_without_an_architecture_is_priced_as_x86_64():
    fn = {"requests": 1_000_000, "duration_ms": 0, "memory_mb": 512}
    assert usd({"lambda": {"Fn": fn}}) == pytest.approx(0.20, rel=1e-12)
    assert line_items({"lambda": {"Fn": fn}}, EU["prices"])[1].item == "Fn duration (512 MB, x86_64)"


class LogPages:
    """filter_log_events over fixed pages (CloudWatch Logs' shape), as lambda_reports reads them."""

    class exceptions:
        ResourceNotFoundException = KeyError

    def __init__(self, messages: list[str]):
        self.messages = messages

    def filter_log_events(self, **kwargs):
        page = int(kwargs.get("nextToken", 0))
        events = [{"message": m} for m in self.messages[page * 2 : page * 2 + 2]]
        more = (page + 1) * 2 < len(self.messages)
        return {"events": events, **({"nextToken": str(page + 1)} if more else {})}


def test_lambda_bills_each_invocation_rounded_up_to_the_next_millisecond_init_included():
    # (duration, INIT on a cold start) of five invocations as the local runtime writes their REPORT lines
    invocations = [(0.2, 301.4), (1.0, None), (1.5, None), (2.999, None), (7.0001, 99.0)]
    lines = [lambdalogs.report_line(f"r-{n}", ms, 1024, 80, init_ms=init) for n, (ms, init) in enumerate(invocations)]
    now = datetime(2026, 12, 2, tzinfo=UTC)
    usage = lambda_reports(LogPages([*lines, "START RequestId: r-9 Version: $LATEST"]), "fn", now, now)
    # each invocation rounded up on its own, INIT included: 302 + 1 + 2 + 3 + 107 = 415 ms (rounding the sum,
    # 413.1 → 414, is not what Lambda bills; rounding to nearest would give 302 + 1 + 2 + 3 + 106 = 414)
    assert usage["duration_ms"] == 415
    assert (usage["requests"], usage["init_durations_ms"], usage["memory_mb"]) == (5, [301.4, 99.0], 1024)
    # billed: 5 × $0.20/M + 415 ms × 1 GB × $0.0000133334 (arm64)
    fn = {**usage, "architecture": "arm64"}
    assert usd({"lambda": {"Fn": fn}}) == pytest.approx(5 * 0.20e-6 + 0.415 * 0.0000133334, rel=1e-12)


# --- SQS: 64 KB chunks ------------------------------------------------------------------------------------


def sqs_environ(action: str) -> dict:
    return {
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=testing/20261120/eu-west-1/sqs/aws4_request, ...",
        "HTTP_X_AMZ_TARGET": f"AmazonSQS.{action}",
        "PATH_INFO": "/",
        "REQUEST_METHOD": "POST",
    }


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes", "chunks"),
    [
        (0, 0, 1),  # an empty request is still one request
        (1, 0, 1),
        (65_536, 200, 1),  # exactly 64 KB: one chunk
        (65_537, 200, 2),  # one byte over: two
        (200_000, 100, 4),  # 3.05 chunks → 4
        (1_048_576, 100, 16),  # SQS's 1 MiB maximum: 16 chunks
        (300, 140_000, 3),  # a ReceiveMessage answer of 140,000 bytes: the payload that came back counts
    ],
)
def test_sqs_bills_every_64_kb_chunk_as_a_request(request_bytes, response_bytes, chunks):
    meter = RequestMeter()
    meter.record(sqs_environ("SendMessageBatch"), b"x" * request_bytes, response_bytes)
    assert meter.units[("workload", "sqs_requests_64kb")] == chunks
    assert usd({"sqs": {"requests_64kb": chunks}}) == pytest.approx(chunks * 0.50e-6, rel=1e-12)


def test_the_harness_own_calls_are_kept_apart_from_the_workloads():
    meter = RequestMeter()
    meter.record({**sqs_environ("ReceiveMessage"), "HTTP_USER_AGENT": "Boto3/1 jobgraph-harness"}, b"{}", 10)
    meter.record(sqs_environ("ReceiveMessage"), b"{}", 10)
    assert meter.units[("harness", "sqs_requests_64kb")] == 1
    assert meter.units[("workload", "sqs_requests_64kb")] == 1


# --- Step Functions, DynamoDB, S3, Fargate --------------------------------------------------------------------


def test_step_functions_transitions_top_level_states_plus_one_per_task():
    transitions = local_transitions({"states_entered": 12}, 37)["transitions"]  # 37 StepTask invocations
    assert transitions == 49
    # 49 transitions × $0.025 per 1,000 = $0.001225
    assert usd({"stepfunctions": {"transitions": transitions}}) == pytest.approx(0.001225, rel=1e-12)


def test_dynamodb_and_s3_requests():
    # 2,500 WRU + 10,000 RRU in eu-west-1: 2,500 × $0.7068/M + 10,000 × $0.1413/M = $0.001767 + $0.001413
    assert usd({"dynamodb": {"wru": 2500, "rru": 10_000}}) == pytest.approx(0.00318, rel=1e-12)
    us = price_table("us-east-1", "2026-11-01")
    assert run_cost({"dynamodb": {"wru": 2500, "rru": 10_000}}, us, 1)["usd"] == pytest.approx(
        0.0015625 + 0.00125, rel=1e-12
    )
    # 3,000 PUT + 12,000 GET: $0.015 + $0.0048
    assert usd({"s3": {"put": 3000, "get": 12_000}}) == pytest.approx(0.0198, rel=1e-12)


def test_fargate_on_arm64_is_priced_at_the_arm64_rates():
    # 0.5 vCPU-h + 1 GB-h on arm64: 0.5 × $0.03238 + 1 × $0.00356 = $0.01975
    arm = {"vcpu_hours": 0.5, "gb_hours": 1.0, "architecture": "arm64"}
    assert usd({"fargate": arm}) == pytest.approx(0.01975, rel=1e-12)
    # on x86_64: 0.5 × $0.04048 + 1 × $0.004445 = $0.024685
    assert usd({"fargate": {**arm, "architecture": "x86_64"}}) == pytest.approx(0.024685, rel=1e-12)
    items = [i.item for i in line_items({"fargate": arm}, EU["prices"])]
    assert items == ["vCPU (arm64)", "memory (arm64)"]
    # a usage that names no architecture (Fargate's default platform): the x86_64 rates, and said so
    unnamed = {"vcpu_hours": 0.5, "gb_hours": 1.0}
    assert usd({"fargate": unnamed}) == pytest.approx(0.024685, rel=1e-12)
    assert [i.item for i in line_items({"fargate": unnamed}, EU["prices"])] == ["vCPU (x86_64)", "memory (x86_64)"]


class EcsTasks:
    """ListTasks / DescribeTasks / DescribeTaskDefinition over fixed tasks of one cluster (ECS's shapes and limits:
    a cluster other than the tasks' has none of them, DescribeTasks takes at most 100 tasks)."""

    def __init__(self, tasks: list[dict], cluster: str = "c", platforms: dict[str, dict] | None = None):
        self.tasks = {t["taskArn"]: t for t in tasks}
        self.cluster = cluster
        self.platforms = (
            {"arn:task-definition/worker:1": {"cpuArchitecture": "ARM64"}} if platforms is None else platforms
        )

    def get_paginator(self, name):
        assert name == "list_tasks"
        return SimpleNamespace(paginate=self._pages)

    def _pages(self, cluster, desiredStatus):
        mine = cluster == self.cluster
        return [{"taskArns": [a for a, t in self.tasks.items() if mine and t["lastStatus"] == desiredStatus]}]

    def describe_tasks(self, cluster, tasks):
        if len(tasks) > 100:
            raise ValueError("InvalidParameterException: tasks can have at most 100 items")
        if cluster != self.cluster:
            return {"tasks": [], "failures": [{"arn": a, "reason": "MISSING"} for a in tasks]}
        return {"tasks": [self.tasks[a] for a in tasks]}

    def describe_task_definition(self, taskDefinition):
        if taskDefinition not in self.platforms:
            raise ValueError(f"ClientException: unable to describe task definition {taskDefinition!r}")
        platform = self.platforms[taskDefinition]  # a definition registered without runtimePlatform has none
        return {
            "taskDefinition": {
                "taskDefinitionArn": taskDefinition,
                **({"runtimePlatform": platform} if platform else {}),
            }
        }


def test_fargate_hours_from_ecs_task_records_with_a_minute_minimum():
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)

    def task(n, cpu, memory, started, stopped=None, group="service:svc"):
        return {
            "taskArn": f"arn:task/{n}", "group": group, "cpu": str(cpu), "memory": str(memory),
            "startedAt": started, "stoppedAt": stopped, "lastStatus": "STOPPED" if stopped else "RUNNING",
            "taskDefinitionArn": "arn:task-definition/worker:1",
        }  # fmt: skip

    ecs = EcsTasks([
        task(1, 512, 1024, start - timedelta(minutes=5)),  # running since before the run: billed from its start
        task(2, 512, 1024, start, end + timedelta(minutes=3)),  # stopped after the run: billed to its end
        task(3, 2048, 4096, start + timedelta(minutes=1), start + timedelta(minutes=1, seconds=10)),  # a minute
        task(4, 4096, 8192, start - timedelta(hours=2), start - timedelta(hours=1)),  # stopped before the run
        task(5, 4096, 8192, start, group="family:other"),  # not a task of the stack's service
    ])  # fmt: skip
    by_type = {
        "AWS::ECS::Service": [("Svc", "arn:aws:ecs:eu-west-1:1:service/c/svc")],
        "AWS::ECS::Cluster": [("C", "c")],
    }
    usage = fargate_usage(ecs, by_type, start, end)
    # 2 tasks × 30 min of 0.5 vCPU / 1 GB, and 1 task that ran 10 s but is billed a minute (2 vCPU / 4 GB)
    assert usage["vcpu_hours"] == pytest.approx(0.5 + 2 / 60, rel=1e-12)
    assert usage["gb_hours"] == pytest.approx(1.0 + 4 / 60, rel=1e-12)
    assert (usage["architecture"], usage["tasks"]) == ("arm64", 3)
    assert usage["source"].startswith("ECS DescribeTasks")
    assert usd({"fargate": usage}) == pytest.approx((0.5 + 2 / 60) * 0.03238 + (1 + 4 / 60) * 0.00356, rel=1e-12)


def test_fargate_hours_of_more_tasks_than_one_describe_call_takes():
    """250 tasks of 0.25 vCPU / 0.5 GB, each running the whole 12-minute run: DescribeTasks takes 100 at a time,
    and every one of them is billed: 250 × 0.2 h × 0.25 vCPU = 12.5 vCPU-h, 250 × 0.2 h × 0.5 GB = 25 GB-h."""
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    end = start + timedelta(minutes=12)
    ecs = EcsTasks([
        {
            "taskArn": f"arn:task/{n}", "group": "service:svc", "cpu": "256", "memory": "512", "startedAt": start,
            "lastStatus": "RUNNING", "taskDefinitionArn": "arn:task-definition/worker:1",
        }
        for n in range(250)
    ])  # fmt: skip
    by_type = {
        "AWS::ECS::Service": [("Svc", "arn:aws:ecs:eu-west-1:1:service/c/svc")],
        "AWS::ECS::Cluster": [("C", "c")],
    }
    usage = fargate_usage(ecs, by_type, start, end)
    assert usage["tasks"] == 250
    assert usage["vcpu_hours"] == pytest.approx(12.5, rel=1e-12)
    assert usage["gb_hours"] == pytest.approx(25.0, rel=1e-12)


def test_a_task_not_started_yet_is_billed_from_its_creation():
    """A task still pulling its image has no startedAt: it is billed from createdAt (here 20 min before the end
    of the run: 1/3 h × 1 vCPU, 1/3 h × 2 GB)."""
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    pending = {
        "taskArn": "arn:task/1", "group": "service:svc", "cpu": "1024", "memory": "2048", "lastStatus": "RUNNING",
        "createdAt": start + timedelta(minutes=10), "taskDefinitionArn": "arn:task-definition/worker:1",
    }  # fmt: skip
    by_type = {"AWS::ECS::Service": [("Svc", "arn:aws:ecs:eu-west-1:1:service/svc")], "AWS::ECS::Cluster": [("C", "c")]}
    usage = fargate_usage(EcsTasks([pending]), by_type, start, end)
    assert usage["tasks"] == 1
    assert usage["vcpu_hours"] == pytest.approx(1 / 3, rel=1e-12)
    assert usage["gb_hours"] == pytest.approx(2 / 3, rel=1e-12)


@pytest.mark.parametrize("platform", [{"cpuArchitecture": "X86_64"}, {}], ids=["X86_64", "no runtimePlatform"])
def test_fargate_on_x86_64_and_the_smallest_size_when_a_task_record_has_none(platform):
    """An x86_64 task definition (or one registered without runtimePlatform: Fargate's default is X86_64) is priced
    at the x86 rates. A task record without cpu/memory counts as Fargate's smallest size, 0.25 vCPU / 0.5 GB.
    A task that stopped exactly when the run started ran 0 s of it and is not billed (and the tasks listed after it
    still are); one that ran the run's last second is billed Fargate's one-minute minimum."""
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    worker = "arn:task-definition/worker:3"
    tasks = [
        {
            "taskArn": "arn:task/0", "group": "service:svc", "cpu": "1024", "memory": "2048", "lastStatus": "RUNNING",
            "startedAt": end - timedelta(seconds=1), "taskDefinitionArn": worker,
        },
        {
            "taskArn": "arn:task/1", "group": "service:svc", "cpu": "4096", "memory": "8192", "lastStatus": "STOPPED",
            "startedAt": start - timedelta(minutes=5), "stoppedAt": start, "taskDefinitionArn": worker,
        },
        {
            "taskArn": "arn:task/2", "group": "service:svc", "lastStatus": "STOPPED", "startedAt": start,
            "stoppedAt": end + timedelta(minutes=5), "taskDefinitionArn": worker,
        },
    ]  # fmt: skip
    by_type = {
        "AWS::ECS::Service": [("Svc", "arn:aws:ecs:eu-west-1:1:service/c/svc")],
        "AWS::ECS::Cluster": [("C", "c")],
    }
    usage = fargate_usage(EcsTasks(tasks, platforms={worker: platform}), by_type, start, end)
    assert (usage["architecture"], usage["tasks"]) == ("x86_64", 2)
    # task 2: 1 h × 0.25 vCPU / 0.5 GB; task 0: a minute × 1 vCPU / 2 GB
    assert usage["vcpu_hours"] == pytest.approx(0.25 + 1 / 60, rel=1e-12)
    assert usage["gb_hours"] == pytest.approx(0.5 + 2 / 60, rel=1e-12)


def test_a_run_whose_tasks_switched_architecture_prices_each_task_at_its_own():
    """Deploys during the run moved the workers from an x86_64 revision to two arm64 ones in turn: half an hour of
    1 vCPU / 2 GB on x86_64, two quarters on arm64. x86_64: 0.5 × $0.04048 + 1 × $0.004445; arm64: 0.5 × $0.03238
    + 1 × $0.00356."""
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    end = start + timedelta(hours=1)
    x86, arm, arm2 = "arn:task-definition/worker:9", "arn:task-definition/worker:10", "arn:task-definition/worker:11"

    def task(name, definition, started, stopped=None):
        return {
            "taskArn": f"arn:task/{name}", "group": "service:svc", "cpu": "1024", "memory": "2048",
            "lastStatus": "STOPPED" if stopped else "RUNNING", "startedAt": started, "stoppedAt": stopped,
            "taskDefinitionArn": definition,
        }  # fmt: skip

    quarter = timedelta(minutes=15)
    tasks = [
        task("old", x86, start, start + 2 * quarter),
        task("new", arm, start + 2 * quarter, start + 3 * quarter),
        task("newer", arm2, start + 3 * quarter),
    ]
    platforms = {
        x86: {"cpuArchitecture": "X86_64"},
        arm: {"cpuArchitecture": "ARM64"},
        arm2: {"cpuArchitecture": "ARM64"},
    }
    by_type = {
        "AWS::ECS::Service": [("Svc", "arn:aws:ecs:eu-west-1:1:service/c/svc")],
        "AWS::ECS::Cluster": [("C", "c")],
    }
    usage = fargate_usage(EcsTasks(tasks, platforms=platforms), by_type, start, end)
    assert (usage["architecture"], usage["tasks"]) == ("arm64+x86_64", 3)
    assert usage["vcpu_hours"] == pytest.approx(1.0, rel=1e-12)
    assert usage["gb_hours"] == pytest.approx(2.0, rel=1e-12)
    assert usage["by_architecture"] == {
        "arm64": {"vcpu_hours": pytest.approx(0.5, rel=1e-12), "gb_hours": pytest.approx(1.0, rel=1e-12)},
        "x86_64": {"vcpu_hours": pytest.approx(0.5, rel=1e-12), "gb_hours": pytest.approx(1.0, rel=1e-12)},
    }
    assert usd({"fargate": usage}) == pytest.approx(0.5 * 0.04048 + 0.004445 + 0.5 * 0.03238 + 0.00356, rel=1e-12)
    items = [(i.item, i.quantity) for i in line_items({"fargate": usage}, EU["prices"])]
    assert items == [("vCPU (arm64)", 0.5), ("memory (arm64)", 1.0), ("vCPU (x86_64)", 0.5), ("memory (x86_64)", 1.0)]


def test_a_stack_without_an_ecs_service_or_cluster_has_no_fargate_hours():
    start = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    task = {
        "taskArn": "arn:task/1", "group": "service:svc", "cpu": "1024", "memory": "2048", "lastStatus": "RUNNING",
        "startedAt": start, "taskDefinitionArn": "arn:task-definition/worker:1",
    }  # fmt: skip
    for by_type in ({}, {"AWS::ECS::Cluster": [("C", "c")]}):
        usage = fargate_usage(EcsTasks([task]), by_type, start, start + timedelta(hours=1))
        assert (usage["vcpu_hours"], usage["gb_hours"], usage["tasks"], usage["architecture"]) == (0, 0, 0, "x86_64")


def test_headline_per_1000_route_jobs_sums_every_service():
    usage = {
        "lambda": {"Fn": {"requests": 4000, "duration_ms": 400_000, "memory_mb": 512, "architecture": "arm64"}},
        "sqs": {"requests_64kb": 8000},
        "stepfunctions": {"transitions": 0},
    }
    cost = run_cost(usage, EU, route_jobs=2000)
    # 4,000 × $0.20/M + 200 GB-s × $0.0000133334 + 8,000 × $0.50/M = $0.0008 + $0.00266668 + $0.004
    assert cost["usd"] == pytest.approx(0.00746668, rel=1e-12)
    assert cost["per_1000_route_jobs_usd"] == pytest.approx(0.00373334, rel=1e-12)
    assert cost["by_service_usd"] == pytest.approx({"Lambda": 0.00346668, "SQS": 0.004}, rel=1e-12)
    assert [i["service"] for i in cost["items"]] == ["Lambda", "Lambda", "SQS"]  # no $0 transition line
    assert run_cost(usage, EU, route_jobs=0)["per_1000_route_jobs_usd"] is None


def test_every_line_item_as_the_report_shows_it():
    """The items a report prints, in order, with their quantities, units, unit prices and amounts."""
    usage = {
        "lambda": {
            "Scheduler": {"requests": 2, "duration_ms": 3000, "memory_mb": 512, "architecture": "x86_64"},
            "Processor": {
                "requests": 4,
                "duration_ms": 2000,
                "init_ms": 1000,
                "memory_mb": 2048,
                "architecture": "arm64",
            },
        },
        "sqs": {"requests_64kb": 10},
        "dynamodb": {"wru": 6, "rru": 8},
        "s3": {"put": 3, "get": 5},
        "stepfunctions": {"transitions": 7},
        "fargate": {"vcpu_hours": 0.25, "gb_hours": 0.5, "architecture": "arm64"},
    }
    cost = run_cost(usage, EU, route_jobs=4)

    def row(service, item, quantity, unit, price):
        return {"service": service, "item": item, "quantity": quantity, "unit": unit, "unit_price_usd": price}

    expected = [
        # functions in name order; Processor: 2 s and 1 s of INIT at 2 GB = 4 GB-s and 2 GB-s
        row("Lambda", "Processor requests", 4, "requests", 0.20e-6),
        row("Lambda", "Processor duration (2048 MB, arm64)", 4.0, "GB-s", 0.0000133334),
        row("Lambda", "Processor INIT (2048 MB, arm64)", 2.0, "GB-s", 0.0000133334),
        row("Lambda", "Scheduler requests", 2, "requests", 0.20e-6),
        row("Lambda", "Scheduler duration (512 MB, x86_64)", 1.5, "GB-s", 0.0000166667),
        row("SQS", "FIFO requests", 10, "64 KB requests", 0.50e-6),
        row("DynamoDB", "writes", 6, "WRU", 0.7068e-6),
        row("DynamoDB", "reads", 8, "RRU", 0.1413e-6),
        row("S3", "PUT/LIST requests", 3, "requests", 0.005e-3),
        row("S3", "GET requests", 5, "requests", 0.0004e-3),
        row("Step Functions", "state transitions", 7, "transitions", 0.025e-3),
        row("Fargate", "vCPU (arm64)", 0.25, "vCPU-h", 0.03238),
        row("Fargate", "memory (arm64)", 0.5, "GB-h", 0.00356),
    ]
    assert [{k: v for k, v in i.items() if k != "usd"} for i in cost["items"]] == [
        {**r, "unit_price_usd": pytest.approx(r["unit_price_usd"], rel=1e-12)} for r in expected
    ]
    for item in cost["items"]:
        assert item["usd"] == pytest.approx(item["quantity"] * item["unit_price_usd"], rel=1e-15)
    total = sum(r["quantity"] * r["unit_price_usd"] for r in expected)
    assert cost["usd"] == pytest.approx(total, rel=1e-12)
    assert cost["per_1000_route_jobs_usd"] == pytest.approx(total * 250, rel=1e-12)
    assert cost["by_service_usd"] == pytest.approx(
        {
            "Lambda": 6 * 0.20e-6 + 6 * 0.0000133334 + 1.5 * 0.0000166667,
            "SQS": 5e-6,
            "DynamoDB": 6 * 0.7068e-6 + 8 * 0.1413e-6,
            "S3": 3 * 0.005e-3 + 5 * 0.0004e-3,
            "Step Functions": 7 * 0.025e-3,
            "Fargate": 0.25 * 0.03238 + 0.5 * 0.00356,
        },
        rel=1e-12,
    )


def test_services_without_usage_get_no_line():
    empty = {"lambda": {}, "sqs": {"requests_64kb": 0}, "dynamodb": {"wru": 0, "rru": 0}, "s3": {"put": 0, "get": 0},
             "stepfunctions": {"transitions": 0}, "fargate": {"vcpu_hours": 0, "gb_hours": 0}}  # fmt: skip
    cost = run_cost(empty, EU, route_jobs=10)
    assert (cost["items"], cost["usd"], cost["by_service_usd"]) == ([], 0, {})
    assert run_cost({}, EU, route_jobs=10)["items"] == []
    # only reads, only GETs: one line each
    assert [i["item"] for i in run_cost({"dynamodb": {"rru": 2}, "s3": {"get": 1}}, EU, 1)["items"]] == [
        "reads",
        "GET requests",
    ]
