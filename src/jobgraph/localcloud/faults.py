"""Fault injection for rehearsals (`jobgraph run --fail-rate/--duplicate-rate/--kill-rate/--poison`)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from jobgraph.core.models import message_label


@dataclass(frozen=True)
class FaultPlan:
    fail_rate: float = 0.0  # invocation raises, half before and half after the handler's side effects
    duplicate_rate: float = 0.0  # a received message is delivered a second time
    kill_rate: float = 0.0  # the worker process dies mid-batch
    poison: int = 0  # malformed messages sent to the incoming queue after StartRun
    seed: int = 0

    def __post_init__(self):
        for name in ("fail_rate", "duplicate_rate", "kill_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.fail_rate + self.kill_rate > 0.9:
            raise ValueError("--fail-rate plus --kill-rate above 0.9 would leave almost no invocation succeeding")
        if self.poison < 0:
            raise ValueError(f"--poison must be >= 0, got {self.poison}")

    def invocation_fault(self, rng: random.Random, last_attempt: bool) -> str | None:
        """The fault for one invocation, or None.

        No fault is injected into a batch holding a message on its last allowed receive
        (ApproximateReceiveCount = maxReceiveCount): an injected, transient fault there would dead-letter a
        valid job and make the rehearsal's outcome a matter of luck. Real faults still can.
        """
        if last_attempt:
            return None
        draw = rng.random()
        if draw < self.kill_rate:
            return "kill"
        if draw < self.kill_rate + self.fail_rate:
            return "fail-before" if rng.random() < 0.5 else "fail-after"
        return None

    def duplicate(self, rng: random.Random, body: str) -> bool:
        """Duplicate well-formed jobs/completions only, so DLQ counts stay equal to --poison."""
        if not self.duplicate_rate or rng.random() >= self.duplicate_rate:
            return False
        return message_label(body) is not None


def on_last_receive(messages: list[dict], max_receive_count: int | None) -> bool:
    """Whether a batch of SQS messages holds one on its last allowed receive (the ``last_attempt`` of
    FaultPlan.invocation_fault); never without a redrive policy."""
    return bool(max_receive_count) and any(
        int(m["Attributes"].get("ApproximateReceiveCount", "1")) >= max_receive_count for m in messages
    )


def poison_bodies(count: int, run_id: str) -> list[tuple[str, str]]:
    """(group id, body) of malformed messages: each in its own group so none blocks another."""
    shapes = [
        "not json at all",
        json.dumps({"hello": "world"}),
        json.dumps({"job_id": f"{run_id}-poison", "exec_type": "TAKEOFF"}),
        json.dumps([1, 2, 3]),
    ]
    return [(f"{run_id}-poison-{i}", shapes[i % len(shapes)]) for i in range(count)]
