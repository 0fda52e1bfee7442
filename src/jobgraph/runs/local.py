"""`jobgraph run` on the embedded local cloud: server → deploy → runtime → run → report → clean up.

The stack's functions run in the local Lambda runtime; its ECS services (scenario 2's polling workers), if
any, as local worker processes of their task definitions (localcloud/ecs.py). The server, the pollers and every worker process are stopped on the way out, also after an error or
Ctrl-C (workers ignore SIGINT; the parent stops them in order).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.adapters.local_disk import check_destination
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.graph import RunSpec, total_jobs
from jobgraph.core.models import Sequence
from jobgraph.localcloud.alarms import LocalMetrics, evaluate_alarms
from jobgraph.localcloud.ecs import DEFAULT_TASKS, LocalEcs
from jobgraph.localcloud.faults import FaultPlan, poison_bodies
from jobgraph.localcloud.latency import load_profile
from jobgraph.localcloud.runtime import LocalLambdaRuntime
from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws
from jobgraph.localcloud.stack import LOCAL_STACK_NAME, deploy
from jobgraph.runs.driver import GraphRun, Progress, RunFailed, RunOutcome, describe_stack, execute
from jobgraph.runs.load import LoadSpec, execute_load

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
    service_latency: str | None = None  # "default" or a profile file: each AWS request's time (localcloud/latency.py)


def send_poison(endpoint: LocalEndpoint, queue_url: str, count: int, run_id: str) -> None:
    sqs = endpoint.client("sqs")
    for index, (group, body) in enumerate(poison_bodies(count, run_id)):
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=f"poison-{index}"
        )


class LocalSession:
    """The local cloud brought up for one run: the stack deployed, its functions served, its metrics sampled.

    ``check`` (called on every tick of a run) raises if the runtime or an ECS service died and samples queue
    metrics and alarms every METRICS_INTERVAL_S; ``progress`` counts jobs the Processor finished (where
    ECS workers consume the incoming queue instead: jobs whose completion the Scheduler took); ``finish`` adds
    the local runtime's figures, settings, usage and request counts to an outcome.
    """

    def __init__(self, endpoint: LocalEndpoint, options: LocalRunOptions, log_dir: Path):
        self.endpoint, self.options, self.log_dir = endpoint, options, log_dir
        self.stack = deploy(endpoint, options.template, stack_name=options.stack_name, parameters=options.parameters)
        self.runtime = LocalLambdaRuntime(endpoint, self.stack, log_dir, options.faults, options.max_workers)
        # the stack's ECS services (scenario 2's polling workers); none in a Lambda-only stack
        self.ecs = LocalEcs(endpoint, self.stack, log_dir, options.faults, options.ecs_workers)

    def start(self) -> GraphRun:
        runtime, stack = self.runtime, self.stack
        runtime.start()
        self.ecs.start()
        self.outputs = outputs = describe_stack(self.endpoint.client("cloudformation"), self.options.stack_name)
        self.processor = _mapping_on(runtime, outputs.incoming_queue_url) or _mapping_on(
            runtime, outputs.outgoing_queue_url
        )
        self.metrics = LocalMetrics(
            self.endpoint.client("cloudwatch"),
            self.endpoint.client("sqs"),
            [stack.physical_ids[q] for q in stack.resources_of_type("AWS::SQS::Queue")],
            runtime.mappings,
            runtime.stats,
        )
        self._last_sample = 0.0
        return GraphRun(self.endpoint, outputs, self.invoke_start_run)

    def invoke_start_run(self, payload: dict) -> dict:
        start_run_id = self.stack.logical_id_of(self.outputs.start_run_function)
        invocation = self.runtime.invoke(start_run_id, payload)
        if not invocation.ok:
            raise RunFailed(f"{start_run_id} failed: {invocation.error} (log: {self.log_dir / start_run_id}.log)")
        return invocation.result

    def check(self) -> None:
        failure = self.runtime.failure()
        if failure is not None:
            raise RunFailed(f"local runtime stopped: {failure}")
        if self.ecs.failure() is not None:
            raise RunFailed(f"local ECS stopped: {self.ecs.failure()}")
        if time.monotonic() - self._last_sample >= METRICS_INTERVAL_S:
            self._last_sample = time.monotonic()
            self.sample_alarms()

    def sample_alarms(self) -> None:
        self.metrics.sample()
        evaluate_alarms(self.endpoint.client("cloudwatch"), f"{self.stack.name}-")

    def progress(self, total: int) -> Callable[[], Progress]:
        stats, processor = self.runtime.stats, self.processor
        dlq_urls = (self.outputs.incoming_dlq_url, self.outputs.outgoing_dlq_url)

        def progress() -> Progress:
            with stats.lock:
                done = len(stats.done_jobs[processor.function.logical_id])
                in_flight = sum(stats.in_flight.values())
                retries = sum(stats.redeliveries.values())
            # the DLQ depths of the last metrics sample (check() refreshes them every METRICS_INTERVAL_S)
            dlq = sum(sum(self.metrics.depths.get(url, (0, 0))) for url in dlq_urls)
            return Progress(done=done, total=total, in_flight=in_flight, retries=retries, dlq=dlq)

        return progress

    def triggers(self, run_id: str, timeout_s: float = 30.0) -> dict | None:
        """What the downstream triggers did for this run, once its end was announced and the trigger queue
        is empty (fired, or retried into the trigger DLQ); None when no trigger is configured."""
        from jobgraph.adapters.dynamodb import JobsTable
        from jobgraph.core.triggers import config_from_json

        queue_url = self.stack.physical_ids.get("TriggerQueue")
        dlq_url = self.stack.physical_ids.get("TriggerDlq")
        config = config_from_json(self.options.parameters.get("TriggerConfig", "{}"))
        if queue_url is None or not config.triggers:
            return None
        table = JobsTable(self.outputs.table, client=self.endpoint.client("dynamodb"))
        queue = FifoQueue(queue_url, client=self.endpoint.client("sqs"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            announced = "announced_event_id" in table.get_run(run_id)
            if announced and queue.depth() == (0, 0):
                break
            time.sleep(0.25)
        fired = {r["trigger"]: r for r in table.triggers_of_run(run_id)}
        run = table.get_run(run_id)
        matching = config.for_run({**run, "outcome": run["status"], "scenario": self.options.scenario})
        dlq_depth = sum(FifoQueue(dlq_url, client=self.endpoint.client("sqs")).depth()) if dlq_url else 0
        return {
            "triggers": [
                {
                    "name": t.name,
                    "type": t.target.type,
                    "status": fired.get(t.name, {}).get("status", "NOT FIRED"),
                    "receipt": fired.get(t.name, {}).get("receipt"),
                }
                for t in matching
            ],
            "dlq": dlq_depth,
        }

    def finish(self, outcome: RunOutcome, spec: RunSpec) -> RunOutcome:
        self.ecs.stop()  # SIGTERM, as ECS stops tasks: their last "batch processed" lines are in the logs
        outcome.extra = {**outcome.extra, **local_figures(self.runtime, self.log_dir)}
        if self.ecs.services:
            outcome.extra["services"] = self.ecs.figures()
        outcome.settings = local_settings(self.runtime, self.options, spec)
        outcome.api_requests = self.endpoint.meter.snapshot()
        outcome.usage = local_usage(self.runtime, outcome.api_requests)
        if self.ecs.services:
            outcome.usage["fargate"] = self.ecs.usage()
        return outcome


@contextmanager
def local_session(options: LocalRunOptions, out_dir: Path, run_id: str, overwrite: bool):
    """Server up, stack deployed, runtime started; everything stopped on the way out (errors, Ctrl-C too)."""
    isolate_from_real_aws()
    allow_loopback_only()
    check_destination(out_dir, run_id, overwrite)  # before the cloud is deployed
    log_dir = options.log_dir or out_dir / ".logs" / run_id
    shutil.rmtree(log_dir, ignore_errors=True)  # workers append: start each run's logs afresh
    with LocalEndpoint(latency=load_profile(options.service_latency)) as endpoint:
        session = LocalSession(endpoint, options, log_dir)
        try:
            yield session, session.start()
        finally:
            session.ecs.stop()
            session.runtime.stop()


def _mapping_on(runtime: LocalLambdaRuntime, queue_url: str):
    name = queue_url.rsplit("/", 1)[1]
    return next((m for m in runtime.mappings if m.queue_url.rsplit("/", 1)[1] == name), None)


def run_local(
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    options: LocalRunOptions,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
    serve_port: int | None = None,
    after: Callable[[RunOutcome], None] | None = None,
) -> RunOutcome:
    """``serve_port`` (0 = any free port): the status API runs beside the run and, once ``after`` (the
    report) is done, keeps the local cloud up until Ctrl-C (`jobgraph run --serve`)."""
    with local_session(options, out_dir, spec.run_id, overwrite) as (session, run):
        server = None
        if serve_port is not None:
            from jobgraph.runs.serve import ApiServer

            server = ApiServer(session, port=serve_port).start()
            print(f"status API: {server.url} (docs: {server.url}/docs)", file=sys.stderr, flush=True)
        try:
            outcome = execute(
                run,
                sequences,
                spec,
                out_dir,
                mode="local",
                progress=session.progress(total_jobs(sequences)),
                overwrite=overwrite,
                show_progress=show_progress,
                timeout_s=options.timeout_s,
                stall_s=options.stall_s,
                interval_s=0.5,
                check=session.check,
                after_start=lambda: send_poison(
                    session.endpoint, session.outputs.incoming_queue_url, options.faults.poison, spec.run_id
                ),
                before_report=session.sample_alarms,
                scenario=options.scenario,
            )
            outcome = session.finish(outcome, spec)
            triggered = session.triggers(spec.run_id)
            if triggered is not None:
                outcome.extra["downstream_triggers"] = triggered
                # the triggers ran after the report's alarm sample: the trigger DLQ alarm must see them
                session.sample_alarms()
                outcome.alarms = run.alarm_states()
            if after is not None:
                after(outcome)
            if server is not None:
                from jobgraph.runs.serve import wait_until_interrupted

                print(f"run done; the local cloud stays up: status API at {server.url} — Ctrl-C to stop", flush=True)
                try:
                    wait_until_interrupted(session)
                except KeyboardInterrupt:
                    print("stopped", file=sys.stderr)
            return outcome
        finally:
            if server is not None:
                server.stop()


def run_local_load(
    load: LoadSpec, out_dir: Path, options: LocalRunOptions, *, overwrite: bool = False, show_progress: bool = False
) -> RunOutcome:
    """`jobgraph load` on the embedded local cloud."""
    with local_session(options, out_dir, load.run.run_id, overwrite) as (session, run):
        outcome = execute_load(
            run,
            load,
            out_dir,
            mode="local",
            progress=session.progress(load.messages),
            overwrite=overwrite,
            show_progress=show_progress,
            timeout_s=options.timeout_s,
            stall_s=options.stall_s,
            interval_s=0.5,
            check=session.check,
            scenario=options.scenario,
            # the load's sends are part of what it costs (on AWS the sender pays for them too)
            sender=FifoQueue(session.outputs.incoming_queue_url, client=session.endpoint.client("sqs", billed=True)),
        )
        session.sample_alarms()
        return session.finish(outcome, load.run)


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


def local_settings(runtime: LocalLambdaRuntime, options: LocalRunOptions, spec: RunSpec) -> dict:
    """The settings a comparison tells runs apart by: per function memory/architecture, per mapping batch
    size and workers, the template parameters given, and the run's own scenarios/seed."""
    return {
        "scenarios": spec.scenarios,
        "seed": spec.seed,
        "template": str(options.template),
        "parameters": dict(options.parameters),
        "functions": {
            logical_id: {"memory_mb": f.memory_mb, "architecture": f.architecture, "timeout_s": f.timeout_s}
            for logical_id, f in runtime.functions.items()
        },
        "mappings": {
            m.function.logical_id: {"batch_size": m.batch_size, "workers": m.concurrency} for m in runtime.mappings
        },
        "ecs_workers": options.ecs_workers,
        "service_latency": runtime.endpoint.latency.summary() if runtime.endpoint.latency else None,
    }


def local_usage(runtime: LocalLambdaRuntime, api_requests: dict) -> dict:
    """Billing counters from the local runtime (Lambda) and the request meter (SQS, DynamoDB, S3)."""
    units = api_requests["units"]
    return {
        "lambda": runtime.lambda_usage(),
        "sqs": {"requests_64kb": units.get("sqs_requests_64kb", 0)},
        "dynamodb": {"wru": units.get("dynamodb_wru", 0), "rru": units.get("dynamodb_rru", 0)},
        "s3": {"put": units.get("s3_put", 0), "get": units.get("s3_get", 0)},
    }
