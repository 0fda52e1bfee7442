"""What moto holds that the local cloud runs: functions, event source mappings, ECS services, stacks' resources.

Read straight from moto's backends (the server runs in this process), holding the server's lock: moto is not
thread-safe. The controller (controller.py) compares these with what runs locally; the service hooks
(servicehooks.py) and the endpoint's status read them too.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from jobgraph.localcloud.cloudformation import changesets as cfn
from jobgraph.localcloud.ecs.service import TaskSpec

_REVISION_KEYS = ("Handler", "Runtime", "MemorySize", "Timeout", "Environment", "Architectures", "CodeSha256")


@dataclass(frozen=True)
class FunctionRevision:
    """A function as deployed: configuration and packages. A new revision gets new workers."""

    arn: str
    name: str
    region: str
    config: dict = field(hash=False, compare=False)
    package: tuple[str, bytes] = field(hash=False, compare=False, repr=False)  # (CodeSha256, zip)
    layers: tuple[tuple[str, bytes], ...] = field(hash=False, compare=False, repr=False)
    key: str = ""


@dataclass(frozen=True)
class MappingState:
    uuid: str
    function_arn: str
    queue_arn: str
    queue_url: str
    region: str
    enabled: bool
    batch_size: int
    max_concurrency: int | None
    report_batch_item_failures: bool
    max_receive_count: int | None


@dataclass(frozen=True)
class ServiceState:
    arn: str
    region: str
    desired: int
    task_definition: str
    spec: TaskSpec | None
    log_group: str = ""
    log_prefix: str = ""
    problem: str = ""


def regional_backends(backends) -> list[tuple[str, str, object]]:
    """(account, region, backend) of every region moto has instantiated."""
    return [
        (account, region, backend)
        for account, regional in list(backends.items())
        for region, backend in list(regional.items())
    ]


def read_functions() -> dict[str, FunctionRevision]:
    from moto.awslambda.models import lambda_backends

    found = {}
    for _account, region, backend in regional_backends(lambda_backends):
        for function in backend.list_functions():
            config = function.get_configuration()
            if config.get("PackageType") == "Image":
                continue  # container-image functions: not run locally (docs)
            layers = []
            for layer in function.layers or []:
                version = backend.layers_versions_by_arn(layer["Arn"])
                if version is not None:
                    layers.append((version.code_sha_256, version.code_bytes))
            key = json.dumps(
                [{k: config.get(k) for k in _REVISION_KEYS}, [sha for sha, _ in layers]], sort_keys=True, default=str
            )
            found[config["FunctionArn"]] = FunctionRevision(
                arn=config["FunctionArn"],
                name=config["FunctionName"],
                region=region,
                config=config,
                package=(function.code_sha_256, function.code_bytes),
                layers=tuple(layers),
                key=key,
            )
    return found


def sqs_queue(account: str, region: str, queue_arn: str):
    from moto.sqs.models import sqs_backends

    try:
        return sqs_backends[account][region].get_queue(queue_arn.rsplit(":", 1)[1])
    except Exception:  # moto's QueueDoesNotExist: the mapping's queue is gone (a stack being deleted)
        return None


def read_mappings() -> dict[str, MappingState]:
    from moto.awslambda.models import lambda_backends

    found = {}
    for account, region, backend in regional_backends(lambda_backends):
        for esm in list(backend._event_source_mappings.values()):
            config = esm.get_configuration()
            source = config.get("EventSourceArn", "")
            if ":sqs:" not in source:
                continue
            found_queue = sqs_queue(account, region, source)
            if found_queue is None:
                continue
            name = source.rsplit(":", 1)[1]
            policy = found_queue.redrive_policy or {}
            found[config["UUID"]] = MappingState(
                uuid=config["UUID"],
                function_arn=config["FunctionArn"],
                queue_arn=source,
                queue_url=f"https://sqs.{region}.amazonaws.com/{account}/{name}",
                region=region,
                enabled=config.get("State") == "Enabled",
                batch_size=int(config.get("BatchSize") or 10),
                max_concurrency=(config.get("ScalingConfig") or {}).get("MaximumConcurrency"),
                report_batch_item_failures="ReportBatchItemFailures" in (config.get("FunctionResponseTypes") or []),
                max_receive_count=int(policy["maxReceiveCount"]) if "maxReceiveCount" in policy else None,
            )
    return found


def _task_spec(service, definition) -> tuple[TaskSpec | None, str, str, str]:
    """(TaskSpec, awslogs group, awslogs stream prefix, problem) of a service's task definition."""
    essential = [c for c in definition.container_definitions if c.get("essential", True)]
    if len(essential) != 1:
        return None, "", "", f"{service.name}: the local cloud runs one essential container per task"
    (container,) = essential
    environment = {e["name"]: str(e["value"]) for e in container.get("environment", [])}
    options = (container.get("logConfiguration") or {}).get("options") or {}
    platform = definition.runtime_platform or {}
    spec = TaskSpec(
        service_name=service.name,
        cluster=service.cluster_name,
        task_definition_arn=definition.arn,
        container=container["name"],
        command=tuple(container.get("command") or ()),
        environment=environment,
        stop_timeout_s=int(container.get("stopTimeout") or 30),
        queue_url=environment.get("INCOMING_QUEUE_URL", ""),
        cpu_units=int(definition.cpu or 256),
        memory_mb=int(definition.memory or 512),
        architecture="arm64" if platform.get("cpuArchitecture") == "ARM64" else "x86_64",
    )
    return spec, options.get("awslogs-group", ""), options.get("awslogs-stream-prefix", ""), ""


