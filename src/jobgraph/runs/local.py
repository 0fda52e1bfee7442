"""The local target: `jobgraph run` on the embedded local cloud — an endpoint started in this process, the
template deployed into it in-process (so a fresh clone needs no `sam build`), then exactly the AWS target's path
on it: StartRun through lambda.invoke of the endpoint, progress from DynamoDB and the queues, usage from the
REPORT lines and CloudWatch metrics the endpoint writes (runs/aws_usage.py).

What the local cloud adds beside that path: the fault injector, the status API (`--serve`), the per-function
figures of the local runtime and the request meter (extra columns of the record, not the source of usage), the
Fargate time of the local ECS tasks and the state transitions moto's engine does not keep (usage AWS reports
elsewhere). The endpoint is the one `jobgraph cloud up` serves (localcloud/controller.py): whatever is deployed
runs; everything it started is stopped on the way out, also after an error or Ctrl-C.

This is the one module of runs/ that imports jobgraph.localcloud.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from jobgraph.adapters.local_disk import exclusive_folder
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import JobGraphError
from jobgraph.core.run import RunSpec
from jobgraph.localcloud.cloudformation.stack import LOCAL_STACK_NAME, deploy
from jobgraph.localcloud.controller import Controller
from jobgraph.localcloud.ecs.service import DEFAULT_TASKS
from jobgraph.localcloud.faults import FaultPlan, poison_bodies
from jobgraph.localcloud.latency import load_profile
from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws
from jobgraph.localcloud.stepfunctions import engine as sfn_engine
from jobgraph.runs import local_runtime
from jobgraph.runs.aws import AwsTarget
from jobgraph.runs.local_triggers import local_trigger_report, push_local_triggers
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.serve import ApiServer, wait_until_interrupted
from jobgraph.runs.target import Output, Patience
from jobgraph.runs.workload import alarm_states
from jobgraph.sam.parameters import parameter_values
from jobgraph.sam.template import load_sam_template

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
    faults injected, alarms evaluated at each tick, and the local runtime's own figures added to the record."""

    mode = "local"
    links_to_console = False  # no AWS console behind the local cloud
    child_executions = False  # moto's ASL engine runs Map iterations in-process: no child executions
    settle_s = 30.0  # late duplicates and poison messages on their way to a DLQ, before the report
    progress_interval_s = 1.0  # the job records and queue depths, at most this often (the server is single-file)

    def __init__(self, options: LocalOptions, output: Output, patience: Patience | None = None):
        super().__init__(None, options.stack_name, output, patience or Patience(), interval_s=0.5)
        self.options = options
        self.server: ApiServer | None = None
        self.controller: Controller | None = None
        self._last_sample = 0.0  # when check() last sampled metrics and alarms
        self._counted: tuple[float, Progress | None] = (float("-inf"), None)  # the last progress read, and when

    def refuse(self, workload) -> None:
        if self.options.faults.poison and not workload.queue_fed:
            raise RunFailed(f"--poison sends messages to an incoming queue: scenario {workload.scenario} has none")

    @contextmanager
    def attach(self, run_id: str) -> Iterator[LocalTarget]:
        """Endpoint up with its controller, stack deployed (the controller runs it), ECS services scaled to
        ``ecs_workers``, the AWS target attached; everything stopped on the way out (errors, Ctrl-C too)."""
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
            self.controller = Controller(
                endpoint, self.log_dir, faults=options.faults, max_workers=options.max_workers, log_dir=self.log_dir
            ).start()
            try:
                self.stack = deploy(
                    endpoint, options.template, stack_name=options.stack_name, parameters=options.parameters
                )
                if options.trigger_config is not None:
                    push_local_triggers(endpoint, options.stack_name, options.trigger_config)
                self.machines = [self.stack.physical_ids[m] for m in self.stack.resources_of_type(STATE_MACHINE)]
                self._scale_services(options.ecs_workers)
                self._route_state_machine_tasks()
                with super().attach(run_id):
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

    # --- what runs the stack ---------------------------------------------------------------------------------
    def _functions(self) -> dict[str, str]:
        """Physical name -> logical id of the stack's functions."""
        return {
            self.stack.physical_ids[logical]: logical
            for logical in self.stack.resources_of_type("AWS::Lambda::Function")
            if logical in self.stack.physical_ids
        }

    def _services(self) -> list:
        """The local ECS services running this stack's ECS services."""
        arns = {self.stack.physical_ids.get(logical) for logical in self.stack.resources_of_type("AWS::ECS::Service")}
        return [local.service for arn, local in list(self.controller.services.items()) if arn in arns]

    def _scale_services(self, desired: int) -> None:
        """ECS services to ``desired`` tasks through UpdateService (`make scale-up`'s call), until they run."""
        ecs = self.client("ecs")
        services = [
            (logical, self.stack.physical_ids[logical]) for logical in self.stack.resources_of_type("AWS::ECS::Service")
        ]
        for logical, arn in services:
            cluster = self.stack.transformed["Resources"][logical]["Properties"]["Cluster"]
            cluster_name = self.stack.physical_ids[cluster["Ref"]] if isinstance(cluster, dict) else cluster
            ecs.update_service(cluster=cluster_name, service=arn, desiredCount=desired)
        deadline = time.monotonic() + 60
        while services and time.monotonic() < deadline:
            self.controller.poke()
            running = self._services()
            if len(running) == len(services) and all(s.running() == desired for s in running):
                return
            self.check()
            time.sleep(0.1)
        if services:
            raise RunFailed(f"the stack's ECS services did not reach {desired} running tasks within 60 s")

    def _route_state_machine_tasks(self) -> None:
        """The state machines' Lambda tasks with the run's faults, spared on the last try their Retry allows."""
        if not self.machines or not (self.options.faults.fail_rate or self.options.faults.kill_rate
                                     or self.options.faults.duplicate_rate):  # fmt: skip
            return  # the controller runs them as they are (its own invoker)
        sfn = self.client("stepfunctions")
        definitions = [json.loads(sfn.describe_state_machine(stateMachineArn=a)["definition"]) for a in self.machines]
        clean_from_retry = min(local_runtime.retries_allowed(d) for d in definitions)
        view = _StackRuntime(self.controller, self._functions())
        sfn_engine.set_lambda_invoker(local_runtime.TaskInvoker(view, self.options.faults, clean_from_retry))

    def _serve(self) -> None:
        if self.options.api_port is None:
            return
        name = self.stack.physical_ids.get(API_FUNCTION)
        function = self.controller.function(name) if name else None
        if function is None:
            raise JobGraphError(
                f"stack {self.stack_name} has no {API_FUNCTION}: every scenario nests templates/shared/status-api.yaml"
            )
        self.server = ApiServer(function.spec.environment, self.clients, port=self.options.api_port).start()
        print(f"status API: {self.server.url} (docs: {self.server.url}/docs)", file=sys.stderr, flush=True)
        # e.g. `AWS_ENDPOINT_URL=... jobgraph triggers push CONFIG --stack <stack>` while the cloud stays up
        print(f"local AWS endpoint: {self.clients.url} (AWS_ENDPOINT_URL)", file=sys.stderr, flush=True)

    def _stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if getattr(self, "machines", None):
            self._stop_executions("the local cloud is shutting down")
        if self.controller is not None:
            self.controller.stop()  # every poller, worker and ECS task (and the state machines' invoker)

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

    # --- the AWS path, on this endpoint ---------------------------------------------------------------------------
    def client(self, service: str, *, billed: bool = False):
        return self.clients.client(service, billed=billed)

    def progress(self, run) -> Callable[[], Progress]:
        """The AWS target's progress (job records, queue depths), read at most every ``progress_interval_s``:
        every request the harness makes waits its turn with the workload's on the local server."""
        read, names = super().progress(run), set(self._functions())

        def progress() -> Progress:
            at, last = self._counted
            if last is None or time.monotonic() - at >= self.progress_interval_s:
                current = read()
                with self.controller.stats.lock:  # what only the local runtime can tell: redeliveries so far
                    retries = sum(self.controller.stats.redeliveries[name] for name in names)
                self._counted = (time.monotonic(), replace(current, retries=retries))
            return self._counted[1]

        return progress

    def check(self) -> None:
        """Raises if a function or service of the stack cannot run; metrics and alarms every METRICS_INTERVAL_S."""
        services = self._services()
        names = {**self._functions(), **{s.spec.service_name: s.spec.service_name for s in services}}
        for name, logical_id in names.items():
            problem = self.controller.failures.get(name)
            if problem is not None:
                raise RunFailed(f"local runtime stopped: {logical_id}: {problem}")
        for service in services:
            if service.fatal:
                raise RunFailed(f"local ECS stopped: {service.fatal}")
        if time.monotonic() - self._last_sample >= METRICS_INTERVAL_S:
            self._last_sample = time.monotonic()
            self.sample_alarms()

    def sample_alarms(self) -> None:
        """The metrics CloudWatch would have now, then every alarm evaluated on them (the controller also does
        so every few seconds on its own)."""
        self.controller.sample()

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
        """The AWS target's usage and settings (from what the endpoint reports), then the local cloud's own
        figures beside them, and the downstream triggers."""
        self._await_run_end_handled(outcome)
        services = self._services()
        if services:  # `make scale-down`: SIGTERM, as ECS stops tasks; their last "batch processed" lines land
            self._scale_services(0)
            self.controller.reconcile()  # the stopped tasks' times, as ECS records them (DescribeTasks)
        super().finish(outcome, spec)
        view = _StackRuntime(self.controller, self._functions())
        figures = local_runtime.runtime_figures(view, self.log_dir, state_machines=bool(self.machines))
        outcome.extra.update(view.by_logical_id(figures))
        if services:
            outcome.extra["services"] = {s.spec.service_name: s.figures() for s in services}
        if "state_machine" in outcome.extra:  # moto keeps no history of Map iterations: counted from the runtime
            tasks = outcome.extra["functions"].get("StepTaskFunction", {}).get("invocations", 0)
            outcome.usage["stepfunctions"] = local_runtime.local_transitions(outcome.extra["state_machine"], tasks)
        outcome.settings.update(
            template=str(self.options.template), parameters=dict(self.options.parameters),
            ecs_workers=self.options.ecs_workers,
            service_latency=self.clients.latency.summary() if self.clients.latency else None,
        )  # fmt: skip
        outcome.api_requests = self.clients.meter.snapshot()
        if not outcome.usage.get("s3", {}).get("put"):  # AWS reports S3 requests only with request metrics
            units = outcome.api_requests["units"]
            outcome.usage["s3"] = {
                "put": units.get("s3_put", 0), "get": units.get("s3_get", 0),
                "source": "the local cloud's request meter (AWS reports S3 requests only with request metrics)",
            }  # fmt: skip
        triggered = self.triggers(outcome)
        if triggered is not None:
            outcome.extra["downstream_triggers"] = triggered
            # the triggers ran after the report's alarm sample: the trigger DLQ alarm must see them
            self.sample_alarms()
            outcome.alarms = alarm_states(self.client("cloudwatch"), self.stack_name)

    def triggers(self, outcome: RunOutcome) -> dict | None:
        """What the downstream triggers did for a run with a run record, its end handled (finish() waited: fired,
        or retried into the trigger DLQ); None when no workflow config was given."""
        from jobgraph.adapters.dynamodb import JobsTable

        queue_url = self.stack.physical_ids.get("TriggerQueue")
        dlq_url = self.stack.physical_ids.get("TriggerDlq")
        if queue_url is None or self.options.trigger_config is None or not outcome.run_record:
            return None
        table = JobsTable(self.outputs["JobsTableName"], client=self.client("dynamodb"))
        dlq_depth = sum(FifoQueue(dlq_url, client=self.client("sqs")).depth()) if dlq_url else 0
        return {"triggers": local_trigger_report(table, outcome.run_id), "dlq": dlq_depth}

    def _await_run_end_handled(self, outcome: RunOutcome, timeout_s: float = 30.0) -> None:
        """Until the run's end was announced and the trigger queue is empty: the TriggerFunction handles every run
        end (a workflow config or not), and the report's figures and usage must count that invocation."""
        from jobgraph.adapters.dynamodb import JobsTable

        queue_url = self.stack.physical_ids.get("TriggerQueue")
        if queue_url is None or not outcome.run_record:
            return
        table = JobsTable(self.outputs["JobsTableName"], client=self.client("dynamodb"))
        queue = FifoQueue(queue_url, client=self.client("sqs"))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check()
            if "announced_event_id" in table.get_run(outcome.run_id) and queue.depth() == (0, 0):
                return
            time.sleep(0.25)

    def hold(self, what: str = "run done") -> None:
        """With the status API served: keep the local cloud up until Ctrl-C (or until its runtime fails)."""
        if self.server is None:
            return
        if self._services():  # finish() scaled the workers down to count their time: the API's runs and tasks need them
            self._scale_services(self.options.ecs_workers)
        print(f"{what}; the local cloud stays up: status API at {self.server.url} — Ctrl-C to stop", flush=True)
        try:
            wait_until_interrupted(self.check)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)

    def serve_until_interrupted(self) -> None:
        """`jobgraph serve`: the stack deployed and the status API served on it, no run, until Ctrl-C."""
        with self.attach("serve"):
            self.hold(f"stack {self.stack_name} deployed")


