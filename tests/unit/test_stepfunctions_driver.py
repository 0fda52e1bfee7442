"""Scenario 3's run driver, without a cloud: retry budget from the definition, fault routing, history counts."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from jobgraph.localcloud.event_sources.poller import RuntimeStats
from jobgraph.localcloud.faults import FaultPlan
from jobgraph.localcloud.lambda_runtime.runtime import DirectPool
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, Invocation
from jobgraph.runs.local_runtime import TaskInvoker, retries_allowed
from jobgraph.runs.outcome import RunFailed
from jobgraph.runs.outputs import STATE_MACHINE_OUTPUTS, StackOutputs
from jobgraph.runs.statemachine import count_history


def task(retry: list[dict]) -> dict:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Retry": retry, "End": True}


def test_retries_allowed_is_the_smallest_task_failed_budget_of_any_lambda_task():
    definition = {
        "States": {
            "A": task([{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 6},
                       {"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 3}]),
            "M": {"Type": "Map", "ItemProcessor": {"States": {"B": task([{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}])}}},
        }
    }  # fmt: skip
    assert retries_allowed(definition) == 2
    assert retries_allowed({"States": {"A": task([])}}) == 0


class FakeRuntime:
    def __init__(self, results):
        self.functions = {"StepTaskFunction": SimpleNamespace(function_name="s-step-task")}
        self.stats = RuntimeStats()
        self.results = list(results)
        self.calls = []

    def invoke(self, logical_id, payload, fault=None):
        self.calls.append((logical_id, fault))
        return self.results.pop(0)


def test_task_invoker_maps_failures_to_lambda_error_names_and_spares_the_last_try():
    runtime = FakeRuntime([
        Invocation(ok=True, result={"job_id": "j"}),
        Invocation(ok=False, error="InjectedFault: injected failure before side effects"),
        Invocation(ok=False, error="worker process died (exit code 137)", died=True),
        Invocation(ok=False, error="Task timed out after 60 s", timed_out=True),
    ])  # fmt: skip
    invoker = TaskInvoker(runtime, FaultPlan(fail_rate=0.9, seed=1), clean_from_retry=3)
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:s-step-task"
    assert invoker(arn, {"job": {}, "retry_count": 3}) == (True, {"job_id": "j"})
    assert runtime.calls[-1] == ("StepTaskFunction", None)  # no fault on the last try the Retry allows
    assert invoker(arn, {"job": {}, "retry_count": 0})[1] == {
        "errorType": "InjectedFault", "errorMessage": "injected failure before side effects",
    }  # fmt: skip
    assert invoker("s-step-task", {})[1]["errorType"] == "Runtime.ExitError"
    assert invoker("s-step-task", {})[1]["errorType"] == "Sandbox.Timedout"


def test_direct_pool_gives_concurrent_callers_their_own_worker_up_to_its_size(tmp_path):
    spec = FunctionSpec("F", "f", "app.h", Path("."), (), {}, 3, 128)
    pool = DirectPool(spec, tmp_path, size=2)
    first, second = pool.acquire(), pool.acquire()
    assert first is not second and len(pool.workers) == 2
    got = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire()))
    waiter.start()
    waiter.join(timeout=0.2)
    assert waiter.is_alive()  # a third caller waits for a free worker
    pool.release(second)
    waiter.join(timeout=2)
    assert got == [second] and len(pool.workers) == 2
    assert [w.log_path.name for w in pool.workers] == ["F.log", "F-1.log"]


def test_history_counts_states_tasks_and_failures():
    events = [{"type": t} for t in ("ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskFailed",
                                    "TaskScheduled", "TaskSucceeded", "MapStateEntered", "PassStateEntered")]  # fmt: skip
    assert count_history(events) == Counter(states_entered=3, tasks_scheduled=2, tasks_failed=1)


def test_outputs_of_another_kind_of_stack_are_refused():
    with pytest.raises(RunFailed, match=r"lacks the output.*StateMachineArn.*scenario 3"):
        outputs = StackOutputs("scenario-1-dev", {"ResultsBucketName": "b", "JobsTableName": "t"})
        outputs.require(STATE_MACHINE_OUTPUTS, "a scenario 3 (Step Functions) stack")


def test_poison_is_refused_for_scenario_3_before_anything_starts(tmp_path, capsys):
    from jobgraph.cli.main import main

    out = tmp_path / "out"
    code = main(["run", "--scenario", "3", "--generate", "1", "--poison", "2", "--out", str(out), "--no-progress"])
    assert code == 1 and "scenario 3 has none" in capsys.readouterr().err
    assert not out.exists()


def test_run_scenario_3_with_a_stack_goes_to_the_state_machine_on_the_aws_target(tmp_path, monkeypatch, capsys):
    from jobgraph.cli.main import main
    from jobgraph.runs import execute
    from jobgraph.runs.aws import AwsTarget
    from jobgraph.runs.statemachine import StateMachineGraph

    seen = {}

    def fake(workload, target, spec, then=None):
        seen.update(workload=workload, target=target, run_id=spec.run_id)
        raise RunFailed("stop here")

    monkeypatch.setattr(execute, "execute", fake)
    argv = ["run", "--scenario", "3", "--stack", "scenario-3-dev", "--region", "eu-west-1", "--generate", "2",
            "--run-id", "r9", "--out", str(tmp_path), "--no-progress", "--timeout", "77"]  # fmt: skip
    assert main(argv) == 1 and "stop here" in capsys.readouterr().err
    workload, target = seen["workload"], seen["target"]
    assert isinstance(workload, StateMachineGraph) and len(workload.sequences) == 2 and seen["run_id"] == "r9"
    assert type(target) is AwsTarget and target.stack_name == "scenario-3-dev"
    assert target.clients.region_name == "eu-west-1" and target.patience.timeout_s == 77
    assert target.output.folder == tmp_path and not target.output.progress_bar
    # options that only the local cloud has are refused with a stack
    assert main([*argv, "--fail-rate", "0.1"]) == 1
    assert "--fail-rate applies to the local cloud only" in capsys.readouterr().err