def read_services() -> dict[str, ServiceState]:
    from moto.ecs.models import ecs_backends

    found = {}
    for _account, region, backend in regional_backends(ecs_backends):
        for service in list(backend.services.values()):
            if service.status != "ACTIVE" or not service.task_definition:
                continue
            try:
                definition = backend.describe_task_definition(service.task_definition)
            except Exception as exc:  # moto's TaskDefinitionNotFoundException
                found[service.arn] = ServiceState(
                    service.arn, region, 0, service.task_definition, None, problem=str(exc)
                )
                continue
            spec, group, prefix, problem = _task_spec(service, definition)
            found[service.arn] = ServiceState(
                service.arn, region, int(service.desired_count or 0), definition.arn, spec, group, prefix, problem
            )
    return found


def stack_resources(operation: cfn.StackOperation) -> dict[str, list[str]]:
    """Physical ids of a stack's functions, mappings and ECS services, by resource type (holding the lock)."""
    from moto.cloudformation.models import cloudformation_backends

    backend = cloudformation_backends[operation.account_id][operation.region]
    stack = backend.stacks.get(operation.stack_id) or backend.deleted_stacks.get(operation.stack_id)
    found: dict[str, list[str]] = {}
    stacks = [stack] if stack is not None else []
    while stacks:  # a nested stack's (AWS::CloudFormation::Stack) resources belong to its parent too
        for resource in list(stacks.pop().stack_resources):
            kind = getattr(resource, "cf_resource_type", "")
            if kind == "AWS::CloudFormation::Stack" and hasattr(resource, "stack_resources"):
                stacks.append(resource)
                found.setdefault(kind, []).append(resource.stack_id)
            elif kind in ("AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::ECS::Service"):
                physical = getattr(resource, "uuid", None) or getattr(resource, "arn", None)
                found.setdefault(kind, []).append(physical or resource.physical_resource_id)
    return found


def queue_metrics() -> list[tuple[str, str, tuple, float]]:
    """AWS/SQS depth and age of the oldest message of every queue (holding the lock)."""
    from moto.sqs.models import sqs_backends

    now_ms = time.time() * 1000
    found = []
    for _account, _region, backend in regional_backends(sqs_backends):
        for name, found_queue in list(backend.queues.items()):
            dimensions = (("QueueName", name),)
            messages = list(found_queue._messages)
            found.append(
                (
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    dimensions,
                    float(found_queue.approximate_number_of_messages),
                )
            )
            found.append(
                (
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesNotVisible",
                    dimensions,
                    float(found_queue.approximate_number_of_messages_not_visible),
                )
            )
            oldest = min((m.sent_timestamp for m in messages if m.sent_timestamp), default=None)
            age = (now_ms - oldest) / 1000 if oldest else 0.0
            found.append(("AWS/SQS", "ApproximateAgeOfOldestMessage", dimensions, age))
    return found
