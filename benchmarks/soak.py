"""Soak: 10 000 synthetic jobs through the local cloud with faults on (issue 17.7). Not part of CI.

    .venv/bin/python benchmarks/soak.py                         # 10 000 jobs, scenario 1, ~10-20 min here
    .venv/bin/python benchmarks/soak.py --messages 2000         # quicker
    .venv/bin/python benchmarks/soak.py --scenario 2            # ECS workers instead of the Processor Lambda
    .venv/bin/python benchmarks/soak.py --json soak.json        # also write the figures

Checks, each printed PASS/FAIL (the exit status is non-zero if one fails):
- nothing lost: every job has a COMPLETED record and its output object;
- the dead-letter queues hold the poison messages and nothing else;
- memory of every long-lived process is flat: for each worker process (Lambda sandbox, ECS task) that lived a
  quarter of the soak or more, the mean resident set size of the last quarter of its life within ±20 % of its
  first quarter's. This process runs the moto server, which holds the local cloud's data (S3 objects, DynamoDB
  items, SQS deduplication history, CloudWatch datapoints) and grows with the jobs stored, as S3 and DynamoDB
  would: its check is that once the cloud is stopped and that data dropped, the memory Python holds is back
  within ±20 % of what it held before the first job (a leak anywhere else would stay).
The machine's load average before and after is printed with the figures: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
FLAT = 0.20


def rss_bytes(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children of all its threads, recursively)."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def command_of(pid: int) -> str:
    try:
        parts = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(p.decode(errors="replace") for p in parts if p)
    return text[-100:]


@dataclass
class MemorySampler:
    """RSS of this process and every descendant, every ``interval_s`` seconds, in a background thread."""

    interval_s: float = 1.0
    samples: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    # this process only: Python's allocated memory blocks and its threads, to tell objects kept from RSS
    heap: list[tuple[float, int, int]] = field(default_factory=list)
    commands: dict[int, str] = field(default_factory=dict)
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MemorySampler:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic() - self.started
            self.heap.append((now, sys.getallocatedblocks(), threading.active_count()))
            for pid in {me} | descendants(me):
                rss = rss_bytes(pid)
                if rss is None:
                    continue
                self.samples.setdefault(pid, []).append((now, rss))
                if pid not in self.commands:
                    self.commands[pid] = "this process (moto server, pollers)" if pid == me else command_of(pid)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.stopped = time.monotonic() - self.started

    def heap_figures(self) -> dict:
        """This process's Python blocks and threads, first vs last quarter of the soak."""
        quarter = self.stopped / 4
        first = [h for h in self.heap if h[0] <= quarter]
        last = [h for h in self.heap if h[0] >= self.stopped - quarter]
        if not first or not last:
            return {}
        blocks = statistics.fmean(b for _, b, _ in first), statistics.fmean(b for _, b, _ in last)
        return {
            "python_blocks_first_quarter": round(blocks[0]),
            "python_blocks_last_quarter": round(blocks[1]),
            "python_blocks_change": round(blocks[1] / blocks[0] - 1, 3),
            "threads_first_quarter": max(t for _, _, t in first),
            "threads_last_quarter": max(t for _, _, t in last),
        }

    def long_lived(self, min_s: float = 120.0) -> dict[int, dict]:
        """Per process that lived at least a quarter of the soak (and ``min_s``): first/last-quarter mean RSS
        of its own life (a Lambda worker killed by the fault injector is replaced: each lives on its own)."""
        span = self.stopped
        quarter = span / 4
        report = {}
        for pid, series in self.samples.items():
            if len(series) < 8 or series[-1][0] - series[0][0] < max(span / 4, min(min_s, span / 2)):
                continue
            first_at, last_at = series[0][0], series[-1][0]
            length = last_at - first_at
            first = [rss for t, rss in series if t <= first_at + min(quarter, length / 4)]
            last = [rss for t, rss in series if t >= last_at - min(quarter, length / 4)]
            mean_first, mean_last = statistics.fmean(first), statistics.fmean(last)
            report[pid] = {
                "command": self.commands.get(pid, "?"),
                "lived_s": round(length, 1),
                "first_quarter_mib": round(mean_first / 2**20, 1),
                "last_quarter_mib": round(mean_last / 2**20, 1),
                "peak_mib": round(max(rss for _, rss in series) / 2**20, 1),
                "change": round(mean_last / mean_first - 1, 3),
            }
        return report


