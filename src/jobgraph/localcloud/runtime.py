"""The local Lambda runtime: the deployed stack's functions, run from the template's code, fed by pollers.

For every ``AWS::Lambda::Function`` of the deployed stack it builds a FunctionSpec from the transformed
template (Handler, code folder, layer folders) and the deployed configuration (environment as resolved by
CloudFormation, timeout, memory). For every event source mapping it starts a MappingPoller (poller.py):
one receiver and, up to the mapping's concurrency, invokers that each own one worker process
(workers.py), started on its first batch, so cold starts happen when Lambda's would.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.poller import MappingPoller, MappingSpec, RuntimeStats
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.stack import DeployedStack
from jobgraph.localcloud.workers import FunctionSpec, Invocation, Worker

# Lambda scales an SQS mapping without ScalingConfig up to 1000 (FIFO: one per message group); a
# laptop cannot, so such mappings get this many local workers.
DEFAULT_UNSCALED_CONCURRENCY = 2


def default_max_workers() -> int:
    """Workers per mapping unless --max-workers says otherwise: more processes than cores only add
    cold starts and contention (20 sequences here: 11.7 s with 2 Processor workers, 18.8 s with 10)."""
    return max(2, os.cpu_count() or 2)


def _code_folder(stack: DeployedStack, location: dict) -> Path:
    return stack.code_paths[location["S3Key"]]


def _layer_folder(folder: Path) -> Path:
    """Lambda unpacks a layer to /opt and puts /opt/python on sys.path; a source layer is importable as is."""
    python = folder / "python"
    return python if python.is_dir() else folder


def function_specs(endpoint: LocalEndpoint, stack: DeployedStack) -> dict[str, FunctionSpec]:
    lambda_client = endpoint.client("lambda")
    layers = {
        logical_id: _layer_folder(_code_folder(stack, resource["Properties"]["Content"]))
        for logical_id, resource in stack.resources_of_type("AWS::Lambda::LayerVersion").items()
    }
    specs = {}
    for logical_id, resource in stack.resources_of_type("AWS::Lambda::Function").items():
        properties = resource["Properties"]
        name = stack.physical_ids[logical_id]
        config = lambda_client.get_function_configuration(FunctionName=name)
        layer_refs = [
            layer["Ref"] for layer in properties.get("Layers", []) if isinstance(layer, dict) and "Ref" in layer
        ]
        environment = {
            **config.get("Environment", {}).get("Variables", {}),
            **endpoint.environment(),
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["MemorySize"]),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            # no X-Ray daemon on a laptop: Tracer would fail to emit segments
            "POWERTOOLS_TRACE_DISABLED": "true",
            # the local time scale: failed messages back off 1, 2, 4 s… (the poller's own retry_delay_s)
            "RETRY_BACKOFF_BASE_SECONDS": "1",
        }
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            function_name=name,
            handler=config["Handler"],
            code_dir=_code_folder(stack, properties["Code"]),
            layer_dirs=tuple(layers[ref] for ref in layer_refs if ref in layers),
            environment={k: str(v) for k, v in environment.items()},
            timeout_s=int(config["Timeout"]),
            memory_mb=int(config["MemorySize"]),
            arn=config["FunctionArn"],
            runtime=config["Runtime"],
            architecture=(config.get("Architectures") or ["x86_64"])[0],
        )
    return specs


def _queue_url(endpoint: LocalEndpoint, queue_arn: str) -> str:
    name = queue_arn.rsplit(":", 1)[1]
    return endpoint.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _max_receive_count(endpoint: LocalEndpoint, queue_url: str) -> int | None:
    import json

    attributes = endpoint.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])
    policy = attributes.get("Attributes", {}).get("RedrivePolicy")
    return int(json.loads(policy)["maxReceiveCount"]) if policy else None


def mapping_specs(
    endpoint: LocalEndpoint, functions: dict[str, FunctionSpec], max_workers: int | None
) -> list[MappingSpec]:
    """The deployed event source mappings; moto's own trigger for each is switched off (GUIDE §7)."""
    lambda_client = endpoint.client("lambda")
    by_arn = {spec.arn: spec for spec in functions.values()}
    by_name = {spec.function_name: spec for spec in functions.values()}
    mappings = []
    for esm in lambda_client.list_event_source_mappings()["EventSourceMappings"]:
        function = by_arn.get(esm["FunctionArn"]) or by_name.get(esm["FunctionArn"].rsplit(":", 1)[-1])
        if function is None or ":sqs:" not in esm["EventSourceArn"]:
            continue
        lambda_client.update_event_source_mapping(UUID=esm["UUID"], Enabled=False)
        concurrency = esm.get("ScalingConfig", {}).get("MaximumConcurrency") or DEFAULT_UNSCALED_CONCURRENCY
        concurrency = min(concurrency, max_workers or default_max_workers())
        queue_url = _queue_url(endpoint, esm["EventSourceArn"])
        mappings.append(
            MappingSpec(
                function=function,
                queue_url=queue_url,
                queue_arn=esm["EventSourceArn"],
                batch_size=int(esm.get("BatchSize", 10)),
                concurrency=max(1, int(concurrency)),
                report_batch_item_failures="ReportBatchItemFailures" in esm.get("FunctionResponseTypes", []),
                max_receive_count=_max_receive_count(endpoint, queue_url),
                region=endpoint.region,
            )
        )
    return mappings


