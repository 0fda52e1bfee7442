"""The implementations of one job graph that jobgraph can run and compare (seed 001's scenarios).

Each scenario is its own SAM template and stack (``scenario-<n>-<env>`` on AWS, ``scenario-<n>-local`` on
the embedded local cloud), running the same domain core, and must give byte-identical results (GUIDE §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Scenario:
    number: int
    name: str
    template: Path  # relative to the project folder
    summary: str
    state_machine: bool = False  # the graph is walked by a Step Functions state machine, not by queues

    @property
    def local_stack_name(self) -> str:
        return f"scenario-{self.number}-local"

    def stack_name(self, env: str) -> str:
        return f"scenario-{self.number}-{env}"

    def graph(self, sequences):
        """The job graph of ``sequences`` as this scenario's workload (runs/workload.py)."""
        if self.state_machine:
            from jobgraph.runs.statemachine import StateMachineGraph

            return StateMachineGraph(sequences, self.number)
        from jobgraph.runs.graph import QueueGraph

        return QueueGraph(sequences, self.number)


SCENARIOS = {
    1: Scenario(1, "SQS FIFO + Lambda", Path("template.yaml"), "Processor Lambda on the incoming queue"),
    2: Scenario(2, "SQS FIFO + ECS Fargate", Path("templates/scenario-2.yaml"), "polling container workers"),
    3: Scenario(3, "Step Functions", Path("templates/scenario-3.yaml"), "a state machine walks the graph", True),
}


def scenario(number: int) -> Scenario:
    try:
        return SCENARIOS[number]
    except KeyError:
        raise ValueError(f"scenario {number}: choose one of {', '.join(map(str, SCENARIOS))}") from None