def python_blocks() -> int:
    """Memory blocks Python has allocated in this process now (after a collection), whoever holds them."""
    import gc

    gc.collect()
    return sys.getallocatedblocks()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def soak(
    messages: int, scenario: int, work_ms: int, data_kb: int, poison: int, seed: int, rates: float, kill_rate: float
) -> dict:
    """Run the soak; returns the figures and the checks (see the module docstring)."""
    from jobgraph.core.graph import synthetic_jobs
    from jobgraph.core.results import synthetic_key
    from jobgraph.core.run import RunSpec
    from jobgraph.runs.execute import execute
    from jobgraph.runs.load import LoadRun, SyntheticLoad
    from jobgraph.runs.local import FaultPlan, LocalOptions, LocalTarget
    from jobgraph.runs.scenarios import scenario as scenario_of
    from jobgraph.runs.target import Output, Patience

    chosen = scenario_of(scenario)
    faults = FaultPlan(fail_rate=rates, duplicate_rate=rates, kill_rate=kill_rate, poison=poison, seed=seed)
    spec = RunSpec("soak", "soak", 1, 0)
    stored: dict = {}
    blocks: dict[str, int] = {}

    def count_outputs(target) -> None:
        # while the local cloud is still up: every job's output object, and its job record
        from jobgraph.adapters.dynamodb import JobsTable
        from jobgraph.adapters.s3 import S3BlobStore

        results = S3BlobStore(target.outputs["ResultsBucketName"], client=target.client("s3"))
        keys = set(results.list(f"{spec.run_id}/synthetic/"))
        # the jobs the load sent (the same call makes them: their ids are core.graph's to make)
        sent = synthetic_jobs(spec, messages, load.work_duration_ms, load.data_size_kb, load.groups)
        expected = {synthetic_key(spec.run_id, job.job_id) for job in sent}
        table = JobsTable(target.outputs["JobsTableName"], client=target.client("dynamodb"))
        records = table.jobs_of_run(spec.run_id)
        stored.update(
            outputs=len(keys),
            missing_outputs=len(expected - keys),
            completed_records=sum(1 for r in records if r.get("status") == "COMPLETED"),
            records=len(records),
        )

    class CountedLoadRun(LoadRun):
        def start(self) -> None:
            blocks["cloud up, before the jobs"] = python_blocks()
            super().start()

    class CountedLoad(SyntheticLoad):
        def on(self, target, spec: RunSpec) -> LoadRun:
            return CountedLoadRun(self, target, spec)

    with tempfile.TemporaryDirectory(prefix="jobgraph-soak-") as tmp:
        options = LocalOptions(template=ROOT / chosen.template, stack_name=chosen.local_stack_name, faults=faults)
        target = LocalTarget(options, Output(Path(tmp)), Patience(timeout_s=4 * 3600, stall_s=600))
        load = CountedLoad(messages, work_ms, data_kb, scenario=scenario)
        sampler = MemorySampler().start()
        load_before, started = load_average(), time.monotonic()
        outcome = execute(load, target, spec, then=lambda _outcome: count_outputs(target))
        wall = time.monotonic() - started
        # the local cloud is stopped and moto reset (its stored data dropped): what is left is everything else
        blocks["after the soak, cloud data dropped"] = python_blocks()
        sampler.stop()
        load_after = load_average()
    processes = sampler.long_lived()
    dlq_total = sum(outcome.dlq.values())
    dlq_items = [item for items in outcome.dlq_contents.values() for item in items]
    functions = outcome.extra.get("functions", {})
    figures = {
        "messages": messages,
        "scenario": scenario,
        "work_duration_ms": work_ms,
        "data_size_kb": data_kb,
        "faults": {"fail_rate": rates, "duplicate_rate": rates, "kill_rate": kill_rate, "poison": poison},
        "wall_seconds": round(wall, 1),
        "run_seconds": round(outcome.wall_seconds, 1),
        "jobs_per_second": round(messages / outcome.wall_seconds, 2),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "stored": stored,
        "dlq": outcome.dlq,
        "worker_deaths": {name: f.get("worker_deaths") for name, f in functions.items()},
        "injected_faults": outcome.extra.get("faults", {}),
        "services": {name: {"restarts": s.get("restarts")} for name, s in outcome.extra.get("services", {}).items()},
        "processes": processes,
        "harness_heap": sampler.heap_figures(),
        "harness_python_blocks": blocks,
        "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
    }
    figures["checks"] = {
        "nothing lost": stored.get("completed_records") == messages and stored.get("missing_outputs") == 0,
        "DLQ only poison": dlq_total == poison and all(item.startswith("malformed") for item in dlq_items),
        # workers hold no state: their RSS. The harness also holds the local cloud's data (S3 objects, DynamoDB
        # items, SQS deduplication history, CloudWatch datapoints), which grows with the jobs as it would in AWS:
        # what it holds once that data is dropped must be back within ±20 % of what it held before the jobs
        "memory flat ±20 %": bool(processes)
        and all(abs(p["change"]) <= FLAT for pid, p in processes.items() if pid != os.getpid())
        and len(blocks) == 2
        and blocks["after the soak, cloud data dropped"] <= (1 + FLAT) * blocks["cloud up, before the jobs"],
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--scenario", type=int, choices=[1, 2], default=1)
    parser.add_argument("--work-duration-ms", type=int, default=5)
    parser.add_argument("--data-size-kb", type=int, default=1)
    parser.add_argument("--poison", type=int, default=20)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--rates", type=float, default=0.05, help="P(an invocation fails), P(a duplicate)")
    parser.add_argument("--kill-rate", type=float, default=0.01, help="P(a worker dies mid-batch)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    figures = soak(
        args.messages,
        args.scenario,
        args.work_duration_ms,
        args.data_size_kb,
        args.poison,
        args.seed,
        args.rates,
        args.kill_rate,
    )
    print(json.dumps(figures, indent=2))
    for check, passed in figures["checks"].items():
        print(f"{'PASS' if passed else 'FAIL'}  {check}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if all(figures["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
