"""One run of a job graph on a deployed stack — the embedded local cloud or a real AWS stack alike.

Everything here goes through the stack's CloudFormation outputs and the public APIs (Lambda invoke of
StartRun, DynamoDB run record, SQS queue attributes, S3 results, CloudWatch alarms), so `jobgraph run`
and `jobgraph run --stack NAME` share one code path; only where StartRun runs and where progress is read
differ (see localcloud/session.py and awsrun.py).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.adapters.dynamodb import JobsTable, RunNotFoundError
from jobgraph.adapters.local_disk import check_destination, staged_run
from jobgraph.adapters.s3 import S3BlobStore
from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import JobGraphError
from jobgraph.core.graph import RunSpec, total_jobs
from jobgraph.core.models import RunStatus, Sequence, message_label
from jobgraph.core.results import merged_key
from jobgraph.runs.progress import progress_bar

REQUIRED_OUTPUTS = {
    "IncomingQueueUrl": "incoming_queue_url",
    "OutgoingQueueUrl": "outgoing_queue_url",
    "IncomingDlqUrl": "incoming_dlq_url",
    "OutgoingDlqUrl": "outgoing_dlq_url",
    "ResultsBucketName": "bucket",
    "JobsTableName": "table",
    "StartRunFunctionName": "start_run_function",
}


class RunFailed(JobGraphError):
    """The run was rejected, failed, stalled or timed out; the message says which and why."""


@dataclass(frozen=True)
class StackOutputs:
    stack_name: str
    incoming_queue_url: str
    outgoing_queue_url: str
    incoming_dlq_url: str
    outgoing_dlq_url: str
    bucket: str
    table: str
    start_run_function: str
    dashboard_url: str = ""

    @classmethod
    def from_outputs(cls, stack_name: str, outputs: dict[str, str]) -> StackOutputs:
        values = required_outputs(stack_name, outputs, REQUIRED_OUTPUTS, "a jobgraph stack")
        return cls(stack_name=stack_name, dashboard_url=outputs.get("DashboardUrl", ""), **values)


def required_outputs(stack_name: str, outputs: dict[str, str], required: dict[str, str], kind: str) -> dict:
    """``required`` (output key -> attribute) read from a stack's outputs; RunFailed names what is missing."""
    missing = sorted(set(required) - set(outputs))
    if missing:
        raise RunFailed(f"stack {stack_name} lacks the output(s) {', '.join(missing)}: is it {kind}?")
    return {attribute: outputs[key] for key, attribute in required.items()}


def describe_stack(cloudformation, stack_name: str) -> StackOutputs:
    return StackOutputs.from_outputs(stack_name, stack_outputs(cloudformation, stack_name))


