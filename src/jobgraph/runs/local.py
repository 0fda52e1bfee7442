"""The local target: `jobgraph run` on the embedded local cloud — the cloud brought up, the template deployed
into it in-process (so a fresh clone needs no `sam build`), then the AWS target's path on it.

This is the one module of runs/ that imports jobgraph.localcloud; its surface: LocalEndpoint and the isolation
helpers, deploy, the Lambda runtime, local ECS, metrics and alarm evaluation, faults, and the hook that routes
state machines' Lambda tasks to the runtime. The stack's functions run in the local Lambda runtime, its ECS
services (scenario 2's polling workers) as local worker processes of their task definitions. Everything it
started is stopped on the way out, also after an error or Ctrl-C (workers ignore SIGINT; the parent stops them
in order).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.adapters.local_disk import exclusive_folder
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import JobGraphError
from jobgraph.core.run import RunSpec
from jobgraph.localcloud import motopatches
from jobgraph.localcloud.alarms import LocalMetrics, evaluate_alarms
from jobgraph.localcloud.ecs import DEFAULT_TASKS, LocalEcs
from jobgraph.localcloud.faults import FaultPlan, poison_bodies
from jobgraph.localcloud.latency import load_profile
from jobgraph.localcloud.runtime import LocalLambdaRuntime
from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws
from jobgraph.localcloud.stack import LOCAL_STACK_NAME, deploy
from jobgraph.runs import local_runtime
from jobgraph.runs.aws import AwsTarget
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.serve import ApiServer, LocalAsyncLambda, wait_until_interrupted
from jobgraph.runs.target import Output, Patience
from jobgraph.runs.workload import alarm_states
from jobgraph.sam.template import load_sam_template, parameter_values

METRICS_INTERVAL_S = 2.0
API_FUNCTION = "ApiFunction"
STATE_MACHINE = "AWS::StepFunctions::StateMachine"


@dataclass
class LocalOptions:
    """What to deploy into the local cloud and how to run it; ``api_port`` serves the status API (0: any port)."""

    template: Path = Path("template.yaml")
    stack_name: str = LOCAL_STACK_NAME
    parameters: dict[str, str] = field(default_factory=dict)
    faults: FaultPlan = field(default_factory=FaultPlan)
    max_workers: int | None = None
    ecs_workers: int = DEFAULT_TASKS  # local tasks (worker processes) per ECS service: scenario 2
    log_dir: Path | None = None  # default: <out>/.logs/<run_id>
    api_port: int | None = None
    service_latency: str | None = None  # "default" or a profile file: each AWS request's time (localcloud/latency.py)
    trigger_config: object | None = None  # a core.triggers.WorkflowConfig, pushed to the stack's S3 after deploy


class LocalTarget(AwsTarget):
    """The embedded local cloud with ``options.template`` deployed: the AWS target on the local endpoint, with
    StartRun, progress and usage read from the local runtime, faults injected, metrics and alarms evaluated."""

    mode = "local"
    links_to_console = False  # no AWS console behind the local cloud
    child_executions = False  # moto's ASL engine runs Map iterations in-process: no child executions
    settle_s = 30.0  # late duplicates and poison messages on their way to a DLQ, before the report

    def __init__(self, options: LocalOptions, output: Output, patience: Patience | None = None):
        super().__init__(None, options.stack_name, output, patience or Patience(), interval_s=0.5)
        self.options = options
        self.server: ApiServer | None = None

    def refuse(self, workload) -> None:
        if self.options.faults.poison and not workload.queue_fed:
            raise RunFailed(f"--poison sends messages to an incoming queue: scenario {workload.scenario} has none")

    @contextmanager
    def attach(self, run_id: str) -> Iterator[LocalTarget]:
        """Server up, stack deployed, runtime and ECS services started, the AWS target attached to it;
        everything stopped on the way out (errors, Ctrl-C too)."""
        isolate_from_real_aws()
        allow_loopback_only()
        self.preflight()
        self.log_dir = self.options.log_dir or self.output.folder / ".logs" / run_id
        options = self.options
        # the run's logs: emptied for it (workers append) and held, so a second run of this id into this --out
        # is refused rather than writing into them
        with (
            exclusive_folder(self.log_dir, f"run {run_id}"),
            LocalEndpoint(latency=load_profile(options.service_latency)) as endpoint,
        ):
            self.clients = endpoint
            self.stack = deploy(
                endpoint, options.template, stack_name=options.stack_name, parameters=options.parameters
            )
            if options.trigger_config is not None:
                push_local_triggers(endpoint, options.stack_name, options.trigger_config)
            self.runtime = LocalLambdaRuntime(endpoint, self.stack, self.log_dir, options.faults, options.max_workers)
            # the stack's ECS services (scenario 2's polling workers); none in a Lambda-only stack
            self.ecs = LocalEcs(endpoint, self.stack, self.log_dir, options.faults, options.ecs_workers)
            self.machines = [self.stack.physical_ids[m] for m in self.stack.resources_of_type(STATE_MACHINE)]
            try:
                self.runtime.start()
                self.ecs.start()
                self._route_state_machine_tasks()
                with super().attach(run_id):
                    self._watch()
                    self._serve()
                    yield self
            finally:
                self._stop()

    def preflight(self) -> None:
        """The template and its parameter values, checked as CloudFormation would, before anything starts."""
        try:
            parameter_values(load_sam_template(self.options.template), self.options.parameters)
        except ValueError as exc:
            raise RunFailed(str(exc)) from None

    def _route_state_machine_tasks(self) -> None:
        """The state machines' Lambda tasks to the runtime, faults spared on the last try their Retry allows."""
        if not self.machines:
            return
        sfn = self.client("stepfunctions")
        definitions = [json.loads(sfn.describe_state_machine(stateMachineArn=a)["definition"]) for a in self.machines]
        clean_from_retry = min(local_runtime.retries_allowed(d) for d in definitions)
        motopatches.set_lambda_invoker(local_runtime.TaskInvoker(self.runtime, self.options.faults, clean_from_retry))

    def _watch(self) -> None:
        """The metrics the stack's alarms need, and the mapping whose finished jobs count as progress: the
        Processor's (where ECS workers consume the incoming queue instead: the Scheduler's)."""
        stack, runtime, outputs = self.stack, self.runtime, self.outputs
        self.processor = _mapping_on(runtime, outputs.get("IncomingQueueUrl")) or _mapping_on(
            runtime, outputs.get("OutgoingQueueUrl")
        )
        queues = [stack.physical_ids[q] for q in stack.resources_of_type("AWS::SQS::Queue")]
        self.metrics = LocalMetrics(
            self.client("cloudwatch"), self.client("sqs"), queues, runtime.mappings, runtime.stats
        )
        self._reported: dict = {}
        self._last_sample = 0.0

    def _serve(self) -> None:
        if self.options.api_port is None:
            return
        function = self.runtime.functions.get(API_FUNCTION)
        if function is None:
            raise JobGraphError(
                f"stack {self.stack_name} has no {API_FUNCTION}: every scenario nests templates/shared/status-api.yaml"
            )
        # scenario 3's tasks are asynchronous StepTask invocations: run by the local runtime
        tasks = LocalAsyncLambda(self.runtime)
        self.server = ApiServer(function.environment, self.clients, port=self.options.api_port, lambda_client=tasks)
        self.server.start()
        print(f"status API: {self.server.url} (docs: {self.server.url}/docs)", file=sys.stderr, flush=True)
        # e.g. `AWS_ENDPOINT_URL=... jobgraph triggers push CONFIG --stack <stack>` while the cloud stays up
        print(f"local AWS endpoint: {self.clients.url} (AWS_ENDPOINT_URL)", file=sys.stderr, flush=True)

    def _stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.machines:
            self._stop_executions("the local cloud is shutting down")
            motopatches.set_lambda_invoker(None)
        self.ecs.stop()
        self.runtime.stop()

    def _stop_executions(self, cause: str) -> None:
        """Stop every execution still running (moto's engine would go on calling the stopped runtime)."""
        from botocore.exceptions import ClientError

        sfn = self.client("stepfunctions")
        for arn in self.machines:
            try:
                for execution in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
                    sfn.stop_execution(executionArn=execution["executionArn"], error="RunStopped", cause=cause)
            except ClientError:
                pass

    def client(self, service: str, *, billed: bool = False):
        return self.clients.client(service, billed=billed)

    def start_run(self, function_name: str) -> Callable[[dict], dict]:
        """StartRun in the local runtime (a direct invocation, as lambda.invoke would make)."""
        logical_id = self.stack.logical_id_of(function_name)

        def invoke(payload: dict) -> dict:
            invocation = self.runtime.invoke(logical_id, payload)
            if not invocation.ok:
                raise RunFailed(f"{logical_id} failed: {invocation.error} (log: {self.log_dir / logical_id}.log)")
            return invocation.result

        return invoke

    def progress(self, run) -> Callable[[], Progress]:
        """Jobs the progress mapping finished, from the runtime's own counters (cheaper than the job records,
        and they tell retries); a stack without one (a state machine) is followed the AWS target's way."""
        if self.processor is None:
            return super().progress(run)
        stats, done_by = self.runtime.stats, self.processor.function.logical_id
        dlq_urls = (self.outputs["IncomingDlqUrl"], self.outputs["OutgoingDlqUrl"])

        def progress() -> Progress:
            with stats.lock:
                done = len(stats.done_jobs[done_by])
                in_flight = sum(stats.in_flight.values())
                retries = sum(stats.redeliveries.values())
            # the DLQ depths of the last metrics sample (check() refreshes them every METRICS_INTERVAL_S)
            dlq = sum(sum(self.metrics.depths.get(url, (0, 0))) for url in dlq_urls)
            return Progress(done=done, total=run.jobs, in_flight=in_flight, retries=retries, dlq=dlq)

        return progress

    def check(self) -> None:
        """Raises if the runtime or an ECS service died; samples metrics and alarms every METRICS_INTERVAL_S."""
        failure = self.runtime.failure()
        if failure is not None:
            raise RunFailed(f"local runtime stopped: {failure}")
        if self.ecs.failure() is not None:
            raise RunFailed(f"local ECS stopped: {self.ecs.failure()}")
        if time.monotonic() - self._last_sample >= METRICS_INTERVAL_S:
            self._last_sample = time.monotonic()
            self.sample_alarms()

    def sample_alarms(self) -> None:
        """The metrics CloudWatch would have now, then every alarm of the stack evaluated on them."""
        self.metrics.sample()
        cloudwatch = self.client("cloudwatch")
        if self.machines:
            sfn = self.client("stepfunctions")
            local_runtime.publish_state_machine_metrics(cloudwatch, sfn, self.machines, self.runtime, self._reported)
        evaluate_alarms(cloudwatch, f"{self.stack_name}-")

    def after_start(self, run_id: str) -> None:
        """The injected poison: malformed messages on the incoming queue, beside the run's own."""
        sqs = self.client("sqs")
        for index, (group, body) in enumerate(poison_bodies(self.options.faults.poison, run_id)):
            sqs.send_message(
                QueueUrl=self.outputs["IncomingQueueUrl"], MessageBody=body, MessageGroupId=group,
                MessageDeduplicationId=f"poison-{index}",
            )  # fmt: skip

    def before_report(self) -> None:
        self.sample_alarms()

    def finish(self, outcome: RunOutcome, spec: RunSpec) -> None:
        """The local runtime's figures, settings, usage and request counts; then the downstream triggers."""
        self.ecs.stop()  # SIGTERM, as ECS stops tasks: their last "batch processed" lines are in the logs
        runtime = self.runtime
        outcome.extra.update(local_runtime.runtime_figures(runtime, self.log_dir, state_machines=bool(self.machines)))
        if self.ecs.services:
            outcome.extra["services"] = self.ecs.figures()
        outcome.settings = local_runtime.local_settings(runtime, self.options, spec)
        # every template parameter as deployed (defaults included): the stack's settings `jobgraph project` models
        outcome.settings["stack_parameters"] = dict(self.stack.parameters)
        outcome.api_requests = self.clients.meter.snapshot()
        outcome.usage = local_runtime.local_usage(runtime, outcome.api_requests)
        if self.ecs.services:
            outcome.usage["fargate"] = self.ecs.usage()
        if "state_machine" in outcome.extra:
            outcome.usage["stepfunctions"] = local_runtime.local_transitions(outcome.extra["state_machine"], runtime)
        triggered = self.triggers(outcome)
        if triggered is not None:
            outcome.extra["downstream_triggers"] = triggered
            # the triggers ran after the report's alarm sample: the trigger DLQ alarm must see them
            self.sample_alarms()
            outcome.alarms = alarm_states(self.client("cloudwatch"), self.stack_name)

    def triggers(self, outcome: RunOutcome, timeout_s: float = 30.0) -> dict | None:
        """What the downstream triggers did for a run with a run record, once its end was announced and the
        trigger queue is empty (fired, or retried into the trigger DLQ); None when no workflow config was given."""
        from jobgraph.adapters.dynamodb import JobsTable

        queue_url = self.stack.physical_ids.get("TriggerQueue")
        dlq_url = self.stack.physical_ids.get("TriggerDlq")
        if queue_url is None or self.options.trigger_config is None or not outcome.run_record:
            return None
        run_id = outcome.run_id
        table = JobsTable(self.outputs["JobsTableName"], client=self.client("dynamodb"))
        queue = FifoQueue(queue_url, client=self.client("sqs"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            announced = "announced_event_id" in table.get_run(run_id)
            if announced and queue.depth() == (0, 0):
                break
            time.sleep(0.25)
        dlq_depth = sum(FifoQueue(dlq_url, client=self.client("sqs")).depth()) if dlq_url else 0
        return {"triggers": local_trigger_report(table, run_id), "dlq": dlq_depth}

    def hold(self, what: str = "run done") -> None:
        """With the status API served: keep the local cloud up until Ctrl-C (or until its runtime dies)."""
        if self.server is None:
            return
        if self.ecs.services:  # finish() stopped the workers to count their time: the API's runs and tasks need them
            self.ecs = LocalEcs(self.clients, self.stack, self.log_dir, self.options.faults, self.options.ecs_workers)
            self.ecs.start()
        print(f"{what}; the local cloud stays up: status API at {self.server.url} — Ctrl-C to stop", flush=True)
        try:
            wait_until_interrupted(self.check)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)

    def serve_until_interrupted(self) -> None:
        """`jobgraph serve`: the stack deployed and the status API served on it, no run, until Ctrl-C."""
        with self.attach("serve"):
            self.hold(f"stack {self.stack_name} deployed")


def push_local_triggers(endpoint: LocalEndpoint, stack_name: str, config) -> None:
    """`--triggers CONFIG`: the config goes where the deployed stack reads it at run time, as on AWS."""
    from jobgraph.sam.triggers import push_config, stack_triggers

    push_config(config, stack_triggers(endpoint.client("cloudformation"), stack_name), endpoint.client("s3"))


def local_trigger_report(table, run_id: str) -> list[dict]:
    """Each trigger the run's workflow claimed (FIRED, IN_DOUBT, or CLAIMED/RELEASED: not fired), and its
    approval if one was requested."""
    from jobgraph.services.approvals import approval_view

    report = [
        {
            "name": f"{claim.get('workflow')}/on_{claim.get('kind')}/{claim.get('trigger')}",
            "type": claim.get("target_type"),
            "status": claim.get("status") if claim.get("status") in ("FIRED", "IN_DOUBT") else "NOT FIRED",
            "receipt": claim.get("receipt") or claim.get("last_error"),
        }
        for claim in sorted(table.triggers_of_run(run_id), key=lambda c: str(c["sk"]))
    ]
    approval = table.get_approval(run_id)
    if approval is not None:
        view = approval_view(approval, time.time())
        report.append(
            {"name": f"{view['workflow']}/approval", "type": "approval", "status": view["status"],
             "receipt": "; ".join(view["reasons"])}
        )  # fmt: skip
    return report


def _mapping_on(runtime: LocalLambdaRuntime, queue_url: str | None):
    if not queue_url:
        return None
    name = queue_url.rsplit("/", 1)[1]
    return next((m for m in runtime.mappings if m.queue_url.rsplit("/", 1)[1] == name), None)
