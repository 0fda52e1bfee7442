"""`jobgraph run --stack NAME` (AWS mode), exercised against moto only.

The deployed-stack path (stack outputs, StartRun payload, DynamoDB progress, waiting, export, job
timings, alarms, usage from REPORT lines and CloudWatch) runs against the template deployed into the local
cloud, whose controller plays AWS Lambda behind the endpoint's own lambda:Invoke.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from jobgraph.adapters.local_disk import staged_run
from jobgraph.cli.main import main
from jobgraph.core.generator import generate_sequences
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve
from jobgraph.localcloud.cloudformation.stack import deploy
from jobgraph.localcloud.controller import Controller
from jobgraph.localcloud.server import LocalEndpoint
from jobgraph.runs.aws import AwsTarget, lambda_invoker
from jobgraph.runs.execute import execute
from jobgraph.runs.graph import QueueGraph
from jobgraph.runs.outcome import RunFailed
from jobgraph.runs.outputs import QUEUE_OUTPUTS, read_outputs
from jobgraph.runs.target import Output
from tests.run_files import assert_same_run, read_run

ROOT = Path(__file__).resolve().parents[2]


def test_aws_mode_drives_a_deployed_stack_through_its_outputs(tmp_path):
    sequences = generate_sequences(3, seed=21)
    spec = RunSpec("aws-mode", "perf-1", 50, 9)
    solve(sequences, spec, tmp_path / "solve", staging=staged_run)
    with LocalEndpoint() as endpoint:
        controller = Controller(endpoint, tmp_path / "cloud").start()
        try:
            stack = deploy(endpoint, ROOT / "template.yaml", stack_name="scenario-1-dev")
            invoked = []

            def invoker(lambda_client, function_name):
                start_run = lambda_invoker(lambda_client, function_name)  # lambda:Invoke through the endpoint

                def invoke(payload):
                    invoked.append((function_name, payload))
                    return start_run(payload)

                return invoke

            # the AWS target on the local endpoint, as `jobgraph run --stack` builds it (its invoker watched)
            target = AwsTarget(endpoint, "scenario-1-dev", Output(tmp_path / "out"), interval_s=0.5, invoker=invoker)
            outcome = execute(QueueGraph(sequences), target, spec)
            processor = stack.physical_ids["ProcessorFunction"]
            with controller.stats.lock:
                processor_invocations = controller.stats.invocations[processor]
        finally:
            controller.stop()
    # StartRun got the run from the stack's outputs, with the sequences and the cost tag
    ((function, payload),) = invoked
    assert function == "scenario-1-dev-start-run"
    assert payload["run_id"] == "aws-mode" and payload["test_run_id"] == "perf-1"
    assert [s["sequence_id"] for s in payload["sequences"]] == [s.sequence_id for s in sequences]
    # progress came from DynamoDB, results from S3: the same as the solver's
    assert outcome.mode == "AWS" and outcome.run_record["status"] == "COMPLETED"
    assert_same_run(read_run(outcome.out_dir), read_run(tmp_path / "solve" / "aws-mode"))
    assert sum(len(v) for v in outcome.stage_ms.values()) == outcome.jobs
    assert outcome.dlq == {"incoming DLQ": 0, "outgoing DLQ": 0}
    assert outcome.dashboard_url.endswith("#dashboards:name=scenario-1-dev-dashboard")
    assert set(outcome.alarms) >= {"scenario-1-dev-incoming-dlq-messages", "scenario-1-dev-processor-errors"}
    # usage as the endpoint reports it: REPORT lines in CloudWatch Logs, consumed capacity and message counts
    assert outcome.usage["lambda"]["StartRunFunction"]["requests"] == 1
    assert outcome.usage["lambda"]["ProcessorFunction"]["requests"] == processor_invocations
    assert outcome.usage["dynamodb"]["wru"] > 0 and outcome.usage["sqs"]["requests_64kb"] > 0
    assert outcome.settings["functions"]["ProcessorFunction"]["memory_mb"] == 256
    assert outcome.settings["scenarios"] == 50 and outcome.settings["seed"] == 9


def test_a_stack_without_jobgraph_outputs_is_named():
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
        cloudformation.create_stack(
            StackName="other",
            TemplateBody=json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue"}}}),
        )
        with pytest.raises(RunFailed, match="stack other lacks the output"):
            read_outputs(cloudformation, "other").require(QUEUE_OUTPUTS, "a jobgraph stack")
        with pytest.raises(RunFailed, match="stack missing"):
            read_outputs(cloudformation, "missing")


def _stubbed_lambda():
    client = boto3.client("lambda", region_name="eu-west-1")
    return client, Stubber(client)


def test_lambda_invoker_returns_the_payload_and_names_function_errors():
    client, stub = _stubbed_lambda()
    expected = {"FunctionName": "s-start-run", "InvocationType": "RequestResponse", "Payload": b'{"run_id": "r"}'}
    stub.add_response(
        "invoke", {"StatusCode": 200, "Payload": io.BytesIO(b'{"status": "RUNNING"}')}, expected_params=expected
    )
    stub.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "Payload": io.BytesIO(b'{"errorType": "ConfigurationError", "errorMessage": "BUCKET_NAME: not set"}'),
        },
    )
    with stub:
        invoke = lambda_invoker(client, "s-start-run")
        assert invoke({"run_id": "r"}) == {"status": "RUNNING"}
        with pytest.raises(RunFailed, match=r"s-start-run failed \(Unhandled\): ConfigurationError: BUCKET_NAME"):
            invoke({"run_id": "r"})


def test_fault_options_are_refused_with_a_stack(tmp_path, capsys):
    code = main(["run", "--stack", "scenario-1-dev", "--generate", "1", "--seed", "1", "--poison", "2",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 1
    assert "--poison applies to the local cloud only" in capsys.readouterr().err
