"""templates/scenario-3.yaml: lint, offline SAM transform, the state machine definition, tags and IAM
hygiene — the checks test_sam_template.py makes of scenario 1's template, for the Step Functions stack."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint_file

from jobgraph.sam.template import ARTIFACT_BUCKET, load_template, transform_template, transform_tree
from tests.cfn_eval import Stack
from tests.iam_policy import Permission, bindings_for, is_allowed, tree_role_statements
from tests.integration.test_sam_template import TAG_KEYS, UNTAGGABLE, _allow_statements
from tests.lambda_support import ROOT

TEMPLATE = ROOT / "templates" / "scenario-3.yaml"
REGION = "eu-west-1"
CUSTOM = {"TestRunId": "sfn-512mb", "Stage": "prod", "ProjectPrefix": "jobgraph-perf", "StepTaskMemorySize": "512",
          "Architecture": "arm64", "AlarmEmail": "ops@example.com", "SequenceConcurrency": "100"}  # fmt: skip
FUNCTIONS = ("PrepareRunFunction", "StepTaskFunction")
# CloudWatch Logs' log-delivery actions have no resource-level permissions: AWS documents Resource "*".
RESOURCE_STAR_ACTIONS = {
    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
}  # fmt: skip


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


def test_cfn_lint_reports_no_errors_or_warnings():
    matches = lint_file(TEMPLATE, config=ManualArgs(regions=["us-east-1", REGION]))
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches if m.rule.id[0] in "EW"] == []


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


def test_every_taggable_resource_carries_the_four_tags(stack):
    expected = {
        "PerfTestRun": stack.parameters["TestRunId"],
        "Purpose": "PerformanceTesting",
        "Environment": stack.parameters["Stage"],
        "Project": stack.parameters["ProjectPrefix"],
    }
    untagged, checked = {}, set()
    for _trail, nested in stack.walk():
        for logical_id, resource in nested.template["Resources"].items():
            if resource["Type"] in UNTAGGABLE or not nested.active(logical_id):
                continue
            checked.add(resource["Type"])
            tags = nested.properties(logical_id).get("Tags", [])
            if resource["Type"] == "AWS::ApiGatewayV2::Api" and "Body" in nested.properties(logical_id):
                body = nested.properties(logical_id)["Body"]
                tags = [{"Key": t["name"], "Value": t["x-amazon-apigateway-tag-value"]} for t in body.get("tags", [])]
            pairs = tags.items() if isinstance(tags, dict) else ((t["Key"], t["Value"]) for t in tags)
            found = {key: value for key, value in pairs if key in TAG_KEYS}
            if found != expected:
                untagged[logical_id] = found
    assert untagged == {}
    assert checked >= {
        "AWS::Lambda::Function", "AWS::IAM::Role", "AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SNS::Topic",
        "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm", "AWS::StepFunctions::StateMachine",
        "AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Dashboard", "AWS::Events::EventBus", "AWS::SQS::Queue",
    }  # fmt: skip


def test_no_allow_statement_grants_a_wildcard_action(transformed):
    allows = [(logical_id, s) for logical_id, s in _allow_statements(transformed) if s["Effect"] == "Allow"]
    assert len(allows) >= 10
    offending = []
    for logical_id, statement in allows:
        assert "NotAction" not in statement and "NotResource" not in statement, logical_id
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        offending += [(logical_id, a) for a in actions if a == "*" or a.split(":", 1)[1] == "*"]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources:
            offending += [(logical_id, f"Resource * for {a}") for a in actions if a not in RESOURCE_STAR_ACTIONS]
    assert offending == []


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


def test_every_function_declares_an_empty_aws_endpoint_url(transformed):
    """As in template.yaml: `sam local invoke --env-vars` may set it; empty keeps deployed functions on AWS."""
    for name in FUNCTIONS:
        assert transformed["Resources"][name]["Properties"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == ""
