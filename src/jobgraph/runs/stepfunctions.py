"""Scenario 3: one run of the job graph on the Step Functions stack (templates/scenario-3.yaml).

The driver stores the run request in the results bucket, starts an execution of the stack's state machine
(named after the run), follows it with describe_execution and the run record, exports the results with
the same all-or-nothing export as scenario 1 and gathers the report's figures: per-stage times from the
job records, states entered and task retries from the execution history.

``run_state_machine_local`` deploys the template into the embedded local cloud, where moto's ASL engine
executes the same definition and its Lambda tasks run in the local Lambda runtime (motopatches); with
``--stack`` (``run_state_machine_on_aws``) the same code path drives a stack deployed with SAM.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jobgraph.adapters.dynamodb import JobsTable, RunNotFoundError
from jobgraph.adapters.local_disk import check_destination
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.core.graph import RunSpec, total_jobs
from jobgraph.core.models import RunStatus, Sequence
from jobgraph.core.results import ResultStore, merged_key, request_key
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.runs.driver import (
    Progress,
    RunFailed,
    RunOutcome,
    alarm_states,
    export_results,
    job_timings,
    required_outputs,
    stack_outputs,
    start_run_payload,
)
from jobgraph.runs.progress import progress_bar

REQUIRED_OUTPUTS = {
    "StateMachineArn": "state_machine_arn",
    "ResultsBucketName": "bucket",
    "JobsTableName": "table",
}
FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# get_execution_history is throttled on AWS (GetExecutionHistory refills 5 tokens/s): the report reads the
# histories of at most this many child executions of the Distributed Map and says so.
MAX_CHILD_HISTORIES = 200
PROGRESS_INTERVAL_S = 2.0


@dataclass(frozen=True)
class StateMachineOutputs:
    stack_name: str
    state_machine_arn: str
    bucket: str
    table: str
    console_url: str = ""

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: dict[str, str]) -> StateMachineOutputs:
        values = required_outputs(stack_name, outputs, REQUIRED_OUTPUTS, "a scenario 3 (Step Functions) stack")
        return cls(stack_name=stack_name, console_url=outputs.get("ConsoleUrl", ""), **values)


def describe_state_machine_stack(cloudformation, stack_name: str) -> StateMachineOutputs:
    return StateMachineOutputs.from_outputs(stack_name, stack_outputs(cloudformation, stack_name))


def count_history(events: list[dict]) -> Counter:
    """What an execution's history says: states entered, Lambda tasks scheduled and failed."""
    counts: Counter = Counter()
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            counts["states_entered"] += 1
        elif kind in ("TaskScheduled", "LambdaFunctionScheduled"):
            counts["tasks_scheduled"] += 1
        elif kind in ("TaskFailed", "TaskTimedOut", "LambdaFunctionFailed", "LambdaFunctionTimedOut"):
            counts["tasks_failed"] += 1
    return counts