def stack_outputs(cloudformation, stack_name: str) -> dict[str, str]:
    """The outputs of a deployed stack; RunFailed if it does not exist or is not deployed."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise RunFailed(f"stack {stack_name}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    stack = stacks[0]
    if stack["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise RunFailed(f"stack {stack_name} is {stack['StackStatus']}, not deployed")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def start_run_payload(sequences: list[Sequence], spec: RunSpec) -> dict:
    """The StartRun event (events/start-run.json has the same shape)."""
    return {
        "run_id": spec.run_id,
        "test_run_id": spec.test_run_id,
        "scenarios": spec.scenarios,
        "seed": spec.seed,
        "sequences": [sequence.model_dump(mode="json") for sequence in sequences],
    }


@dataclass
class Progress:
    done: int
    total: int
    in_flight: int = 0
    retries: int = 0
    dlq: int = 0


@dataclass
class RunOutcome:
    """What the report prints: one run, however it ran."""

    run_id: str
    stack_name: str
    mode: str
    out_dir: Path
    sequences: int
    jobs: int
    wall_seconds: float
    merged: dict
    stage_ms: dict[str, list[float]]
    attempts: dict[str, int]  # job_id -> attempts recorded (retries show up as > 1)
    dlq: dict[str, int]
    dlq_contents: dict[str, list[str]]
    alarms: dict[str, str]
    run_record: dict
    dashboard_url: str = ""  # AWS mode: the stack's CloudWatch dashboard
    extra: dict = field(default_factory=dict)  # mode-specific figures (local runtime statistics)
    scenario: int = 1  # runs/scenarios.py
    settings: dict = field(default_factory=dict)  # what was run: memory, architecture, batch size, workers...
    usage: dict = field(default_factory=dict)  # billing counters by service (bench/cost.py)
    api_requests: dict = field(default_factory=dict)  # AWS API calls by service and action (local cloud)


def _describe_body(body: str) -> str:
    return message_label(body) or f"malformed: {body[:40]!r}"


class GraphRun:
    """Drives one run on a deployed stack through its outputs."""

    def __init__(self, clients, outputs: StackOutputs, invoke_start_run: Callable[[dict], dict]):
        self.clients = clients
        self.outputs = outputs
        self.invoke_start_run = invoke_start_run
        self.table = JobsTable(outputs.table, client=clients.client("dynamodb"))
        self.results = S3BlobStore(outputs.bucket, client=clients.client("s3"))
        sqs = clients.client("sqs")
        self.queues = {
            "incoming": FifoQueue(outputs.incoming_queue_url, client=sqs),
            "outgoing": FifoQueue(outputs.outgoing_queue_url, client=sqs),
        }
        self.dlqs = {
            "incoming DLQ": FifoQueue(outputs.incoming_dlq_url, client=sqs),
            "outgoing DLQ": FifoQueue(outputs.outgoing_dlq_url, client=sqs),
        }

    def start(self, sequences: list[Sequence], spec: RunSpec) -> dict:
        response = self.invoke_start_run(start_run_payload(sequences, spec))
        if not isinstance(response, dict) or response.get("status") != RunStatus.RUNNING.value:
            errors = response.get("errors") if isinstance(response, dict) else None
            detail = "\n  ".join(errors[:20]) if errors else json.dumps(response)[:2000]
            raise RunFailed(f"StartRun rejected run {spec.run_id}:\n  {detail}")
        expected = total_jobs(sequences)
        if response.get("jobs_total") != expected:
            raise RunFailed(f"StartRun planned {response.get('jobs_total')} jobs, expected {expected}")
        return response

    def run_record(self, run_id: str) -> dict:
        try:
            return self.table.get_run(run_id)
        except RunNotFoundError as exc:
            raise RunFailed(str(exc)) from None

    def dlq_depths(self) -> dict[str, int]:
        return {name: sum(queue.depth()) for name, queue in self.dlqs.items()}

    def dlq_contents(self, limit: int = 100) -> dict[str, list[str]]:
        """What each DLQ holds: a job id per message, or "malformed: <start of body>"; messages stay put."""
        contents = {}
        for name, queue in self.dlqs.items():
            found, handles = [], []
            while len(found) < limit:
                response = queue.client.receive_message(
                    QueueUrl=queue.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30, WaitTimeSeconds=0
                )
                messages = response.get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    handles.append(message["ReceiptHandle"])
                    found.append(_describe_body(message["Body"]))
            for handle in handles:  # visible again for whoever inspects or redrives the DLQ next
                queue.client.change_message_visibility(
                    QueueUrl=queue.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
                )
            contents[name] = found
        return contents

    def in_flight(self) -> int:
        """Messages waiting or being processed on the two work queues."""
        return sum(sum(queue.depth()) for queue in self.queues.values())

    def alarm_states(self) -> dict[str, str]:
        return alarm_states(self.clients.client("cloudwatch"), self.outputs.stack_name)

    def wait(
        self,
        run_id: str,
        progress: Callable[[], Progress],
        on_tick: Callable[[Progress], None] = lambda _p: None,
        *,
        timeout_s: float,
        stall_s: float,
        interval_s: float,
        check: Callable[[], None] = lambda: None,
    ) -> dict:
        """Until the run record says COMPLETED; RunFailed on FAILED, timeout, or a stall.

        A stall is ``stall_s`` seconds without a finished job while neither work queue holds a message:
        nothing can finish any more (typically the remaining jobs are in a DLQ).
        """
        started = last_change = time.monotonic()
        last_done = -1
        while True:
            check()
            record = self.run_record(run_id)
            current = progress()
            on_tick(current)
            if record["status"] == RunStatus.COMPLETED.value:
                return record
            if record["status"] == RunStatus.FAILED.value:
                raise RunFailed(f"run {run_id} FAILED: {record.get('error_message', 'see the job records')}")
            now = time.monotonic()
            if current.done != last_done:
                last_done, last_change = current.done, now
            elif now - last_change > stall_s and self.in_flight() == 0:
                raise RunFailed(
                    f"run {run_id} stalled: {current.done}/{current.total} jobs done, no job finished for "
                    f"{stall_s:.0f} s and no message is queued or in flight; dead-letter queues: {self.dlq_depths()}; "
                    f"{self.diagnose(run_id, record)}"
                )
            if now - started > timeout_s:
                raise RunFailed(
                    f"run {run_id} not COMPLETED after {timeout_s:.0f} s ({current.done}/{current.total} jobs)"
                )
            time.sleep(interval_s)

    def diagnose(self, run_id: str, record: dict) -> str:
        """Where a stuck run stands: sequences not yet counted, jobs whose last report is not COMPLETED."""
        unfinished = [
            f"{r['sk'].removeprefix('JOB#')} {r.get('status')}: {r.get('error_message', '')[:200]}"
            for r in self.table.jobs_of_run(run_id)
            if r.get("status") != "COMPLETED"
        ]
        merge = record.get("merge_claimed_by", "not claimed")
        return (
            f"{record.get('sequences_remaining')} sequence(s) not aggregated, MERGE {merge}; "
            f"jobs not completed: {unfinished[:10] or 'none recorded'}"
        )

    def settle(self, timeout_s: float, interval_s: float = 0.5, check: Callable[[], None] = lambda: None) -> bool:
        """Wait until both work queues are empty (late duplicates, poison messages on their way to a DLQ)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            check()
            if self.in_flight() == 0:
                return True
            time.sleep(interval_s)
        return False

    def export(self, run_id: str, out_dir: Path, *, overwrite: bool) -> Path:
        return export_results(self.results, run_id, out_dir, overwrite=overwrite)

    def job_timings(self, run_id: str) -> tuple[dict[str, list[float]], dict[str, int]]:
        return job_timings(self.table, run_id)

    def observations(self, run_id: str) -> dict:
        """The RunOutcome fields read after a run, whatever drove it: job timings, DLQs, alarms."""
        stage_ms, attempts = self.job_timings(run_id)
        return {
            "stage_ms": stage_ms,
            "attempts": attempts,
            "dlq": self.dlq_depths(),
            "dlq_contents": self.dlq_contents(),
            "alarms": self.alarm_states(),
        }

    def merged(self, run_id: str) -> dict:
        return json.loads(self.results.get(merged_key(run_id)))


