"""The queue graph (scenarios 1 and 2): StartRun plans the run and sends the first jobs to the incoming FIFO
queue; the Processor (Lambda, or scenario 2's ECS workers) runs them and the Scheduler sends the next ones,
until the run's MERGE job marks the run record COMPLETED.

Everything goes through the stack's outputs and public APIs (Lambda invoke of StartRun through the target,
DynamoDB run record, SQS queue attributes, S3 results, CloudWatch alarms), on any target alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.errors import RunNotFoundError
from jobgraph.core.graph import total_jobs
from jobgraph.core.models import RunStatus, Sequence, message_label
from jobgraph.core.run import RunSpec, RunStarted
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.outputs import QUEUE_OUTPUTS
from jobgraph.runs.workload import StackRun, start_run_payload


def _describe_body(body: str) -> str:
    return message_label(body) or f"malformed: {body[:40]!r}"


class QueueStackRun(StackRun):
    """A run on a stack of two FIFO work queues and their DLQs (a queue graph, or a synthetic load)."""

    def __init__(self, target, spec: RunSpec, jobs: int):
        super().__init__(target, spec, jobs, target.outputs.require(QUEUE_OUTPUTS, "a jobgraph stack"))
        sqs = target.client("sqs")
        self.queues = {
            "incoming": FifoQueue(self.outputs["IncomingQueueUrl"], client=sqs),
            "outgoing": FifoQueue(self.outputs["OutgoingQueueUrl"], client=sqs),
        }
        self.dlqs = {
            "incoming DLQ": FifoQueue(self.outputs["IncomingDlqUrl"], client=sqs),
            "outgoing DLQ": FifoQueue(self.outputs["OutgoingDlqUrl"], client=sqs),
        }

    def progress(self) -> Progress:
        """From the job records and the queues' attributes (what a target without a runtime of its own has)."""
        return Progress(
            done=self.table.count_jobs(self.run_id),
            total=self.jobs,
            in_flight=self.in_flight(),
            dlq=sum(self.dlq_depths().values()),
        )

    def in_flight(self) -> int:
        """Messages waiting or being processed on the two work queues."""
        return sum(sum(queue.depth()) for queue in self.queues.values())

    def settle(self, timeout_s: float, check: Callable[[], None], interval_s: float = 0.5) -> None:
        """Until both work queues are empty (late duplicates, poison messages on their way to a DLQ)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            check()
            if self.in_flight() == 0:
                return
            time.sleep(interval_s)

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

    def failure(self, reason: str, limit: int = 100) -> dict:
        return {**super().failure(reason, limit), "dlq": self.dlq_depths(), "dlq_contents": self.dlq_contents()}

    def observations(self) -> dict:
        """The RunOutcome fields read after the run: job timings, DLQs, alarms."""
        stage_ms, attempts = self.job_timings()
        return {
            "stage_ms": stage_ms,
            "attempts": attempts,
            "dlq": self.dlq_depths(),
            "dlq_contents": self.dlq_contents(),
            "alarms": self.alarm_states(),
        }


@dataclass(frozen=True)
class QueueGraph:
    """The job graph of ``sequences`` through StartRun and the SQS FIFO queues (scenario 1 or 2)."""

    sequences: list[Sequence]
    scenario: int = 1
    queue_fed = True

    def on(self, target, spec: RunSpec) -> QueueGraphRun:
        return QueueGraphRun(self, target, spec)


class QueueGraphRun(QueueStackRun):
    def __init__(self, graph: QueueGraph, target, spec: RunSpec):
        super().__init__(target, spec, total_jobs(graph.sequences))
        self.graph = graph

    def start(self) -> None:
        invoke = self.target.start_run(self.outputs["StartRunFunctionName"])
        response = invoke(start_run_payload(self.graph.sequences, self.spec))
        if not isinstance(response, dict) or response.get("status") != RunStatus.RUNNING.value:
            errors = response.get("errors") if isinstance(response, dict) else None
            detail = "\n  ".join(errors[:20]) if errors else json.dumps(response)[:2000]
            raise RunFailed(f"StartRun rejected run {self.run_id}: {detail}")  # the first reason on the first line
        started = RunStarted.model_validate(response)
        if started.jobs_total != self.jobs:
            raise RunFailed(f"StartRun planned {started.jobs_total} jobs, expected {self.jobs}")

    def run_record(self) -> dict:
        try:
            return self.table.get_run(self.run_id)
        except RunNotFoundError as exc:
            raise RunFailed(str(exc)) from None

    def poll(self, progress: Callable[[], Progress]) -> tuple[dict | None, Progress]:
        """Ended when the run record says COMPLETED; RunFailed when it says FAILED."""
        record = self.run_record()
        current = progress()
        if record["status"] == RunStatus.FAILED.value:
            raise RunFailed(f"run {self.run_id} FAILED: {record.get('error_message', 'see the job records')}")
        return (record if record["status"] == RunStatus.COMPLETED.value else None), current

    def stalled(self, current: Progress, stall_s: float) -> str | None:
        """Stalled when neither work queue holds a message: nothing can finish any more (typically the remaining
        jobs are in a DLQ)."""
        if self.in_flight():
            return None
        return (
            f"run {self.run_id} stalled: {current.done}/{current.total} jobs done, no job finished for "
            f"{stall_s:.0f} s and no message is queued or in flight; dead-letter queues: {self.dlq_depths()}; "
            f"{self.diagnose(self.run_record())}"
        )

    def diagnose(self, record: dict) -> str:
        """Where a stuck run stands: sequences not yet counted, jobs whose last report is not COMPLETED."""
        unfinished = [f"{j['job_id']} {j['status']}: {j['error'][:200]}" for j in self.unfinished_jobs()]
        merge = record.get("merge_claimed_by", "not claimed")
        return (
            f"{record.get('sequences_remaining')} sequence(s) not aggregated, MERGE {merge}; "
            f"jobs not completed: {unfinished[:10] or 'none recorded'}"
        )

    def outcome(self, record: dict, wall_seconds: float) -> RunOutcome:
        return RunOutcome(
            run_id=self.run_id,
            stack_name=self.target.stack_name,
            mode=self.target.mode,
            out_dir=self.export(),
            sequences=len(self.graph.sequences),
            jobs=self.jobs,
            wall_seconds=wall_seconds,
            merged=self.merged(),
            run_record=record,
            dashboard_url=self.console_link("DashboardUrl"),
            scenario=self.graph.scenario,
            **self.observations(),
        )