class StateMachineRun:
    """Drives one run through a scenario 3 stack's outputs."""

    def __init__(self, clients, outputs: StateMachineOutputs, *, child_executions: bool = True):
        self.clients = clients
        # AWS runs each Distributed Map iteration as a child execution with its own history; moto's engine
        # runs them in-process and keeps no child executions (the local report counts invocations instead)
        self.has_child_executions = child_executions
        self.outputs = outputs
        self.sfn = clients.client("stepfunctions")
        self.table = JobsTable(outputs.table, client=clients.client("dynamodb"))
        self.results = S3BlobStore(outputs.bucket, client=clients.client("s3"))
        self.execution_arn: str | None = None

    def start(self, sequences: list[Sequence], spec: RunSpec) -> str:
        """Store the request (no 256 KB execution-input limit) and start the execution named after the run."""
        from botocore.exceptions import ClientError

        ResultStore(self.results).put_request(spec.run_id, start_run_payload(sequences, spec))
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.outputs.state_machine_arn,
                name=spec.run_id,
                input=json.dumps({"run_id": spec.run_id, "request_key": request_key(spec.run_id)}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                raise RunFailed(f"run {spec.run_id} was started on {self.outputs.stack_name} before") from None
            raise
        self.execution_arn = response["executionArn"]
        return self.execution_arn

    def run_record(self, run_id: str) -> dict | None:
        try:
            return self.table.get_run(run_id)
        except RunNotFoundError:
            return None

    def wait(
        self,
        run_id: str,
        progress: Callable[[], Progress],
        on_tick: Callable[[Progress], None] = lambda _p: None,
        *,
        timeout_s: float,
        interval_s: float,
        check: Callable[[], None] = lambda: None,
    ) -> dict:
        """Until the execution SUCCEEDED and the run record says COMPLETED; RunFailed otherwise."""
        started = time.monotonic()
        while True:
            check()
            execution = self.sfn.describe_execution(executionArn=self.execution_arn)
            on_tick(progress())
            status = execution["status"]
            if status == "SUCCEEDED":
                record = self.run_record(run_id)
                if record is not None and record["status"] == RunStatus.COMPLETED.value:
                    return record
                raise RunFailed(f"run {run_id}: the execution SUCCEEDED but the run record is {record}")
            if status in FINISHED:
                raise RunFailed(self.failure(run_id, execution))
            if time.monotonic() - started > timeout_s:
                raise RunFailed(f"run {run_id}: execution still {status} after {timeout_s:.0f} s")
            time.sleep(interval_s)

    def failure(self, run_id: str, execution: dict) -> str:
        error, cause = execution.get("error", ""), execution.get("cause", "")
        if error == "RunRejected":
            return f"run {run_id} rejected:\n  " + "\n  ".join(cause.splitlines()[:20])
        record = self.run_record(run_id) or {}
        recorded = f"; run record {record['status']}" if record else ""
        return f"run {run_id}: execution {execution['status']}: {error}: {cause[:2000]}{recorded}"

    def stop(self, cause: str) -> None:
        """Stop a still-running execution (the local cloud does so before it shuts down)."""
        from botocore.exceptions import ClientError

        if self.execution_arn is None:
            return
        try:
            if self.sfn.describe_execution(executionArn=self.execution_arn)["status"] == "RUNNING":
                self.sfn.stop_execution(executionArn=self.execution_arn, error="RunStopped", cause=cause)
        except ClientError:
            pass

    def history(self, execution_arn: str) -> list[dict]:
        events, kwargs = [], {}
        while True:
            page = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000, **kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                return events
            kwargs = {"nextToken": page["nextToken"]}

    def child_executions(self) -> list[str]:
        """The Distributed Map's child executions (AWS runs each iteration as one; moto's engine does not)."""
        from botocore.exceptions import ClientError

        children = []
        if not self.has_child_executions:
            return children
        try:
            map_runs = self.sfn.list_map_runs(executionArn=self.execution_arn)["mapRuns"]
            for map_run in map_runs:
                kwargs = {}
                while True:
                    page = self.sfn.list_executions(mapRunArn=map_run["mapRunArn"], **kwargs)
                    children += [
                        e["executionArn"] for e in page["executions"] if e["executionArn"] != self.execution_arn
                    ]
                    if not page.get("nextToken"):
                        break
                    kwargs = {"nextToken": page["nextToken"]}
        except ClientError:
            return []
        return children

    def figures(self) -> dict:
        """States entered and Lambda tasks scheduled/failed, from the execution's and its children's histories."""
        counts = count_history(self.history(self.execution_arn))
        children = self.child_executions()
        read = children[:MAX_CHILD_HISTORIES]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for child in pool.map(lambda arn: count_history(self.history(arn)), read):
                counts += child
        return {
            "execution_arn": self.execution_arn,
            "child_executions": len(children),
            "child_histories_read": len(read),
            **{key: counts[key] for key in ("states_entered", "tasks_scheduled", "tasks_failed")},
        }

    def alarm_states(self) -> dict[str, str]:
        return alarm_states(self.clients.client("cloudwatch"), self.outputs.stack_name)


def execute_state_machine(
    run: StateMachineRun,
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    mode: str,
    overwrite: bool,
    show_progress: bool,
    timeout_s: float,
    interval_s: float,
    check: Callable[[], None] = lambda: None,
    before_report: Callable[[], None] = lambda: None,
) -> RunOutcome:
    """Start the execution, follow it to the end, export the results and gather the report's figures."""
    check_destination(out_dir, spec.run_id, overwrite)
    jobs = total_jobs(sequences)
    started = time.monotonic()
    run.start(sequences, spec)

    last = {"at": float("-inf"), "progress": Progress(done=0, total=jobs)}

    def progress() -> Progress:
        # counting the job records is a query over the whole run: every PROGRESS_INTERVAL_S, not every tick
        if time.monotonic() - last["at"] >= PROGRESS_INTERVAL_S:
            last["at"] = time.monotonic()
            last["progress"] = Progress(done=run.table.count_jobs(spec.run_id), total=jobs)
        return last["progress"]

    with progress_bar(jobs, show_progress) as bar:

        def tick(current: Progress) -> None:
            bar.n = min(current.done, jobs)
            bar.refresh()

        record = run.wait(spec.run_id, progress, tick, timeout_s=timeout_s, interval_s=interval_s, check=check)
    wall = time.monotonic() - started
    before_report()
    out = export_results(run.results, spec.run_id, out_dir, overwrite=overwrite)
    stage_ms, attempts = job_timings(run.table, spec.run_id)
    return RunOutcome(
        run_id=spec.run_id,
        stack_name=run.outputs.stack_name,
        mode=mode,
        out_dir=out,
        sequences=len(sequences),
        jobs=jobs,
        wall_seconds=wall,
        merged=json.loads(run.results.get(merged_key(spec.run_id))),
        stage_ms=stage_ms,
        attempts=attempts,
        dlq={},
        dlq_contents={},
        alarms=run.alarm_states(),
        run_record=record,
        dashboard_url=run.outputs.console_url if mode == "AWS" else "",
        extra={"state_machine": run.figures()},
        scenario=3,
    )


def run_state_machine_on_aws(
    stack_name: str,
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    region: str | None = None,
    session=None,
    overwrite: bool = False,
    show_progress: bool = False,
    timeout_s: float = 3600,
    interval_s: float = 2.0,
) -> RunOutcome:
    """`jobgraph run --scenario 3 --stack NAME`: your AWS configuration (tests pass a local ``session``)."""
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=region)
    outputs = describe_state_machine_stack(session.client("cloudformation"), stack_name)
    run = StateMachineRun(session, outputs)
    return execute_state_machine(
        run,
        sequences,
        spec,
        out_dir,
        mode="AWS",
        overwrite=overwrite,
        show_progress=show_progress,
        timeout_s=timeout_s,
        interval_s=interval_s,
    )


