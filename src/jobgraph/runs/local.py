"""`jobgraph run` on the embedded local cloud: server → deploy → runtime → run → report → clean up.

The stack's functions run in the local Lambda runtime; its ECS services (scenario 2's polling workers), if
any, as local worker processes of their task definitions (localcloud/ecs.py). The server, the pollers and every worker process are stopped on the way out, also after an error or
Ctrl-C (workers ignore SIGINT; the parent stops them in order).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.adapters.local_disk import check_destination
from jobgraph.core.graph import RunSpec, total_jobs
from jobgraph.core.models import Sequence
from jobgraph.localcloud.alarms import LocalMetrics, evaluate_alarms
from jobgraph.localcloud.ecs import DEFAULT_TASKS, LocalEcs
from jobgraph.localcloud.faults import FaultPlan, poison_bodies
from jobgraph.localcloud.runtime import LocalLambdaRuntime
from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws
from jobgraph.localcloud.stack import LOCAL_STACK_NAME, deploy
from jobgraph.runs.driver import GraphRun, Progress, RunFailed, RunOutcome, describe_stack, execute

METRICS_INTERVAL_S = 2.0


@dataclass
class LocalRunOptions:
    scenario: int = 1
    template: Path = Path("template.yaml")
    stack_name: str = LOCAL_STACK_NAME
    parameters: dict[str, str] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    max_workers: int | None = None
    ecs_workers: int = DEFAULT_TASKS  # local tasks (worker processes) per ECS service: scenario 2
    timeout_s: float = 1800.0
    stall_s: float = 60.0
    log_dir: Path | None = None


def send_poison(endpoint: LocalEndpoint, queue_url: str, count: int, run_id: str) -> None:
    sqs = endpoint.client("sqs")
    for index, (group, body) in enumerate(poison_bodies(count, run_id)):
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=f"poison-{index}"
        )


def run_local(
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    options: LocalRunOptions,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
) -> RunOutcome:
    isolate_from_real_aws()
    allow_loopback_only()
    check_destination(out_dir, spec.run_id, overwrite)  # before the cloud is deployed
    log_dir = options.log_dir or out_dir / ".logs" / spec.run_id
    shutil.rmtree(log_dir, ignore_errors=True)  # workers append: start each run's logs afresh
    with LocalEndpoint() as endpoint:
        stack = deploy(endpoint, options.template, stack_name=options.stack_name, parameters=options.parameters)
        runtime = LocalLambdaRuntime(endpoint, stack, log_dir, options.faults, options.max_workers)
        # the stack's ECS services (scenario 2's polling workers); none in a Lambda-only stack
        ecs = LocalEcs(endpoint, stack, log_dir, options.faults, options.ecs_workers)
        try:
            runtime.start()
            ecs.start()
            outputs = describe_stack(endpoint.client("cloudformation"), options.stack_name)
            start_run_id = stack.logical_id_of(outputs.start_run_function)
            # progress: jobs the function on the incoming queue finished (scenario 1's Processor); where
            # containers consume it instead, jobs whose completion the Scheduler took from the outgoing queue
            counted = _mapping_on(runtime, outputs.incoming_queue_url) or _mapping_on(
                runtime, outputs.outgoing_queue_url
            )

            def invoke_start_run(payload: dict) -> dict:
                invocation = runtime.invoke(start_run_id, payload)
                if not invocation.ok:
                    raise RunFailed(f"{start_run_id} failed: {invocation.error} (log: {log_dir / start_run_id}.log)")
                return invocation.result

            run = GraphRun(endpoint, outputs, invoke_start_run)
            metrics = LocalMetrics(
                endpoint.client("cloudwatch"),
                endpoint.client("sqs"),
                [stack.physical_ids[q] for q in stack.resources_of_type("AWS::SQS::Queue")],
                runtime.mappings,
                runtime.stats,
            )
            last_sample = [0.0]

            def check() -> None:
                failure = runtime.failure()
                if failure is not None:
                    raise RunFailed(f"local runtime stopped: {failure}")
                if ecs.failure() is not None:
                    raise RunFailed(f"local ECS stopped: {ecs.failure()}")
                if time.monotonic() - last_sample[0] >= METRICS_INTERVAL_S:
                    last_sample[0] = time.monotonic()
                    metrics.sample()
                    evaluate_alarms(endpoint.client("cloudwatch"), f"{stack.name}-")

            jobs = total_jobs(sequences)
            stats = runtime.stats

            dlq_urls = (outputs.incoming_dlq_url, outputs.outgoing_dlq_url)

            def progress() -> Progress:
                with stats.lock:
                    done = len(stats.done_jobs[counted.function.logical_id])
                    in_flight = sum(stats.in_flight.values())
                    retries = sum(stats.redeliveries.values())
                # the DLQ depths of the last metrics sample (check() refreshes them every METRICS_INTERVAL_S)
                dlq = sum(sum(metrics.depths.get(url, (0, 0))) for url in dlq_urls)
                return Progress(done=done, total=jobs, in_flight=in_flight, retries=retries, dlq=dlq)

            def final_alarms() -> None:
                metrics.sample()
                evaluate_alarms(endpoint.client("cloudwatch"), f"{stack.name}-")

            outcome = execute(
                run,
                sequences,
                spec,
                out_dir,
                mode="local",
                progress=progress,
                overwrite=overwrite,
                show_progress=show_progress,
                timeout_s=options.timeout_s,
                stall_s=options.stall_s,
                interval_s=0.5,
                check=check,
                after_start=lambda: send_poison(
                    endpoint, outputs.incoming_queue_url, options.faults.poison, spec.run_id
                ),
                before_report=final_alarms,
                scenario=options.scenario,
            )
            ecs.stop()  # SIGTERM, as ECS stops tasks: their last "batch processed" lines are in the logs
            outcome.extra = local_figures(runtime, log_dir)
            outcome.extra["services"] = ecs.figures()
            return outcome
        finally:
            ecs.stop()
            runtime.stop()


def _mapping_on(runtime: LocalLambdaRuntime, queue_url: str):
    name = queue_url.rsplit("/", 1)[1]
    return next((m for m in runtime.mappings if m.queue_url.rsplit("/", 1)[1] == name), None)


def local_figures(runtime: LocalLambdaRuntime, log_dir: Path) -> dict:
    stats = runtime.stats
    with stats.lock:
        return {
            "functions": {
                mapping.function.logical_id: {
                    "workers": mapping.concurrency,
                    "batch_size": mapping.batch_size,
                    "invocations": stats.invocations[mapping.function.logical_id],
                    "cold_starts": stats.cold_starts[mapping.function.logical_id],
                    "errors": stats.errors[mapping.function.logical_id],
                    "worker_deaths": stats.deaths[mapping.function.logical_id],
                    "received": stats.received[mapping.function.logical_id],
                    "redeliveries": stats.redeliveries[mapping.function.logical_id],
                    "duplicates": stats.duplicates[mapping.function.logical_id],
                    "last_error": stats.last_error.get(mapping.function.logical_id),
                    "queue_wait_ms": list(stats.queue_wait_ms[mapping.function.logical_id]),
                    "invocation_ms": list(stats.invocation_ms[mapping.function.logical_id]),
                }
                for mapping in runtime.mappings
            },
            "faults": dict(stats.faults),
            "log_dir": str(log_dir),
        }
