"""`jobgraph run --scenario 3 --stack NAME` (AWS mode), exercised against moto only: templates/scenario-3.yaml
deployed into the local cloud plays the AWS stack, moto's ASL engine plays Step Functions and the local
runtime plays Lambda. Also the state machine's own failure paths: a rejected request and a job out of retries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobgraph.adapters.local_disk import staged_run
from jobgraph.core.generator import generate_sequences
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve
from jobgraph.localcloud.cloudformation.stack import deploy
from jobgraph.localcloud.controller import Controller
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.localcloud.stepfunctions import engine as sfn_engine
from jobgraph.runs.aws import AwsTarget
from jobgraph.runs.execute import execute
from jobgraph.runs.local_runtime import retries_allowed
from jobgraph.runs.outcome import RunFailed
from jobgraph.runs.statemachine import StateMachineGraph
from jobgraph.runs.target import Output
from jobgraph.sam.template import load_template
from tests.run_files import assert_same_run, read_run

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "scenario-3.yaml"
STACK = "scenario-3-dev"


def run_on_stack(endpoint, sequences, spec, out: Path):
    """`jobgraph run --scenario 3 --stack STACK`: the AWS target, on the local endpoint."""
    return execute(StateMachineGraph(sequences), AwsTarget(endpoint, STACK, Output(out), interval_s=0.3), spec)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The stack, with the state machine's Lambda tasks answered by the local cloud (``invoker`` swappable)."""
    with LocalEndpoint() as endpoint:
        controller = Controller(endpoint, tmp_path_factory.mktemp("cloud")).start()
        try:
            deploy(endpoint, TEMPLATE, stack_name=STACK)
            tasks = controller.sfn_invoker()
            current = {"invoker": tasks}
            sfn_engine.set_lambda_invoker(lambda function, payload: current["invoker"](function, payload))
            yield endpoint, tasks, current
        finally:
            controller.stop()


def test_aws_mode_drives_the_state_machine_through_the_stack_outputs(deployed, tmp_path):
    endpoint, _tasks, _current = deployed
    sequences = generate_sequences(3, seed=21)
    spec = RunSpec("sfn-aws", "perf-1", 50, 9)
    solve(sequences, spec, tmp_path / "solve", staging=staged_run)
    outcome = run_on_stack(endpoint, sequences, spec, tmp_path / "out")
    assert outcome.mode == "AWS" and outcome.scenario == 3 and outcome.run_record["status"] == "COMPLETED"
    assert_same_run(read_run(outcome.out_dir), read_run(tmp_path / "solve" / "sfn-aws"))
    assert sum(len(v) for v in outcome.stage_ms.values()) == outcome.jobs
    assert outcome.run_record["test_run_id"] == "perf-1"
    assert outcome.extra["state_machine"]["states_entered"] >= 5
    assert "/states/home" in outcome.dashboard_url
    # the stack's own two alarms and its nested status API's and triggers' (templates/shared)
    assert set(outcome.alarms) == {
        f"{STACK}-executions-failed", f"{STACK}-step-task-errors", f"{STACK}-api-errors", f"{STACK}-trigger-dlq-messages",
        f"{STACK}-triggers-in-doubt",
    }  # fmt: skip
    # the AWS target bills the transitions its execution history shows
    assert outcome.usage["stepfunctions"]["transitions"] == outcome.extra["state_machine"]["states_entered"]
    # a run id names one execution: it cannot be started twice
    with pytest.raises(RunFailed, match=f"run sfn-aws was started on {STACK} before"):
        run_on_stack(endpoint, sequences, spec, tmp_path / "again")


def test_an_invalid_request_fails_the_execution_as_rejected(deployed, tmp_path):
    endpoint, _tasks, _current = deployed
    sequence = generate_sequences(1, seed=2)[0]
    with pytest.raises(RunFailed, match=r"run twice rejected: sequences\[1\].*duplicate") as failed:
        run_on_stack(endpoint, [sequence, sequence], RunSpec("twice", "t", 10, 1), tmp_path)
    # one line for the user, naming the record that keeps the whole reason (as scenarios 1 and 2 do)
    assert "\n" not in str(failed.value) and str(tmp_path / "twice" / "run.json") in str(failed.value)
    record = json.loads((tmp_path / "twice" / "run.json").read_text())
    assert record["status"] == "FAILED" and record["run_id"] == "twice"
    assert re.search(r"^run twice rejected: sequences\[1\].*duplicate", record["reason"])


def test_a_job_out_of_retries_records_the_run_failed(deployed, tmp_path):
    endpoint, tasks, current = deployed
    calls = []

    def merge_fails(function, payload):
        if isinstance(payload, dict) and payload.get("job", {}).get("exec_type") == "MERGE":
            calls.append(payload["retry_count"])
            return False, {"errorType": "MissingStateError", "errorMessage": "no percentiles yet"}
        return tasks(function, payload)

    current["invoker"] = merge_fails
    try:
        with pytest.raises(RunFailed, match="execution FAILED: MissingStateError"):
            run_on_stack(endpoint, generate_sequences(1, seed=4), RunSpec("doomed", "t", 10, 1), tmp_path)
    finally:
        current["invoker"] = tasks
    # retried as the definition says (States.TaskFailed: MaxAttempts 3), then caught and recorded
    assert calls == [0, 1, 2, 3]
    record = endpoint.client("dynamodb").get_item(
        TableName=f"{STACK}-jobs", Key={"pk": {"S": "RUN#doomed"}, "sk": {"S": "RUN"}}
    )["Item"]
    assert record["status"]["S"] == "FAILED" and record["gsi1pk"]["S"] == "RUN#FAILED"
    assert record["error_message"]["S"].startswith("MissingStateError: ")


def test_faults_spare_the_last_try_the_definition_allows():
    definition = load_template(ROOT / "statemachine" / "jobgraph.asl.json")
    assert retries_allowed(definition) == 3