# ------------------------------------------------------------------------------------- local cloud
def retries_allowed(definition: dict) -> int:
    """Fewest retries any Lambda task of the definition allows for a task failure (States.TaskFailed)."""
    found = []

    def walk(states: dict) -> None:
        for state in states.values():
            if state.get("Type") == "Task" and state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
                for retrier in state.get("Retry", []):
                    if {"States.TaskFailed", "States.ALL"} & set(retrier["ErrorEquals"]):
                        found.append(int(retrier.get("MaxAttempts", 3)))
            for nested in ("ItemProcessor", "Iterator"):
                if nested in state:
                    walk(state[nested]["States"])
            for branch in state.get("Branches", []):
                walk(branch["States"])

    walk(definition["States"])
    return min(found, default=0)


class TaskInvoker:
    """The state machine's Lambda tasks, run by the local Lambda runtime, with the run's injected faults.

    A job task's payload carries ``retry_count`` ($$.State.RetryCount): like the pollers, which spare a
    message on its last receive, no fault is injected into a try the state machine would not retry, so
    injected faults never fail a run; real errors still do.
    """

    def __init__(self, runtime, faults: FaultPlan, clean_from_retry: int):
        self.runtime = runtime
        self.faults = faults
        self.clean_from_retry = clean_from_retry
        self.by_name = {spec.function_name: logical_id for logical_id, spec in runtime.functions.items()}
        self.rng = random.Random(zlib.crc32(f"{faults.seed}:stepfunctions".encode()))
        self.lock = threading.Lock()

    def logical_id(self, function: str) -> str:
        name = function.split(":function:", 1)[1].split(":", 1)[0] if ":function:" in function else function
        return self.by_name[name]

    def __call__(self, function: str, payload) -> tuple[bool, object]:
        logical_id = self.logical_id(function)
        fault, duplicate = None, False
        retry_count = payload.get("retry_count") if isinstance(payload, dict) else None
        if retry_count is not None:
            with self.lock:
                fault = self.faults.invocation_fault(self.rng, last_attempt=retry_count >= self.clean_from_retry)
                duplicate = fault is None and self.faults.duplicate(self.rng, json.dumps(payload.get("job", {})))
        if duplicate:  # at-least-once: the same task delivered twice; the second answer counts
            with self.runtime.stats.lock:
                self.runtime.stats.duplicates[logical_id] += 1
            self.runtime.invoke(logical_id, payload)
        invocation = self.runtime.invoke(logical_id, payload, fault)
        if invocation.ok:
            return True, invocation.result
        error = invocation.error or "Unknown"
        if invocation.died:
            return False, {"errorType": "Runtime.ExitError", "errorMessage": error}
        if error.startswith("Task timed out"):
            return False, {"errorType": "Sandbox.Timedout", "errorMessage": error}
        error_type, _, message = error.partition(": ")
        return False, {"errorType": error_type, "errorMessage": message}


