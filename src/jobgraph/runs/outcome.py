"""What a run gives back, however and wherever it ran: its outcome, its progress, its failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.core.errors import JobGraphError


class RunFailed(JobGraphError):
    """The run was rejected, failed, stalled or timed out; the message says which and why."""


# the schema of <out>/<run_id>/run.json for a run that failed (runs/execute.py): why, and which jobs
FAILED_RUN_SCHEMA = "jobgraph.failed-run/1"


@dataclass
class Progress:
    """Jobs done of ``total``; the queue figures are None where the target cannot tell them."""

    done: int
    total: int
    in_flight: int | None = None
    retries: int | None = None
    dlq: int | None = None

    def postfix(self) -> dict[str, int]:
        """The progress bar's figures beside the count: only those known."""
        figures = {"in_flight": self.in_flight, "retries": self.retries, "dlq": self.dlq}
        return {name: value for name, value in figures.items() if value is not None}


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
    dashboard_url: str = ""  # AWS mode: the stack's CloudWatch dashboard (Step Functions console: scenario 3)
    extra: dict = field(default_factory=dict)  # mode-specific figures (local runtime statistics)
    scenario: int = 1  # runs/scenarios.py
    settings: dict = field(default_factory=dict)  # what was run: memory, architecture, batch size, workers...
    usage: dict = field(default_factory=dict)  # billing counters by service (bench/cost.py)
    api_requests: dict = field(default_factory=dict)  # AWS API calls by service and action (local cloud)
