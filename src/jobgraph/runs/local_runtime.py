"""What the local target reads from, and adds to, the local Lambda runtime of its cloud: the report's runtime
figures, the state transitions moto's engine keeps no history of, and the bridge that runs a state machine's
Lambda tasks in the runtime with the run's injected faults.

The runtime objects come from runs/local.py (the one module of runs/ that imports jobgraph.localcloud).
"""

from __future__ import annotations

import json
import random
import threading
import zlib
from pathlib import Path


def _mapped_figures(stats, mapping) -> dict:
    logical_id = mapping.function.logical_id
    return {
        "workers": mapping.concurrency,
        "batch_size": mapping.batch_size,
        "invocations": stats.invocations[logical_id],
        "cold_starts": stats.cold_starts[logical_id],
        "errors": stats.errors[logical_id],
        "worker_deaths": stats.deaths[logical_id],
        "received": stats.received[logical_id],
        "redeliveries": stats.redeliveries[logical_id],
        "duplicates": stats.duplicates[logical_id],
        "last_error": stats.last_error.get(logical_id),
        "queue_wait_ms": list(stats.queue_wait_ms[logical_id]),
        "invocation_ms": list(stats.invocation_ms[logical_id]),
        "slot_ms": list(stats.slot_ms[logical_id]),
    }


def _direct_figures(runtime, logical_id: str) -> dict:
    stats = runtime.stats
    return {
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


def runtime_figures(runtime, log_dir: Path, *, state_machines: bool) -> dict:
    """Per function: those an event source mapping polls for, those invoked directly (StartRun; a state
    machine's Lambda tasks), and where state machines invoke functions, every other function of the stack too."""
    stats = runtime.stats
    with stats.lock:
        functions = {m.function.logical_id: _mapped_figures(stats, m) for m in runtime.mappings}
        for logical_id in sorted(set(runtime.functions) - set(functions)):
            if state_machines or stats.invocations[logical_id]:
                functions[logical_id] = _direct_figures(runtime, logical_id)
        return {"functions": functions, "faults": dict(stats.faults), "log_dir": str(log_dir)}


def local_transitions(figures: dict, tasks: int) -> dict:
    """State transitions of a local execution: moto's engine keeps no history for Map iterations, so the
    top-level execution's states plus one Task state per StepTask invocation (``tasks``: what AWS bills for them)."""
    return {
        "transitions": figures.get("states_entered", 0) + tasks,
        "source": "top-level history + one per task invocation (moto keeps no Map iteration history)",
    }


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
    """The state machines' Lambda tasks, run by the local Lambda runtime, with the run's injected faults.

    A job task's payload carries ``retry_count`` ($$.State.RetryCount): like the pollers, which spare a
    message on its last receive, no fault is injected into a try the state machine would not retry, so
    injected faults never fail a run; real errors still do.
    """

    def __init__(self, runtime, faults, clean_from_retry: int):
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
        # a failure as Lambda names it (Runtime.ExitError, Sandbox.Timedout, the exception's type): Retry matches it
        return (True, invocation.result) if invocation.ok else (False, invocation.error_document())