def publish_metrics(cloudwatch, run: StateMachineRun, runtime, reported: dict) -> None:
    """AWS/States ExecutionsFailed and AWS/Lambda Errors/Invocations, as CloudWatch would record them."""
    now = datetime.now(UTC)
    data = {"AWS/Lambda": [], "AWS/States": []}
    with runtime.stats.lock:
        for logical_id, spec in runtime.functions.items():
            dims = [{"Name": "FunctionName", "Value": spec.function_name}]
            for metric, total in (("Invocations", runtime.stats.invocations[logical_id]),
                                  ("Errors", runtime.stats.errors[logical_id])):  # fmt: skip
                delta = total - reported.get((logical_id, metric), 0)
                reported[(logical_id, metric)] = total
                data["AWS/Lambda"].append(
                    {"MetricName": metric, "Dimensions": dims, "Value": float(delta), "Timestamp": now}
                )
    if run.execution_arn is not None:
        status = run.sfn.describe_execution(executionArn=run.execution_arn)["status"]
        failed = float(status in ("FAILED", "TIMED_OUT", "ABORTED") and not reported.get("failed"))
        reported["failed"] = reported.get("failed") or bool(failed)
        dims = [{"Name": "StateMachineArn", "Value": run.outputs.state_machine_arn}]
        data["AWS/States"].append(
            {"MetricName": "ExecutionsFailed", "Dimensions": dims, "Value": failed, "Timestamp": now}
        )
    for namespace, entries in data.items():
        for start in range(0, len(entries), 20):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=entries[start : start + 20])