def alarm_states(cloudwatch, stack_name: str) -> dict[str, str]:
    """State of every alarm of the stack (alarm names start with the stack name)."""
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack_name}-").get("MetricAlarms", [])
    return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}


def export_results(results: S3BlobStore, run_id: str, out_dir: Path, *, overwrite: bool) -> Path:
    """Copy <run_id>/ from the results bucket to ``out_dir/<run_id>`` (GUIDE §5 layout), all or nothing."""
    keys = results.list(f"{run_id}/")
    if merged_key(run_id) not in keys:
        raise RunFailed(f"{results.describe()}{merged_key(run_id)} is missing: the run has no result")
    with staged_run(out_dir, run_id, overwrite=overwrite) as local, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: local.put(key, results.get(key)), keys))
    return out_dir / run_id


def job_timings(table: JobsTable, run_id: str) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Per-stage processing times (ms) and attempts per job, from the job records."""
    stage_ms: dict[str, list[float]] = defaultdict(list)
    attempts: dict[str, int] = {}
    for record in table.jobs_of_run(run_id):
        job_id = record["sk"].removeprefix("JOB#")
        attempts[job_id] = int(record.get("last_attempt", 1))
        if record.get("status") == "COMPLETED":
            stage_ms[record["exec_type"]].append(float(record["processing_time_ms"]))
    return stage_ms, attempts


def execute(
    run: GraphRun,
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    mode: str,
    progress: Callable[[], Progress],
    overwrite: bool,
    show_progress: bool,
    timeout_s: float,
    stall_s: float,
    interval_s: float,
    check: Callable[[], None] = lambda: None,
    after_start: Callable[[], None] = lambda: None,
    before_report: Callable[[], None] = lambda: None,
    settle_s: float = 30.0,
    scenario: int = 1,
) -> RunOutcome:
    """Start the run, follow it to COMPLETED, export its results and gather the report's figures."""
    check_destination(out_dir, spec.run_id, overwrite)  # before the run, not after it
    jobs = total_jobs(sequences)
    started = time.monotonic()
    run.start(sequences, spec)
    after_start()
    with progress_bar(jobs, show_progress) as bar:

        def tick(current: Progress) -> None:
            bar.n = min(current.done, jobs)
            bar.set_postfix(in_flight=current.in_flight, retries=current.retries, dlq=current.dlq, refresh=False)
            bar.refresh()

        record = run.wait(
            spec.run_id, progress, tick, timeout_s=timeout_s, stall_s=stall_s, interval_s=interval_s, check=check
        )
    wall = time.monotonic() - started
    run.settle(settle_s, check=check)
    before_report()
    out = run.export(spec.run_id, out_dir, overwrite=overwrite)
    return RunOutcome(
        run_id=spec.run_id,
        stack_name=run.outputs.stack_name,
        mode=mode,
        out_dir=out,
        sequences=len(sequences),
        jobs=jobs,
        wall_seconds=wall,
        merged=run.merged(spec.run_id),
        run_record=record,
        dashboard_url=run.outputs.dashboard_url if mode == "AWS" else "",
        scenario=scenario,
        **run.observations(spec.run_id),
    )
