"""A run target, workload and run whose every step is recorded in a log, no endpoint behind them: for the tests
of runs/execute (the order of its steps, stalls, timeouts, failed runs)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from jobgraph.core.run import RunSpec
from jobgraph.runs.aws import AwsTarget
from jobgraph.runs.outcome import Progress
from jobgraph.runs.target import Output, Patience

SPEC = RunSpec("r1", "t", 10, 1)  # the run FakeRun plays


class FakeRun:
    def __init__(self, log, polls: list[int], ends_at: int | None, stalls: bool = False):
        self.log, self.polls, self.ends_at, self.stalls, self.jobs = log, iter(polls), ends_at, stalls, 4
        self.run_id = "r1"

    def start(self):
        self.log.append("start")

    def progress(self):
        return Progress(done=next(self.polls), total=self.jobs)

    def poll(self, progress):
        current = progress()
        return ({"status": "COMPLETED"} if current.done == self.ends_at else None), current

    def stalled(self, current, stall_s):
        return f"stuck at {current.done}" if self.stalls else None

    def timed_out(self, current, timeout_s):
        return f"late at {current.done}"

    def settle(self, timeout_s, check):
        self.log.append(f"settle {timeout_s}")

    def outcome(self, record, wall_seconds):
        self.log.append("outcome")
        return record


class FakeWorkload:
    scenario, queue_fed = 1, True

    def __init__(self, run):
        self.run = run

    def on(self, target, spec):
        target.log.append(f"on {spec.run_id}")
        return self.run


class FakeTarget(AwsTarget):
    """The AWS target's hooks, recorded; no endpoint behind it."""

    def __init__(self, log, folder: Path, patience: Patience):
        super().__init__(None, "s", Output(folder), patience, interval_s=0.0)
        self.log = log

    @contextmanager
    def attach(self, run_id):
        self.log.append("attach")
        try:
            yield self
        finally:
            self.log.append("detach")

    def after_start(self, run_id):
        self.log.append("after_start")

    def before_report(self):
        self.log.append("before_report")

    def finish(self, outcome, spec):
        self.log.append("finish")

    def hold(self, what="run done"):
        self.log.append("hold")
