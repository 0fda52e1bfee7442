"""The one run path without a cloud: which target and workload the CLI builds, the one refusal of local-only
options on AWS, the one reader of stack outputs, and execute's order of steps, stall and timeout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from jobgraph.cli.main import build_parser, main, run_target
from jobgraph.core.generator import generate_sequences
from jobgraph.runs.aws import AwsTarget
from jobgraph.runs.execute import execute
from jobgraph.runs.graph import QueueGraph
from jobgraph.runs.load import SyntheticLoad
from jobgraph.runs.local import FaultPlan, LocalOptions, LocalTarget
from jobgraph.runs.outcome import Progress, RunFailed
from jobgraph.runs.outputs import QUEUE_OUTPUTS, STATE_MACHINE_OUTPUTS, StackOutputs, read_outputs
from jobgraph.runs.scenarios import scenario
from jobgraph.runs.statemachine import StateMachineGraph
from jobgraph.runs.target import Output, Patience
from tests.run_doubles import SPEC, FakeRun, FakeTarget, FakeWorkload


def target_of(argv: list[str]):
    args = build_parser().parse_args(argv)
    return run_target(args, scenario(args.scenario), Patience(args.timeout, args.stall_timeout))


# ------------------------------------------------------------------------------------------ target selection
def test_without_a_stack_the_target_is_the_local_cloud_with_the_scenarios_template(tmp_path):
    target = target_of(["run", "--scenario", "2", "--out", str(tmp_path), "--fail-rate", "0.2", "--poison", "3",
                        "--parameter", "WorkerCpu=512", "--ecs-workers", "3", "--timeout", "99"])  # fmt: skip
    assert type(target) is LocalTarget and target.mode == "local"
    options = target.options
    assert options.template == Path("templates/scenario-2.yaml") and options.stack_name == "scenario-2-local"
    assert options.parameters == {"WorkerCpu": "512"} and options.ecs_workers == 3
    assert options.faults.fail_rate == 0.2 and options.faults.poison == 3
    assert options.api_port is None  # no --serve
    assert target.patience == Patience(99, 60) and target.output.folder == tmp_path
    assert target.settle_s == 30.0 and not target.links_to_console and not target.child_executions


def test_outside_the_checkout_the_default_template_is_named_with_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # `jobgraph run` from another folder: template.yaml is the checkout's
    assert main(["run", "--generate", "2", "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err == (
        "error: template.yaml: no such file here: the local cloud deploys the jobgraph checkout's SAM template - run "
        "this from the checkout's folder, or pass --template PATH\n"
    )


def test_serve_is_a_local_target_option(tmp_path):
    target = target_of(["run", "--serve", "--api-port", "8123", "--out", str(tmp_path)])
    assert target.options.api_port == 8123
    assert target_of(["run", "--serve", "--out", str(tmp_path)]).options.api_port == 0  # any free port


def test_with_a_stack_the_target_is_aws_through_a_session_of_the_region(tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    target = target_of(["run", "--stack", "scenario-1-dev", "--region", "us-east-2", "--out", str(tmp_path)])
    assert type(target) is AwsTarget and target.mode == "AWS" and target.stack_name == "scenario-1-dev"
    assert target.clients.region_name == "us-east-2"
    assert target.settle_s == 0.0 and target.links_to_console and target.interval_s == 2.0


def test_a_stack_behind_another_endpoint_links_to_no_aws_console(tmp_path, monkeypatch):
    # `eval "$(jobgraph cloud env)"` then --stack: the report must not print an AWS console URL for a local stack
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    target = target_of(["run", "--stack", "scenario-1-local", "--region", "eu-west-1", "--out", str(tmp_path)])
    assert type(target) is AwsTarget and not target.links_to_console


def test_the_scenario_says_which_workload_walks_its_graph():
    sequences = generate_sequences(2, seed=1)
    assert type(scenario(1).graph(sequences)) is QueueGraph
    assert scenario(2).graph(sequences).scenario == 2
    assert type(scenario(3).graph(sequences)) is StateMachineGraph


# ------------------------------------------------------------------------------------ one refusal, on AWS
@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--kill-rate", "0.1", "--poison", "2"], "--kill-rate, --poison"),
        (["--serve"], "--serve"),
        (["--template", "t.yaml", "--stack-name", "s"], "--template, --stack-name"),
        (["--ecs-workers", "3"], "--ecs-workers"),
    ],
)
def test_local_only_options_are_refused_with_a_stack_before_anything_starts(tmp_path, capsys, extra, named):
    out = tmp_path / "out"
    code = main(["run", "--stack", "scenario-1-dev", "--generate", "1", "--out", str(out), *extra])
    assert code == 1
    verb = "apply" if "," in named else "applies"  # one option applies, two apply
    assert f"error: {named} {verb} to the local cloud only, not to --stack" in capsys.readouterr().err
    assert not out.exists()


def test_load_refuses_its_local_only_options_in_the_same_place(tmp_path, capsys):
    code = main(["load", "--messages", "5", "--stack", "s", "--parameter", "A=1", "--max-workers", "2",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 1
    assert "--parameter, --max-workers apply to the local cloud only, not to --stack" in capsys.readouterr().err


def test_bench_refuses_local_only_options_with_env_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["bench", "--env", "dev", "--generate", "1", "--service-latency", "default", "--ecs-workers", "2",
                 "--out", str(out)])  # fmt: skip
    assert code == 1
    assert "--ecs-workers, --service-latency apply to the local cloud only, not to --env" in capsys.readouterr().err
    assert not out.exists()


def test_poison_needs_an_incoming_queue():
    target = LocalTarget(LocalOptions(faults=FaultPlan(poison=1)), Output(Path("x")))
    target.refuse(QueueGraph([]))  # a queue graph has one
    target.refuse(SyntheticLoad(1, 0, 0))
    with pytest.raises(RunFailed, match="--poison sends messages to an incoming queue: scenario 3 has none"):
        target.refuse(StateMachineGraph([]))


# ---------------------------------------------------------------------------------------- outputs reader
def test_required_outputs_name_what_is_missing_and_the_kind_of_stack():
    outputs = StackOutputs("s", {"ResultsBucketName": "b", "JobsTableName": "t", "StateMachineArn": "arn"})
    assert outputs.require(STATE_MACHINE_OUTPUTS, "a scenario 3 stack") is outputs
    assert outputs["JobsTableName"] == "t" and outputs.get("DashboardUrl", "") == ""
    with pytest.raises(
        RunFailed, match=r"stack s lacks the output\(s\) IncomingDlqUrl, IncomingQueueUrl, .*: is it q\?"
    ):
        outputs.require(QUEUE_OUTPUTS, "q")


def _described(status: str, outputs: list[dict]) -> dict:
    stack = {"StackName": "s", "StackStatus": status, "CreationTime": "2026-01-01T00:00:00Z", "Outputs": outputs}
    return {"Stacks": [stack]}


def test_outputs_are_read_from_a_deployed_stack_only():
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", _described("UPDATE_COMPLETE", [{"OutputKey": "K", "OutputValue": "v"}]))
        stub.add_response("describe_stacks", _described("CREATE_IN_PROGRESS", []))
        stub.add_client_error("describe_stacks", "ValidationError", "Stack with id s does not exist")
        assert dict(read_outputs(cloudformation, "s")) == {"K": "v"}
        with pytest.raises(RunFailed, match="stack s is CREATE_IN_PROGRESS, not deployed"):
            read_outputs(cloudformation, "s")
        with pytest.raises(RunFailed, match="stack s: Stack with id s does not exist"):
            read_outputs(cloudformation, "s")


# ------------------------------------------------------------------------------------ execute, step by step
def test_execute_runs_each_step_once_in_order_and_reports_while_the_target_is_up(tmp_path):
    log: list[str] = []
    run = FakeRun(log, polls=[0, 2, 4], ends_at=4)
    target = FakeTarget(log, tmp_path, Patience())
    outcome = execute(FakeWorkload(run), target, SPEC, then=lambda o: log.append(f"report {o['status']}"))
    assert outcome == {"status": "COMPLETED"}
    assert log == ["attach", "on r1", "start", "after_start", "settle 0.0", "before_report", "outcome", "finish",
                   "report COMPLETED", "hold", "detach"]  # fmt: skip


def test_the_output_folder_is_checked_once_before_the_target_is_attached(tmp_path):
    (tmp_path / "r1").mkdir()
    log: list[str] = []
    with pytest.raises(Exception, match="r1 already exists; choose another --run-id or pass --overwrite"):
        execute(FakeWorkload(FakeRun(log, [0], 0)), FakeTarget(log, tmp_path, Patience()), SPEC)
    assert log == []  # nothing deployed, nothing started


def test_a_stall_is_named_by_the_workload_and_a_timeout_too(tmp_path):
    log: list[str] = []
    stuck = FakeRun(log, polls=[1] * 1000, ends_at=None, stalls=True)
    with pytest.raises(RunFailed, match="stuck at 1"):
        execute(FakeWorkload(stuck), FakeTarget(log, tmp_path, Patience(timeout_s=60, stall_s=0)), SPEC)
    assert log[-1] == "detach"  # the target lets go of its stack all the same
    slow = FakeRun([], polls=list(range(10**6)), ends_at=None)
    with pytest.raises(RunFailed, match="late at"):
        execute(FakeWorkload(slow), FakeTarget([], tmp_path, Patience(timeout_s=0.05, stall_s=0)), SPEC)


def test_the_progress_bar_shows_only_the_figures_the_target_knows():
    assert Progress(3, 9).postfix() == {}
    assert Progress(3, 9, in_flight=2, dlq=0).postfix() == {"in_flight": 2, "dlq": 0}


class Clients:
    """A client factory of any endpoint: the AWS target assumes nothing else."""

    def client(self, service: str) -> str:
        return f"{service} client"


def test_start_run_goes_through_the_invoker_the_target_is_given_with_the_endpoints_lambda_client():
    seen = []

    def invoker(client, function_name):
        return lambda payload: seen.append((client, function_name, payload)) or {"status": "RUNNING"}

    target = AwsTarget(Clients(), "s", Output(Path(".")), invoker=invoker)
    assert target.start_run("s-start-run")({"run_id": "r"}) == {"status": "RUNNING"}
    assert seen == [("lambda client", "s-start-run", {"run_id": "r"})]


def test_a_rejected_start_names_the_first_reason_on_the_line_a_failure_shows():
    # a failed run's one-line error is the reason's first line: StartRun's first reason must be on it
    rejected = {"status": "REJECTED", "errors": ["run 'r1' already exists in table t", "second"]}
    outputs = dict.fromkeys(["IncomingQueueUrl", "OutgoingQueueUrl", "IncomingDlqUrl", "OutgoingDlqUrl",
                             "JobsTableName", "ResultsBucketName", "StartRunFunctionName"], "x")  # fmt: skip
    target = SimpleNamespace(
        outputs=SimpleNamespace(require=lambda *_: outputs),
        client=lambda _service: object(),
        start_run=lambda _name: lambda _payload: rejected,
    )
    run = QueueGraph(generate_sequences(1, seed=1)).on(target, SPEC)
    with pytest.raises(RunFailed) as failed:
        run.start()
    assert str(failed.value).splitlines() == [
        "StartRun rejected run r1: run 'r1' already exists in table t",
        "  second",
    ]
