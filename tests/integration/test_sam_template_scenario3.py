"""templates/scenario-3.yaml: offline SAM transform, the state machine definition and its role — no AWS, no
Docker. The checks every scenario's template must pass (lint, tags, IAM hygiene, TLS, encryption) are in
test_templates.py, over the three."""

from __future__ import annotations

import json

import pytest

from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template, transform_tree
from tests.cfn_eval import Stack
from tests.iam_grants import LOG_DELIVERY_ACTIONS
from tests.iam_policy import Permission, bindings_for, is_allowed, tree_role_statements
from tests.lambda_support import ROOT

TEMPLATE = ROOT / "templates" / "scenario-3.yaml"
REGION = "eu-west-1"
CUSTOM = {"TestRunId": "sfn-512mb", "Stage": "prod", "ProjectPrefix": "jobgraph-perf", "StepTaskMemorySize": "512",
          "Architecture": "arm64", "AlarmEmail": "ops@example.com", "SequenceConcurrency": "100"}  # fmt: skip
FUNCTIONS = ("PrepareRunFunction", "StepTaskFunction")


@pytest.fixture(scope="module")
def sam_template() -> dict:
    return load_template(TEMPLATE)


@pytest.fixture(scope="module")
def transformed(sam_template) -> dict:
    return transform_template(sam_template, {}, REGION, TEMPLATE.parent)[0]


@pytest.fixture(scope="module", params=["default", "custom"])
def stack(request) -> Stack:
    """The template and its nested shared pieces (status API, triggers, dashboard)."""
    parameters = {} if request.param == "default" else CUSTOM
    return Stack.from_tree(transform_tree(TEMPLATE, parameters, REGION), parameters)


def test_transform_inlines_the_definition_and_rewrites_code_locations(sam_template):
    transformed, locations = transform_template(sam_template, {}, REGION, TEMPLATE.parent)
    assert locations == {
        "CoreLayer": "../src",
        "ScientificLayer": "../layers/scientific",
        "PrepareRunFunction": "../functions/prepare_run",
        "StepTaskFunction": "../functions/step_task",
    }
    for function in FUNCTIONS:
        code = transformed["Resources"][function]["Properties"]["Code"]
        assert code == {"S3Bucket": ARTIFACT_BUCKET, "S3Key": locations[function]}
        assert (TEMPLATE.parent / locations[function] / "app.py").is_file()
    machine = transformed["Resources"]["JobGraphStateMachine"]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    assert "DefinitionString" in machine["Properties"] and "DefinitionS3Location" not in machine["Properties"]
    assert sorted(machine["Properties"]["DefinitionSubstitutions"]) == [
        "JobsTableName", "PrepareRunFunctionArn", "SequenceConcurrency", "StepTaskFunctionArn",
    ]  # fmt: skip
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert not [r for r in transformed["Resources"].values() if r["Type"].startswith("AWS::Serverless::")]