def run_state_machine_local(
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    options,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
) -> RunOutcome:
    """`jobgraph run --scenario 3`: the template deployed into the embedded local cloud and executed there."""
    from jobgraph.localcloud import motopatches
    from jobgraph.localcloud.alarms import evaluate_alarms
    from jobgraph.localcloud.latency import load_profile
    from jobgraph.localcloud.runtime import LocalLambdaRuntime
    from jobgraph.localcloud.server import LocalEndpoint, allow_loopback_only, isolate_from_real_aws
    from jobgraph.localcloud.stack import deploy
    from jobgraph.runs.local import local_settings, local_usage

    if options.faults.poison:
        raise RunFailed("--poison sends messages to an incoming queue: scenario 3 has none")
    isolate_from_real_aws()
    allow_loopback_only()
    check_destination(out_dir, spec.run_id, overwrite)
    log_dir = options.log_dir or out_dir / ".logs" / spec.run_id
    shutil.rmtree(log_dir, ignore_errors=True)
    with LocalEndpoint(latency=load_profile(options.service_latency)) as endpoint:
        stack = deploy(endpoint, options.template, stack_name=options.stack_name, parameters=options.parameters)
        runtime = LocalLambdaRuntime(endpoint, stack, log_dir, options.faults, options.max_workers)
        run = None
        try:
            runtime.start()
            outputs = describe_state_machine_stack(endpoint.client("cloudformation"), options.stack_name)
            sfn = endpoint.client("stepfunctions")
            definition = json.loads(sfn.describe_state_machine(stateMachineArn=outputs.state_machine_arn)["definition"])
            motopatches.set_lambda_invoker(TaskInvoker(runtime, options.faults, retries_allowed(definition)))
            run = StateMachineRun(endpoint, outputs, child_executions=False)
            cloudwatch = endpoint.client("cloudwatch")
            reported: dict = {}
            last_sample = [0.0]

            def check() -> None:
                if time.monotonic() - last_sample[0] >= 2.0:
                    last_sample[0] = time.monotonic()
                    publish_metrics(cloudwatch, run, runtime, reported)
                    evaluate_alarms(cloudwatch, f"{stack.name}-")

            def final_alarms() -> None:
                publish_metrics(cloudwatch, run, runtime, reported)
                evaluate_alarms(cloudwatch, f"{stack.name}-")

            outcome = execute_state_machine(
                run,
                sequences,
                spec,
                out_dir,
                mode="local",
                overwrite=overwrite,
                show_progress=show_progress,
                timeout_s=options.timeout_s,
                interval_s=0.5,
                check=check,
                before_report=final_alarms,
            )
            outcome.extra.update(local_figures(runtime, log_dir))
            outcome.scenario = 3
            outcome.settings = local_settings(runtime, options, spec)
            outcome.api_requests = endpoint.meter.snapshot()
            outcome.usage = local_usage(runtime, outcome.api_requests)
            outcome.usage["stepfunctions"] = local_transitions(outcome.extra["state_machine"], runtime)
            return outcome
        finally:
            if run is not None:
                run.stop("the local cloud is shutting down")
            motopatches.set_lambda_invoker(None)
            runtime.stop()


def local_figures(runtime, log_dir: Path) -> dict:
    stats = runtime.stats
    with stats.lock:
        return {
            "functions": {
                logical_id: {
                    "workers": runtime.direct_workers(logical_id),
                    "invocations": stats.invocations[logical_id],
                    "cold_starts": stats.cold_starts[logical_id],
                    "errors": stats.errors[logical_id],
                    "worker_deaths": stats.deaths[logical_id],
                    "redeliveries": 0,
                    "duplicates": stats.duplicates[logical_id],
                    "last_error": stats.last_error.get(logical_id),
                    "queue_wait_ms": [],
                    "invocation_ms": list(stats.invocation_ms[logical_id]),
                }
                for logical_id in sorted(runtime.functions)
            },
            "faults": dict(stats.faults),
            "log_dir": str(log_dir),
        }


def local_transitions(figures: dict, runtime) -> dict:
    """State transitions of a local execution: moto's engine keeps no history for Map iterations, so the
    top-level execution's states plus one Task state per StepTask invocation (what AWS bills for them)."""
    with runtime.stats.lock:
        tasks = runtime.stats.invocations["StepTaskFunction"]
    return {
        "transitions": figures.get("states_entered", 0) + tasks,
        "source": "top-level history + one per task invocation (moto keeps no Map iteration history)",
    }
