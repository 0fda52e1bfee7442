"""Scenario 3: the job graph walked by the Step Functions state machine of templates/scenario-3.yaml.

The run request is stored in the results bucket, an execution of the stack's state machine (named after the
run) is started and followed with describe_execution and the run record; the results are exported with the
same all-or-nothing export as the queue graph, and the report's figures gathered: per-stage times from the
job records, states entered and task retries from the execution history. On the local target moto's ASL
engine executes the same definition, its Lambda tasks in the local Lambda runtime (runs/local.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jobgraph.core.errors import RunNotFoundError
from jobgraph.core.graph import total_jobs
from jobgraph.core.models import RunStatus, Sequence
from jobgraph.core.results import ResultStore, request_key
from jobgraph.core.run import RunSpec
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.outputs import STATE_MACHINE_OUTPUTS
from jobgraph.runs.workload import StackRun, start_run_payload

FINISHED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# get_execution_history is throttled on AWS (GetExecutionHistory refills 5 tokens/s): the report reads the
# histories of at most this many child executions of the Distributed Map and says so.
MAX_CHILD_HISTORIES = 200


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


@dataclass(frozen=True)
class StateMachineGraph:
    """The job graph of ``sequences`` as one execution of the stack's state machine (scenario 3)."""

    sequences: list[Sequence]
    scenario: int = 3
    queue_fed = False

    def on(self, target, spec: RunSpec) -> StateMachineRun:
        return StateMachineRun(self, target, spec)


class StateMachineRun(StackRun):
    def __init__(self, graph: StateMachineGraph, target, spec: RunSpec):
        outputs = target.outputs.require(STATE_MACHINE_OUTPUTS, "a scenario 3 (Step Functions) stack")
        super().__init__(target, spec, total_jobs(graph.sequences), outputs)
        self.graph = graph
        self.sfn = target.client("stepfunctions")
        self.execution_arn: str | None = None
        self.status = "not started"

    def start(self) -> None:
        """Store the request (no 256 KB execution-input limit) and start the execution named after the run."""
        from botocore.exceptions import ClientError

        ResultStore(self.results).put_request(self.run_id, start_run_payload(self.graph.sequences, self.spec))
        try:
            response = self.sfn.start_execution(
                stateMachineArn=self.outputs["StateMachineArn"],
                name=self.run_id,
                input=json.dumps({"run_id": self.run_id, "request_key": request_key(self.run_id)}),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                raise RunFailed(f"run {self.run_id} was started on {self.target.stack_name} before") from None
            raise
        self.execution_arn = response["executionArn"]

    def run_record(self) -> dict | None:
        try:
            return self.table.get_run(self.run_id)
        except RunNotFoundError:
            return None

    def poll(self, progress: Callable[[], Progress]) -> tuple[dict | None, Progress]:
        """Ended when the execution SUCCEEDED and the run record says COMPLETED; RunFailed otherwise."""
        execution = self.sfn.describe_execution(executionArn=self.execution_arn)
        current = progress()
        self.status = execution["status"]
        if self.status == "SUCCEEDED":
            record = self.run_record()
            if record is not None and record["status"] == RunStatus.COMPLETED.value:
                return record, current
            raise RunFailed(f"run {self.run_id}: the execution SUCCEEDED but the run record is {record}")
        if self.status in FINISHED:
            raise RunFailed(self.execution_failure(execution))
        return None, current

    def timed_out(self, current: Progress, timeout_s: float) -> str:
        return f"run {self.run_id}: execution still {self.status} after {timeout_s:.0f} s"

    def execution_failure(self, execution: dict) -> str:
        """Why the execution ended unsucceeded; the first line names the first problem (the one line the user sees,
        runs/execute.record_failure), the run record keeps the rest. Not ``failure``: that is StackRun's record."""
        error, cause = execution.get("error", ""), execution.get("cause", "")
        if error == "RunRejected":
            return f"run {self.run_id} rejected: " + "\n  ".join(cause.splitlines()[:20])
        record = self.run_record() or {}
        recorded = f"; run record {record['status']}" if record else ""
        return f"run {self.run_id}: execution {execution['status']}: {error}: {cause[:2000]}{recorded}"

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
        if not self.target.child_executions:
            return children
        try:
            for map_run in self.sfn.list_map_runs(executionArn=self.execution_arn)["mapRuns"]:
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

    def outcome(self, record: dict, wall_seconds: float) -> RunOutcome:
        out_dir = self.export()
        stage_ms, attempts = self.job_timings()
        return RunOutcome(
            run_id=self.run_id,
            stack_name=self.target.stack_name,
            mode=self.target.mode,
            out_dir=out_dir,
            sequences=len(self.graph.sequences),
            jobs=self.jobs,
            wall_seconds=wall_seconds,
            merged=self.merged(),
            stage_ms=stage_ms,
            attempts=attempts,
            dlq={},
            dlq_contents={},
            alarms=self.alarm_states(),
            run_record=record,
            dashboard_url=self.console_link("ConsoleUrl"),
            extra={"state_machine": self.figures()},
            scenario=self.graph.scenario,
        )