def test_the_definition_uses_only_substitutions_the_template_provides(sam_template):
    import re

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    text = (ROOT / "statemachine" / "jobgraph.asl.json").read_text()
    provided = sam_template["Resources"]["JobGraphStateMachine"]["Properties"]["DefinitionSubstitutions"]
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(provided)
    substituted = re.sub(r"\$\{(\w+)\}", lambda m: "7" if m.group(1) == "SequenceConcurrency" else "x", text)
    AmazonStateLanguageParser.parse(substituted)  # the engine that runs it locally accepts it
    states = json.loads(text)["States"]
    assert states["Sequences"]["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    routes = states["Sequences"]["ItemProcessor"]["States"]["Routes"]
    assert routes["MaxConcurrency"] == 1 and routes["ItemsPath"] == "$.routes"  # one route at a time, in order
    for name in ("PrepareRun", "Sequences", "Merge"):
        assert states[name]["Catch"][0]["Next"] == "RecordFailure"


def test_every_run_end_is_announced_for_the_downstream_triggers():
    """Both ends of a run pass an announcing StepTask call, whose own failure never changes the outcome."""
    states = json.loads((ROOT / "statemachine" / "jobgraph.asl.json").read_text())["States"]
    assert states["Merge"]["Next"] == "AnnounceRunCompleted"
    assert states["RecordFailure"]["Next"] == states["RecordFailure"]["Catch"][0]["Next"] == "AnnounceRunFailed"
    for name, path, end in (("AnnounceRunCompleted", "$.prepared.run.run_id", "RunCompleted"),
                            ("AnnounceRunFailed", "$.run_id", "RunFailed")):  # fmt: skip
        state = states[name]
        assert state["Parameters"] == {
            "FunctionName": "${StepTaskFunctionArn}",
            "Payload": {"announce_run_end.$": path},
        }
        assert state["Next"] == end and [c["Next"] for c in state["Catch"]] == [end]
        assert state["ResultPath"] is None and state["Catch"][0]["ResultPath"] != "$.failure"


def test_state_machine_role_invokes_exactly_its_two_functions(transformed):
    role = transformed["Resources"]["JobGraphStateMachineRole"]["Properties"]
    invoked = [
        s["Resource"]["Fn::Sub"][1]["functionName"]["Ref"]
        for policy in role["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if s["Action"] == ["lambda:InvokeFunction"]
    ]
    assert sorted(invoked) == ["PrepareRunFunction", "StepTaskFunction"]
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"]


def test_step_task_updates_job_records_and_deletes_nothing():
    bindings = bindings_for("scenario-3-dev-data-123456789012", "scenario-3-dev-jobs", {}, REGION, "123456789012")
    statements = tree_role_statements(transform_tree(TEMPLATE, {}, REGION), "StepTaskFunction", bindings)
    table = bindings.attributes["JobsTable.Arn"]
    assert is_allowed(statements, Permission("dynamodb:UpdateItem", table, ("RUN#r1",)))  # claim, completion
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, ("RUN#r1",)))
    assert not is_allowed(statements, Permission("dynamodb:DeleteItem", table, ("IDEMPOTENCY#step-task",)))
    # it announces run ends on the stack's own bus (the nested triggers stack's), nowhere else
    bus = bindings.attributes["RunEventsBus.Arn"]
    assert is_allowed(statements, Permission("events:PutEvents", bus))
    assert not is_allowed(statements, Permission("events:PutEvents", bus.replace("/runs", "/default")))


INTEGRATION_ACTIONS = {
    "arn:aws:states:::lambda:invoke": {"lambda:InvokeFunction"},
    "arn:aws:states:::s3:getObject": {"s3:GetObject"},
    "arn:aws:states:::dynamodb:updateItem": {"dynamodb:UpdateItem"},
}
DISTRIBUTED_MAP_ACTIONS = {"states:StartExecution", "states:DescribeExecution", "states:StopExecution"}


def definition_actions(states: dict) -> set[str]:
    actions = set()
    for state in states.values():
        for resource in (state.get("Resource"), (state.get("ItemReader") or {}).get("Resource")):
            if resource:
                actions |= INTEGRATION_ACTIONS[resource]  # a KeyError: a new integration, map its actions above
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
                actions |= DISTRIBUTED_MAP_ACTIONS
            actions |= definition_actions(processor["States"])
    return actions


def test_the_state_machine_role_allows_what_its_definition_calls_and_no_more(transformed):
    """Least privilege for the state machine: its role's actions are its integrations' plus execution logging's
    (the managed X-Ray policy aside), none more."""
    definition = json.loads((ROOT / "statemachine" / "jobgraph.asl.json").read_text())
    needed = definition_actions(definition["States"]) | LOG_DELIVERY_ACTIONS
    role = transformed["Resources"]["JobGraphStateMachineRole"]["Properties"]
    granted = {
        action
        for policy in role["Policies"]
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
        for action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert {"lambda:InvokeFunction", "s3:GetObject", "states:StartExecution"} <= needed
    assert granted == needed