class _StackRuntime:
    """The controller's runtime as one stack's, in the shape runs/local_runtime.py reads (functions keyed by their
    physical names, as the controller counts them); ``by_logical_id`` renames its figures for the report."""

    def __init__(self, controller: Controller, names: dict[str, str]):
        self.controller, self.names = controller, names
        self.stats = controller.stats
        self.functions = {name: f.spec for name, f in _current(controller).items() if name in names}
        self.mappings = [
            m.poller.mapping
            for m in list(controller.mappings.values())
            if m.poller.mapping.function.function_name in names
        ]

    def direct_workers(self, name: str) -> int:
        function = _current(self.controller).get(name)
        return len(function.pool.workers) if function else 0

    def invoke(self, name: str, payload, fault: str | None = None):
        """TaskInvoker's call: a direct invocation of the function's current revision."""
        function = self.controller.function(name)
        if function is None:
            raise RunFailed(f"{name}: {self.controller.failures.get(name, 'not deployed')}")
        return self.controller.invoke(function, payload, fault)

    def by_logical_id(self, figures: dict) -> dict:
        renamed = {self.names.get(name, name): value for name, value in figures.get("functions", {}).items()}
        return {**figures, "functions": renamed}


def _current(controller: Controller) -> dict:
    """The controller's functions by physical name."""
    return {f.revision.name: f for f in list(controller.functions.values())}
