"""The local Lambda runtime's pieces: what a function is (FunctionSpec, from its configuration) and the pools
of execution environments that serve its direct invocations.

The local cloud's controller (controller.py) runs every deployed function with these: a DirectPool per function
for invocations through the endpoint and Step Functions tasks, and MappingPollers (poller.py) for its event
source mappings, each worker a process of the function's own runtime (workers.py), started on first use, so
cold starts happen when Lambda's would.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.localcloud.cloudformation.stack import DeployedStack
from jobgraph.localcloud.lambda_runtime.code import layer_path
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, Worker
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.timescale import LOCAL_RETRY_DELAY_S

# Lambda scales an SQS mapping without ScalingConfig up to 1000 (FIFO: one per message group); a
# laptop cannot, so such mappings get this many local workers.
DEFAULT_UNSCALED_CONCURRENCY = 2


def default_max_workers() -> int:
    """Workers per mapping unless --max-workers says otherwise: more processes than cores only add
    cold starts and contention (20 sequences here: 11.7 s with 2 Processor workers, 18.8 s with 10)."""
    return max(2, os.cpu_count() or 2)


def _code_folder(stack: DeployedStack, location: dict) -> Path:
    return stack.code_paths[location["S3Key"]]


def function_spec(
    logical_id: str, config: dict, code_dir: Path, layer_dirs: tuple[Path, ...], endpoint_environment: dict[str, str]
) -> FunctionSpec:
    """What a worker needs to run a function, from its configuration (GetFunctionConfiguration's shape)."""
    name = config["FunctionName"]
    environment = {
        **(config.get("Environment") or {}).get("Variables", {}),
        **endpoint_environment,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config["MemorySize"]),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        # no X-Ray daemon on a laptop: Tracer would fail to emit segments
        "POWERTOOLS_TRACE_DISABLED": "true",
        # the local time scale: failed messages back off 1, 2, 4 s…, as the poller's own retries
        "RETRY_BACKOFF_BASE_SECONDS": str(LOCAL_RETRY_DELAY_S),
    }
    return FunctionSpec(
        logical_id=logical_id,
        function_name=name,
        handler=config["Handler"],
        code_dir=code_dir,
        layer_dirs=layer_dirs,
        environment={k: str(v) for k, v in environment.items()},
        timeout_s=int(config["Timeout"]),
        memory_mb=int(config["MemorySize"]),
        arn=config["FunctionArn"],
        runtime=config["Runtime"],
        architecture=(config.get("Architectures") or ["x86_64"])[0],
    )


def function_specs(endpoint: LocalEndpoint, stack: DeployedStack) -> dict[str, FunctionSpec]:
    lambda_client = endpoint.client("lambda")
    layers = {
        logical_id: layer_path(_code_folder(stack, resource["Properties"]["Content"]))
        for logical_id, resource in stack.resources_of_type("AWS::Lambda::LayerVersion").items()
    }
    specs = {}
    for logical_id, resource in stack.resources_of_type("AWS::Lambda::Function").items():
        properties = resource["Properties"]
        config = lambda_client.get_function_configuration(FunctionName=stack.physical_ids[logical_id])
        layer_refs = [
            layer["Ref"] for layer in properties.get("Layers", []) if isinstance(layer, dict) and "Ref" in layer
        ]
        specs[logical_id] = function_spec(
            logical_id,
            config,
            _code_folder(stack, properties["Code"]),
            tuple(layers[ref] for ref in layer_refs if ref in layers),
            endpoint.environment(),
        )
    return specs


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
    make_worker: Callable[[FunctionSpec, Path], Worker] = Worker
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
                worker = self.make_worker(self.spec, self.log_dir / f"{name}.log")
                self.workers.append(worker)
                return worker
        return self._idle.get()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def release(self, worker: Worker) -> None:
        self._idle.put(worker)