def _moto_queue_signal(endpoint: LocalEndpoint, queue_arn: str):
    """Blocks until moto's in-process queue has a visible message, or the timeout passes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    queue = sqs_backends[DEFAULT_ACCOUNT_ID][endpoint.region].get_queue(queue_arn.rsplit(":", 1)[1])
    return queue.wait_for_messages


@dataclass
class DirectPool:
    """Execution environments for direct (RequestResponse) invocations of one function.

    Concurrent callers (a state machine's parallel Map iterations) each get a worker of their own, up to
    ``size`` processes; more callers wait for a free one, as Lambda would throttle at a concurrency limit.
    The most recently used worker is reused first, so warm environments stay warm.
    """

    spec: FunctionSpec
    log_dir: Path
    size: int
    workers: list[Worker] = field(default_factory=list)
    _idle: queue.LifoQueue = field(default_factory=queue.LifoQueue)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self) -> Worker:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self.workers) < self.size:
                slot = len(self.workers)
                name = self.spec.logical_id if slot == 0 else f"{self.spec.logical_id}-{slot}"
                worker = Worker(self.spec, self.log_dir / f"{name}.log")
                self.workers.append(worker)
                return worker
        return self._idle.get()

    def release(self, worker: Worker) -> None:
        self._idle.put(worker)


@dataclass
class LocalLambdaRuntime:
    endpoint: LocalEndpoint
    stack: DeployedStack
    log_dir: Path
    faults: FaultPlan = field(default_factory=FaultPlan)
    max_workers: int | None = None
    retry_delay_s: int = 1
    stats: RuntimeStats = field(default_factory=RuntimeStats)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    mappings: list[MappingSpec] = field(default_factory=list)
    _pollers: list[MappingPoller] = field(default_factory=list)
    _direct: dict[str, DirectPool] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> LocalLambdaRuntime:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.functions = function_specs(self.endpoint, self.stack)
        self.mappings = mapping_specs(self.endpoint, self.functions, self.max_workers)
        sqs = self.endpoint.client("sqs", billed=True)  # Lambda's pollers: SQS bills their requests
        for mapping in self.mappings:
            name = mapping.function.logical_id
            workers = [
                Worker(mapping.function, self.log_dir / f"{name}-{slot}.log") for slot in range(mapping.concurrency)
            ]
            seed = zlib.crc32(f"{self.faults.seed}:{name}".encode())
            poller = MappingPoller(
                mapping,
                workers,
                sqs,
                self.stats,
                self._stop,
                self.faults,
                seed,
                self.retry_delay_s,
                wait_for_messages=_moto_queue_signal(self.endpoint, mapping.queue_arn),
            )
            self._pollers.append(poller)
            poller.start()
        return self

    def invoke(self, logical_id: str, event: dict, fault: str | None = None) -> Invocation:
        """A direct (RequestResponse) invocation, as `sam remote invoke` / lambda.invoke would make.

        Safe to call from many threads: each concurrent call runs in its own worker (DirectPool), up to
        ``max_workers`` per function. ``fault`` is injected as the pollers inject it (FaultPlan).
        """
        if logical_id not in self.functions:
            raise KeyError(f"no function {logical_id} in stack {self.stack.name} (has {sorted(self.functions)})")
        if self._stop.is_set():
            return Invocation(ok=False, error="the local runtime is stopped")
        with self.stats.lock:
            pool = self._direct.get(logical_id)
            if pool is None:
                size = self.max_workers or default_max_workers()
                pool = self._direct[logical_id] = DirectPool(self.functions[logical_id], self.log_dir, size)
        worker = pool.acquire()
        try:
            invocation = worker.invoke(event, fault)
        finally:
            pool.release(worker)
        with self.stats.lock:
            self.stats.record_invocation(logical_id, invocation)
            if fault:
                self.stats.faults[fault] += 1
            if not invocation.ok:
                self.stats.errors[logical_id] += 1
                self.stats.deaths[logical_id] += invocation.died
                self.stats.last_error[logical_id] = invocation.error
        return invocation

    def lambda_usage(self) -> dict:
        """What Lambda would bill, per function that ran: requests, invocation and INIT milliseconds."""
        with self.stats.lock:
            return {
                logical_id: {
                    "requests": self.stats.invocations[logical_id],
                    "duration_ms": sum(math.ceil(ms) for ms in self.stats.invocation_ms[logical_id]),
                    "init_ms": sum(math.ceil(ms) for ms in self.stats.init_ms[logical_id]),
                    "cold_starts": self.stats.cold_starts[logical_id],
                    "init_durations_ms": list(self.stats.init_ms[logical_id]),
                    "memory_mb": spec.memory_mb,
                    "architecture": spec.architecture,
                }
                for logical_id, spec in self.functions.items()
                if self.stats.invocations[logical_id]
            }

    def direct_workers(self, logical_id: str) -> int:
        """Worker processes started for direct invocations of a function."""
        pool = self._direct.get(logical_id)
        return len(pool.workers) if pool else 0

    def failure(self) -> BaseException | None:
        """The first poller that died of an unexpected error (the runtime is then stopping)."""
        return next((p.fatal for p in self._pollers if p.fatal is not None), None)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for poller in self._pollers:
            poller.join(timeout=max(0.1, deadline - time.monotonic()))
        for poller in self._pollers:
            for worker in poller.workers:
                worker.stop()  # an invoker stuck in an invocation still gets its process killed
        for pool in self._direct.values():
            for worker in pool.workers:
                worker.stop()
        self._pollers.clear()
        self._direct.clear()
