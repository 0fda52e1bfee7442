"""Inside a local ECS task: runs a task definition's ``python3.x -m <module>`` command on this machine.

Started by ecs/service.py as ``<python3.x> -m jobgraph.localcloud.ecs.task -m <module> [args]``. Before handing over
to ``<module>.main`` it does what only the local cloud needs: the loopback-only guard, SIGINT ignored
(Ctrl-C reaches the whole process group; the supervisor stops tasks with SIGTERM, as ECS does), and the
fault injector of ``jobgraph run --fail-rate/--duplicate-rate/--kill-rate`` around each batch, from the plan
in JOBGRAPH_FAULT_PLAN. The worker module itself knows nothing of faults: it takes a ``batch_runner``.
"""

from __future__ import annotations

import importlib
import json
import os
import random
import signal
import sys

from jobgraph.localcloud import lifetime
from jobgraph.localcloud.faults import FaultPlan, on_last_receive
from jobgraph.localcloud.lambda_runtime.sandbox import KILL_EXIT_CODE, InjectedFault, allow_loopback_only

FAULT_PLAN_VARIABLE = "JOBGRAPH_FAULT_PLAN"
STOP_GRACE_VARIABLE = "JOBGRAPH_STOP_GRACE_S"  # seconds between SIGTERM and the task's own exit (ecs.py)


class TaskFaults:
    """Per batch: maybe deliver messages twice, maybe fail before/after the work, maybe die mid-batch."""

    def __init__(self, plan: FaultPlan, seed: int, max_receive_count: int | None, sqs=None, queue_url: str = ""):
        self.plan, self.rng = plan, random.Random(seed)
        self.max_receive_count = max_receive_count
        self.sqs, self.queue_url = sqs, queue_url

    @classmethod
    def from_environment(cls) -> TaskFaults:
        settings = json.loads(os.environ.get(FAULT_PLAN_VARIABLE) or "{}")
        plan = FaultPlan(**settings.get("plan", {}))
        return cls(plan, int(settings.get("seed", 0)), settings.get("max_receive_count"))

    def _client(self):
        if self.sqs is None:
            from jobgraph.adapters.clients import default_client

            self.sqs, self.queue_url = default_client("sqs"), os.environ["INCOMING_QUEUE_URL"]
        return self.sqs

    def run_batch(self, messages: list[dict], process) -> set[str]:
        from jobgraph.services.observability import logger

        for message in messages:
            if self.plan.duplicate(self.rng, message["Body"]):
                # at-least-once delivery made visible: the same body again, with a dedup id SQS has not seen
                self._client().send_message(
                    QueueUrl=self.queue_url,
                    MessageBody=message["Body"],
                    MessageGroupId=message["Attributes"]["MessageGroupId"],
                    MessageDeduplicationId=f"dup-{message['MessageId']}",
                )
                logger.warning("injected fault", extra={"fault": "duplicate"})
        fault = self.plan.invocation_fault(self.rng, on_last_receive(messages, self.max_receive_count))
        if fault:
            logger.warning("injected fault", extra={"fault": fault})
        if fault == "fail-before":
            raise InjectedFault("injected failure before side effects")
        if fault == "kill":
            # die mid-batch: the first half of the messages has had its side effects, nothing is deleted
            process(messages[: max(1, len(messages) // 2)])
            sys.stdout.flush()
            os._exit(KILL_EXIT_CODE)
        retry = process(messages)
        if fault == "fail-after":
            raise InjectedFault("injected failure after side effects")
        return retry


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "-m":
        print(f"local ECS runs `python3.x -m <module>` commands only, not {argv}", file=sys.stderr)
        return 2
    # dies with the local cloud, and exits within the local stopTimeout of a SIGTERM whatever the module does
    # with it (a batch retrying calls to an endpoint that is gone would otherwise hold it for minutes)
    lifetime.follow_parent()
    lifetime.backstop_signals(float(os.environ.get(STOP_GRACE_VARIABLE, "10")))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    allow_loopback_only()
    module = importlib.import_module(argv[1])
    sys.argv = [argv[1], *argv[2:]]
    return module.main(batch_runner=TaskFaults.from_environment().run_batch, signals=(signal.SIGTERM,))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
